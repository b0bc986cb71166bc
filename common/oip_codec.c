#include "oip_codec.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

/* Releases the extra reference a zero-copy slice of a request holds. */
static void release_owner(gpointer owner)
{
    g_bytes_unref(owner);
}

static GBytes *bytes_borrowing(const void *data, size_t len, GBytes *owner)
{
    return g_bytes_new_with_free_func(data, len, release_owner, g_bytes_ref(owner));
}

/* Reads a base-128 varint at *pos; FALSE when it runs past `len`. */
static gboolean read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *value)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *pos < len; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *value = v;
            return TRUE;
        }
    }
    return FALSE;
}

/* Splits a message into its raw_input_contents (field 7) views and a copy of
 * everything else, which is small. */
static gboolean split_raw_contents(const uint8_t *p, size_t len, GByteArray *rest, GArray *raw)
{
    size_t pos = 0;
    while (pos < len) {
        size_t start = pos;
        uint64_t key = 0, n = 0;
        if (!read_varint(p, len, &pos, &key))
            return FALSE;
        switch (key & 7) {
        case 0: if (!read_varint(p, len, &pos, &n)) return FALSE; break;
        case 1: pos += 8; break;
        case 5: pos += 4; break;
        case 2:
            if (!read_varint(p, len, &pos, &n) || n > len - pos)
                return FALSE;
            if ((key >> 3) == 7) {
                ProtobufCBinaryData view = {(size_t)n, (uint8_t *)p + pos};
                g_array_append_val(raw, view);
                pos += n;
                continue;
            }
            pos += n;
            break;
        default: return FALSE;
        }
        if (pos > len)
            return FALSE;
        g_byte_array_append(rest, p + start, (guint)(pos - start));
    }
    return TRUE;
}

typedef struct unpacked_request {
    Inference__ModelInferRequest *request;
    GBytes *message;
} unpacked_request;

static void free_unpacked_request(gpointer data)
{
    unpacked_request *u = data;
    /* The views are not protobuf-c's to free. */
    g_free(u->request->raw_input_contents);
    u->request->raw_input_contents = NULL;
    u->request->n_raw_input_contents = 0;
    protobuf_c_message_free_unpacked(&u->request->base, NULL);
    g_bytes_unref(u->message);
    g_free(u);
}

/* Typed contents expand when unpacked (a one-byte varint becomes an 8-byte
 * int64, then is copied into a tensor), so they are capped: large tensors
 * belong in raw contents. */
#define MAX_TYPED_BYTES (16u << 20)

Inference__ModelInferRequest *sw_oip_unpack_infer_request(GBytes *message, GBytes **owner, GError **error)
{
    gsize len = 0;
    const uint8_t *p = g_bytes_get_data(message, &len);
    GByteArray *rest = g_byte_array_new();
    GArray *raw = g_array_new(FALSE, FALSE, sizeof(ProtobufCBinaryData));
    Inference__ModelInferRequest *req = NULL;
    gboolean split = split_raw_contents(p, len, rest, raw);
    if (split && rest->len > MAX_TYPED_BYTES) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "the request holds %u bytes outside raw_input_contents; typed contents are limited to %u bytes: "
                    "send large tensors as raw_input_contents", rest->len, MAX_TYPED_BYTES);
        g_byte_array_unref(rest);
        g_array_unref(raw);
        return NULL;
    }
    if (split)
        req = inference__model_infer_request__unpack(NULL, rest->len, rest->data);
    g_byte_array_unref(rest);
    if (req == NULL) {
        g_array_unref(raw);
        INVALID(error, "the request is not a valid inference.ModelInferRequest message");
        return NULL;
    }
    req->n_raw_input_contents = raw->len;
    req->raw_input_contents = (ProtobufCBinaryData *)g_array_free(raw, FALSE);
    unpacked_request *u = g_new0(unpacked_request, 1);
    u->request = req;
    u->message = g_bytes_ref(message);
    *owner = g_bytes_new_with_free_func(req, sizeof *req, free_unpacked_request, u);
    return req;
}

