/* The v2 REST inference body <-> packed OIP messages: JSON data flattened
 * into raw tensor contents and back, and Triton's binary tensor extension. */
#include "rest_codec.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "clip.h"
#include "inference.pb-c.h"
#include "json_text.h"
#include "oip_codec.h"
#include "sw_error.h"
#include "tensor.h"

/* What a request being built owns until it is packed. */
typedef struct build {
    GPtrArray *allocations; /* g_free */
    GPtrArray *raw;         /* GBytes */
} build;

static gpointer build_alloc(build *b, size_t size)
{
    gpointer p = g_malloc0(size ? size : 1);
    g_ptr_array_add(b->allocations, p);
    return p;
}

static char *build_strdup(build *b, const char *text)
{
    char *copy = g_strdup(text);
    g_ptr_array_add(b->allocations, copy);
    return copy;
}

#define BAD(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

/* The member `key` of `object` when it has the JSON type `type`; NULL when
 * absent (or null); NULL with an error when of another type. */
static JsonNode *member(JsonObject *object, const char *key, JsonNodeType type, const char *where, gboolean *bad,
                        GError **error)
{
    JsonNode *node = json_object_get_member(object, key);
    if (node == NULL || JSON_NODE_HOLDS_NULL(node))
        return NULL;
    if (JSON_NODE_TYPE(node) != type) {
        static const char *const kinds[] = {"an object", "an array", "a value", "null"};
        BAD(error, "%s: '%s' must be %s", where, key, kinds[type]);
        *bad = TRUE;
        return NULL;
    }
    return node;
}

static gboolean is_string(JsonNode *node)
{
    return JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING;
}

static gboolean is_integer(JsonNode *node)
{
    return JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_INT64;
}

static gboolean is_number(JsonNode *node)
{
    return is_integer(node) || (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_DOUBLE);
}

/* A JSON parameter value as an InferParameter; FALSE for objects, arrays
 * and null. */
static gboolean parameter_from_json(build *b, JsonNode *node, Inference__InferParameter *p)
{
    inference__infer_parameter__init(p);
    if (!JSON_NODE_HOLDS_VALUE(node))
        return FALSE;
    GType type = json_node_get_value_type(node);
    if (type == G_TYPE_BOOLEAN) {
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
        p->bool_param = json_node_get_boolean(node);
    } else if (type == G_TYPE_INT64) {
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
        p->int64_param = json_node_get_int(node);
    } else if (type == G_TYPE_DOUBLE) {
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM;
        p->double_param = json_node_get_double(node);
    } else {
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
        p->string_param = build_strdup(b, json_node_get_string(node));
    }
    return TRUE;
}

