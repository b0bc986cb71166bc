/* JSON-lines input: one object per line, keyed by column, as pandas'
 * to_json(orient="records", lines=True) writes it. Columns are the union of
 * every object's keys; a key an object lacks is a missing value there, as
 * read_json(lines=True) has it. Blank lines are skipped. */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

/* The shortest text that reads back as the same double. */
static void append_double(GString *out, double v)
{
    static const char *const formats[] = {"%.15g", "%.16g", "%.17g"};
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
        g_ascii_formatd(buf, sizeof buf, formats[i], v);
        if (g_ascii_strtod(buf, NULL) == v)
            break;
    }
    g_string_append(out, buf);
}

static gboolean append_scalar(GString *out, JsonNode *node)
{
    if (!JSON_NODE_HOLDS_VALUE(node))
        return FALSE;
    GType type = json_node_get_value_type(node);
    if (type == G_TYPE_INT64)
        g_string_append_printf(out, "%" G_GINT64_FORMAT, json_node_get_int(node));
    else if (type == G_TYPE_DOUBLE)
        append_double(out, json_node_get_double(node));
    else if (type == G_TYPE_BOOLEAN)
        /* pandas' astype(str) of a boolean column. */
        g_string_append(out, json_node_get_boolean(node) ? "True" : "False");
    else
        g_string_append(out, json_node_get_string(node));
    return TRUE;
}

/* An array of numbers is a vector: its elements as whitespace-separated
 * text, the form vector features read from a DataFrame's strings. */
static gboolean append_vector(GString *out, JsonArray *array)
{
    for (guint i = 0; i < json_array_get_length(array); i++) {
        JsonNode *e = json_array_get_element(array, i);
        GType type = JSON_NODE_HOLDS_VALUE(e) ? json_node_get_value_type(e) : G_TYPE_INVALID;
        if (type != G_TYPE_INT64 && type != G_TYPE_DOUBLE)
            return FALSE;
        if (i)
            g_string_append_c(out, ' ');
        append_scalar(out, e);
    }
    return TRUE;
}

/* Sets the cell of `column` in the row being built from a member's value. */
static gboolean set_cell(sw_table *table, size_t column, JsonNode *value, size_t line, GError **error)
{
    if (JSON_NODE_HOLDS_NULL(value)) {
        sw_table_set(table, column, NULL, 0);
        return TRUE;
    }
    GString *text = g_string_new(NULL);
    gboolean ok =
        JSON_NODE_HOLDS_ARRAY(value) ? append_vector(text, json_node_get_array(value)) : append_scalar(text, value);
    if (ok)
        sw_table_set(table, column, text->str, text->len);
    else
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "line %zu, column '%s': %s", line,
                    sw_table_column_name(table, column),
                    JSON_NODE_HOLDS_ARRAY(value) ? "an array must hold numbers only (a vector)"
                                                 : "an object is not a cell value");
    g_string_free(text, TRUE);
    return ok;
}

static gboolean read_object(sw_table *table, JsonObject *object, size_t line, GError **error)
{
    GList *members = json_object_get_members(object);
    gboolean ok = TRUE;
    for (GList *m = members; m && ok; m = m->next) {
        const char *key = m->data;
        long column = sw_table_find(table, key);
        if (column < 0)
            column = (long)sw_table_add_column(table, key);
        ok = set_cell(table, (size_t)column, json_object_get_member(object, key), line, error);
    }
    g_list_free(members);
    if (ok)
        sw_table_end_row(table, line);
    return ok;
}

/* json-glib reads values written back to back on one line ({"a": 1}
 * {"a": 2}, and {"a": 1} // {"a": 2}: "//" is no comment to it) without an
 * error, keeping one: a row would be lost silently, and json-glib 1.6 leaks
 * the roots it drops. So the objects and arrays that open at depth 0 are
 * counted before json-glib sees the line, skipping strings and the
 * slash-star comments json-glib skips. */
static int count_top_level_values(const char *text, size_t len)
{
    int depth = 0, values = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\')
                    i++;
        } else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            const char *close = g_strstr_len(text + i + 2, (gssize)(len - i - 2), "*/");
            if (close == NULL)
                return values;
            i = (size_t)(close - text) + 1;
        } else if (c == '{' || c == '[') {
            if (depth++ == 0)
                values++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return values;
}

static gboolean read_line(sw_table *table, JsonParser *parser, const char *text, size_t len, size_t line,
                          GError **error)
{
    int values = count_top_level_values(text, len);
    if (values > 1) {
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ,
                    "line %zu: %d JSON values on one line; JSON lines hold one object per line", line, values);
        return FALSE;
    }
    GError *json_error = NULL;
    if (!json_parser_load_from_data(parser, text, (gssize)len, &json_error)) {
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "line %zu: not JSON: %s", line, json_error->message);
        g_error_free(json_error);
        return FALSE;
    }
    /* A line holding only a comment ("//") parses without error and without a root. */
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "line %zu: not a JSON object keyed by column", line);
        return FALSE;
    }
    return read_object(table, json_node_get_object(root), line, error);
}

static gboolean blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isspace(text[i]))
            return FALSE;
    return TRUE;
}

sw_table *sw_table_read_jsonl(const char *path, GError **error)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "cannot open: %s", g_strerror(errno));
        return NULL;
    }
    sw_table *table = sw_table_new();
    JsonParser *parser = json_parser_new();
    char *text = NULL;
    size_t cap = 0, line = 0;
    ssize_t len;
    gboolean ok = TRUE;
    while (ok && (len = getline(&text, &cap, f)) != -1) {
        line++;
        char *start = text;
        /* A UTF-8 byte order mark some editors write is not JSON. */
        if (line == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
            start += 3;
            len -= 3;
        }
        if (!blank(start, (size_t)len))
            ok = read_line(table, parser, start, (size_t)len, line, error);
    }
    if (ok && ferror(f)) {
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "cannot read: %s", g_strerror(errno));
        ok = FALSE;
    }
    free(text);
    g_object_unref(parser);
    fclose(f);
    if (!ok) {
        sw_table_free(table);
        return NULL;
    }
    return table;
}