sw_tensor *sw_oip_parse_raw_bytes(GBytes *raw, int ndim, const int64_t *shape,
                                  const char *what, GError **error)
{
    int64_t n = 0;
    if (!sw_shape_element_count(ndim, shape, what, &n, error))
        return NULL;
    gsize size = 0;
    const uint8_t *p = g_bytes_get_data(raw, &size);
    /* Each element needs at least its 4-byte prefix: reject absurd shapes
     * before allocating offsets for them. */
    if ((uint64_t)n > size / 4 + 1 && n > 0) {
        INVALID(error, "input '%s': BYTES framing truncated: shape needs %" G_GINT64_FORMAT
                " elements but raw contents hold %zu bytes", what, n, (size_t)size);
        return NULL;
    }
    /* Offsets index a payload buffer without the prefixes. */
    size_t *offsets = g_new(size_t, (size_t)n + 1);
    GByteArray *payloads = g_byte_array_sized_new((guint)MIN(size, G_MAXUINT));
    size_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        if (size - pos < 4) {
            INVALID(error, "input '%s': BYTES framing truncated at element %" G_GINT64_FORMAT
                    " of %" G_GINT64_FORMAT ": no room for its 4-byte length", what, i, n);
            goto fail;
        }
        uint32_t len = (uint32_t)p[pos] | (uint32_t)p[pos + 1] << 8 | (uint32_t)p[pos + 2] << 16 |
                       (uint32_t)p[pos + 3] << 24;
        pos += 4;
        if (len > size - pos) {
            INVALID(error, "input '%s': BYTES framing truncated at element %" G_GINT64_FORMAT
                    ": length %u but only %zu bytes remain", what, i, len, size - pos);
            goto fail;
        }
        offsets[i] = payloads->len;
        g_byte_array_append(payloads, p + pos, len);
        pos += len;
    }
    if (pos != size) {
        INVALID(error, "input '%s': BYTES framing overlong: %zu bytes left after the %" G_GINT64_FORMAT
                " elements of the shape", what, size - pos, n);
        goto fail;
    }
    offsets[n] = payloads->len;
    GBytes *bytes = g_byte_array_free_to_bytes(payloads);
    sw_tensor *t = sw_tensor_new_bytes(ndim, shape, bytes, offsets);
    g_bytes_unref(bytes);
    return t;
fail:
    g_free(offsets);
    g_byte_array_unref(payloads);
    return NULL;
}

static gboolean contents_empty(const Inference__InferTensorContents *c)
{
    return c == NULL ||
           (c->n_bool_contents == 0 && c->n_int_contents == 0 && c->n_int64_contents == 0 &&
            c->n_uint_contents == 0 && c->n_uint64_contents == 0 && c->n_fp32_contents == 0 &&
            c->n_fp64_contents == 0 && c->n_bytes_contents == 0);
}

/* The typed field a datatype travels in, its name and length, and the number
 * of values found in the other fields (which must be none). */
typedef struct typed_field {
    const char *name;
    size_t count;
    size_t others;
} typed_field;

static typed_field typed_field_for(const Inference__InferTensorContents *c, sw_dtype dtype)
{
    size_t all = c->n_bool_contents + c->n_int_contents + c->n_int64_contents +
                 c->n_uint_contents + c->n_uint64_contents + c->n_fp32_contents +
                 c->n_fp64_contents + c->n_bytes_contents;
    typed_field f = {NULL, 0, all};
    switch (dtype) {
    case SW_DTYPE_BOOL: f = (typed_field){"bool_contents", c->n_bool_contents, 0}; break;
    case SW_DTYPE_INT8:
    case SW_DTYPE_INT16:
    case SW_DTYPE_INT32: f = (typed_field){"int_contents", c->n_int_contents, 0}; break;
    case SW_DTYPE_INT64: f = (typed_field){"int64_contents", c->n_int64_contents, 0}; break;
    case SW_DTYPE_UINT8:
    case SW_DTYPE_UINT16:
    case SW_DTYPE_UINT32: f = (typed_field){"uint_contents", c->n_uint_contents, 0}; break;
    case SW_DTYPE_UINT64: f = (typed_field){"uint64_contents", c->n_uint64_contents, 0}; break;
    case SW_DTYPE_FP32: f = (typed_field){"fp32_contents", c->n_fp32_contents, 0}; break;
    case SW_DTYPE_FP64: f = (typed_field){"fp64_contents", c->n_fp64_contents, 0}; break;
    case SW_DTYPE_BYTES: f = (typed_field){"bytes_contents", c->n_bytes_contents, 0}; break;
    default: return f;
    }
    f.others = all - f.count;
    return f;
}

