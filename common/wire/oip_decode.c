/* OIP input tensors (raw or typed contents) into sw_value. */
#include <string.h>

#include "clip.h"
#include "oip_codec.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

/* Releases the extra reference a zero-copy slice of a request holds. */
/* n × size in decimal, exactly: a declared shape may need 2^64 bytes or
 * more, and the message must still say how many. Newly allocated. */
static char *bytes_needed_text(int64_t n, size_t size)
{
    unsigned __int128 need = (unsigned __int128)(uint64_t)n * size;
    char digits[48];
    size_t pos = sizeof digits;
    digits[--pos] = '\0';
    do {
        digits[--pos] = (char)('0' + (int)(need % 10));
        need /= 10;
    } while (need > 0);
    return g_strdup(digits + pos);
}

static void release_owner(gpointer owner)
{
    g_bytes_unref(owner);
}

static GBytes *bytes_borrowing(const void *data, size_t len, GBytes *owner)
{
    return g_bytes_new_with_free_func(data, len, release_owner, g_bytes_ref(owner));
}

static gboolean contents_empty(const Inference__InferTensorContents *c)
{
    return c == NULL || (c->n_bool_contents == 0 && c->n_int_contents == 0 && c->n_int64_contents == 0 &&
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
    size_t all = c->n_bool_contents + c->n_int_contents + c->n_int64_contents + c->n_uint_contents +
                 c->n_uint64_contents + c->n_fp32_contents + c->n_fp64_contents + c->n_bytes_contents;
    typed_field f = {.others = all};
    switch (dtype) {
    case SW_DTYPE_BOOL: f = (typed_field){.name = "bool_contents", .count = c->n_bool_contents}; break;
    case SW_DTYPE_INT8:
    case SW_DTYPE_INT16:
    case SW_DTYPE_INT32: f = (typed_field){.name = "int_contents", .count = c->n_int_contents}; break;
    case SW_DTYPE_INT64: f = (typed_field){.name = "int64_contents", .count = c->n_int64_contents}; break;
    case SW_DTYPE_UINT8:
    case SW_DTYPE_UINT16:
    case SW_DTYPE_UINT32: f = (typed_field){.name = "uint_contents", .count = c->n_uint_contents}; break;
    case SW_DTYPE_UINT64: f = (typed_field){.name = "uint64_contents", .count = c->n_uint64_contents}; break;
    case SW_DTYPE_FP32: f = (typed_field){.name = "fp32_contents", .count = c->n_fp32_contents}; break;
    case SW_DTYPE_FP64: f = (typed_field){.name = "fp64_contents", .count = c->n_fp64_contents}; break;
    case SW_DTYPE_BYTES: f = (typed_field){.name = "bytes_contents", .count = c->n_bytes_contents}; break;
    default: return f;
    }
    f.others = all - f.count;
    return f;
}

/* Narrows 32-bit wire integers to the declared width, refusing values that
 * would silently wrap. */
static gboolean narrow_ints(const Inference__ModelInferRequest__InferInputTensor *in, sw_dtype dtype, void *out,
                            size_t n, GError **error)
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
            INVALID(error, "input '" SW_CLIP_FMT "': value %" G_GINT64_FORMAT " at element %zu does not fit %s",
                    SW_CLIP(in->name), v, i, sw_dtype_name(dtype));
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

static sw_tensor *decode_typed(const Inference__ModelInferRequest__InferInputTensor *in, sw_dtype dtype, int ndim,
                               const int64_t *shape, int64_t n, GError **error)
{
    if (dtype == SW_DTYPE_FP16 || dtype == SW_DTYPE_BF16) {
        INVALID(error, "input '" SW_CLIP_FMT "': %s travels only in raw_input_contents, not typed contents",
                SW_CLIP(in->name), sw_dtype_name(dtype));
        return NULL;
    }
    static const Inference__InferTensorContents no_contents = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    const Inference__InferTensorContents *c = in->contents ? in->contents : &no_contents;
    typed_field f = typed_field_for(c, dtype);
    if (f.others > 0) {
        INVALID(error,
                "input '" SW_CLIP_FMT "': datatype %s travels in %s, but contents hold %zu values in other fields",
                SW_CLIP(in->name), sw_dtype_name(dtype), f.name, f.others);
        return NULL;
    }
    if ((int64_t)f.count != n) {
        char *s = sw_shape_to_string(ndim, shape);
        INVALID(error, "input '" SW_CLIP_FMT "': shape %s needs %" G_GINT64_FORMAT " values in %s, got %zu",
                SW_CLIP(in->name), s, n, f.name, f.count);
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
    /* With no elements the typed field is absent (NULL): nothing to copy,
     * and memcpy from NULL is undefined even for 0 bytes. */
    switch (nbytes ? dtype : SW_DTYPE_INVALID) {
    case SW_DTYPE_INVALID: break;
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

/* The messages of these two name the input; they are formatted only once
 * a check failed, as most requests pass. */
static gboolean input_element_count(const char *name, int ndim, const int64_t *shape, int64_t *n, GError **error)
{
    if (sw_shape_element_count(ndim, shape, NULL, n, NULL))
        return TRUE;
    char *what = g_strdup_printf("input '" SW_CLIP_FMT "'", SW_CLIP(name));
    sw_shape_element_count(ndim, shape, what, n, error);
    g_free(what);
    return FALSE;
}

static sw_tensor *parse_input_bytes(GBytes *bytes, const char *name, int ndim, const int64_t *shape, GError **error)
{
    sw_tensor *t = sw_oip_parse_raw_bytes(bytes, ndim, shape, NULL, NULL);
    if (t)
        return t;
    char *what = g_strdup_printf("input '" SW_CLIP_FMT "'", SW_CLIP(name));
    sw_oip_parse_raw_bytes(bytes, ndim, shape, what, error);
    g_free(what);
    return NULL;
}

static sw_tensor *decode_raw(const Inference__ModelInferRequest__InferInputTensor *in, sw_dtype dtype, int ndim,
                             const int64_t *shape, int64_t n, const ProtobufCBinaryData *raw, GBytes *owner,
                             GError **error)
{
    GBytes *bytes = bytes_borrowing(raw->data, raw->len, owner);
    sw_tensor *t = NULL;
    if (dtype == SW_DTYPE_BYTES) {
        t = parse_input_bytes(bytes, in->name, ndim, shape, error);
    } else if ((uint64_t)n > SIZE_MAX / sw_dtype_size(dtype) || (size_t)n * sw_dtype_size(dtype) != raw->len) {
        char *s = sw_shape_to_string(ndim, shape);
        char *need_text = bytes_needed_text(n, sw_dtype_size(dtype));
        INVALID(error, "input '" SW_CLIP_FMT "': %s shape %s needs %s bytes of raw contents, got %zu",
                SW_CLIP(in->name), sw_dtype_name(dtype), s, need_text, raw->len);
        g_free(need_text);
        g_free(s);
    } else {
        t = sw_tensor_new(dtype, ndim, shape, bytes);
    }
    g_bytes_unref(bytes);
    return t;
}

/* An InferParameter as a GVariant ("b", "x", "s", "d", "t"), or NULL when unset. */
static GVariant *parameter_variant(const Inference__InferParameter *p)
{
    switch (p ? p->parameter_choice_case : INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE__NOT_SET) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM: return g_variant_new_boolean(p->bool_param);
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM: return g_variant_new_int64(p->int64_param);
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
        return g_variant_new_string(p->string_param ? p->string_param : "");
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM: return g_variant_new_double(p->double_param);
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM: return g_variant_new_uint64(p->uint64_param);
    default: return NULL;
    }
}

/* The input's own parameters (sample_rate of a waveform, ...) by name, or
 * NULL when it has none. Strings that are not UTF-8 are dropped: GVariant
 * strings must be. */
static GHashTable *decode_parameters(const Inference__ModelInferRequest__InferInputTensor *in)
{
    if (in->n_parameters == 0)
        return NULL;
    GHashTable *params = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_variant_unref);
    for (size_t i = 0; i < in->n_parameters; i++) {
        const Inference__ModelInferRequest__InferInputTensor__ParametersEntry *e = in->parameters[i];
        const Inference__InferParameter *p = e->value;
        if (e->key == NULL ||
            (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM &&
             p->string_param && !g_utf8_validate(p->string_param, -1, NULL)))
            continue;
        GVariant *v = parameter_variant(p);
        if (v)
            g_hash_table_replace(params, g_strdup(e->key), g_variant_ref_sink(v));
    }
    return params;
}

static sw_value *decode_input(const Inference__ModelInferRequest *request, size_t index, GBytes *owner, GError **error)
{
    const Inference__ModelInferRequest__InferInputTensor *in = request->inputs[index];
    if (in->name == NULL || in->name[0] == '\0') {
        INVALID(error, "input %zu has no name", index);
        return NULL;
    }
    sw_dtype dtype = sw_dtype_from_name(in->datatype);
    if (dtype == SW_DTYPE_INVALID) {
        INVALID(error,
                "input '" SW_CLIP_FMT "': unknown datatype '" SW_CLIP_FMT
                "' (expected one of BOOL, UINT8, UINT16, UINT32, "
                "UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES)",
                SW_CLIP(in->name), SW_CLIP(in->datatype));
        return NULL;
    }
    if (in->n_shape > SW_MAX_DIMS) {
        INVALID(error, "input '" SW_CLIP_FMT "': %zu dimensions, at most %d are supported", SW_CLIP(in->name),
                in->n_shape, SW_MAX_DIMS);
        return NULL;
    }
    int ndim = (int)in->n_shape;
    const int64_t *shape = in->shape;
    int64_t n = 0;
    if (!input_element_count(in->name, ndim, shape, &n, error))
        return NULL;
    sw_tensor *t = request->n_raw_input_contents > 0
                       ? decode_raw(in, dtype, ndim, shape, n, &request->raw_input_contents[index], owner, error)
                       : decode_typed(in, dtype, ndim, shape, n, error);
    if (t == NULL)
        return NULL;
    sw_value *v = sw_value_new_tensor(in->name, dtype == SW_DTYPE_BYTES ? SW_VALUE_STRINGS : SW_VALUE_TENSOR, t);
    v->parameters = decode_parameters(in);
    return v;
}

GPtrArray *sw_oip_decode_inputs(const Inference__ModelInferRequest *request, GBytes *request_owner, GError **error)
{
    if (request->n_raw_input_contents > 0) {
        if (request->n_raw_input_contents != request->n_inputs) {
            INVALID(error,
                    "raw_input_contents has %zu entries for %zu inputs: when raw contents are used, "
                    "every input needs one, in the order of inputs",
                    request->n_raw_input_contents, request->n_inputs);
            return NULL;
        }
        for (size_t i = 0; i < request->n_inputs; i++) {
            if (!contents_empty(request->inputs[i]->contents)) {
                INVALID(error,
                        "input '" SW_CLIP_FMT "': has typed contents while the request uses raw_input_contents; "
                        "use one form for all inputs",
                        SW_CLIP(request->inputs[i]->name));
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
            INVALID(error, "input '" SW_CLIP_FMT "' appears more than once", SW_CLIP(v->name));
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

/* Shape and framing checks report INVALID_ARGUMENT, the caller's fault when
 * decoding a request; in a reply the fault is the server's. */
static void reply_is_at_fault(GError **error)
{
    if (error && *error)
        (*error)->code = SW_CODE_INTERNAL;
}

GPtrArray *sw_oip_decode_outputs(const Inference__ModelInferResponse *response, GError **error)
{
    if (response->n_raw_output_contents != response->n_outputs) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "the reply has %zu outputs but %zu raw contents",
                    response->n_outputs, response->n_raw_output_contents);
        return NULL;
    }
    GPtrArray *outputs = sw_output_array_new();
    for (size_t i = 0; i < response->n_outputs; i++) {
        const Inference__ModelInferResponse__InferOutputTensor *t = response->outputs[i];
        sw_dtype dtype = sw_dtype_from_name(t->datatype);
        int64_t count = 0;
        char *what = g_strdup_printf("output '" SW_CLIP_FMT "'", SW_CLIP(t->name));
        if (dtype == SW_DTYPE_INVALID || !sw_shape_element_count((int)t->n_shape, t->shape, what, &count, error)) {
            if (dtype == SW_DTYPE_INVALID)
                g_set_error(error, SW_ERROR, SW_CODE_INTERNAL,
                            "output '" SW_CLIP_FMT "': unknown datatype '" SW_CLIP_FMT "'", SW_CLIP(t->name),
                            SW_CLIP(t->datatype));
            reply_is_at_fault(error);
            g_free(what);
            g_ptr_array_unref(outputs);
            return NULL;
        }
        GBytes *raw = g_bytes_new(response->raw_output_contents[i].data, response->raw_output_contents[i].len);
        sw_tensor *tensor = NULL;
        if (dtype == SW_DTYPE_BYTES)
            tensor = sw_oip_parse_raw_bytes(raw, (int)t->n_shape, t->shape, what, error);
        else if ((uint64_t)count <= SIZE_MAX / sw_dtype_size(dtype) &&
                 (size_t)count * sw_dtype_size(dtype) == g_bytes_get_size(raw))
            tensor = sw_tensor_new(dtype, (int)t->n_shape, t->shape, raw);
        else
            g_set_error(error, SW_ERROR, SW_CODE_INTERNAL,
                        "output '" SW_CLIP_FMT "': raw contents do not match its shape", SW_CLIP(t->name));
        g_bytes_unref(raw);
        g_free(what);
        if (tensor == NULL) {
            reply_is_at_fault(error);
            g_ptr_array_unref(outputs);
            return NULL;
        }
        sw_output *o = g_new0(sw_output, 1);
        o->name = g_strdup(t->name);
        o->tensor = tensor;
        /* Only BYTES rows can hold JSON documents. */
        for (size_t p = 0; p < t->n_parameters && dtype == SW_DTYPE_BYTES; p++) {
            const Inference__InferParameter *v = t->parameters[p]->value;
            if (strcmp(t->parameters[p]->key, "content_type") == 0 && v &&
                v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM &&
                v->string_param && strcmp(v->string_param, "json") == 0)
                o->json = TRUE;
        }
        g_ptr_array_add(outputs, o);
    }
    return outputs;
}