/* Appends one JSON scalar to `raw` as an element of `dtype`. */
static gboolean append_scalar(GByteArray *raw, sw_dtype dtype, JsonNode *node, const char *name, int64_t index,
                              GError **error)
{
    const char *dt = sw_dtype_name(dtype);
    if (dtype == SW_DTYPE_BYTES) {
        if (!is_string(node)) {
            BAD(error, "input '" SW_CLIP_FMT "': element %" G_GINT64_FORMAT " of data is not a string, as BYTES takes",
                SW_CLIP(name), index);
            return FALSE;
        }
        const char *s = json_node_get_string(node);
        guint32 n = (guint32)strlen(s), le = GUINT32_TO_LE(n);
        g_byte_array_append(raw, (const guint8 *)&le, 4);
        g_byte_array_append(raw, (const guint8 *)s, n);
        return TRUE;
    }
    if (dtype == SW_DTYPE_BOOL) {
        if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_BOOLEAN) {
            BAD(error,
                "input '" SW_CLIP_FMT "': element %" G_GINT64_FORMAT " of data is not true or false, as BOOL takes",
                SW_CLIP(name), index);
            return FALSE;
        }
        guint8 v = json_node_get_boolean(node) ? 1 : 0;
        g_byte_array_append(raw, &v, 1);
        return TRUE;
    }
    if (dtype == SW_DTYPE_FP32 || dtype == SW_DTYPE_FP64) {
        if (!is_number(node)) {
            BAD(error, "input '" SW_CLIP_FMT "': element %" G_GINT64_FORMAT " of data is not a number, as %s takes",
                SW_CLIP(name), index, dt);
            return FALSE;
        }
        double d = is_integer(node) ? (double)json_node_get_int(node) : json_node_get_double(node);
        if (dtype == SW_DTYPE_FP32) {
            float f = (float)d;
            g_byte_array_append(raw, (const guint8 *)&f, 4);
        } else {
            g_byte_array_append(raw, (const guint8 *)&d, 8);
        }
        return TRUE;
    }
    if (!is_integer(node)) {
        BAD(error, "input '" SW_CLIP_FMT "': element %" G_GINT64_FORMAT " of data is not an integer, as %s takes",
            SW_CLIP(name), index, dt);
        return FALSE;
    }
    gint64 v = json_node_get_int(node);
    static const struct {
        sw_dtype dtype;
        gint64 min, max;
    } ranges[] = {
        {SW_DTYPE_UINT8, 0, G_MAXUINT8},          {SW_DTYPE_UINT16, 0, G_MAXUINT16},
        {SW_DTYPE_UINT32, 0, G_MAXUINT32},        {SW_DTYPE_UINT64, 0, G_MAXINT64},
        {SW_DTYPE_INT8, G_MININT8, G_MAXINT8},    {SW_DTYPE_INT16, G_MININT16, G_MAXINT16},
        {SW_DTYPE_INT32, G_MININT32, G_MAXINT32}, {SW_DTYPE_INT64, G_MININT64, G_MAXINT64},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(ranges); i++) {
        if (ranges[i].dtype != dtype)
            continue;
        if (v < ranges[i].min || v > ranges[i].max) {
            BAD(error,
                "input '" SW_CLIP_FMT "': element %" G_GINT64_FORMAT " of data, %" G_GINT64_FORMAT
                ", is out of range for %s",
                SW_CLIP(name), index, v, dt);
            return FALSE;
        }
        /* Little-endian hosts only, as the raw contents are (tensor.h). */
        g_byte_array_append(raw, (const guint8 *)&v, (guint)sw_dtype_size(dtype));
        return TRUE;
    }
    BAD(error, "input '" SW_CLIP_FMT "': %s data cannot be written in JSON; send it as binary data", SW_CLIP(name), dt);
    return FALSE;
}

/* Appends the elements of `node` (nested arrays or one flat array, in
 * row-major order) to `raw`, counting them in `count`. */
static gboolean append_data(GByteArray *raw, sw_dtype dtype, JsonNode *node, const char *name, int64_t *count,
                            int depth, GError **error)
{
    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        if (!append_scalar(raw, dtype, node, name, *count, error))
            return FALSE;
        (*count)++;
        return TRUE;
    }
    if (depth > SW_MAX_DIMS) {
        BAD(error, "input '" SW_CLIP_FMT "': data nests deeper than %d arrays", SW_CLIP(name), SW_MAX_DIMS);
        return FALSE;
    }
    JsonArray *array = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(array); i++)
        if (!append_data(raw, dtype, json_array_get_element(array, i), name, count, depth + 1, error))
            return FALSE;
    return TRUE;
}

