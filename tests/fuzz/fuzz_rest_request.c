/* Fuzzes the REST inference body (sw_rest_request_parse): JSON, or with
 * Triton's binary extension a JSON header and raw tensor bytes. The input:
 *   bytes 0-1   little-endian header length; 0xFFFF: the body is all JSON
 *   the rest    the body.
 * A body that parses must pack a ModelInferRequest that unpacks; its inputs
 * that decode go back out as a response, whose rendering (JSON, or binary
 * for the outputs the body asked for) must succeed or be refused
 * INVALID_ARGUMENT (text JSON cannot carry), with a JSON header that
 * parses and binary data that fits. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "fuzz_support.h"
#include "oip_codec.h"
#include "rest_codec.h"
#include "sw_error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    return 0;
}

/* Renders the decoded inputs `values` (sw_value) as a response for `r`. */
static void check_render(GPtrArray *values, const sw_rest_request *r)
{
    GPtrArray *outputs = sw_output_array_new();
    for (guint i = 0; i < values->len; i++) {
        sw_output *o = sw_output_from_value(g_ptr_array_index(values, i), NULL);
        if (o)
            g_ptr_array_add(outputs, o);
    }
    Inference__ModelInferResponse *resp = sw_oip_response_build("m", "id", outputs);
    GBytes *packed = sw_protobuf_pack(&resp->base);
    sw_oip_response_free(resp);
    sw_rest_reply reply;
    GError *error = NULL;
    if (sw_rest_response_render(packed, r, &reply, &error)) {
        gsize len = 0;
        const char *body = g_bytes_get_data(reply.body, &len);
        gssize json_len = reply.header_len < 0 ? (gssize)len : reply.header_len;
        FUZZ_CHECK((gsize)json_len <= len, "header %zd past the body %zu", json_len, len);
        JsonParser *parser = json_parser_new();
        GError *json_error = NULL;
        gboolean ok = json_parser_load_from_data(parser, body, json_len, &json_error);
        FUZZ_CHECK(ok, "the answer is not JSON: %s", json_error ? json_error->message : "");
        g_object_unref(parser);
        g_bytes_unref(reply.body);
    } else {
        FUZZ_CHECK(error->code == SW_CODE_INVALID_ARGUMENT, "render failed %d: %s", error->code, error->message);
        g_error_free(error);
    }
    g_bytes_unref(packed);
    g_ptr_array_unref(outputs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned mark = data[0] | (unsigned)data[1] << 8;
    gssize header_len = mark == 0xFFFF ? -1 : (gssize)mark;
    sw_rest_request r;
    GError *error = NULL;
    if (!sw_rest_request_parse("m", "", data + 2, size - 2, header_len, &r, &error)) {
        FUZZ_CHECK(error && error->code == SW_CODE_INVALID_ARGUMENT, "refused without INVALID_ARGUMENT");
        g_error_free(error);
        sw_rest_request_clear(&r);
        return 0;
    }
    GBytes *owner = NULL;
    Inference__ModelInferRequest *req = sw_oip_unpack_infer_request(r.packed, &owner, &error);
    FUZZ_CHECK(req != NULL, "the packed request does not unpack: %s", error ? error->message : "");
    FUZZ_CHECK(req->n_raw_input_contents == req->n_inputs, "every input travels raw");
    GPtrArray *values = sw_oip_decode_inputs(req, owner, NULL);
    if (values) {
        check_render(values, &r);
        g_ptr_array_unref(values);
    }
    g_bytes_unref(owner);
    sw_rest_request_clear(&r);
    return 0;
}
