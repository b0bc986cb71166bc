/* The HTTP mode's bodies: the packed request the gRPC mode sends rewritten
 * as a v2 REST body (JSON tensors, or Triton's binary tensor extension),
 * and the check that an answer is one. Built once per run, so the load
 * loop spends nothing on it. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "http.h"
#include "json_text.h"
#include "oip_codec.h"
#include "rest_codec.h"
#include "sw_error.h"
#include "tensor.h"

#define BAD(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

/* One BYTES element as a JSON string: UTF-8 without NUL, as the server's
 * JSON parser takes it. */
static gboolean append_text(GString *out, const guint8 *p, guint32 n, const char *name, int64_t index, GError **error)
{
    if (memchr(p, '\0', n) || !g_utf8_validate_len((const char *)p, n, NULL)) {
        BAD(error, "input '%s': element %" G_GINT64_FORMAT " is not UTF-8 text without NUL", name, index);
        return FALSE;
    }
    char *text = g_strndup((const char *)p, n);
    sw_json_append_string(out, text);
    g_free(text);
    return TRUE;
}

static gboolean append_bytes(GString *out, const ProtobufCBinaryData *raw, const char *name, GError **error)
{
    size_t at = 0;
    for (int64_t i = 0; at < raw->len; i++) {
        guint32 n = 0;
        if (raw->len - at < 4 || (memcpy(&n, raw->data + at, 4), n = GUINT32_FROM_LE(n), raw->len - at - 4 < n)) {
            BAD(error, "input '%s': BYTES framing runs past its contents", name);
            return FALSE;
        }
        g_string_append(out, i ? "," : "");
        if (!append_text(out, raw->data + at + 4, n, name, i, error))
            return FALSE;
        at += 4 + n;
    }
    return TRUE;
}

/* One element of a numeric tensor as JSON; FALSE where JSON has none. */
static gboolean append_number(GString *out, sw_dtype dtype, const guint8 *p)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    union {
        float f;
        double d;
        gint64 i64;
        guint64 u64;
        gint32 i32;
        guint32 u32;
        gint16 i16;
        guint16 u16;
    } v;
    memcpy(&v, p, sw_dtype_size(dtype));
    switch (dtype) {
    case SW_DTYPE_BOOL: g_string_append(out, *p ? "true" : "false"); return TRUE;
    case SW_DTYPE_UINT8: g_string_append_printf(out, "%u", (unsigned)*p); return TRUE;
    case SW_DTYPE_INT8: g_string_append_printf(out, "%d", (int)*(const gint8 *)p); return TRUE;
    case SW_DTYPE_UINT16: g_string_append_printf(out, "%u", (unsigned)v.u16); return TRUE;
    case SW_DTYPE_INT16: g_string_append_printf(out, "%d", (int)v.i16); return TRUE;
    case SW_DTYPE_UINT32: g_string_append_printf(out, "%u", v.u32); return TRUE;
    case SW_DTYPE_INT32: g_string_append_printf(out, "%d", v.i32); return TRUE;
    case SW_DTYPE_UINT64: g_string_append_printf(out, "%" G_GUINT64_FORMAT, v.u64); return TRUE;
    case SW_DTYPE_INT64: g_string_append_printf(out, "%" G_GINT64_FORMAT, v.i64); return TRUE;
    case SW_DTYPE_FP32:
        if (!isfinite(v.f))
            return FALSE;
        /* Nine significant digits read back as the same float. */
        g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.9g", v.f));
        return TRUE;
    case SW_DTYPE_FP64:
        if (!isfinite(v.d))
            return FALSE;
        g_string_append(out, g_ascii_dtostr(buf, sizeof buf, v.d));
        return TRUE;
    default: return FALSE;
    }
}

static gboolean append_data(GString *out, const Inference__ModelInferRequest__InferInputTensor *t,
                            const ProtobufCBinaryData *raw, GError **error)
{
    sw_dtype dtype = sw_dtype_from_name(t->datatype);
    g_string_append(out, ",\"data\":[");
    if (dtype == SW_DTYPE_BYTES) {
        if (!append_bytes(out, raw, t->name, error))
            return FALSE;
        g_string_append_c(out, ']');
        return TRUE;
    }
    size_t size = sw_dtype_size(dtype);
    if (size == 0 || raw->len % size != 0) {
        BAD(error, "input '%s': %s data cannot be written in JSON", t->name, t->datatype);
        return FALSE;
    }
    for (size_t i = 0; i < raw->len / size; i++) {
        g_string_append(out, i ? "," : "");
        if (!append_number(out, dtype, raw->data + i * size)) {
            BAD(error, "input '%s': element %zu (%s) has no JSON number", t->name, i, t->datatype);
            return FALSE;
        }
    }
    g_string_append_c(out, ']');
    return TRUE;
}