/* The shape of an input: an array of non-negative integers. */
static gboolean parse_shape(build *b, JsonNode *node, const char *name,
                            Inference__ModelInferRequest__InferInputTensor *t, GError **error)
{
    JsonArray *dims = json_node_get_array(node);
    guint n = json_array_get_length(dims);
    if (n > SW_MAX_DIMS) {
        BAD(error, "input '" SW_CLIP_FMT "': shape has %u dimensions; at most %d are taken", SW_CLIP(name), n,
            SW_MAX_DIMS);
        return FALSE;
    }
    t->n_shape = n;
    t->shape = build_alloc(b, n * sizeof(int64_t));
    for (guint i = 0; i < n; i++) {
        JsonNode *d = json_array_get_element(dims, i);
        if (!is_integer(d) || json_node_get_int(d) < 0) {
            BAD(error, "input '" SW_CLIP_FMT "': shape must be an array of non-negative integers", SW_CLIP(name));
            return FALSE;
        }
        t->shape[i] = json_node_get_int(d);
    }
    return TRUE;
}

/* Where the binary data after the JSON header has been read up to. */
typedef struct binary_cursor {
    const guint8 *data;
    size_t len, used;
} binary_cursor;

/* The parameters of an input, all but binary_data_size (returned in
 * `binary_size`, -1 when absent). */
static gboolean parse_input_parameters(build *b, JsonNode *node, const char *name,
                                       Inference__ModelInferRequest__InferInputTensor *t, gint64 *binary_size,
                                       GError **error)
{
    *binary_size = -1;
    if (node == NULL)
        return TRUE;
    JsonObject *params = json_node_get_object(node);
    GList *keys = json_object_get_members(params);
    t->parameters = build_alloc(b, g_list_length(keys) * sizeof *t->parameters);
    gboolean ok = TRUE;
    for (GList *k = keys; k && ok; k = k->next) {
        JsonNode *v = json_object_get_member(params, k->data);
        if (strcmp(k->data, "binary_data_size") == 0) {
            ok = is_integer(v) && json_node_get_int(v) >= 0;
            if (!ok)
                BAD(error, "input '" SW_CLIP_FMT "': binary_data_size must be a non-negative integer", SW_CLIP(name));
            else
                *binary_size = json_node_get_int(v);
            continue;
        }
        Inference__ModelInferRequest__InferInputTensor__ParametersEntry *e = build_alloc(b, sizeof *e);
        inference__model_infer_request__infer_input_tensor__parameters_entry__init(e);
        e->key = build_strdup(b, k->data);
        e->value = build_alloc(b, sizeof *e->value);
        ok = parameter_from_json(b, v, e->value);
        if (!ok)
            BAD(error, "input '" SW_CLIP_FMT "': parameter '" SW_CLIP_FMT "' must be a string, number or boolean",
                SW_CLIP(name), SW_CLIP((const char *)k->data));
        t->parameters[t->n_parameters++] = e;
    }
    g_list_free(keys);
    return ok;
}

