#include "tensor.h"

#include <math.h>
#include <string.h>

#include "sw_error.h"

static const struct {
    const char *name;
    size_t size;
} dtype_table[SW_DTYPE_COUNT] = {
    [SW_DTYPE_INVALID] = {"INVALID", 0}, [SW_DTYPE_BOOL] = {"BOOL", 1},     [SW_DTYPE_UINT8] = {"UINT8", 1},
    [SW_DTYPE_UINT16] = {"UINT16", 2},   [SW_DTYPE_UINT32] = {"UINT32", 4}, [SW_DTYPE_UINT64] = {"UINT64", 8},
    [SW_DTYPE_INT8] = {"INT8", 1},       [SW_DTYPE_INT16] = {"INT16", 2},   [SW_DTYPE_INT32] = {"INT32", 4},
    [SW_DTYPE_INT64] = {"INT64", 8},     [SW_DTYPE_FP16] = {"FP16", 2},     [SW_DTYPE_BF16] = {"BF16", 2},
    [SW_DTYPE_FP32] = {"FP32", 4},       [SW_DTYPE_FP64] = {"FP64", 8},     [SW_DTYPE_BYTES] = {"BYTES", 0},
};

const char *sw_dtype_name(sw_dtype dtype)
{
    if ((unsigned)dtype >= SW_DTYPE_COUNT)
        return "INVALID";
    return dtype_table[dtype].name;
}

sw_dtype sw_dtype_from_name(const char *name)
{
    if (name == NULL)
        return SW_DTYPE_INVALID;
    for (int d = SW_DTYPE_BOOL; d < SW_DTYPE_COUNT; d++)
        if (strcmp(dtype_table[d].name, name) == 0)
            return (sw_dtype)d;
    return SW_DTYPE_INVALID;
}

size_t sw_dtype_size(sw_dtype dtype)
{
    if ((unsigned)dtype >= SW_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

gboolean sw_dtype_is_numeric(sw_dtype dtype)
{
    return dtype > SW_DTYPE_INVALID && dtype < SW_DTYPE_BYTES;
}

gboolean sw_shape_element_count(int ndim, const int64_t *shape, const char *what, int64_t *count, GError **error)
{
    if (ndim < 0 || ndim > SW_MAX_DIMS) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: %d dimensions, at most %d are supported", what,
                    ndim, SW_MAX_DIMS);
        return FALSE;
    }
    gboolean empty = FALSE;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                        "%s: dimension %d is negative (%" G_GINT64_FORMAT ")", what, i, shape[i]);
            return FALSE;
        }
        empty = empty || shape[i] == 0;
    }
    /* A zero anywhere makes the product 0, however large the rest. */
    if (empty) {
        *count = 0;
        return TRUE;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (n > INT64_MAX / shape[i]) {
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: shape has too many elements", what);
            return FALSE;
        }
        n *= shape[i];
    }
    *count = n;
    return TRUE;
}

static sw_tensor *tensor_alloc(sw_dtype dtype, int ndim, const int64_t *shape)
{
    g_assert(ndim >= 0 && ndim <= SW_MAX_DIMS);
    sw_tensor *t = g_new0(sw_tensor, 1);
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim > 0)
        memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    return t;
}

sw_tensor *sw_tensor_new(sw_dtype dtype, int ndim, const int64_t *shape, GBytes *data)
{
    g_assert(sw_dtype_is_numeric(dtype));
    sw_tensor *t = tensor_alloc(dtype, ndim, shape);
    g_assert((size_t)sw_tensor_element_count(t) * sw_dtype_size(dtype) == g_bytes_get_size(data));
    t->data = g_bytes_ref(data);
    return t;
}

sw_tensor *sw_tensor_new_copy(sw_dtype dtype, int ndim, const int64_t *shape, const void *src, size_t nbytes)
{
    void *copy = src ? g_memdup2(src, nbytes) : g_malloc0(nbytes ? nbytes : 1);
    GBytes *bytes = g_bytes_new_take(copy, nbytes);
    sw_tensor *t = sw_tensor_new(dtype, ndim, shape, bytes);
    g_bytes_unref(bytes);
    return t;
}

