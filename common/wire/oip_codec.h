/* Translation between Open Inference Protocol messages and sw_tensor values
 * (the wire layer: protobuf-c messages in, tensors out and back; no gRPC).
 *
 * Decoding accepts both forms a client may send, raw_input_contents and typed
 * InferTensorContents, and checks everything the wire can get wrong: unknown
 * datatypes, shapes that disagree with the data, the two forms mixed, BYTES
 * framing that is truncated or overlong. Encoding always produces raw
 * contents, as Triton does. Errors name the tensor and what was expected.
 * Every function is reentrant: no state, so any thread may call any of them. */
#ifndef SW_OIP_CODEC_H
#define SW_OIP_CODEC_H

#include <glib.h>

#include "inference.pb-c.h"
#include "output.h"
#include "tensor.h"

G_BEGIN_DECLS

/* Decodes every input of `request` into a new array of sw_value: numeric
 * tensors as SW_VALUE_TENSOR, BYTES tensors (any shape) as SW_VALUE_STRINGS,
 * each named after its input. Raw numeric contents are not copied: those
 * tensors point into `request` and hold a reference on `request_owner`, a
 * GBytes whose release frees `request`. Returns NULL with an INVALID_ARGUMENT
 * error on bad input. */
GPtrArray *sw_oip_decode_inputs(const Inference__ModelInferRequest *request, GBytes *request_owner, GError **error);

/* Unpacks a ModelInferRequest from `message` without copying its
 * raw_input_contents: they point into `message`. `*owner` receives a GBytes
 * whose release frees the request and drops its reference on `message`;
 * tensors decoded from the request hold references on it. NULL with an
 * INVALID_ARGUMENT error when `message` is not a valid request. */
Inference__ModelInferRequest *sw_oip_unpack_infer_request(GBytes *message, GBytes **owner, GError **error);

/* Decodes the outputs of a response (raw contents, as every OIP server
 * answers) into a new array of sw_output, with `json` set from the
 * content_type parameter of BYTES outputs. Contents are copied, so the
 * result outlives `response`. NULL with an INTERNAL error naming the output
 * when the response contradicts itself. */
GPtrArray *sw_oip_decode_outputs(const Inference__ModelInferResponse *response, GError **error);

/* Parses raw BYTES framing (4-byte little-endian length, then the bytes, per
 * element) of exactly the elements of `shape`. Returns a new tensor of
 * `shape` over a copy of the payloads (the length prefixes dropped), or NULL
 * with an INVALID_ARGUMENT error whose message starts with `what`
 * ("input 'x'"). */
sw_tensor *sw_oip_parse_raw_bytes(GBytes *raw, int ndim, const int64_t *shape, const char *what, GError **error);

/* The raw wire form of a tensor: numeric contents as they are (a new
 * reference to the tensor's buffer), BYTES framed with length prefixes (a new
 * buffer). Free with g_bytes_unref(). */
GBytes *sw_oip_raw_contents(const sw_tensor *tensor);

/* A fully built ModelInferResponse over `outputs` (raw contents, in order).
 * The message borrows from `outputs`, `model_name`, `id`: keep them alive
 * until it is packed, then free it with sw_oip_response_free(). */
Inference__ModelInferResponse *sw_oip_response_build(const char *model_name, const char *id, GPtrArray *outputs);
void sw_oip_response_free(Inference__ModelInferResponse *response);

/* A ModelInferRequest carrying `tensors` (sw_output, raw contents, in
 * order) as its inputs, for the next stage or from a client. Requested
 * outputs and request parameters are borrowed from `pass_through` when it is
 * not NULL. Borrows like sw_oip_response_build(); free the result with
 * sw_oip_request_free(). */
Inference__ModelInferRequest *sw_oip_request_build(const char *model_name, const char *id, GPtrArray *tensors,
                                                   const Inference__ModelInferRequest *pass_through);
void sw_oip_request_free(Inference__ModelInferRequest *request);

/* Packs a built response or request as parts to send back to back, without
 * copying tensor contents: the message without its raw contents first, then
 * for each raw entry its field header and its buffer (the repeated field
 * may come after the others: protobuf readers accept fields in any order).
 * A message of at most SW_PACK_COPY_MAX_BYTES is one part instead, copied:
 * below that, a part per tensor costs more to build and send (a slice and
 * its reference per part, an iovec each) than copying the bytes.
 * Returns a new array of GBytes. */
#define SW_PACK_COPY_MAX_BYTES 16384
GPtrArray *sw_oip_response_pack_parts(Inference__ModelInferResponse *response);
GPtrArray *sw_oip_request_pack_parts(Inference__ModelInferRequest *request);

/* Packs any protobuf-c message into a new GBytes. */
GBytes *sw_protobuf_pack(const ProtobufCMessage *message);

G_END_DECLS

#endif