/* One element of "inputs": its tensor and its raw contents. */
static gboolean parse_input(build *b, JsonNode *node, guint index, binary_cursor *bin,
                            Inference__ModelInferRequest__InferInputTensor *t, ProtobufCBinaryData *raw, GError **error)
{
    inference__model_infer_request__infer_input_tensor__init(t);
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        BAD(error, "inputs[%u] must be an object", index);
        return FALSE;
    }
    JsonObject *in = json_node_get_object(node);
    gboolean bad = FALSE;
    char *where = g_strdup_printf("inputs[%u]", index);
    JsonNode *name = member(in, "name", JSON_NODE_VALUE, where, &bad, error);
    JsonNode *datatype = bad ? NULL : member(in, "datatype", JSON_NODE_VALUE, where, &bad, error);
    JsonNode *shape = bad ? NULL : member(in, "shape", JSON_NODE_ARRAY, where, &bad, error);
    JsonNode *data = bad ? NULL : json_object_get_member(in, "data");
    JsonNode *params = bad ? NULL : member(in, "parameters", JSON_NODE_OBJECT, where, &bad, error);
    if (!bad && (name == NULL || !is_string(name) || datatype == NULL || !is_string(datatype) || shape == NULL)) {
        BAD(error, "%s needs \"name\" and \"datatype\" (strings) and \"shape\" (an array)", where);
        bad = TRUE;
    }
    g_free(where);
    if (bad)
        return FALSE;
    t->name = build_strdup(b, json_node_get_string(name));
    t->datatype = build_strdup(b, json_node_get_string(datatype));
    sw_dtype dtype = sw_dtype_from_name(t->datatype);
    gint64 binary_size = -1;
    if (dtype == SW_DTYPE_INVALID) {
        BAD(error, "input '" SW_CLIP_FMT "': datatype '" SW_CLIP_FMT "' is not an OIP datatype", SW_CLIP(t->name),
            SW_CLIP(t->datatype));
        return FALSE;
    }
    if (!parse_shape(b, shape, t->name, t, error) ||
        !parse_input_parameters(b, params, t->name, t, &binary_size, error))
        return FALSE;
    if (binary_size >= 0) {
        if ((guint64)binary_size > bin->len - bin->used) {
            BAD(error,
                "input '" SW_CLIP_FMT "': binary_data_size %" G_GINT64_FORMAT
                " runs past the end of the body (%zu bytes of binary data left)",
                SW_CLIP(t->name), binary_size, bin->len - bin->used);
            return FALSE;
        }
        raw->data = (uint8_t *)bin->data + bin->used;
        raw->len = (size_t)binary_size;
        bin->used += (size_t)binary_size;
        return TRUE;
    }
    if (data == NULL) {
        BAD(error, "input '" SW_CLIP_FMT "' has neither \"data\" nor a binary_data_size parameter", SW_CLIP(t->name));
        return FALSE;
    }
    int64_t expected = 0, count = 0;
    if (!sw_shape_element_count((int)t->n_shape, t->shape, t->name, &expected, error))
        return FALSE;
    GByteArray *bytes = g_byte_array_new();
    gboolean ok = append_data(bytes, dtype, data, t->name, &count, 0, error);
    if (ok && count != expected) {
        char *s = sw_shape_to_string((int)t->n_shape, t->shape);
        BAD(error, "input '" SW_CLIP_FMT "': data has %" G_GINT64_FORMAT " elements; shape %s needs %" G_GINT64_FORMAT,
            SW_CLIP(t->name), count, s, expected);
        g_free(s);
        ok = FALSE;
    }
    GBytes *contents = g_byte_array_free_to_bytes(bytes);
    g_ptr_array_add(b->raw, contents);
    gsize len = 0;
    raw->data = (uint8_t *)g_bytes_get_data(contents, &len);
    raw->len = len;
    return ok;
}

/* "outputs": the names asked for, and which of them as binary data. */
static gboolean parse_outputs(build *b, JsonNode *node, Inference__ModelInferRequest *req, GPtrArray *binary,
                              GError **error)
{
    JsonArray *outs = json_node_get_array(node);
    guint n = json_array_get_length(outs);
    req->outputs = build_alloc(b, n * sizeof *req->outputs);
    for (guint i = 0; i < n; i++) {
        JsonNode *o = json_array_get_element(outs, i);
        JsonNode *name = JSON_NODE_HOLDS_OBJECT(o) ? json_object_get_member(json_node_get_object(o), "name") : NULL;
        if (name == NULL || !is_string(name)) {
            BAD(error, "outputs[%u] must be an object with a \"name\" string", i);
            return FALSE;
        }
        Inference__ModelInferRequest__InferRequestedOutputTensor *t = build_alloc(b, sizeof *t);
        inference__model_infer_request__infer_requested_output_tensor__init(t);
        t->name = build_strdup(b, json_node_get_string(name));
        req->outputs[req->n_outputs++] = t;
        JsonNode *params = json_object_get_member(json_node_get_object(o), "parameters");
        JsonNode *flag = params && JSON_NODE_HOLDS_OBJECT(params)
                             ? json_object_get_member(json_node_get_object(params), "binary_data")
                             : NULL;
        if (flag && JSON_NODE_HOLDS_VALUE(flag) && json_node_get_value_type(flag) == G_TYPE_BOOLEAN &&
            json_node_get_boolean(flag))
            g_ptr_array_add(binary, g_strdup(t->name));
    }
    return TRUE;
}