/* Narrows 32-bit wire integers to the declared width, refusing values that
 * would silently wrap. */
static gboolean narrow_ints(const Inference__ModelInferRequest__InferInputTensor *in, sw_dtype dtype,
                            void *out, size_t n, GError **error)
{
    const Inference__InferTensorContents *c = in->contents;
    for (size_t i = 0; i < n; i++) {
        int64_t v = dtype == SW_DTYPE_INT8 || dtype == SW_DTYPE_INT16 ? (int64_t)c->int_contents[i]
                                                                      : (int64_t)c->uint_contents[i];
        int64_t lo = 0, hi = 0;
        switch (dtype) {
        case SW_DTYPE_INT8: lo = INT8_MIN, hi = INT8_MAX; break;
        case SW_DTYPE_INT16: lo = INT16_MIN, hi = INT16_MAX; break;
        case SW_DTYPE_UINT8: lo = 0, hi = UINT8_MAX; break;
        default: lo = 0, hi = UINT16_MAX; break;
        }
        if (v < lo || v > hi) {
            INVALID(error, "input '%s': value %" G_GINT64_FORMAT " at element %zu does not fit %s",
                    in->name, v, i, sw_dtype_name(dtype));
            return FALSE;
        }
        switch (dtype) {
        case SW_DTYPE_INT8: ((int8_t *)out)[i] = (int8_t)v; break;
        case SW_DTYPE_INT16: ((int16_t *)out)[i] = (int16_t)v; break;
        case SW_DTYPE_UINT8: ((uint8_t *)out)[i] = (uint8_t)v; break;
        default: ((uint16_t *)out)[i] = (uint16_t)v; break;
        }
    }
    return TRUE;
}

static sw_tensor *decode_typed(const Inference__ModelInferRequest__InferInputTensor *in, sw_dtype dtype,
                               int ndim, const int64_t *shape, int64_t n, GError **error)
{
    if (dtype == SW_DTYPE_FP16 || dtype == SW_DTYPE_BF16) {
        INVALID(error, "input '%s': %s travels only in raw_input_contents, not typed contents",
                in->name, sw_dtype_name(dtype));
        return NULL;
    }
    static const Inference__InferTensorContents no_contents = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    const Inference__InferTensorContents *c = in->contents ? in->contents : &no_contents;
    typed_field f = typed_field_for(c, dtype);
    if (f.others > 0) {
        INVALID(error, "input '%s': datatype %s travels in %s, but contents hold %zu values in other fields",
                in->name, sw_dtype_name(dtype), f.name, f.others);
        return NULL;
    }
    if ((int64_t)f.count != n) {
        char *s = sw_shape_to_string(ndim, shape);
        INVALID(error, "input '%s': shape %s needs %" G_GINT64_FORMAT " values in %s, got %zu",
                in->name, s, n, f.name, f.count);
        g_free(s);
        return NULL;
    }
    if (dtype == SW_DTYPE_BYTES) {
        size_t *offsets = g_new(size_t, (size_t)n + 1);
        GByteArray *payloads = g_byte_array_new();
        for (int64_t i = 0; i < n; i++) {
            offsets[i] = payloads->len;
            g_byte_array_append(payloads, c->bytes_contents[i].data, (guint)c->bytes_contents[i].len);
        }
        offsets[n] = payloads->len;
        GBytes *bytes = g_byte_array_free_to_bytes(payloads);
        sw_tensor *t = sw_tensor_new_bytes(ndim, shape, bytes, offsets);
        g_bytes_unref(bytes);
        return t;
    }
    size_t nbytes = (size_t)n * sw_dtype_size(dtype);
    void *buf = g_malloc(nbytes ? nbytes : 1);
    gboolean ok = TRUE;
    switch (dtype) {
    case SW_DTYPE_BOOL:
        for (int64_t i = 0; i < n; i++)
            ((uint8_t *)buf)[i] = c->bool_contents[i] ? 1 : 0;
        break;
    case SW_DTYPE_INT32: memcpy(buf, c->int_contents, nbytes); break;
    case SW_DTYPE_INT64: memcpy(buf, c->int64_contents, nbytes); break;
    case SW_DTYPE_UINT32: memcpy(buf, c->uint_contents, nbytes); break;
    case SW_DTYPE_UINT64: memcpy(buf, c->uint64_contents, nbytes); break;
    case SW_DTYPE_FP32: memcpy(buf, c->fp32_contents, nbytes); break;
    case SW_DTYPE_FP64: memcpy(buf, c->fp64_contents, nbytes); break;
    default: ok = narrow_ints(in, dtype, buf, (size_t)n, error); break;
    }
    if (!ok) {
        g_free(buf);
        return NULL;
    }
    GBytes *bytes = g_bytes_new_take(buf, nbytes);
    sw_tensor *t = sw_tensor_new(dtype, ndim, shape, bytes);
    g_bytes_unref(bytes);
    return t;
}