sw_tensor *sw_tensor_new_bytes(int ndim, const int64_t *shape, GBytes *payloads, size_t *offsets)
{
    sw_tensor *t = tensor_alloc(SW_DTYPE_BYTES, ndim, shape);
    t->data = g_bytes_ref(payloads);
    t->offsets = offsets;
    g_assert(offsets[sw_tensor_element_count(t)] == g_bytes_get_size(payloads));
    return t;
}

sw_tensor *sw_tensor_new_strings(const char *const *strings, const size_t *lens, size_t n)
{
    size_t *offsets = g_new(size_t, n + 1);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        offsets[i] = total;
        total += lens ? lens[i] : strlen(strings[i]);
    }
    offsets[n] = total;
    char *buf = g_malloc(total ? total : 1);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + offsets[i], strings[i], offsets[i + 1] - offsets[i]);
    GBytes *payloads = g_bytes_new_take(buf, total);
    int64_t shape[1] = {(int64_t)n};
    sw_tensor *t = sw_tensor_new_bytes(1, shape, payloads, offsets);
    g_bytes_unref(payloads);
    return t;
}

sw_tensor *sw_tensor_share(const sw_tensor *tensor, int ndim, const int64_t *shape)
{
    if (shape == NULL) {
        ndim = tensor->ndim;
        shape = tensor->shape;
    }
    if (tensor->dtype != SW_DTYPE_BYTES)
        return sw_tensor_new(tensor->dtype, ndim, shape, tensor->data);
    size_t n = (size_t)sw_tensor_element_count(tensor);
    size_t *offsets = g_memdup2(tensor->offsets, sizeof(size_t) * (n + 1));
    return sw_tensor_new_bytes(ndim, shape, tensor->data, offsets);
}

void sw_tensor_free(sw_tensor *tensor)
{
    if (tensor == NULL)
        return;
    if (tensor->data)
        g_bytes_unref(tensor->data);
    g_free(tensor->offsets);
    g_free(tensor);
}

int64_t sw_tensor_element_count(const sw_tensor *tensor)
{
    /* sw_shape_element_count() accepts any sizes beside a zero ([2^62,42,0]):
     * multiplying them first would overflow. */
    for (int i = 0; i < tensor->ndim; i++)
        if (tensor->shape[i] == 0)
            return 0;
    int64_t n = 1;
    for (int i = 0; i < tensor->ndim; i++)
        n *= tensor->shape[i];
    return n;
}

int64_t sw_tensor_batch_size(const sw_tensor *tensor)
{
    return tensor->ndim > 0 ? tensor->shape[0] : 1;
}

const void *sw_tensor_data(const sw_tensor *tensor, size_t *nbytes)
{
    gsize size = 0;
    const void *p = g_bytes_get_data(tensor->data, &size);
    if (nbytes)
        *nbytes = size;
    return p;
}

const char *sw_tensor_bytes_element(const sw_tensor *tensor, size_t i, size_t *len)
{
    g_assert(tensor->dtype == SW_DTYPE_BYTES);
    const char *base = g_bytes_get_data(tensor->data, NULL);
    *len = tensor->offsets[i + 1] - tensor->offsets[i];
    /* An all-empty BYTES tensor may have no buffer at all. */
    return base ? base + tensor->offsets[i] : "";
}

double sw_tensor_element_as_double(const sw_tensor *t, int64_t i)
{
    const void *data = g_bytes_get_data(t->data, NULL);
    switch (t->dtype) {
    /* Any nonzero byte is true (as sw_tensor_append_element prints it): a
     * boolean reads as 0 or 1 whatever byte a sender used. */
    case SW_DTYPE_BOOL: return ((const uint8_t *)data)[i] ? 1 : 0;
    case SW_DTYPE_UINT8: return ((const uint8_t *)data)[i];
    case SW_DTYPE_UINT16: return ((const uint16_t *)data)[i];
    case SW_DTYPE_UINT32: return ((const uint32_t *)data)[i];
    case SW_DTYPE_UINT64: return (double)((const uint64_t *)data)[i];
    case SW_DTYPE_INT8: return ((const int8_t *)data)[i];
    case SW_DTYPE_INT16: return ((const int16_t *)data)[i];
    case SW_DTYPE_INT32: return ((const int32_t *)data)[i];
    case SW_DTYPE_INT64: return (double)((const int64_t *)data)[i];
    case SW_DTYPE_FP32: return ((const float *)data)[i];
    case SW_DTYPE_FP64: return ((const double *)data)[i];
    default: return NAN;
    }
}