static gboolean parse_body(build *b, JsonObject *root, binary_cursor *bin, Inference__ModelInferRequest *req,
                           sw_rest_request *out, GError **error)
{
    gboolean bad = FALSE;
    JsonNode *id = member(root, "id", JSON_NODE_VALUE, "the request", &bad, error);
    JsonNode *inputs = bad ? NULL : member(root, "inputs", JSON_NODE_ARRAY, "the request", &bad, error);
    JsonNode *outputs = bad ? NULL : member(root, "outputs", JSON_NODE_ARRAY, "the request", &bad, error);
    JsonNode *params = bad ? NULL : member(root, "parameters", JSON_NODE_OBJECT, "the request", &bad, error);
    if (bad)
        return FALSE;
    if (id && !is_string(id)) {
        BAD(error, "the request: 'id' must be a string");
        return FALSE;
    }
    if (inputs == NULL) {
        BAD(error, "the request has no \"inputs\" array");
        return FALSE;
    }
    req->id = id ? build_strdup(b, json_node_get_string(id)) : "";
    JsonNode *all_binary = params ? json_object_get_member(json_node_get_object(params), "binary_data_output") : NULL;
    out->all_binary = all_binary && JSON_NODE_HOLDS_VALUE(all_binary) &&
                      json_node_get_value_type(all_binary) == G_TYPE_BOOLEAN && json_node_get_boolean(all_binary);
    JsonNode *timeout = params ? json_object_get_member(json_node_get_object(params), "timeout") : NULL;
    if (timeout && (!is_integer(timeout) || json_node_get_int(timeout) < 0)) {
        BAD(error, "the request parameter 'timeout' must be a non-negative integer (microseconds)");
        return FALSE;
    }
    out->timeout_us = timeout ? json_node_get_int(timeout) : 0;
    JsonArray *ins = json_node_get_array(inputs);
    guint n = json_array_get_length(ins);
    req->inputs = build_alloc(b, n * sizeof *req->inputs);
    req->raw_input_contents = build_alloc(b, n * sizeof *req->raw_input_contents);
    req->n_inputs = req->n_raw_input_contents = n;
    for (guint i = 0; i < n; i++) {
        req->inputs[i] = build_alloc(b, sizeof *req->inputs[i]);
        if (!parse_input(b, json_array_get_element(ins, i), i, bin, req->inputs[i], &req->raw_input_contents[i], error))
            return FALSE;
    }
    if (bin->used != bin->len) {
        BAD(error,
            "the body has %zu bytes of binary data after the JSON header; the inputs' binary_data_size "
            "parameters add up to %zu",
            bin->len, bin->used);
        return FALSE;
    }
    GPtrArray *binary = g_ptr_array_new();
    gboolean ok = outputs == NULL || parse_outputs(b, outputs, req, binary, error);
    g_ptr_array_add(binary, NULL);
    out->binary_outputs = (char **)g_ptr_array_free(binary, FALSE);
    return ok;
}

/* Whether every string of the tree under `root`, keys included, is UTF-8.
 * json-glib reads escapes JSON does not have (a backslash and octal digits)
 * into bytes that are not, which would then travel on as names and come
 * back in answers no JSON reader takes. Walked with a stack, not recursion:
 * a hostile body may nest deeply. */