static sw_tensor *decode_raw(const Inference__ModelInferRequest__InferInputTensor *in, sw_dtype dtype,
                             int ndim, const int64_t *shape, int64_t n, const ProtobufCBinaryData *raw,
                             GBytes *owner, GError **error)
{
    GBytes *bytes = bytes_borrowing(raw->data, raw->len, owner);
    sw_tensor *t = NULL;
    if (dtype == SW_DTYPE_BYTES) {
        t = sw_oip_parse_raw_bytes(bytes, ndim, shape, in->name, error);
    } else if ((uint64_t)n > SIZE_MAX / sw_dtype_size(dtype) ||
               (size_t)n * sw_dtype_size(dtype) != raw->len) {
        char *s = sw_shape_to_string(ndim, shape);
        INVALID(error, "input '%s': %s shape %s needs %" G_GUINT64_FORMAT " bytes of raw contents, got %zu",
                in->name, sw_dtype_name(dtype), s, (guint64)n * sw_dtype_size(dtype), raw->len);
        g_free(s);
    } else {
        t = sw_tensor_new(dtype, ndim, shape, bytes);
    }
    g_bytes_unref(bytes);
    return t;
}

static sw_value *decode_input(const Inference__ModelInferRequest *request, size_t index,
                              GBytes *owner, GError **error)
{
    const Inference__ModelInferRequest__InferInputTensor *in = request->inputs[index];
    if (in->name == NULL || in->name[0] == '\0') {
        INVALID(error, "input %zu has no name", index);
        return NULL;
    }
    sw_dtype dtype = sw_dtype_from_name(in->datatype);
    if (dtype == SW_DTYPE_INVALID) {
        INVALID(error, "input '%s': unknown datatype '%s' (expected one of BOOL, UINT8, UINT16, UINT32, "
                "UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES)", in->name, in->datatype);
        return NULL;
    }
    if (in->n_shape > SW_MAX_DIMS) {
        INVALID(error, "input '%s': %zu dimensions, at most %d are supported", in->name, in->n_shape, SW_MAX_DIMS);
        return NULL;
    }
    int ndim = (int)in->n_shape;
    const int64_t *shape = in->shape;
    int64_t n = 0;
    char *what = g_strdup_printf("input '%s'", in->name);
    gboolean shape_ok = sw_shape_element_count(ndim, shape, what, &n, error);
    g_free(what);
    if (!shape_ok)
        return NULL;
    sw_tensor *t = request->n_raw_input_contents > 0
                       ? decode_raw(in, dtype, ndim, shape, n, &request->raw_input_contents[index], owner, error)
                       : decode_typed(in, dtype, ndim, shape, n, error);
    if (t == NULL)
        return NULL;
    return sw_value_new_tensor(in->name, dtype == SW_DTYPE_BYTES ? SW_VALUE_STRINGS : SW_VALUE_TENSOR, t);
}

