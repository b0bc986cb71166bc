/* The JSON-lines reader: columns are the union of the objects' keys, null
 * and absent keys are missing cells, scalars become the text a DataFrame
 * would hold, rows remember their line, and bad lines are named. */
#include <glib/gstdio.h>
#include <string.h>

#include "table.h"

static char *tmp_dir;

static char *write_file(const char *name, const char *text)
{
    char *path = g_build_filename(tmp_dir, name, NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    return path;
}

static sw_table *read_ok(const char *text)
{
    char *path = write_file("ok.jsonl", text);
    GError *error = NULL;
    sw_table *t = sw_table_read_jsonl(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(t);
    g_unlink(path);
    g_free(path);
    return t;
}

static void expect_error(const char *text, const char *substring)
{
    char *path = write_file("bad.jsonl", text);
    GError *error = NULL;
    g_assert_null(sw_table_read_jsonl(path, &error));
    g_assert_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ);
    if (strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
    g_error_free(error);
    g_unlink(path);
    g_free(path);
}

static const char *cell_of(const sw_table *t, const char *column, size_t row)
{
    long c = sw_table_find(t, column);
    g_assert_cmpint(c, >=, 0);
    g_assert_cmpuint(row, <, sw_table_rows(t));
    return sw_table_cells(t, (size_t)c)[row];
}

static void test_objects_and_missing_cells(void)
{
    sw_table *t = read_ok("{\"a\": \"x\", \"b\": \"y\"}\n"
                          "{\"b\": \"z\", \"c\": \"w\"}\n"
                          "{\"a\": null, \"c\": \"v\"}\n");
    g_assert_cmpuint(sw_table_rows(t), ==, 3);
    g_assert_cmpuint(sw_table_columns(t), ==, 3);
    /* Columns in the order keys first appear. */
    g_assert_cmpstr(sw_table_column_name(t, 0), ==, "a");
    g_assert_cmpstr(sw_table_column_name(t, 1), ==, "b");
    g_assert_cmpstr(sw_table_column_name(t, 2), ==, "c");
    g_assert_cmpstr(cell_of(t, "a", 0), ==, "x");
    g_assert_cmpstr(cell_of(t, "b", 0), ==, "y");
    g_assert_null(cell_of(t, "c", 0)); /* a column that did not exist yet */
    g_assert_null(cell_of(t, "a", 1)); /* a key the object lacks */
    g_assert_cmpstr(cell_of(t, "c", 1), ==, "w");
    g_assert_null(cell_of(t, "a", 2)); /* null */
    g_assert_null(cell_of(t, "b", 2));
    g_assert_cmpstr(cell_of(t, "c", 2), ==, "v");
    sw_table_free(t);

    /* read_json(lines=True) keeps strings as they are: only null and absent
     * keys are missing, not the texts read_csv takes for NaN. */
    t = read_ok("{\"a\": \"NA\", \"b\": \"\", \"c\": \"null\", \"d\": \"nan\"}\n{\"d\": null}\n");
    g_assert_cmpstr(cell_of(t, "a", 0), ==, "NA");
    g_assert_cmpstr(cell_of(t, "b", 0), ==, "");
    g_assert_cmpstr(cell_of(t, "c", 0), ==, "null");
    g_assert_cmpstr(cell_of(t, "d", 0), ==, "nan");
    g_assert_null(cell_of(t, "a", 1));
    g_assert_null(cell_of(t, "b", 1));
    g_assert_null(cell_of(t, "d", 1));
    sw_table_free(t);
}

static void test_scalars_as_text(void)
{
    sw_table *t = read_ok("{\"i\": 42, \"neg\": -7, \"big\": 9007199254740993, \"f\": 0.1, \"half\": 1.5, "
                          "\"e\": 1e300, \"yes\": true, \"no\": false, \"s\": \"say \\\"hi\\\"\\n\\u00e9\", "
                          "\"empty\": \"\", \"v\": [1, 2.5, -3]}\n");
    g_assert_cmpstr(cell_of(t, "i", 0), ==, "42");
    g_assert_cmpstr(cell_of(t, "neg", 0), ==, "-7");
    /* Integers stay exact beyond a double's 2^53. */
    g_assert_cmpstr(cell_of(t, "big", 0), ==, "9007199254740993");
    /* Doubles in the shortest text that reads back the same. */
    g_assert_cmpstr(cell_of(t, "f", 0), ==, "0.1");
    g_assert_cmpstr(cell_of(t, "half", 0), ==, "1.5");
    g_assert_cmpstr(cell_of(t, "e", 0), ==, "1e+300");
    /* As pandas' astype(str) writes booleans. */
    g_assert_cmpstr(cell_of(t, "yes", 0), ==, "True");
    g_assert_cmpstr(cell_of(t, "no", 0), ==, "False");
    g_assert_cmpstr(cell_of(t, "s", 0), ==, "say \"hi\"\n\xc3\xa9");
    g_assert_nonnull(cell_of(t, "empty", 0));
    g_assert_cmpstr(cell_of(t, "empty", 0), ==, "");
    /* A vector: its numbers separated by spaces. */
    g_assert_cmpstr(cell_of(t, "v", 0), ==, "1 2.5 -3");
    sw_table_free(t);

    t = read_ok("{\"v\": []}\n");
    g_assert_cmpstr(cell_of(t, "v", 0), ==, "");
    sw_table_free(t);
}

static void test_lines_and_labels(void)
{
    sw_table *t = read_ok("\xEF\xBB\xBF{\"a\": 1}\r\n"
                          "\n"
                          "   \t\n"
                          "{\"a\": 2}\n"
                          "{\"a\": 3}");
    g_assert_cmpuint(sw_table_rows(t), ==, 3);
    g_assert_cmpuint(sw_table_columns(t), ==, 1);
    g_assert_cmpstr(sw_table_column_name(t, 0), ==, "a");
    g_assert_cmpstr(cell_of(t, "a", 2), ==, "3");
    /* Rows are named by their line in the file, blank lines counted. */
    char *label = sw_table_row_label(t, 0);
    g_assert_cmpstr(label, ==, "line 1");
    g_free(label);
    label = sw_table_row_label(t, 1);
    g_assert_cmpstr(label, ==, "line 4");
    g_free(label);
    label = sw_table_row_label(t, 2);
    g_assert_cmpstr(label, ==, "line 5");
    g_free(label);
    sw_table_free(t);

    t = read_ok("");
    g_assert_cmpuint(sw_table_rows(t), ==, 0);
    sw_table_free(t);
}

/* Brackets inside strings and comments are not values of their own. */
static void test_one_value_with_brackets_in_strings_and_comments(void)
{
    sw_table *t = read_ok("{\"a\": \"x} {y\"}\n"
                          "{\"a\": \"q\\\"{[\"}\n"
                          "/* [1] */ {\"a\": \"z\"} /* {} */\n");
    g_assert_cmpuint(sw_table_rows(t), ==, 3);
    g_assert_cmpuint(sw_table_columns(t), ==, 1);
    g_assert_cmpstr(cell_of(t, "a", 0), ==, "x} {y");
    g_assert_cmpstr(cell_of(t, "a", 1), ==, "q\"{[");
    g_assert_cmpstr(cell_of(t, "a", 2), ==, "z");
    sw_table_free(t);
}

static void test_errors(void)
{
    expect_error("{\"a\": 1}\n[1, 2]\n", "line 2: not a JSON object keyed by column");
    expect_error("{\"a\": 1}\n\n\"text\"\n", "line 3: not a JSON object keyed by column");
    expect_error("{\"a\": 1}\n{\"a\": \n", "line 2: not JSON");
    /* Two records run together must not read as the first alone. */
    expect_error("{\"a\": 1}\n{\"a\": 2} {\"a\": 3}\n", "line 2: 2 JSON values on one line");
    expect_error("{\"a\": 1}{\"b\": [2]}{\"c\": 3}\n", "line 1: 3 JSON values on one line");
    expect_error("{\"a\": 1} [1]\n", "line 1: 2 JSON values on one line");
    expect_error("{\"a\": \"}\"} {\"a\": \n", "line 1: 2 JSON values on one line");
    /* json-glib takes no "//" comments: what follows is one more value. */
    expect_error("{\"a\": 1} // {\"a\": 2}\n", "line 1: 2 JSON values on one line");
    expect_error("{\"a\": 1} xyz\n", "line 1: not JSON");
    expect_error("{\"a\": 1}\n{\"a\": {\"b\": 2}}\n", "line 2, column 'a': an object is not a cell value");
    expect_error("{\"v\": [1, \"x\"]}\n", "line 1, column 'v': an array must hold numbers only");
    expect_error("{\"v\": [[1]]}\n", "line 1, column 'v': an array must hold numbers only");
    expect_error("{\"v\": [1, null]}\n", "line 1, column 'v': an array must hold numbers only");

    char *missing = g_build_filename(tmp_dir, "no-such.jsonl", NULL);
    GError *error = NULL;
    g_assert_null(sw_table_read_jsonl(missing, &error));
    g_assert_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ);
    g_assert_true(g_str_has_prefix(error->message, "cannot open: "));
    g_clear_error(&error);
    g_free(missing);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    GError *error = NULL;
    tmp_dir = g_dir_make_tmp("sw-table-jsonl-XXXXXX", &error);
    g_assert_no_error(error);
    g_test_add_func("/jsonl/objects-and-missing-cells", test_objects_and_missing_cells);
    g_test_add_func("/jsonl/scalars-as-text", test_scalars_as_text);
    g_test_add_func("/jsonl/lines-and-labels", test_lines_and_labels);
    g_test_add_func("/jsonl/one-value-with-brackets-in-strings-and-comments",
                    test_one_value_with_brackets_in_strings_and_comments);
    g_test_add_func("/jsonl/errors", test_errors);
    int status = g_test_run();
    g_rmdir(tmp_dir);
    g_free(tmp_dir);
    return status;
}