static gboolean all_strings_utf8(JsonNode *root)
{
    GPtrArray *stack = g_ptr_array_new();
    g_ptr_array_add(stack, root);
    gboolean ok = TRUE;
    while (ok && stack->len > 0) {
        JsonNode *node = g_ptr_array_steal_index_fast(stack, stack->len - 1);
        if (JSON_NODE_HOLDS_OBJECT(node)) {
            JsonObjectIter it;
            const char *key;
            JsonNode *member;
            json_object_iter_init(&it, json_node_get_object(node));
            while (ok && json_object_iter_next(&it, &key, &member)) {
                ok = g_utf8_validate(key, -1, NULL);
                g_ptr_array_add(stack, member);
            }
        } else if (JSON_NODE_HOLDS_ARRAY(node)) {
            JsonArray *array = json_node_get_array(node);
            for (guint i = 0, n = json_array_get_length(array); i < n; i++)
                g_ptr_array_add(stack, json_array_get_element(array, i));
        } else if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING) {
            ok = g_utf8_validate(json_node_get_string(node), -1, NULL);
        }
    }
    g_ptr_array_unref(stack);
    return ok;
}

gboolean sw_rest_request_parse(const char *model, const char *version, const guint8 *body, size_t len,
                               gssize header_len, sw_rest_request *out, GError **error)
{
    memset(out, 0, sizeof *out);
    size_t json_len = header_len < 0 ? len : (size_t)header_len;
    if (json_len > len) {
        BAD(error, "Inference-Header-Content-Length is %zu but the body has only %zu bytes", json_len, len);
        return FALSE;
    }
    JsonParser *parser = json_parser_new_immutable();
    GError *local = NULL;
    if (!json_parser_load_from_data(parser, (const char *)body, (gssize)json_len, &local)) {
        BAD(error, "the request body is not valid JSON: %s", local->message);
        g_error_free(local);
        g_object_unref(parser);
        return FALSE;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        BAD(error, "the request body must be a JSON object");
        g_object_unref(parser);
        return FALSE;
    }
    if (!all_strings_utf8(root)) {
        BAD(error, "the request body holds a string that is not UTF-8 (a backslash escape JSON does not have?)");
        g_object_unref(parser);
        return FALSE;
    }
    build b = {g_ptr_array_new_with_free_func(g_free), g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref)};
    binary_cursor bin = {body + json_len, len - json_len, 0};
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    req.model_name = (char *)model;
    req.model_version = (char *)(version ? version : "");
    gboolean ok = parse_body(&b, json_node_get_object(root), &bin, &req, out, error);
    if (ok)
        out->packed = sw_protobuf_pack(&req.base);
    g_ptr_array_unref(b.allocations);
    g_ptr_array_unref(b.raw);
    g_object_unref(parser);
    return ok;
}

void sw_rest_request_clear(sw_rest_request *request)
{
    g_clear_pointer(&request->packed, g_bytes_unref);
    g_clear_pointer(&request->binary_outputs, g_strfreev);
}

#define INTERNAL(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, __VA_ARGS__)

static void append_parameter(GString *out, const Inference__InferParameter *p)
{
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
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM: {
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        g_string_append(out, g_ascii_dtostr(buf, sizeof buf, p->double_param));
        break;
    }
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: sw_json_append_string(out, p->string_param); break;
    default: g_string_append(out, "null");
    }
}

/* One numeric element of `dtype` at `p` as a JSON number; FALSE for NaN
 * and infinities, which JSON has no numbers for. */