GPtrArray *sw_oip_decode_inputs(const Inference__ModelInferRequest *request,
                                GBytes *request_owner, GError **error)
{
    if (request->n_raw_input_contents > 0) {
        if (request->n_raw_input_contents != request->n_inputs) {
            INVALID(error, "raw_input_contents has %zu entries for %zu inputs: when raw contents are used, "
                    "every input needs one, in the order of inputs", request->n_raw_input_contents,
                    request->n_inputs);
            return NULL;
        }
        for (size_t i = 0; i < request->n_inputs; i++) {
            if (!contents_empty(request->inputs[i]->contents)) {
                INVALID(error, "input '%s': has typed contents while the request uses raw_input_contents; "
                        "use one form for all inputs", request->inputs[i]->name);
                return NULL;
            }
        }
    }
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray *values = sw_value_array_new();
    for (size_t i = 0; i < request->n_inputs; i++) {
        sw_value *v = decode_input(request, i, request_owner, error);
        if (v == NULL)
            goto fail;
        g_ptr_array_add(values, v);
        if (!g_hash_table_add(seen, v->name)) {
            INVALID(error, "input '%s' appears more than once", v->name);
            goto fail;
        }
    }
    g_hash_table_unref(seen);
    return values;
fail:
    g_hash_table_unref(seen);
    g_ptr_array_unref(values);
    return NULL;
}

GBytes *sw_oip_raw_contents(const sw_tensor *tensor)
{
    if (tensor->dtype != SW_DTYPE_BYTES)
        return g_bytes_ref(tensor->data);
    int64_t n = sw_tensor_element_count(tensor);
    size_t payload = 0;
    (void)sw_tensor_data(tensor, &payload);
    size_t total = payload + 4 * (size_t)n;
    uint8_t *out = g_malloc(total ? total : 1);
    size_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(tensor, (size_t)i, &len);
        out[pos] = (uint8_t)len;
        out[pos + 1] = (uint8_t)(len >> 8);
        out[pos + 2] = (uint8_t)(len >> 16);
        out[pos + 3] = (uint8_t)(len >> 24);
        memcpy(out + pos + 4, e, len);
        pos += 4 + len;
    }
    return g_bytes_new_take(out, total);
}

void sw_oip_output_free(sw_oip_output *output)
{
    if (output == NULL)
        return;
    g_free(output->name);
    sw_tensor_free(output->tensor);
    g_free(output);
}

GPtrArray *sw_oip_output_array_new(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)sw_oip_output_free);
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

sw_oip_output *sw_oip_encode_value(const sw_value *value, GError **error)
{
    sw_tensor *t = NULL;
    gboolean json = FALSE;
    switch (value->kind) {
    case SW_VALUE_TENSOR:
    case SW_VALUE_STRINGS:
        t = sw_tensor_share(value->tensor, 0, NULL);
        break;
    case SW_VALUE_STRING_LISTS:
    case SW_VALUE_TENSOR_LIST:
        t = ragged_to_json_rows(value, error);
        json = TRUE;
        break;
    }
    if (t == NULL)
        return NULL;
    sw_oip_output *out = g_new0(sw_oip_output, 1);
    out->name = g_strdup(value->name);
    out->tensor = t;
    out->json = json;
    return out;
}

