/* Date strings to Ludwig's 9-integer vector: every accepted form, every field
 * of the vector, and the strings that must not parse. */
#include <string.h>

#include "date_parse.h"

/* Parses `text` and checks all nine fields: year, month, day, weekday
 * (Monday = 0), day of year (1-based), hour, minute, second, second of day. */
static void expect_vector(const char *text, const char *format, const int64_t want[SW_DATE_VECTOR_LEN])
{
    int64_t got[SW_DATE_VECTOR_LEN];
    memset(got, 0xab, sizeof got);
    if (!sw_date_vector_parse(text, strlen(text), format, got))
        g_error("'%s' (format %s) did not parse", text, format ? format : "none");
    for (int i = 0; i < SW_DATE_VECTOR_LEN; i++)
        if (got[i] != want[i])
            g_error("'%s' (format %s): field %d is %" G_GINT64_FORMAT ", expected %" G_GINT64_FORMAT, text,
                    format ? format : "none", i, got[i], want[i]);
}

static void expect_rejected(const char *text, size_t len, const char *format)
{
    int64_t got[SW_DATE_VECTOR_LEN];
    if (sw_date_vector_parse(text, len, format, got))
        g_error("'%.*s' (format %s) parsed, but it is not a date", (int)len, text, format ? format : "none");
}

static void test_every_field(void)
{
    /* 2024-01-01 was a Monday, the first day of a leap year. */
    expect_vector("2024-01-01", NULL, (const int64_t[]){2024, 1, 1, 0, 1, 0, 0, 0, 0});
    /* 2023-01-01 was a Sunday: the last weekday, 6. */
    expect_vector("2023-01-01", NULL, (const int64_t[]){2023, 1, 1, 6, 1, 0, 0, 0, 0});
    /* The last second of a leap year: day 366, second of day 86399. */
    expect_vector("2020-12-31 23:59:59", NULL, (const int64_t[]){2020, 12, 31, 3, 366, 23, 59, 59, 86399});
    /* The same day of a common year is day 365. */
    expect_vector("2021-12-31", NULL, (const int64_t[]){2021, 12, 31, 4, 365, 0, 0, 0, 0});
    /* 29 February counts in the day of year after it. */
    expect_vector("2000-03-01T12:30:15", NULL, (const int64_t[]){2000, 3, 1, 2, 61, 12, 30, 15, 45015});
}

static void test_iso8601(void)
{
    const int64_t want[] = {2021, 3, 4, 3, 63, 5, 6, 7, 18367};
    expect_vector("2021-03-04T05:06:07", NULL, want);
    expect_vector("2021-03-04T05:06:07Z", NULL, want);
    /* The fields are read as written, in the string's own zone, not
     * converted to UTC. */
    expect_vector("2021-03-04T05:06:07+02:00", NULL, want);
    expect_vector("2021-03-04T05:06:07-08:00", NULL, want);
    /* Fractions of a second are dropped, not rounded. */
    expect_vector("2021-03-04T05:06:07.999999Z", NULL, want);
    expect_vector("2021-03-04T05:06:07.5+05:30", NULL, want);
    expect_vector("2021-03-04T05:06", NULL, (const int64_t[]){2021, 3, 4, 3, 63, 5, 6, 0, 18360});
    expect_vector("2021-03-04", NULL, (const int64_t[]){2021, 3, 4, 3, 63, 0, 0, 0, 0});
}

static void test_common_forms(void)
{
    const int64_t day[] = {2021, 3, 4, 3, 63, 0, 0, 0, 0};
    expect_vector("2021-03-04 05:06:07", NULL, (const int64_t[]){2021, 3, 4, 3, 63, 5, 6, 7, 18367});
    expect_vector("2021-03-04 05:06", NULL, (const int64_t[]){2021, 3, 4, 3, 63, 5, 6, 0, 18360});
    expect_vector("2021/03/04", NULL, day);
    expect_vector("2021/03/04 05:06:07", NULL, (const int64_t[]){2021, 3, 4, 3, 63, 5, 6, 7, 18367});
    /* Month first, as in the United States. */
    expect_vector("03/04/2021", NULL, day);
    expect_vector("03/04/2021 05:06:07", NULL, (const int64_t[]){2021, 3, 4, 3, 63, 5, 6, 7, 18367});
    expect_vector("20210304", NULL, day);
    /* Surrounding blanks are ignored, as a CSV column may carry them. */
    expect_vector("  2021-03-04\t", NULL, day);
    /* Only `len` bytes are read: what follows is not part of the date. */
    const char *longer = "2021-03-04garbage";
    int64_t got[SW_DATE_VECTOR_LEN];
    g_assert_true(sw_date_vector_parse(longer, 10, NULL, got));
    g_assert_cmpint(got[0], ==, 2021);
    g_assert_cmpint(got[4], ==, 63);
}

static void test_explicit_format(void)
{
    const int64_t want[] = {2021, 3, 4, 3, 63, 10, 30, 0, 37800};
    /* Day first: only the format can read it that way. */
    expect_vector("04.03.2021 10:30", "%d.%m.%Y %H:%M", want);
    expect_rejected("04.03.2021 10:30", 16, NULL);
    /* "04/03/2021" means 4 March with the format, 3 April without. */
    expect_vector("04/03/2021", "%d/%m/%Y", (const int64_t[]){2021, 3, 4, 3, 63, 0, 0, 0, 0});
    expect_vector("04/03/2021", NULL, (const int64_t[]){2021, 4, 3, 5, 93, 0, 0, 0, 0});
    /* A format that does not match still leaves the common forms. */
    expect_vector("2021-03-04", "%d.%m.%Y", (const int64_t[]){2021, 3, 4, 3, 63, 0, 0, 0, 0});
    /* Like Python's strptime, %Y takes exactly four digits... */
    expect_rejected("4.3.21", 6, "%d.%m.%Y");
    /* ...and the whole string must be consumed. */
    expect_rejected("04.03.2021 junk", 15, "%d.%m.%Y");
}

static void test_rejects_garbage(void)
{
    static const char *const bad[] = {
        "",
        "   ",
        "not a date",
        "2021-02-29",          /* not a leap year */
        "1900-02-29",          /* a century that is not a leap year */
        "2021-13-01",          /* no 13th month */
        "2021-04-31",          /* April has 30 days */
        "2021-03-04 25:00:00", /* no 25th hour */
        "2021-03-04 12:60",    /* no 60th minute */
        "2021-03-04xyz",
        "21-03-04",
        "2021-03",
        "03/04/21",
        "0000-01-01", /* no year 0 */
        "nan",        /* what pandas makes of a missing value */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        expect_rejected(bad[i], strlen(bad[i]), NULL);
    /* A NUL inside would hide the rest of the string from strptime. */
    expect_rejected("2021-03-04\0junk", 15, NULL);
    /* A leap day of a leap year is fine, though. */
    expect_vector("2000-02-29", NULL, (const int64_t[]){2000, 2, 29, 1, 60, 0, 0, 0, 0});
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/date-parse/every-field", test_every_field);
    g_test_add_func("/date-parse/iso8601", test_iso8601);
    g_test_add_func("/date-parse/common-forms", test_common_forms);
    g_test_add_func("/date-parse/explicit-format", test_explicit_format);
    g_test_add_func("/date-parse/rejects-garbage", test_rejects_garbage);
    return g_test_run();
}