static gboolean append_number(GString *out, sw_dtype dtype, const guint8 *p)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    double d;
    switch (dtype) {
    case SW_DTYPE_BOOL: g_string_append(out, *p ? "true" : "false"); return TRUE;
    case SW_DTYPE_UINT8: g_string_append_printf(out, "%u", (unsigned)*p); return TRUE;
    case SW_DTYPE_INT8: g_string_append_printf(out, "%d", (int)*(const gint8 *)p); return TRUE;
#define SW_REST_INT(type, fmt)                                                                                         \
    do {                                                                                                               \
        type v;                                                                                                        \
        memcpy(&v, p, sizeof v);                                                                                       \
        g_string_append_printf(out, fmt, v);                                                                           \
    } while (0)
    case SW_DTYPE_UINT16: SW_REST_INT(guint16, "%u"); return TRUE;
    case SW_DTYPE_INT16: SW_REST_INT(gint16, "%d"); return TRUE;
    case SW_DTYPE_UINT32: SW_REST_INT(guint32, "%u"); return TRUE;
    case SW_DTYPE_INT32: SW_REST_INT(gint32, "%d"); return TRUE;
    case SW_DTYPE_UINT64: SW_REST_INT(guint64, "%" G_GUINT64_FORMAT); return TRUE;
    case SW_DTYPE_INT64: SW_REST_INT(gint64, "%" G_GINT64_FORMAT); return TRUE;
#undef SW_REST_INT
    case SW_DTYPE_FP32: {
        float f;
        memcpy(&f, p, sizeof f);
        d = f;
        if (!isfinite(d))
            return FALSE;
        /* Nine significant digits read back as the same float. */
        g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.9g", d));
        return TRUE;
    }
    case SW_DTYPE_FP64:
        memcpy(&d, p, sizeof d);
        if (!isfinite(d))
            return FALSE;
        g_string_append(out, g_ascii_dtostr(buf, sizeof buf, d));
        return TRUE;
    default: return FALSE;
    }
}

/* The elements of a raw BYTES tensor as JSON strings. */
static gboolean append_bytes_data(GString *out, const char *name, const ProtobufCBinaryData *raw, int64_t count,
                                  GError **error)
{
    size_t at = 0;
    for (int64_t i = 0; i < count; i++) {
        guint32 n = 0;
        if (raw->len - at < 4 || (memcpy(&n, raw->data + at, 4), n = GUINT32_FROM_LE(n), raw->len - at - 4 < n)) {
            INTERNAL(error, "output '%s': BYTES framing runs past its contents", name);
            return FALSE;
        }
        const char *text = (const char *)raw->data + at + 4;
        if (n > 0 && !g_utf8_validate_len(text, n, NULL)) {
            BAD(error,
                "output '%s': element %" G_GINT64_FORMAT " is not UTF-8 text, which JSON cannot carry; ask for "
                "it as binary data (\"parameters\": {\"binary_data\": true})",
                name, i);
            return FALSE;
        }
        char *copy = g_strndup(text, n);
        g_string_append(out, i ? "," : "");
        sw_json_append_string(out, copy);
        g_free(copy);
        at += 4 + n;
    }
    return TRUE;
}

static gboolean append_data_json(GString *out, const Inference__ModelInferResponse__InferOutputTensor *t,
                                 sw_dtype dtype, const ProtobufCBinaryData *raw, int64_t count, GError **error)
{
    g_string_append(out, ",\"data\":[");
    if (dtype == SW_DTYPE_BYTES) {
        if (!append_bytes_data(out, t->name, raw, count, error))
            return FALSE;
    } else {
        size_t size = sw_dtype_size(dtype);
        if (size == 0 || raw->len != (size_t)count * size) {
            INTERNAL(error, "output '%s': %zu bytes of contents for %" G_GINT64_FORMAT " elements of %s", t->name,
                     raw->len, count, t->datatype);
            return FALSE;
        }
        for (int64_t i = 0; i < count; i++) {
            if (i)
                g_string_append_c(out, ',');
            if (!append_number(out, dtype, raw->data + (size_t)i * size)) {
                BAD(error,
                    "output '%s': element %" G_GINT64_FORMAT " (%s) has no JSON number; ask for it as binary data",
                    t->name, i, t->datatype);
                return FALSE;
            }
        }
    }
    g_string_append_c(out, ']');
    return TRUE;
}

static gboolean wants_binary(const sw_rest_request *request, const char *name)
{
    return request->all_binary ||
           (request->binary_outputs && g_strv_contains((const char *const *)request->binary_outputs, name));
}