/* The response and everything it owns beyond what it borrows. */
typedef struct response_holder {
    Inference__ModelInferResponse msg; /* first, so the message pointer is the holder */
    Inference__ModelInferResponse__InferOutputTensor *tensors;
    Inference__ModelInferResponse__InferOutputTensor **tensor_ptrs;
    Inference__ModelInferResponse__InferOutputTensor__ParametersEntry *json_entries;
    Inference__ModelInferResponse__InferOutputTensor__ParametersEntry **json_entry_ptrs;
    Inference__InferParameter json_param;
    ProtobufCBinaryData *raw;
    GBytes **raw_bytes;
    size_t n;
} response_holder;

Inference__ModelInferResponse *sw_oip_response_build(const char *model_name, const char *id,
                                                     GPtrArray *outputs)
{
    response_holder *h = g_new0(response_holder, 1);
    size_t n = outputs->len;
    h->n = n;
    inference__model_infer_response__init(&h->msg);
    h->msg.model_name = (char *)model_name;
    h->msg.id = (char *)(id ? id : "");
    h->tensors = g_new0(Inference__ModelInferResponse__InferOutputTensor, n);
    h->tensor_ptrs = g_new0(Inference__ModelInferResponse__InferOutputTensor *, n);
    h->json_entries = g_new0(Inference__ModelInferResponse__InferOutputTensor__ParametersEntry, n);
    h->json_entry_ptrs = g_new0(Inference__ModelInferResponse__InferOutputTensor__ParametersEntry *, n);
    h->raw = g_new0(ProtobufCBinaryData, n);
    h->raw_bytes = g_new0(GBytes *, n);
    inference__infer_parameter__init(&h->json_param);
    h->json_param.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    h->json_param.string_param = "json";
    for (size_t i = 0; i < n; i++) {
        const sw_oip_output *o = g_ptr_array_index(outputs, i);
        Inference__ModelInferResponse__InferOutputTensor *t = &h->tensors[i];
        inference__model_infer_response__infer_output_tensor__init(t);
        t->name = o->name;
        t->datatype = (char *)sw_dtype_name(o->tensor->dtype);
        t->n_shape = (size_t)o->tensor->ndim;
        t->shape = (int64_t *)o->tensor->shape;
        if (o->json) {
            Inference__ModelInferResponse__InferOutputTensor__ParametersEntry *e = &h->json_entries[i];
            inference__model_infer_response__infer_output_tensor__parameters_entry__init(e);
            e->key = "content_type";
            e->value = &h->json_param;
            h->json_entry_ptrs[i] = e;
            t->n_parameters = 1;
            t->parameters = &h->json_entry_ptrs[i];
        }
        h->tensor_ptrs[i] = t;
        h->raw_bytes[i] = sw_oip_raw_contents(o->tensor);
        gsize len = 0;
        h->raw[i].data = (uint8_t *)g_bytes_get_data(h->raw_bytes[i], &len);
        h->raw[i].len = len;
    }
    h->msg.n_outputs = n;
    h->msg.outputs = h->tensor_ptrs;
    h->msg.n_raw_output_contents = n;
    h->msg.raw_output_contents = h->raw;
    return &h->msg;
}

void sw_oip_response_free(Inference__ModelInferResponse *response)
{
    if (response == NULL)
        return;
    response_holder *h = (response_holder *)response;
    for (size_t i = 0; i < h->n; i++)
        g_bytes_unref(h->raw_bytes[i]);
    g_free(h->raw_bytes);
    g_free(h->raw);
    g_free(h->json_entry_ptrs);
    g_free(h->json_entries);
    g_free(h->tensor_ptrs);
    g_free(h->tensors);
    g_free(h);
}

/* The request and everything it owns beyond what it borrows. */
typedef struct request_holder {
    Inference__ModelInferRequest msg; /* first, so the message pointer is the holder */
    Inference__ModelInferRequest__InferInputTensor *tensors;
    Inference__ModelInferRequest__InferInputTensor **tensor_ptrs;
    ProtobufCBinaryData *raw;
    GBytes **raw_bytes;
    size_t n;
} request_holder;