static void append_shortest(GString *out, double v, gboolean single)
{
    static const char *const formats[] = {"%.6g", "%.7g", "%.8g", "%.9g", "%.15g", "%.16g", "%.17g"};
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    for (size_t k = single ? 0 : 4; k < G_N_ELEMENTS(formats); k++) {
        g_ascii_formatd(buf, sizeof buf, formats[k], v);
        double back = g_ascii_strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v)
            break;
    }
    g_string_append(out, buf);
}

void sw_tensor_append_element(GString *out, const sw_tensor *t, int64_t i, gboolean json)
{
    const void *data = g_bytes_get_data(t->data, NULL);
    switch (t->dtype) {
    case SW_DTYPE_BOOL: g_string_append(out, ((const uint8_t *)data)[i] ? "true" : "false"); return;
    case SW_DTYPE_INT64: g_string_append_printf(out, "%" G_GINT64_FORMAT, ((const int64_t *)data)[i]); return;
    case SW_DTYPE_UINT64: g_string_append_printf(out, "%" G_GUINT64_FORMAT, ((const uint64_t *)data)[i]); return;
    case SW_DTYPE_FP32:
    case SW_DTYPE_FP64: break;
    default: g_string_append_printf(out, "%.0f", sw_tensor_element_as_double(t, i)); return;
    }
    double v = sw_tensor_element_as_double(t, i);
    if (isfinite(v))
        append_shortest(out, v, t->dtype == SW_DTYPE_FP32);
    else if (json)
        g_string_append(out, "null");
    else
        g_string_append(out, isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"));
}

char *sw_shape_to_string(int ndim, const int64_t *shape)
{
    GString *s = g_string_new("[");
    for (int i = 0; i < ndim; i++)
        g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
    g_string_append_c(s, ']');
    return g_string_free(s, FALSE);
}

sw_value *sw_value_new_tensor(const char *name, sw_value_kind kind, sw_tensor *tensor)
{
    g_assert(kind == SW_VALUE_TENSOR || kind == SW_VALUE_STRINGS);
    sw_value *v = g_new0(sw_value, 1);
    v->name = g_strdup(name);
    v->kind = kind;
    v->tensor = tensor;
    return v;
}

sw_value *sw_value_new_list(const char *name, sw_value_kind kind, GPtrArray *items)
{
    g_assert(kind == SW_VALUE_STRING_LISTS || kind == SW_VALUE_TENSOR_LIST);
    sw_value *v = g_new0(sw_value, 1);
    v->name = g_strdup(name);
    v->kind = kind;
    v->items = items;
    return v;
}

sw_value *sw_value_new_audio(const char *name, GPtrArray *items, int64_t *sample_rates)
{
    sw_value *v = g_new0(sw_value, 1);
    v->name = g_strdup(name);
    v->kind = SW_VALUE_AUDIO_LIST;
    v->items = items;
    v->sample_rates = sample_rates;
    return v;
}

GVariant *sw_value_parameter(const sw_value *value, const char *key)
{
    return value->parameters ? g_hash_table_lookup(value->parameters, key) : NULL;
}

void sw_value_free(sw_value *value)
{
    if (value == NULL)
        return;
    g_free(value->name);
    sw_tensor_free(value->tensor);
    if (value->items)
        g_ptr_array_unref(value->items);
    g_free(value->sample_rates);
    if (value->parameters)
        g_hash_table_unref(value->parameters);
    g_free(value);
}

int64_t sw_value_batch_size(const sw_value *value)
{
    if (value->tensor)
        return sw_tensor_batch_size(value->tensor);
    return value->items ? (int64_t)value->items->len : 0;
}

GPtrArray *sw_value_array_new(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)sw_value_free);
}
