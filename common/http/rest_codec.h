/* The KServe v2 REST inference body <-> the OIP messages the service runs.
 *
 * A request body (JSON, or with Triton's binary tensor extension a JSON
 * header of `header_len` bytes followed by raw tensor bytes) becomes a
 * packed ModelInferRequest whose inputs all travel as raw contents; a
 * packed ModelInferResponse becomes the JSON answer, with the outputs the
 * request asked for as binary data appended after it. Errors are
 * INVALID_ARGUMENT and say what is wrong where, with client text clipped.
 * No state: any thread may call any function. */
#ifndef SW_REST_CODEC_H
#define SW_REST_CODEC_H

#include <glib.h>

G_BEGIN_DECLS

/* A parsed inference request. */
typedef struct sw_rest_request {
    GBytes *packed;        /* ModelInferRequest */
    char **binary_outputs; /* NULL-terminated names of outputs asked for as binary data */
    gboolean all_binary;   /* the request parameter binary_data_output: every output binary */
    gint64 timeout_us;     /* the request parameter timeout (microseconds, as Triton's); 0 none */
} sw_rest_request;

/* Parses `body` (`len` bytes) as the inference request of model `model` at
 * `version` ("" for any) taken from the URL. `header_len` < 0: the body is
 * all JSON; else its first `header_len` bytes are the JSON header and the
 * rest the tensor data of the inputs with a binary_data_size parameter, in
 * input order, BYTES framed as on the wire (4-byte little-endian length,
 * then the bytes, per element). FALSE with an INVALID_ARGUMENT error;
 * clear `out` with sw_rest_request_clear() either way. */
gboolean sw_rest_request_parse(const char *model, const char *version, const guint8 *body, size_t len,
                               gssize header_len, sw_rest_request *out, GError **error);
void sw_rest_request_clear(sw_rest_request *request);

/* The HTTP answer to an inference request. */
typedef struct sw_rest_reply {
    GBytes *body;
    gssize header_len; /* < 0: the body is all JSON; else the JSON header's length */
} sw_rest_reply;

/* Renders the packed ModelInferResponse `response` for `request`: data of
 * numeric outputs as JSON numbers (flat, row-major), BYTES as JSON strings
 * (a BYTES element that is not UTF-8 has to be asked for as binary data),
 * BOOL as true/false; outputs asked for as binary as raw bytes after the
 * JSON, each with its binary_data_size parameter. FALSE with an error
 * (INTERNAL for a response that contradicts itself, INVALID_ARGUMENT for
 * text that JSON cannot carry). Free `out->body` with g_bytes_unref(). */
gboolean sw_rest_response_render(GBytes *response, const sw_rest_request *request, sw_rest_reply *out, GError **error);

/* {"error": `message`} as a JSON text; newly allocated. */
char *sw_rest_error_body(const char *message);

/* Appends how the v2 REST protocol opens a tensor, requests' and answers'
 * alike: `{"name":...,"datatype":...,"shape":[...]`; the caller adds its
 * "parameters" and "data" and the closing brace. */
void sw_rest_append_tensor_head(GString *out, const char *name, const char *datatype, const int64_t *shape,
                                size_t n_shape);

G_END_DECLS

#endif
