/* The CSV reader: libcsv's quoting as pandas writes it, cells exactly as
 * written, blank lines skipped, and every malformed file refused with an
 * error that says where. */
#include <glib/gstdio.h>
#include <string.h>

#include "table.h"

static char *tmp_dir;

/* Writes `len` bytes (-1: NUL-terminated) to a new file in the test folder. */
static char *write_file(const char *name, const char *text, gssize len)
{
    char *path = g_build_filename(tmp_dir, name, NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, len, &error);
    g_assert_no_error(error);
    return path;
}

static sw_table *read_with(sw_table *(*reader)(const char *, GError **), const char *text)
{
    char *path = write_file("ok.csv", text, -1);
    GError *error = NULL;
    sw_table *t = reader(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(t);
    g_unlink(path);
    g_free(path);
    return t;
}

static sw_table *read_ok(const char *text)
{
    return read_with(sw_table_read_csv, text);
}

static sw_table *read_as_pandas(const char *text)
{
    return read_with(sw_table_read_csv_as_pandas, text);
}

static void expect_error(const char *text, gssize len, const char *substring)
{
    char *path = write_file("bad.csv", text, len);
    GError *error = NULL;
    g_assert_null(sw_table_read_csv(path, &error));
    g_assert_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ);
    if (strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
    g_error_free(error);
    g_unlink(path);
    g_free(path);
}

static const char *cell(const sw_table *t, size_t column, size_t row)
{
    g_assert_cmpuint(column, <, sw_table_columns(t));
    g_assert_cmpuint(row, <, sw_table_rows(t));
    return sw_table_cells(t, column)[row];
}

static void test_header_and_rows(void)
{
    sw_table *t = read_ok("Age,color,review\n31,red,good\n42,,\n");
    g_assert_cmpuint(sw_table_columns(t), ==, 3);
    g_assert_cmpuint(sw_table_rows(t), ==, 2);
    g_assert_cmpstr(sw_table_column_name(t, 0), ==, "Age");
    g_assert_cmpstr(sw_table_column_name(t, 2), ==, "review");
    g_assert_cmpint(sw_table_find(t, "color"), ==, 1);
    g_assert_cmpint(sw_table_find(t, "age"), ==, -1); /* names are exact */
    g_assert_cmpstr(cell(t, 0, 0), ==, "31");
    g_assert_cmpstr(cell(t, 1, 0), ==, "red");
    g_assert_cmpstr(cell(t, 0, 1), ==, "42");
    /* An empty field is an empty cell, not a missing one (read as pandas, it is missing). */
    g_assert_nonnull(cell(t, 1, 1));
    g_assert_cmpstr(cell(t, 1, 1), ==, "");
    g_assert_cmpstr(cell(t, 2, 1), ==, "");
    /* CSV rows are not lines of the file: quoted newlines move them. */
    char *label = sw_table_row_label(t, 1);
    g_assert_cmpstr(label, ==, "row 2");
    g_free(label);
    sw_table_free(t);

    /* The last row needs no newline. */
    t = read_ok("a,b\n1,2\n3,4");
    g_assert_cmpuint(sw_table_rows(t), ==, 2);
    g_assert_cmpstr(cell(t, 1, 1), ==, "4");
    sw_table_free(t);

    /* A header alone is a table with no rows. */
    t = read_ok("a,b\n");
    g_assert_cmpuint(sw_table_columns(t), ==, 2);
    g_assert_cmpuint(sw_table_rows(t), ==, 0);
    sw_table_free(t);
}

static void test_quoting(void)
{
    sw_table *t = read_ok("id,text\n"
                          "1,\"a, b\"\n"
                          "2,\"say \"\"hi\"\"\"\n"
                          "3,\"two\nlines\"\n"
                          "4,\"\"\n"
                          "\"5\",\"crlf\r\ninside\"\n");
    g_assert_cmpuint(sw_table_rows(t), ==, 5);
    g_assert_cmpstr(cell(t, 1, 0), ==, "a, b");
    g_assert_cmpstr(cell(t, 1, 1), ==, "say \"hi\"");
    g_assert_cmpstr(cell(t, 1, 2), ==, "two\nlines");
    g_assert_cmpstr(cell(t, 1, 3), ==, "");
    g_assert_cmpstr(cell(t, 0, 4), ==, "5");
    g_assert_cmpstr(cell(t, 1, 4), ==, "crlf\r\ninside");
    sw_table_free(t);

    /* Spaces are part of the cell, quoted or not. */
    t = read_ok("a,b\n  x ,\" y \"\n");
    g_assert_cmpstr(cell(t, 0, 0), ==, "  x ");
    g_assert_cmpstr(cell(t, 1, 0), ==, " y ");
    sw_table_free(t);
}

static void test_line_endings_and_blank_lines(void)
{
    sw_table *t = read_ok("a,b\r\n1,2\r\n3,4\r\n");
    g_assert_cmpuint(sw_table_rows(t), ==, 2);
    g_assert_cmpstr(sw_table_column_name(t, 1), ==, "b");
    g_assert_cmpstr(cell(t, 1, 0), ==, "2");
    g_assert_cmpstr(cell(t, 1, 1), ==, "4");
    sw_table_free(t);

    t = read_ok("a,b\r1,2\r3,4");
    g_assert_cmpuint(sw_table_rows(t), ==, 2);
    g_assert_cmpstr(cell(t, 0, 1), ==, "3");
    sw_table_free(t);

    t = read_ok("\n\na,b\n\n1,2\n\r\n\n3,4\n\n\n");
    g_assert_cmpuint(sw_table_columns(t), ==, 2);
    g_assert_cmpuint(sw_table_rows(t), ==, 2);
    g_assert_cmpstr(cell(t, 0, 0), ==, "1");
    g_assert_cmpstr(cell(t, 1, 1), ==, "4");
    sw_table_free(t);
}

static void test_byte_order_mark(void)
{
    sw_table *t = read_ok("\xEF\xBB\xBF"
                          "Age,b\n1,2\n");
    g_assert_cmpstr(sw_table_column_name(t, 0), ==, "Age");
    g_assert_cmpint(sw_table_find(t, "Age"), ==, 0);
    sw_table_free(t);
}

/* Quoted fields and rows cross the reader's 64 KiB blocks. */
static void test_large_file(void)
{
    GString *text = g_string_new("n,text\n");
    enum { ROWS = 3000 };
    for (int i = 0; i < ROWS; i++)
        g_string_append_printf(text, "%d,\"row %d, %s\"\"quoted\"\"\nend\"\n", i, i, "padding-padding-padding");
    sw_table *t = read_ok(text->str);
    g_assert_cmpuint(text->len, >, 2 * 64 * 1024);
    g_string_free(text, TRUE);
    g_assert_cmpuint(sw_table_rows(t), ==, ROWS);
    for (int i = 0; i < ROWS; i++) {
        char *n = g_strdup_printf("%d", i);
        char *expected = g_strdup_printf("row %d, padding-padding-padding\"quoted\"\nend", i);
        g_assert_cmpstr(cell(t, 0, (size_t)i), ==, n);
        g_assert_cmpstr(cell(t, 1, (size_t)i), ==, expected);
        g_free(expected);
        g_free(n);
    }
    sw_table_free(t);
}

static void test_duplicate_header_names(void)
{
    sw_table *t = read_ok("x,y,x\n1,2,3\n");
    g_assert_cmpuint(sw_table_columns(t), ==, 3);
    /* Which "x" is meant cannot be told: neither is picked. */
    g_assert_cmpint(sw_table_find(t, "x"), ==, -2);
    g_assert_cmpint(sw_table_find(t, "y"), ==, 1);
    g_assert_cmpstr(cell(t, 2, 0), ==, "3");
    sw_table_free(t);
}

/* Read as pandas, every field read_csv reads as NaN by default is a missing
 * cell, quoted or not; anything else, however close, is text as written.
 * Read plainly, every field is text. */
static void test_missing_values(void)
{
    static const char *const missing[] = {"",     "#N/A",   "#N/A N/A", "#NA",  "-1.#IND", "-1.#QNAN", "-NaN",
                                          "-nan", "1.#IND", "1.#QNAN",  "<NA>", "N/A",     "NA",       "NULL",
                                          "NaN",  "None",   "n/a",      "nan",  "null"};
    static const char *const kept[] = {" ",     " NA",  "NA ",  "Na",  "na",   "NONE", "none", "Null",
                                       "NAN",   "nan.", "N/A/", "#N/", "<na>", "-NA",  "+nan", "nil",
                                       "false", "0",    "1.#I", "\\N", "\"\"", "n /a", "NA\t", "NULL "};
    GString *text = g_string_new("value,quoted,other\n");
    for (size_t i = 0; i < G_N_ELEMENTS(missing); i++)
        g_string_append_printf(text, "%s,\"%s\",x\n", missing[i], missing[i]);
    for (size_t i = 0; i < G_N_ELEMENTS(kept); i++) {
        /* A doubled quote inside quotes stands for one; unquoted, a quote would be malformed. */
        char **parts = g_strsplit(kept[i], "\"", -1);
        char *escaped = g_strjoinv("\"\"", parts);
        g_strfreev(parts);
        g_string_append_printf(text, "\"%s\",\"%s\",x\n", escaped, escaped);
        g_free(escaped);
    }
    sw_table *plain = read_ok(text->str);
    sw_table *t = read_as_pandas(text->str);
    g_string_free(text, TRUE);
    g_assert_cmpuint(sw_table_rows(t), ==, G_N_ELEMENTS(missing) + G_N_ELEMENTS(kept));
    g_assert_cmpuint(sw_table_rows(plain), ==, sw_table_rows(t));
    for (size_t r = 0; r < sw_table_rows(plain); r++) {
        const char *expected = r < G_N_ELEMENTS(missing) ? missing[r] : kept[r - G_N_ELEMENTS(missing)];
        g_assert_cmpstr(cell(plain, 0, r), ==, expected);
        g_assert_cmpstr(cell(plain, 1, r), ==, expected);
    }
    sw_table_free(plain);
    for (size_t i = 0; i < G_N_ELEMENTS(missing); i++) {
        if (cell(t, 0, i) != NULL || cell(t, 1, i) != NULL)
            g_error("'%s' should be missing", missing[i]);
        g_assert_cmpstr(cell(t, 2, i), ==, "x");
        g_assert_true(sw_table_is_missing_text(missing[i], strlen(missing[i])));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(kept); i++) {
        size_t r = G_N_ELEMENTS(missing) + i;
        g_assert_cmpstr(cell(t, 0, r), ==, kept[i]);
        g_assert_cmpstr(cell(t, 1, r), ==, kept[i]);
        g_assert_false(sw_table_is_missing_text(kept[i], strlen(kept[i])));
    }
    /* Lengths count, not NUL terminators: "NA" is a prefix of "NAN". */
    g_assert_true(sw_table_is_missing_text("NAN", 2));
    g_assert_true(sw_table_is_missing_text("anything", 0));
    g_assert_false(sw_table_is_missing_text("nan", 2));
    sw_table_free(t);

    /* A header is names, never values: "NA" and "" name columns. */
    t = read_as_pandas("NA,,nan\n1,,NA\n");
    g_assert_cmpstr(sw_table_column_name(t, 0), ==, "NA");
    g_assert_cmpstr(sw_table_column_name(t, 1), ==, "");
    g_assert_cmpint(sw_table_find(t, "nan"), ==, 2);
    g_assert_cmpstr(cell(t, 0, 0), ==, "1");
    g_assert_null(cell(t, 1, 0));
    g_assert_null(cell(t, 2, 0));
    sw_table_free(t);

    /* A last field left empty at the end of the file is missing too. */
    t = read_as_pandas("a,b\n1,");
    g_assert_cmpuint(sw_table_rows(t), ==, 1);
    g_assert_null(cell(t, 1, 0));
    sw_table_free(t);
}

static void test_errors(void)
{
    expect_error("a,b\n1,2\n3,4,5\n", -1, "row 2 has 3 fields, the header has 2");
    expect_error("a,b\n1\n", -1, "row 1 has 1 field, the header has 2");
    expect_error("a,b,c\n1,2,3\n4,5\n", -1, "row 2 has 2 fields, the header has 3");
    expect_error("a,b\n1,2\n3,x\"y\n", -1, "row 2: malformed quoting");
    expect_error("a,b\n\"1\"x,2\n", -1, "row 1: malformed quoting");
    expect_error("a,\"b\"c\n1,2\n", -1, "the header: malformed quoting");
    /* Not trimmed, so a quote after a space is inside an unquoted field. */
    expect_error("a,b\n1, \"x\"\n", -1, "row 1: malformed quoting");
    expect_error("a,b\n1,\"open\n", -1, "row 1: a quoted field is still open at the end of the file");
    expect_error("", -1, "the file is empty");
    expect_error("\n\n\r\n", -1, "the file is empty");
    expect_error("\xEF\xBB\xBF", -1, "the file is empty");

    char *missing = g_build_filename(tmp_dir, "no-such.csv", NULL);
    GError *error = NULL;
    g_assert_null(sw_table_read_csv(missing, &error));
    g_assert_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ);
    g_assert_true(g_str_has_prefix(error->message, "cannot open: "));
    g_clear_error(&error);
    g_free(missing);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    GError *error = NULL;
    tmp_dir = g_dir_make_tmp("sw-table-csv-XXXXXX", &error);
    g_assert_no_error(error);
    g_test_add_func("/csv/header-and-rows", test_header_and_rows);
    g_test_add_func("/csv/quoting", test_quoting);
    g_test_add_func("/csv/line-endings-and-blank-lines", test_line_endings_and_blank_lines);
    g_test_add_func("/csv/byte-order-mark", test_byte_order_mark);
    g_test_add_func("/csv/large-file", test_large_file);
    g_test_add_func("/csv/duplicate-header-names", test_duplicate_header_names);
    g_test_add_func("/csv/missing-values", test_missing_values);
    g_test_add_func("/csv/errors", test_errors);
    int status = g_test_run();
    g_rmdir(tmp_dir);
    g_free(tmp_dir);
    return status;
}
