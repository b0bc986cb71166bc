#include "table.h"

#include <string.h>

GQuark sw_table_error_quark(void)
{
    return g_quark_from_static_string("stagewise-table-error-quark");
}

/* Marks a name that more than one column has, in `index`. */
#define AMBIGUOUS G_MAXSIZE

struct sw_table {
    GPtrArray *names;      /* char*, in file order */
    GPtrArray *columns;    /* GPtrArray* of const char* into `strings` */
    GHashTable *index;     /* name -> column index + 1, or AMBIGUOUS */
    GArray *lines;         /* size_t per row, or NULL when rows are not lines */
    GStringChunk *strings; /* every cell's text: one allocation per 64 KiB, not per cell */
    size_t n_rows;
};

sw_table *sw_table_new(void)
{
    sw_table *t = g_new0(sw_table, 1);
    t->names = g_ptr_array_new_with_free_func(g_free);
    t->columns = g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    t->index = g_hash_table_new(g_str_hash, g_str_equal);
    t->strings = g_string_chunk_new(64 * 1024);
    return t;
}

void sw_table_free(sw_table *t)
{
    if (t == NULL)
        return;
    g_hash_table_unref(t->index);
    g_ptr_array_unref(t->names);
    g_ptr_array_unref(t->columns);
    if (t->lines)
        g_array_unref(t->lines);
    g_string_chunk_free(t->strings);
    g_free(t);
}

size_t sw_table_rows(const sw_table *t)
{
    return t->n_rows;
}

size_t sw_table_columns(const sw_table *t)
{
    return t->names->len;
}

const char *sw_table_column_name(const sw_table *t, size_t column)
{
    return g_ptr_array_index(t->names, column);
}

long sw_table_find(const sw_table *t, const char *name)
{
    size_t found = GPOINTER_TO_SIZE(g_hash_table_lookup(t->index, name));
    if (found == AMBIGUOUS)
        return -2;
    return found == 0 ? -1 : (long)(found - 1);
}

const char *const *sw_table_cells(const sw_table *t, size_t column)
{
    GPtrArray *cells = g_ptr_array_index(t->columns, column);
    return (const char *const *)cells->pdata;
}

size_t sw_table_add_column(sw_table *t, const char *name)
{
    size_t column = t->names->len;
    char *copy = g_strdup(name);
    g_ptr_array_add(t->names, copy);
    gboolean known = g_hash_table_contains(t->index, copy);
    g_hash_table_insert(t->index, copy, GSIZE_TO_POINTER(known ? AMBIGUOUS : column + 1));
    GPtrArray *cells = g_ptr_array_sized_new((guint)t->n_rows + 1);
    for (size_t r = 0; r < t->n_rows; r++)
        g_ptr_array_add(cells, NULL);
    g_ptr_array_add(t->columns, cells);
    return column;
}

void sw_table_set(sw_table *t, size_t column, const char *text, size_t len)
{
    GPtrArray *cells = g_ptr_array_index(t->columns, column);
    g_return_if_fail(cells->len == t->n_rows);
    const char *cell = text ? g_string_chunk_insert_len(t->strings, text, (gssize)len) : NULL;
    g_ptr_array_add(cells, (gpointer)cell);
}

void sw_table_end_row(sw_table *t, size_t line)
{
    t->n_rows++;
    for (guint c = 0; c < t->columns->len; c++) {
        GPtrArray *cells = g_ptr_array_index(t->columns, c);
        if (cells->len < t->n_rows)
            g_ptr_array_add(cells, NULL);
    }
    if (line > 0 && t->lines == NULL)
        t->lines = g_array_new(FALSE, FALSE, sizeof(size_t));
    if (t->lines)
        g_array_append_val(t->lines, line);
}

gboolean sw_table_is_missing_text(const char *text, size_t len)
{
    static const char *const na_values[] = {"#N/A", "#N/A N/A", "#NA",     "-1.#IND", "-1.#QNAN", "-NaN",
                                            "-nan", "1.#IND",   "1.#QNAN", "<NA>",    "N/A",      "NA",
                                            "NULL", "NaN",      "None",    "n/a",     "nan",      "null"};
    if (len == 0)
        return TRUE;
    for (size_t i = 0; i < G_N_ELEMENTS(na_values); i++)
        if (strlen(na_values[i]) == len && memcmp(na_values[i], text, len) == 0)
            return TRUE;
    return FALSE;
}

char *sw_table_row_label(const sw_table *t, size_t row)
{
    if (t->lines && row < t->lines->len)
        return g_strdup_printf("line %zu", g_array_index(t->lines, size_t, row));
    return g_strdup_printf("row %zu", row + 1);
}
