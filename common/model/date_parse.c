#define _XOPEN_SOURCE 700 /* strptime */
#include "date_parse.h"

#include <string.h>
#include <time.h>

static void vector_from_fields(int year, int month, int day, int hour, int minute, int second,
                               int64_t out[SW_DATE_VECTOR_LEN])
{
    GDate *d = g_date_new_dmy((GDateDay)day, (GDateMonth)month, (GDateYear)year);
    out[0] = year;
    out[1] = month;
    out[2] = day;
    out[3] = (int64_t)g_date_get_weekday(d) - 1; /* GLib counts Monday as 1 */
    out[4] = g_date_get_day_of_year(d);
    out[5] = hour;
    out[6] = minute;
    out[7] = second;
    out[8] = (int64_t)hour * 3600 + minute * 60 + second;
    g_date_free(d);
}

static gboolean fields_valid(int year, int month, int day, int hour, int minute, int second)
{
    return year >= 1 && year <= 9999 && g_date_valid_dmy((GDateDay)day, (GDateMonth)month, (GDateYear)year) &&
           hour >= 0 && hour < 24 && minute >= 0 && minute < 60 && second >= 0 && second < 60;
}

/* Like Python's strptime, which Ludwig uses: %Y takes exactly four digits
 * (glibc's takes one to four), and the whole string must be consumed
 * (trailing blanks aside). The format is cut at each %Y, the pieces parsed
 * by strptime and the years read here. */
static gboolean parse_with_format(const char *s, const char *format, int64_t out[SW_DATE_VECTOR_LEN])
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_mday = 1;
    char **pieces = g_strsplit(format, "%Y", -1);
    const char *p = s;
    for (int i = 0; p && pieces[i]; i++) {
        if (i > 0) {
            gboolean four =
                g_ascii_isdigit(p[0]) && g_ascii_isdigit(p[1]) && g_ascii_isdigit(p[2]) && g_ascii_isdigit(p[3]);
            if (!four) {
                p = NULL;
                break;
            }
            tm.tm_year = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0') - 1900;
            p += 4;
        }
        if (pieces[i][0] != '\0')
            p = strptime(p, pieces[i], &tm);
    }
    g_strfreev(pieces);
    if (p == NULL)
        return FALSE;
    while (g_ascii_isspace(*p))
        p++;
    if (*p != '\0')
        return FALSE;
    /* %s (seconds since the epoch) can set any year an int holds: adding
     * 1900 to the largest would overflow. */
    if (tm.tm_year < 1 - 1900 || tm.tm_year > 9999 - 1900)
        return FALSE;
    int year = tm.tm_year + 1900, month = tm.tm_mon + 1;
    if (!fields_valid(year, month, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec))
        return FALSE;
    vector_from_fields(year, month, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, out);
    return TRUE;
}

/* ISO 8601 date-times, with time zones and fractions; the fields are taken
 * as written, in the string's own zone. */
static gboolean parse_iso8601(const char *s, int64_t out[SW_DATE_VECTOR_LEN])
{
    GTimeZone *utc = g_time_zone_new_utc();
    GDateTime *dt = g_date_time_new_from_iso8601(s, utc);
    g_time_zone_unref(utc);
    if (dt == NULL)
        return FALSE;
    vector_from_fields(g_date_time_get_year(dt), g_date_time_get_month(dt), g_date_time_get_day_of_month(dt),
                       g_date_time_get_hour(dt), g_date_time_get_minute(dt), g_date_time_get_second(dt), out);
    g_date_time_unref(dt);
    return TRUE;
}

static const char *const common_formats[] = {
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
    "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%m/%d/%Y",       "%m/%d/%Y %H:%M:%S", "%Y%m%d",
};

gboolean sw_date_vector_parse(const char *text, size_t len, const char *format, int64_t out[SW_DATE_VECTOR_LEN])
{
    /* A NUL inside would cut the string short and hide what follows. */
    if (memchr(text, '\0', len) != NULL)
        return FALSE;
    char *s = g_strstrip(g_strndup(text, len));
    gboolean ok = s[0] != '\0' && format && parse_with_format(s, format, out);
    ok = ok || (s[0] != '\0' && parse_iso8601(s, out));
    for (size_t i = 0; !ok && s[0] != '\0' && i < G_N_ELEMENTS(common_formats); i++)
        ok = parse_with_format(s, common_formats[i], out);
    g_free(s);
    return ok;
}