static void append_parameter(GString *out, const char *key, const Inference__InferParameter *p)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    sw_json_append_string(out, key);
    g_string_append_c(out, ':');
    switch (p->parameter_choice_case) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
        g_string_append(out, p->bool_param ? "true" : "false");
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, p->int64_param);
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
        g_string_append_printf(out, "%" G_GUINT64_FORMAT, p->uint64_param);
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM:
        g_string_append(out, g_ascii_dtostr(buf, sizeof buf, p->double_param));
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: sw_json_append_string(out, p->string_param); break;
    default: g_string_append(out, "null");
    }
}

/* One element of "inputs"; with `binary` its contents go to `blob`. */
static gboolean append_input(GString *out, GByteArray *blob, const Inference__ModelInferRequest__InferInputTensor *t,
                             const ProtobufCBinaryData *raw, gboolean binary, GError **error)
{
    gsize start = out->len;
    sw_rest_append_tensor_head(out, t->name, t->datatype, t->shape, t->n_shape);
    if (t->n_parameters > 0 || binary) {
        g_string_append(out, ",\"parameters\":{");
        for (size_t i = 0; i < t->n_parameters; i++) {
            g_string_append(out, i ? "," : "");
            append_parameter(out, t->parameters[i]->key, t->parameters[i]->value);
        }
        if (binary)
            g_string_append_printf(out, "%s\"binary_data_size\":%zu", t->n_parameters ? "," : "", raw->len);
        g_string_append_c(out, '}');
    }
    if (binary)
        g_byte_array_append(blob, raw->data, (guint)raw->len);
    else if (!append_data(out, t, raw, error)) {
        g_string_truncate(out, start);
        return FALSE;
    }
    g_string_append_c(out, '}');
    return TRUE;
}

/* An input as JSON data, or as binary data when JSON cannot carry it (its
 * name and why then added to `as_binary`). */
static void append_input_json(GString *out, GByteArray *blob, const Inference__ModelInferRequest__InferInputTensor *t,
                              const ProtobufCBinaryData *raw, GPtrArray *as_binary)
{
    GError *why = NULL;
    if (append_input(out, blob, t, raw, FALSE, &why))
        return;
    g_ptr_array_add(as_binary, g_strdup(why->message));
    g_error_free(why);
    append_input(out, blob, t, raw, TRUE, NULL);
}

gboolean bench_http_body_build(GBytes *packed, gboolean binary, bench_http_body *out, GError **error)
{
    memset(out, 0, sizeof *out);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(packed, &len);
    Inference__ModelInferRequest *req = inference__model_infer_request__unpack(NULL, len, data);
    if (req == NULL || req->n_raw_input_contents != req->n_inputs) {
        BAD(error, "the request is not a ModelInferRequest with raw contents");
        if (req)
            inference__model_infer_request__free_unpacked(req, NULL);
        return FALSE;
    }
    GString *json = g_string_new("{\"id\":");
    sw_json_append_string(json, req->id);
    if (binary)
        g_string_append(json, ",\"parameters\":{\"binary_data_output\":true}");
    g_string_append(json, ",\"inputs\":[");
    GByteArray *blob = g_byte_array_new();
    out->binary_inputs = g_ptr_array_new_with_free_func(g_free);
    for (size_t i = 0; i < req->n_inputs; i++) {
        g_string_append(json, i ? "," : "");
        if (binary)
            append_input(json, blob, req->inputs[i], &req->raw_input_contents[i], TRUE, NULL);
        else
            append_input_json(json, blob, req->inputs[i], &req->raw_input_contents[i], out->binary_inputs);
    }
    g_string_append(json, "]}");
    inference__model_infer_request__free_unpacked(req, NULL);
    out->header_len = binary || out->binary_inputs->len > 0 ? (gssize)json->len : -1;
    g_byte_array_prepend(blob, (const guint8 *)json->str, (guint)json->len);
    g_string_free(json, TRUE);
    out->bytes = g_byte_array_free_to_bytes(blob);
    return TRUE;
}

void bench_http_body_clear(bench_http_body *body)
{
    g_clear_pointer(&body->bytes, g_bytes_unref);
    g_clear_pointer(&body->binary_inputs, g_ptr_array_unref);
}

/* Elements of a "data" member: nested arrays count their leaves. */
static int64_t count_elements(JsonNode *node)
{
    if (!JSON_NODE_HOLDS_ARRAY(node))
        return 1;
    JsonArray *array = json_node_get_array(node);
    int64_t n = 0;
    for (guint i = 0; i < json_array_get_length(array); i++)
        n += count_elements(json_array_get_element(array, i));
    return n;
}

static gboolean is_string(JsonObject *o, const char *key)
{
    JsonNode *n = json_object_get_member(o, key);
    return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING;
}

