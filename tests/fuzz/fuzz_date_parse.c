/* Fuzzes date strings into Ludwig's 9-integer date vectors
 * (sw_date_vector_parse), with and without a feature's datetime_format.
 * The input:
 *   byte 0      bit 0 set: a format follows, up to the first newline
 *               (a format is a C string in the export's config, so a NUL
 *               ends it early, as it would there)
 *   the rest    the date text, any bytes (NULs included: they travel in
 *               BYTES tensors).
 * A parsed vector must be a real calendar date and time whose derived
 * fields (weekday, day of year, second of day) agree with the others. */
#include <string.h>

#include "date_parse.h"
#include "fuzz_support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    return 0;
}

static void check_vector(const int64_t v[SW_DATE_VECTOR_LEN])
{
    FUZZ_CHECK(v[0] >= 1 && v[0] <= 9999, "year %" G_GINT64_FORMAT, v[0]);
    FUZZ_CHECK(v[1] >= 1 && v[1] <= 12, "month %" G_GINT64_FORMAT, v[1]);
    FUZZ_CHECK(g_date_valid_dmy((GDateDay)v[2], (GDateMonth)v[1], (GDateYear)v[0]),
               "%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT " is not a date", v[0], v[1], v[2]);
    GDate *d = g_date_new_dmy((GDateDay)v[2], (GDateMonth)v[1], (GDateYear)v[0]);
    FUZZ_CHECK(v[3] == (int64_t)g_date_get_weekday(d) - 1, "weekday %" G_GINT64_FORMAT, v[3]);
    FUZZ_CHECK(v[4] == (int64_t)g_date_get_day_of_year(d), "day of year %" G_GINT64_FORMAT, v[4]);
    g_date_free(d);
    FUZZ_CHECK(v[5] >= 0 && v[5] < 24 && v[6] >= 0 && v[6] < 60 && v[7] >= 0 && v[7] < 60,
               "time %" G_GINT64_FORMAT ":%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, v[5], v[6], v[7]);
    FUZZ_CHECK(v[8] == v[5] * 3600 + v[6] * 60 + v[7], "second of day %" G_GINT64_FORMAT, v[8]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gboolean has_format = data[0] & 1;
    data++, size--;
    char *format = NULL;
    if (has_format) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t len = nl ? (size_t)(nl - data) : size;
        format = g_strndup((const char *)data, len);
        data += nl ? len + 1 : len;
        size -= nl ? len + 1 : len;
    }
    /* A copy of exactly the text, so reading past it is an ASan report. */
    char *text = g_memdup2(data, size);
    int64_t v[SW_DATE_VECTOR_LEN];
    if (sw_date_vector_parse(text ? text : "", size, format, v)) {
        check_vector(v);
        /* Parsing holds no state: the same text reads the same again. */
        int64_t again[SW_DATE_VECTOR_LEN];
        FUZZ_CHECK(sw_date_vector_parse(text ? text : "", size, format, again), "parsed once, refused next");
        FUZZ_CHECK(memcmp(v, again, sizeof v) == 0, "parsed differently the second time");
    }
    g_free(text);
    g_free(format);
    return 0;
}