void sw_rest_append_tensor_head(GString *out, const char *name, const char *datatype, const int64_t *shape,
                                size_t n_shape)
{
    g_string_append(out, "{\"name\":");
    sw_json_append_string(out, name);
    g_string_append(out, ",\"datatype\":");
    sw_json_append_string(out, datatype);
    g_string_append(out, ",\"shape\":[");
    for (size_t i = 0; i < n_shape; i++)
        g_string_append_printf(out, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
    g_string_append_c(out, ']');
}

static gboolean render_output(GString *out, GByteArray *binary,
                              const Inference__ModelInferResponse__InferOutputTensor *t, const ProtobufCBinaryData *raw,
                              gboolean as_binary, GError **error)
{
    sw_dtype dtype = sw_dtype_from_name(t->datatype);
    int64_t count = 0;
    if (dtype == SW_DTYPE_INVALID || !sw_shape_element_count((int)t->n_shape, t->shape, t->name, &count, NULL)) {
        INTERNAL(error, "output '%s' has datatype '%s' or a shape that cannot be answered", t->name, t->datatype);
        return FALSE;
    }
    sw_rest_append_tensor_head(out, t->name, t->datatype, t->shape, t->n_shape);
    if (t->n_parameters > 0 || as_binary) {
        g_string_append(out, ",\"parameters\":{");
        for (size_t i = 0; i < t->n_parameters; i++) {
            g_string_append(out, i ? "," : "");
            sw_json_append_string(out, t->parameters[i]->key);
            g_string_append_c(out, ':');
            append_parameter(out, t->parameters[i]->value);
        }
        if (as_binary)
            g_string_append_printf(out, "%s\"binary_data_size\":%zu", t->n_parameters ? "," : "", raw->len);
        g_string_append_c(out, '}');
    }
    if (as_binary)
        g_byte_array_append(binary, raw->data, (guint)raw->len);
    else if (!append_data_json(out, t, dtype, raw, count, error))
        return FALSE;
    g_string_append_c(out, '}');
    return TRUE;
}

gboolean sw_rest_response_render(GBytes *response, const sw_rest_request *request, sw_rest_reply *out, GError **error)
{
    memset(out, 0, sizeof *out);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(response, &len);
    Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, len, data);
    if (resp == NULL || resp->n_raw_output_contents != resp->n_outputs) {
        INTERNAL(error, "the answer is not a ModelInferResponse with raw contents");
        if (resp)
            inference__model_infer_response__free_unpacked(resp, NULL);
        return FALSE;
    }
    GString *json = g_string_new("{\"model_name\":");
    sw_json_append_string(json, resp->model_name);
    g_string_append(json, ",\"model_version\":");
    sw_json_append_string(json, resp->model_version[0] ? resp->model_version : "1");
    g_string_append(json, ",\"id\":");
    sw_json_append_string(json, resp->id);
    g_string_append(json, ",\"outputs\":[");
    GByteArray *binary = g_byte_array_new();
    gboolean ok = TRUE;
    for (size_t i = 0; i < resp->n_outputs && ok; i++) {
        g_string_append(json, i ? "," : "");
        ok = render_output(json, binary, resp->outputs[i], &resp->raw_output_contents[i],
                           wants_binary(request, resp->outputs[i]->name), error);
    }
    g_string_append(json, "]}");
    inference__model_infer_response__free_unpacked(resp, NULL);
    if (!ok) {
        g_string_free(json, TRUE);
        g_byte_array_unref(binary);
        return FALSE;
    }
    out->header_len = binary->len > 0 || request->all_binary || (request->binary_outputs && request->binary_outputs[0])
                          ? (gssize)json->len
                          : -1;
    g_byte_array_prepend(binary, (const guint8 *)json->str, (guint)json->len);
    g_string_free(json, TRUE);
    out->body = g_byte_array_free_to_bytes(binary);
    return TRUE;
}

char *sw_rest_error_body(const char *message)
{
    GString *out = g_string_new("{\"error\":");
    sw_json_append_string(out, message);
    g_string_append(out, "}");
    return g_string_free(out, FALSE);
}
