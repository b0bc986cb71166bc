/* Fuzzes the CSV reader (sw_table_read_csv: libcsv with strict quoting, a
 * byte order mark dropped, blank lines skipped): the input is the file.
 * A table it reads must be whole (every column a cell per row, every name
 * found), and written back with every field quoted it must read back the
 * same: what the reader accepts is exactly what the cells say. */
#include <string.h>

#include "fuzz_support.h"
#include "table.h"

static fuzz_memfile input, rewritten;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    fuzz_memfile_open(&input);
    fuzz_memfile_open(&rewritten);
    return 0;
}

static void append_quoted(GString *out, const char *text)
{
    g_string_append_c(out, '"');
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            g_string_append_c(out, '"');
        g_string_append_c(out, *p);
    }
    g_string_append_c(out, '"');
}

static GString *write_csv(const sw_table *t)
{
    GString *out = g_string_new(NULL);
    size_t columns = sw_table_columns(t);
    for (size_t c = 0; c < columns; c++) {
        if (c)
            g_string_append_c(out, ',');
        append_quoted(out, sw_table_column_name(t, c));
    }
    g_string_append_c(out, '\n');
    for (size_t r = 0; r < sw_table_rows(t); r++) {
        for (size_t c = 0; c < columns; c++) {
            if (c)
                g_string_append_c(out, ',');
            append_quoted(out, sw_table_cells(t, c)[r]);
        }
        g_string_append_c(out, '\n');
    }
    return out;
}

static void check_table(const sw_table *t)
{
    size_t columns = sw_table_columns(t);
    FUZZ_CHECK(columns > 0, "a table without columns");
    for (size_t c = 0; c < columns; c++) {
        const char *name = sw_table_column_name(t, c);
        long found = sw_table_find(t, name);
        FUZZ_CHECK(found == (long)c || found == -2, "column %zu '%s' found at %ld", c, name, found);
        const char *const *cells = sw_table_cells(t, c);
        /* Every field of a CSV row is there: no cell is missing. */
        for (size_t r = 0; r < sw_table_rows(t); r++)
            FUZZ_CHECK(cells[r] != NULL, "row %zu of column '%s' is missing", r, name);
    }
    for (size_t r = 0; r < sw_table_rows(t); r++) {
        char *label = sw_table_row_label(t, r);
        FUZZ_CHECK(g_str_has_prefix(label, "row "), "CSV rows are labelled by row, not '%s'", label);
        g_free(label);
    }
}

static void check_same(const sw_table *a, const sw_table *b)
{
    FUZZ_CHECK(sw_table_columns(a) == sw_table_columns(b) && sw_table_rows(a) == sw_table_rows(b),
               "%zux%zu became %zux%zu", sw_table_columns(a), sw_table_rows(a), sw_table_columns(b), sw_table_rows(b));
    for (size_t c = 0; c < sw_table_columns(a); c++) {
        FUZZ_CHECK(strcmp(sw_table_column_name(a, c), sw_table_column_name(b, c)) == 0, "column %zu renamed", c);
        for (size_t r = 0; r < sw_table_rows(a); r++)
            FUZZ_CHECK(strcmp(sw_table_cells(a, c)[r], sw_table_cells(b, c)[r]) == 0, "cell %zu,%zu changed", c, r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_memfile_set(&input, data, size);
    GError *error = NULL;
    sw_table *t = sw_table_read_csv(input.path, &error);
    if (t == NULL) {
        FUZZ_CHECK(error != NULL && error->domain == SW_TABLE_ERROR, "refused without a table error");
        g_error_free(error);
        return 0;
    }
    FUZZ_CHECK(error == NULL, "read but set an error: %s", error->message);
    check_table(t);
    GString *csv = write_csv(t);
    fuzz_memfile_set(&rewritten, (const uint8_t *)csv->str, csv->len);
    sw_table *back = sw_table_read_csv(rewritten.path, &error);
    FUZZ_CHECK(back != NULL, "its own rewrite is refused: %s\n%s", error->message, csv->str);
    check_same(t, back);
    sw_table_free(back);
    g_string_free(csv, TRUE);
    sw_table_free(t);
    return 0;
}