Inference__ModelInferRequest *sw_oip_request_build(const char *model_name, const char *id, GPtrArray *tensors,
                                                   const Inference__ModelInferRequest *pass_through)
{
    request_holder *h = g_new0(request_holder, 1);
    size_t n = tensors->len;
    h->n = n;
    inference__model_infer_request__init(&h->msg);
    h->msg.model_name = (char *)model_name;
    h->msg.id = (char *)(id ? id : "");
    h->tensors = g_new0(Inference__ModelInferRequest__InferInputTensor, n);
    h->tensor_ptrs = g_new0(Inference__ModelInferRequest__InferInputTensor *, n);
    h->raw = g_new0(ProtobufCBinaryData, n);
    h->raw_bytes = g_new0(GBytes *, n);
    for (size_t i = 0; i < n; i++) {
        const sw_oip_output *o = g_ptr_array_index(tensors, i);
        Inference__ModelInferRequest__InferInputTensor *t = &h->tensors[i];
        inference__model_infer_request__infer_input_tensor__init(t);
        t->name = o->name;
        t->datatype = (char *)sw_dtype_name(o->tensor->dtype);
        t->n_shape = (size_t)o->tensor->ndim;
        t->shape = (int64_t *)o->tensor->shape;
        h->tensor_ptrs[i] = t;
        h->raw_bytes[i] = sw_oip_raw_contents(o->tensor);
        gsize len = 0;
        h->raw[i].data = (uint8_t *)g_bytes_get_data(h->raw_bytes[i], &len);
        h->raw[i].len = len;
    }
    h->msg.n_inputs = n;
    h->msg.inputs = h->tensor_ptrs;
    h->msg.n_raw_input_contents = n;
    h->msg.raw_input_contents = h->raw;
    if (pass_through) {
        h->msg.n_outputs = pass_through->n_outputs;
        h->msg.outputs = pass_through->outputs;
        h->msg.n_parameters = pass_through->n_parameters;
        h->msg.parameters = pass_through->parameters;
    }
    return &h->msg;
}

void sw_oip_request_free(Inference__ModelInferRequest *request)
{
    if (request == NULL)
        return;
    request_holder *h = (request_holder *)request;
    for (size_t i = 0; i < h->n; i++)
        g_bytes_unref(h->raw_bytes[i]);
    g_free(h->raw_bytes);
    g_free(h->raw);
    g_free(h->tensor_ptrs);
    g_free(h->tensors);
    g_free(h);
}

GBytes *sw_protobuf_pack(const ProtobufCMessage *message)
{
    size_t size = protobuf_c_message_get_packed_size(message);
    uint8_t *buf = g_malloc(size ? size : 1);
    protobuf_c_message_pack(message, buf);
    return g_bytes_new_take(buf, size);
}

/* Field header of a length-delimited entry of `field`: key and length. */
static GBytes *entry_header(unsigned field, size_t len)
{
    uint8_t buf[16];
    size_t n = 0;
    buf[n++] = (uint8_t)(field << 3 | 2);
    uint64_t v = len;
    do {
        buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return g_bytes_new(buf, n);
}

static GPtrArray *pack_parts(ProtobufCMessage *message, size_t *n_raw, ProtobufCBinaryData *raw, GBytes **raw_bytes,
                             unsigned field)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    size_t n = *n_raw;
    *n_raw = 0;
    g_ptr_array_add(parts, sw_protobuf_pack(message));
    *n_raw = n;
    for (size_t i = 0; i < n; i++) {
        g_ptr_array_add(parts, entry_header(field, raw[i].len));
        if (raw[i].len)
            g_ptr_array_add(parts, g_bytes_ref(raw_bytes[i]));
    }
    return parts;
}

GPtrArray *sw_oip_response_pack_parts(Inference__ModelInferResponse *response)
{
    response_holder *h = (response_holder *)response;
    return pack_parts(&response->base, &response->n_raw_output_contents, h->raw, h->raw_bytes, 6);
}

GPtrArray *sw_oip_request_pack_parts(Inference__ModelInferRequest *request)
{
    request_holder *h = (request_holder *)request;
    return pack_parts(&request->base, &request->n_raw_input_contents, h->raw, h->raw_bytes, 7);
}