/* The elements a "shape" holds; FALSE when it is not an array of
 * non-negative integers. */
static gboolean shape_count(JsonNode *shape, int64_t *count)
{
    if (shape == NULL || !JSON_NODE_HOLDS_ARRAY(shape))
        return FALSE;
    JsonArray *dims = json_node_get_array(shape);
    int ndim = (int)json_array_get_length(dims);
    int64_t dim[SW_MAX_DIMS];
    if (ndim > SW_MAX_DIMS)
        return FALSE;
    for (int i = 0; i < ndim; i++) {
        JsonNode *d = json_array_get_element(dims, (guint)i);
        if (!JSON_NODE_HOLDS_VALUE(d) || json_node_get_value_type(d) != G_TYPE_INT64)
            return FALSE;
        dim[i] = json_node_get_int(d);
    }
    return sw_shape_element_count(ndim, dim, "shape", count, NULL);
}

/* One element of "outputs"; adds its binary_data_size to `binary`. */
static gboolean check_output(JsonNode *node, guint index, size_t *binary, GPtrArray *names, GError **error)
{
    JsonObject *o = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
    int64_t count = 0;
    if (o == NULL || !is_string(o, "name") || !is_string(o, "datatype") ||
        !shape_count(json_object_get_member(o, "shape"), &count)) {
        BAD(error, "outputs[%u] is not an object with a name, a datatype and a shape", index);
        return FALSE;
    }
    const char *name = json_object_get_string_member(o, "name");
    JsonNode *params = json_object_get_member(o, "parameters");
    JsonNode *size = params && JSON_NODE_HOLDS_OBJECT(params)
                         ? json_object_get_member(json_node_get_object(params), "binary_data_size")
                         : NULL;
    JsonNode *data = json_object_get_member(o, "data");
    if (size && JSON_NODE_HOLDS_VALUE(size) && json_node_get_value_type(size) == G_TYPE_INT64 &&
        json_node_get_int(size) >= 0) {
        *binary += (size_t)json_node_get_int(size);
    } else if (data == NULL || !JSON_NODE_HOLDS_ARRAY(data) || count_elements(data) != count) {
        BAD(error,
            "output '%s': no binary_data_size and no data array of the %" G_GINT64_FORMAT " elements its shape holds",
            name, count);
        return FALSE;
    }
    if (names)
        g_ptr_array_add(names, g_strdup(name));
    return TRUE;
}

gboolean bench_http_answer_check(const guint8 *body, size_t len, gssize header_len, GPtrArray *names, GError **error)
{
    size_t json_len = header_len < 0 ? len : (size_t)header_len;
    if (json_len > len) {
        BAD(error, "Inference-Header-Content-Length is %zu but the body has %zu bytes", json_len, len);
        return FALSE;
    }
    JsonParser *parser = json_parser_new_immutable();
    GError *local = NULL;
    gboolean ok = json_parser_load_from_data(parser, (const char *)body, (gssize)json_len, &local);
    JsonNode *root = ok ? json_parser_get_root(parser) : NULL;
    JsonNode *outputs =
        root && JSON_NODE_HOLDS_OBJECT(root) ? json_object_get_member(json_node_get_object(root), "outputs") : NULL;
    if (!ok) {
        BAD(error, "the answer is not JSON: %s", local->message);
        g_error_free(local);
    } else if (outputs == NULL || !JSON_NODE_HOLDS_ARRAY(outputs) ||
               json_array_get_length(json_node_get_array(outputs)) == 0) {
        BAD(error, "the answer has no \"outputs\" array of tensors");
        ok = FALSE;
    }
    size_t binary = 0;
    JsonArray *array = ok ? json_node_get_array(outputs) : NULL;
    for (guint i = 0; ok && i < json_array_get_length(array); i++)
        ok = check_output(json_array_get_element(array, i), i, &binary, names, error);
    if (ok && binary != len - json_len) {
        BAD(error, "the outputs' binary_data_size add up to %zu, but %zu bytes follow the JSON", binary,
            len - json_len);
        ok = FALSE;
    }
    g_object_unref(parser);
    return ok;
}

char *bench_http_error_text(const guint8 *body, size_t len)
{
    JsonParser *parser = json_parser_new_immutable();
    char *text = NULL;
    if (json_parser_load_from_data(parser, (const char *)body, (gssize)len, NULL)) {
        JsonNode *root = json_parser_get_root(parser);
        if (root && JSON_NODE_HOLDS_OBJECT(root) && is_string(json_node_get_object(root), "error"))
            text = g_strdup(json_object_get_string_member(json_node_get_object(root), "error"));
    }
    g_object_unref(parser);
    if (text == NULL)
        text = g_utf8_make_valid((const char *)body, (gssize)MIN(len, 300));
    return text;
}
