/* The table the readers fill: columns added at any time, cells copied,
 * unset cells missing, ambiguous names refused, rows labelled as a user
 * would count them. */
#include <string.h>

#include "table.h"

static void test_build_by_hand(void)
{
    sw_table *t = sw_table_new();
    g_assert_cmpuint(sw_table_rows(t), ==, 0);
    g_assert_cmpuint(sw_table_columns(t), ==, 0);
    g_assert_cmpint(sw_table_find(t, "a"), ==, -1);

    char name[] = "a";
    g_assert_cmpuint(sw_table_add_column(t, name), ==, 0);
    name[0] = 'z'; /* the table keeps its own copy */
    g_assert_cmpstr(sw_table_column_name(t, 0), ==, "a");
    g_assert_cmpuint(sw_table_add_column(t, "b"), ==, 1);

    char text[] = "hello";
    sw_table_set(t, 0, text, 3); /* only `len` bytes */
    text[0] = 'J';
    sw_table_end_row(t, 0); /* b never set: missing */
    sw_table_set(t, 1, "", 0);
    sw_table_set(t, 0, NULL, 0);
    sw_table_end_row(t, 0);
    g_assert_cmpuint(sw_table_rows(t), ==, 2);

    /* A column added late is missing in the rows before it. */
    g_assert_cmpuint(sw_table_add_column(t, "c"), ==, 2);
    sw_table_set(t, 2, "new", 3);
    sw_table_end_row(t, 0);

    const char *const *a = sw_table_cells(t, 0);
    const char *const *b = sw_table_cells(t, 1);
    const char *const *c = sw_table_cells(t, 2);
    g_assert_cmpstr(a[0], ==, "hel");
    g_assert_null(b[0]);
    g_assert_null(a[1]);
    g_assert_nonnull(b[1]);
    g_assert_cmpstr(b[1], ==, "");
    g_assert_null(c[0]);
    g_assert_null(c[1]);
    g_assert_cmpstr(c[2], ==, "new");
    g_assert_null(a[2]);
    g_assert_null(b[2]);
    g_assert_cmpint(sw_table_find(t, "c"), ==, 2);
    sw_table_free(t);
    sw_table_free(NULL);
}

static void test_cells_stay_put(void)
{
    sw_table *t = sw_table_new();
    sw_table_add_column(t, "x");
    /* Many cells, some large: they must all stay where they were put. */
    enum { ROWS = 2000 };
    char *big = g_strnfill(100000, 'q');
    for (int r = 0; r < ROWS; r++) {
        char *s = g_strdup_printf("cell-%d", r);
        if (r == 777)
            sw_table_set(t, 0, big, strlen(big));
        else
            sw_table_set(t, 0, s, strlen(s));
        sw_table_end_row(t, 0);
        g_free(s);
    }
    const char *const *cells = sw_table_cells(t, 0);
    for (int r = 0; r < ROWS; r++) {
        if (r == 777) {
            g_assert_cmpstr(cells[r], ==, big);
            continue;
        }
        char *s = g_strdup_printf("cell-%d", r);
        g_assert_cmpstr(cells[r], ==, s);
        g_free(s);
    }
    g_free(big);
    sw_table_free(t);
}

static void test_find_duplicates(void)
{
    sw_table *t = sw_table_new();
    sw_table_add_column(t, "id");
    sw_table_add_column(t, "x");
    sw_table_add_column(t, "x");
    sw_table_add_column(t, "y");
    sw_table_add_column(t, "x");
    g_assert_cmpuint(sw_table_columns(t), ==, 5);
    g_assert_cmpint(sw_table_find(t, "id"), ==, 0);
    g_assert_cmpint(sw_table_find(t, "x"), ==, -2);
    g_assert_cmpint(sw_table_find(t, "y"), ==, 3);
    g_assert_cmpint(sw_table_find(t, "X"), ==, -1);
    g_assert_cmpint(sw_table_find(t, ""), ==, -1);
    /* Each duplicate is still a column of its own. */
    g_assert_cmpstr(sw_table_column_name(t, 4), ==, "x");
    sw_table_set(t, 1, "first", 5);
    sw_table_set(t, 2, "second", 6);
    sw_table_end_row(t, 0);
    g_assert_cmpstr(sw_table_cells(t, 1)[0], ==, "first");
    g_assert_cmpstr(sw_table_cells(t, 2)[0], ==, "second");
    g_assert_null(sw_table_cells(t, 4)[0]);
    sw_table_free(t);
}

static void expect_label(const sw_table *t, size_t row, const char *expected)
{
    char *label = sw_table_row_label(t, row);
    g_assert_cmpstr(label, ==, expected);
    g_free(label);
}

static void test_row_labels(void)
{
    sw_table *rows = sw_table_new();
    sw_table_add_column(rows, "a");
    for (int i = 0; i < 3; i++)
        sw_table_end_row(rows, 0);
    /* Data rows counted from 1, the header not among them. */
    expect_label(rows, 0, "row 1");
    expect_label(rows, 2, "row 3");
    sw_table_free(rows);

    sw_table *lines = sw_table_new();
    sw_table_add_column(lines, "a");
    sw_table_end_row(lines, 3);
    sw_table_end_row(lines, 10);
    expect_label(lines, 0, "line 3");
    expect_label(lines, 1, "line 10");
    sw_table_free(lines);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/table/build-by-hand", test_build_by_hand);
    g_test_add_func("/table/cells-stay-put", test_cells_stay_put);
    g_test_add_func("/table/find-duplicates", test_find_duplicates);
    g_test_add_func("/table/row-labels", test_row_labels);
    return g_test_run();
}
