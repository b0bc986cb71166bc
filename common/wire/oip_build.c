/* ModelInferResponse and ModelInferRequest messages built over tensors
 * without copying them, and packed as parts. */
#include <string.h>

#include "oip_codec.h"

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

Inference__ModelInferResponse *sw_oip_response_build(const char *model_name, const char *id, GPtrArray *outputs)
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
        const sw_output *o = g_ptr_array_index(outputs, i);
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
        const sw_output *o = g_ptr_array_index(tensors, i);
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

/* Writes the field header of a length-delimited entry of `field` (key and
 * length) at `out`, which has room for 16 bytes; returns its size. */
static size_t write_entry_header(uint8_t *out, unsigned field, size_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)(field << 3 | 2);
    uint64_t v = len;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static GBytes *entry_header(unsigned field, size_t len)
{
    uint8_t buf[16];
    return g_bytes_new(buf, write_entry_header(buf, field, len));
}

/* `message` (its raw entries left out, `packed` bytes) then the first `n`
 * raw entries, all copied into one buffer of `size` bytes. */
static GBytes *pack_joined(const ProtobufCMessage *message, size_t packed, const ProtobufCBinaryData *raw, size_t n,
                           unsigned field, size_t size)
{
    uint8_t *buf = g_malloc(size ? size : 1);
    uint8_t *at = buf + protobuf_c_message_pack(message, buf);
    g_assert((size_t)(at - buf) == packed);
    for (size_t i = 0; i < n; i++) {
        at += write_entry_header(at, field, raw[i].len);
        if (raw[i].len)
            memcpy(at, raw[i].data, raw[i].len);
        at += raw[i].len;
    }
    g_assert((size_t)(at - buf) == size);
    return g_bytes_new_take(buf, size);
}

static GPtrArray *pack_parts(ProtobufCMessage *message, size_t *n_raw, ProtobufCBinaryData *raw, GBytes **raw_bytes,
                             unsigned field)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    size_t n = *n_raw;
    *n_raw = 0;
    size_t packed = protobuf_c_message_get_packed_size(message);
    size_t total = packed;
    for (size_t i = 0; i < n; i++) {
        uint8_t header[16];
        total += write_entry_header(header, field, raw[i].len) + raw[i].len;
    }
    if (total <= SW_PACK_COPY_MAX_BYTES) {
        g_ptr_array_add(parts, pack_joined(message, packed, raw, n, field, total));
        *n_raw = n;
        return parts;
    }
    g_ptr_array_add(parts, pack_joined(message, packed, raw, 0, field, packed));
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
