#include "output.h"

#include <json-glib/json-glib.h>

#include "sw_error.h"

void sw_output_free(sw_output *output)
{
    if (output == NULL)
        return;
    g_free(output->name);
    sw_tensor_free(output->tensor);
    g_free(output);
}

GPtrArray *sw_output_array_new(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)sw_output_free);
}

/* One row tensor as a (nested, by its shape) JSON array of numbers. Written
 * directly rather than through json-glib, which prints every float with 17
 * digits. */
static void append_tensor_json(GString *out, const sw_tensor *t, int dim, int64_t *index)
{
    g_string_append_c(out, '[');
    int64_t extent = t->ndim == 0 ? 1 : t->shape[dim];
    for (int64_t k = 0; k < extent; k++) {
        if (k)
            g_string_append_c(out, ',');
        if (t->ndim > 0 && dim + 1 < t->ndim)
            append_tensor_json(out, t, dim + 1, index);
        else
            sw_tensor_append_element(out, t, (*index)++, TRUE);
    }
    g_string_append_c(out, ']');
}

static char *strings_to_json(const sw_tensor *row)
{
    JsonArray *array = json_array_new();
    int64_t n = sw_tensor_element_count(row);
    for (int64_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(row, (size_t)i, &len);
        char *s = g_strndup(e, len);
        json_array_add_string_element(array, s);
        g_free(s);
    }
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(node, array);
    char *text = json_to_string(node, FALSE);
    json_node_unref(node);
    return text;
}

/* One row of a ragged output as JSON text (newly allocated), or NULL. */
static char *row_to_json(const sw_tensor *row, GError **error)
{
    if (row->dtype == SW_DTYPE_BYTES)
        return strings_to_json(row);
    if (row->dtype == SW_DTYPE_FP16 || row->dtype == SW_DTYPE_BF16) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "cannot write %s rows as JSON", sw_dtype_name(row->dtype));
        return NULL;
    }
    GString *out = g_string_new(NULL);
    int64_t index = 0;
    append_tensor_json(out, row, 0, &index);
    return g_string_free(out, FALSE);
}

static sw_tensor *ragged_to_json_rows(const sw_value *value, GError **error)
{
    guint n = value->items->len;
    char **rows = g_new0(char *, n + 1);
    sw_tensor *t = NULL;
    for (guint i = 0; i < n; i++) {
        rows[i] = row_to_json(g_ptr_array_index(value->items, i), error);
        if (rows[i] == NULL) {
            g_prefix_error(error, "output '%s' row %u: ", value->name, i);
            goto done;
        }
    }
    t = sw_tensor_new_strings((const char *const *)rows, NULL, n);
done:
    g_strfreev(rows);
    return t;
}

sw_output *sw_output_from_value(const sw_value *value, GError **error)
{
    sw_tensor *t = NULL;
    gboolean json = FALSE;
    switch (value->kind) {
    case SW_VALUE_TENSOR:
    case SW_VALUE_STRINGS: t = sw_tensor_share(value->tensor, 0, NULL); break;
    case SW_VALUE_STRING_LISTS:
    case SW_VALUE_TENSOR_LIST:
    case SW_VALUE_AUDIO_LIST: /* the waveforms; their rates are an input's, not an output's */
        t = ragged_to_json_rows(value, error);
        json = TRUE;
        break;
    }
    if (t == NULL)
        return NULL;
    sw_output *out = g_new0(sw_output, 1);
    out->name = g_strdup(value->name);
    out->tensor = t;
    out->json = json;
    return out;
}
