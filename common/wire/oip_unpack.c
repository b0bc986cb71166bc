/* ModelInferRequest unpacking that leaves raw tensor contents in place. */
#include <string.h>

#include "oip_codec.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

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
        case 0:
            if (!read_varint(p, len, &pos, &n))
                return FALSE;
            break;
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
                    "send large tensors as raw_input_contents",
                    rest->len, MAX_TYPED_BYTES);
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
