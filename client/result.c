#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "oip_codec.h"
#include "sw_error.h"

typedef struct column {
    char *name; /* "<feature>_<key>" */
    stagewise_column_type type;
    sw_tensor *tensor; /* every type but LIST */
    int64_t width;     /* VECTOR: numbers per row */
    JsonNode **lists;  /* LIST: one array per row */
    char **strings;    /* STRING: NUL-terminated copies; LIST: each row's JSON text as sent */
    size_t n_rows;
} column;

struct stagewise_result {
    size_t n_rows;
    GPtrArray *columns; /* column* */
};

static void column_free(column *c)
{
    g_free(c->name);
    sw_tensor_free(c->tensor);
    for (size_t i = 0; c->lists && i < c->n_rows; i++)
        if (c->lists[i])
            json_node_unref(c->lists[i]);
    g_free(c->lists);
    g_strfreev(c->strings);
    g_free(c);
}

/* Ludwig's DataFrame column for the flattened key "<feature>::<key>". */
static char *column_name(const char *output_name)
{
    const char *sep = g_strrstr(output_name, "::");
    if (sep == NULL)
        return g_strdup(output_name);
    return g_strdup_printf("%.*s_%s", (int)(sep - output_name), output_name, sep + 2);
}

static gboolean parse_json_rows(column *c, const sw_output *o, GError **error)
{
    c->lists = g_new0(JsonNode *, c->n_rows);
    c->strings = g_new0(char *, c->n_rows + 1);
    JsonParser *parser = json_parser_new();
    gboolean ok = TRUE;
    for (size_t r = 0; r < c->n_rows && ok; r++) {
        size_t len = 0;
        const char *text = sw_tensor_bytes_element(o->tensor, r, &len);
        /* Empty or comment-only text parses without error and without a
         * root, which json-glib's type checks would log a critical about. */
        ok = json_parser_load_from_data(parser, text, (gssize)len, NULL) && json_parser_get_root(parser) &&
             JSON_NODE_HOLDS_ARRAY(json_parser_get_root(parser));
        if (ok) {
            c->lists[r] = json_node_copy(json_parser_get_root(parser));
            c->strings[r] = g_strndup(text, len);
        } else
            g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "output '%s' row %zu is not a JSON array", o->name, r);
    }
    g_object_unref(parser);
    return ok;
}

static column *column_from_output(const sw_output *o, GError **error)
{
    const sw_tensor *t = o->tensor;
    if (t->ndim < 1 || t->dtype == SW_DTYPE_FP16 || t->dtype == SW_DTYPE_BF16 ||
        (t->dtype == SW_DTYPE_BYTES && t->ndim != 1)) {
        char *shape = sw_shape_to_string(t->ndim, t->shape);
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "output '%s': cannot make a column of %s %s", o->name,
                    sw_dtype_name(t->dtype), shape);
        g_free(shape);
        return NULL;
    }
    column *c = g_new0(column, 1);
    c->name = column_name(o->name);
    c->n_rows = (size_t)t->shape[0];
    if (o->json) {
        c->type = STAGEWISE_COLUMN_LIST;
        if (!parse_json_rows(c, o, error)) {
            column_free(c);
            return NULL;
        }
        return c;
    }
    c->tensor = sw_tensor_share(t, 0, NULL);
    c->width = c->n_rows ? sw_tensor_element_count(t) / (int64_t)c->n_rows : 0;
    if (t->dtype == SW_DTYPE_BYTES) {
        c->type = STAGEWISE_COLUMN_STRING;
        c->strings = g_new0(char *, c->n_rows + 1);
        for (size_t r = 0; r < c->n_rows; r++) {
            size_t len = 0;
            const char *e = sw_tensor_bytes_element(t, r, &len);
            c->strings[r] = g_strndup(e, len);
        }
    } else if (t->ndim > 1)
        c->type = STAGEWISE_COLUMN_VECTOR;
    else
        c->type = t->dtype == SW_DTYPE_BOOL ? STAGEWISE_COLUMN_BOOL : STAGEWISE_COLUMN_NUMBER;
    return c;
}

stagewise_result *stagewise_result_from_outputs(GPtrArray *outputs, GError **error)
{
    stagewise_result *result = g_new0(stagewise_result, 1);
    result->columns = g_ptr_array_new_with_free_func((GDestroyNotify)column_free);
    for (guint i = 0; i < outputs->len; i++) {
        column *c = column_from_output(g_ptr_array_index(outputs, i), error);
        if (c && i > 0 && c->n_rows != result->n_rows) {
            g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "output '%s' has %zu rows, the others %zu", c->name,
                        c->n_rows, result->n_rows);
            column_free(c);
            c = NULL;
        }
        if (c == NULL) {
            stagewise_result_free(result);
            return NULL;
        }
        result->n_rows = c->n_rows;
        g_ptr_array_add(result->columns, c);
    }
    return result;
}

STAGEWISE_API void stagewise_result_free(stagewise_result *result)
{
    if (result == NULL)
        return;
    g_ptr_array_unref(result->columns);
    g_free(result);
}

