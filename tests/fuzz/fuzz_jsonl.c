/* Fuzzes the JSON-lines reader (sw_table_read_jsonl: one object per line,
 * columns the union of the keys, scalars and number arrays rendered as
 * text, null and absent keys missing): the input is the file. A table it
 * reads must be whole, with one column per distinct key, and written back
 * as JSON lines of strings and nulls it must read back the same (when its
 * text is UTF-8: see write_jsonl). */
#include <string.h>

#include "fuzz_support.h"
#include "table.h"

static fuzz_memfile input, rewritten;
static volatile size_t cell_bytes;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    fuzz_memfile_open(&input);
    fuzz_memfile_open(&rewritten);
    return 0;
}

static void append_json_string(GString *out, const char *text)
{
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            g_string_append_printf(out, "\\u%04x", *p);
        else
            g_string_append_c(out, (char)*p);
    }
    g_string_append_c(out, '"');
}

/* The table as JSON lines, or NULL when a name or cell is not UTF-8, which
 * JSON text cannot carry. The reader lets such cells through (json-glib
 * reads a lone surrogate, "\udfff", or a malformed escape, "\udeni", into
 * bytes that are not UTF-8), as the CSV reader does any bytes: the CLI
 * refuses them per cell, naming the row and the feature. */
static GString *write_jsonl(const sw_table *t)
{
    for (size_t c = 0; c < sw_table_columns(t); c++) {
        if (!g_utf8_validate(sw_table_column_name(t, c), -1, NULL))
            return NULL;
        for (size_t r = 0; r < sw_table_rows(t); r++) {
            const char *cell = sw_table_cells(t, c)[r];
            if (cell && !g_utf8_validate(cell, -1, NULL))
                return NULL;
        }
    }
    GString *out = g_string_new(NULL);
    for (size_t r = 0; r < sw_table_rows(t); r++) {
        g_string_append_c(out, '{');
        for (size_t c = 0; c < sw_table_columns(t); c++) {
            if (c)
                g_string_append_c(out, ',');
            append_json_string(out, sw_table_column_name(t, c));
            g_string_append_c(out, ':');
            const char *cell = sw_table_cells(t, c)[r];
            if (cell)
                append_json_string(out, cell);
            else
                g_string_append(out, "null");
        }
        g_string_append(out, "}\n");
    }
    return out;
}

static void check_table(const sw_table *t)
{
    for (size_t c = 0; c < sw_table_columns(t); c++) {
        const char *name = sw_table_column_name(t, c);
        /* Keys are unique within an object and a known key reuses its
         * column, so no name is ambiguous. */
        FUZZ_CHECK(sw_table_find(t, name) == (long)c, "column %zu '%s' found at %ld", c, name, sw_table_find(t, name));
        /* Every cell is read, so a short column is an ASan report. */
        const char *const *cells = sw_table_cells(t, c);
        for (size_t r = 0; r < sw_table_rows(t); r++)
            cell_bytes += cells[r] ? strlen(cells[r]) : 0;
    }
    for (size_t r = 0; r < sw_table_rows(t); r++) {
        char *label = sw_table_row_label(t, r);
        FUZZ_CHECK(g_str_has_prefix(label, "line "), "JSON-lines rows are labelled by line, not '%s'", label);
        g_free(label);
    }
}

static gboolean same_cell(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const sw_table *a, const sw_table *b)
{
    FUZZ_CHECK(sw_table_rows(a) == sw_table_rows(b), "%zu rows became %zu", sw_table_rows(a), sw_table_rows(b));
    /* A table with no rows rewrites to an empty file, which has no columns. */
    if (sw_table_rows(a) == 0)
        return;
    FUZZ_CHECK(sw_table_columns(a) == sw_table_columns(b), "%zu columns became %zu", sw_table_columns(a),
               sw_table_columns(b));
    for (size_t c = 0; c < sw_table_columns(a); c++) {
        FUZZ_CHECK(strcmp(sw_table_column_name(a, c), sw_table_column_name(b, c)) == 0, "column %zu renamed", c);
        for (size_t r = 0; r < sw_table_rows(a); r++)
            FUZZ_CHECK(same_cell(sw_table_cells(a, c)[r], sw_table_cells(b, c)[r]), "cell %zu,%zu changed", c, r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_memfile_set(&input, data, size);
    GError *error = NULL;
    sw_table *t = sw_table_read_jsonl(input.path, &error);
    if (t == NULL) {
        FUZZ_CHECK(error != NULL && error->domain == SW_TABLE_ERROR, "refused without a table error");
        g_error_free(error);
        return 0;
    }
    FUZZ_CHECK(error == NULL, "read but set an error: %s", error->message);
    check_table(t);
    GString *jsonl = write_jsonl(t);
    if (jsonl == NULL) {
        sw_table_free(t);
        return 0;
    }
    fuzz_memfile_set(&rewritten, (const uint8_t *)jsonl->str, jsonl->len);
    sw_table *back = sw_table_read_jsonl(rewritten.path, &error);
    FUZZ_CHECK(back != NULL, "its own rewrite is refused: %s\n%s", error->message, jsonl->str);
    check_same(t, back);
    sw_table_free(back);
    g_string_free(jsonl, TRUE);
    sw_table_free(t);
    return 0;
}