STAGEWISE_API size_t stagewise_result_rows(const stagewise_result *result)
{
    return result->n_rows;
}

STAGEWISE_API size_t stagewise_result_columns(const stagewise_result *result)
{
    return result->columns->len;
}

static const column *col(const stagewise_result *result, size_t i)
{
    /* Not g_return_val_if_fail: the library never prints. */
    return i < result->columns->len ? g_ptr_array_index(result->columns, i) : NULL;
}

STAGEWISE_API const char *stagewise_result_column_name(const stagewise_result *result, size_t column_index)
{
    const column *c = col(result, column_index);
    return c ? c->name : NULL;
}

STAGEWISE_API long stagewise_result_find_column(const stagewise_result *result, const char *name)
{
    for (guint i = 0; i < result->columns->len; i++)
        if (strcmp(col(result, i)->name, name) == 0)
            return (long)i;
    return -1;
}

STAGEWISE_API stagewise_column_type stagewise_result_column_type(const stagewise_result *result, size_t column_index)
{
    const column *c = col(result, column_index);
    return c ? c->type : STAGEWISE_COLUMN_INVALID;
}

STAGEWISE_API const char *stagewise_result_string(const stagewise_result *result, size_t column_index, size_t row)
{
    const column *c = col(result, column_index);
    if (c == NULL || c->type != STAGEWISE_COLUMN_STRING || row >= c->n_rows)
        return NULL;
    return c->strings[row];
}

STAGEWISE_API double stagewise_result_number(const stagewise_result *result, size_t column_index, size_t row)
{
    const column *c = col(result, column_index);
    if (c == NULL || (c->type != STAGEWISE_COLUMN_NUMBER && c->type != STAGEWISE_COLUMN_BOOL) || row >= c->n_rows)
        return NAN;
    return sw_tensor_element_as_double(c->tensor, (int64_t)row);
}

STAGEWISE_API size_t stagewise_result_list_length(const stagewise_result *result, size_t column_index, size_t row)
{
    const column *c = col(result, column_index);
    if (c == NULL || row >= c->n_rows)
        return 0;
    if (c->type == STAGEWISE_COLUMN_VECTOR)
        return (size_t)c->width;
    if (c->type == STAGEWISE_COLUMN_LIST)
        return json_array_get_length(json_node_get_array(c->lists[row]));
    return 0;
}

static JsonNode *list_element(const column *c, size_t row, size_t i)
{
    JsonArray *a = json_node_get_array(c->lists[row]);
    return i < json_array_get_length(a) ? json_array_get_element(a, (guint)i) : NULL;
}

STAGEWISE_API double stagewise_result_list_number(const stagewise_result *result, size_t column_index, size_t row,
                                                  size_t i)
{
    const column *c = col(result, column_index);
    if (c == NULL || row >= c->n_rows)
        return NAN;
    if (c->type == STAGEWISE_COLUMN_VECTOR)
        return i < (size_t)c->width ? sw_tensor_element_as_double(c->tensor, (int64_t)(row * (size_t)c->width + i))
                                    : NAN;
    if (c->type != STAGEWISE_COLUMN_LIST)
        return NAN;
    JsonNode *n = list_element(c, row, i);
    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) == G_TYPE_STRING)
        return NAN;
    return json_node_get_double(n);
}

STAGEWISE_API const char *stagewise_result_list_string(const stagewise_result *result, size_t column_index, size_t row,
                                                       size_t i)
{
    const column *c = col(result, column_index);
    if (c == NULL || c->type != STAGEWISE_COLUMN_LIST || row >= c->n_rows)
        return NULL;
    JsonNode *n = list_element(c, row, i);
    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(n);
}

STAGEWISE_API char *stagewise_result_cell_text(const stagewise_result *result, size_t column_index, size_t row)
{
    const column *c = col(result, column_index);
    if (c == NULL || row >= c->n_rows)
        return NULL;
    GString *out = g_string_new(NULL);
    size_t len = 0;
    const char *e = NULL;
    switch (c->type) {
    case STAGEWISE_COLUMN_STRING:
        e = sw_tensor_bytes_element(c->tensor, row, &len);
        g_string_append_len(out, e, (gssize)len);
        break;
    case STAGEWISE_COLUMN_NUMBER:
    case STAGEWISE_COLUMN_BOOL: sw_tensor_append_element(out, c->tensor, (int64_t)row, FALSE); break;
    case STAGEWISE_COLUMN_VECTOR:
        g_string_append_c(out, '[');
        for (int64_t k = 0; k < c->width; k++) {
            if (k)
                g_string_append_c(out, ',');
            sw_tensor_append_element(out, c->tensor, (int64_t)row * c->width + k, FALSE);
        }
        g_string_append_c(out, ']');
        break;
    case STAGEWISE_COLUMN_LIST:
        /* As the server wrote it: json-glib would print 17 digits per float. */
        g_string_append(out, c->strings[row]);
        break;
    case STAGEWISE_COLUMN_INVALID: break;
    }
    /* Callers free() it, so hand over malloc'd memory. */
    char *text = strdup(out->str);
    g_string_free(out, TRUE);
    return text;
}
