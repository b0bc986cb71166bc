/* Decoding a ModelInferResponse's outputs, as libstagewise does with every
 * reply: what a server built comes back the same, content_type marks JSON
 * rows only where it should, and a reply that contradicts itself is an
 * INTERNAL error naming the output (the server's fault, never the
 * caller's). */
#include <string.h>

#include "oip_codec.h"
#include "sw_error.h"

typedef Inference__ModelInferResponse Response;
typedef Inference__ModelInferResponse__InferOutputTensor Output;
typedef Inference__ModelInferResponse__InferOutputTensor__ParametersEntry Entry;

static sw_output *make_output(const char *name, sw_tensor *tensor, gboolean json)
{
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup(name);
    o->tensor = tensor;
    o->json = json;
    return o;
}

/* `outputs` through a built, packed and unpacked response, then decoded. */
static GPtrArray *through_the_wire(GPtrArray *outputs)
{
    Response *resp = sw_oip_response_build("model", "id", outputs);
    GBytes *packed = sw_protobuf_pack(&resp->base);
    sw_oip_response_free(resp);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(packed, &len);
    Response *back = inference__model_infer_response__unpack(NULL, len, data);
    g_assert_nonnull(back);
    GError *error = NULL;
    GPtrArray *decoded = sw_oip_decode_outputs(back, &error);
    g_assert_no_error(error);
    g_assert_nonnull(decoded);
    /* Contents are copied: the decoded outputs outlive the message. */
    inference__model_infer_response__free_unpacked(back, NULL);
    g_bytes_unref(packed);
    return decoded;
}

static void test_round_trip(void)
{
    GPtrArray *outputs = sw_output_array_new();
    const float probs[6] = {0.1f, 0.2f, 0.7f, 1.0f, 0.0f, -0.5f};
    const int64_t s23[] = {2, 3};
    g_ptr_array_add(outputs,
                    make_output("probs", sw_tensor_new_copy(SW_DTYPE_FP32, 2, s23, probs, sizeof probs), FALSE));
    const char *labels[] = {"cat", ""};
    g_ptr_array_add(outputs, make_output("label", sw_tensor_new_strings(labels, NULL, 2), FALSE));
    const char *rows[] = {"[\"a\",\"b\"]", "[]"};
    g_ptr_array_add(outputs, make_output("tokens", sw_tensor_new_strings(rows, NULL, 2), TRUE));
    const int64_t s0[] = {0};
    g_ptr_array_add(outputs, make_output("nothing", sw_tensor_new_copy(SW_DTYPE_INT64, 1, s0, NULL, 0), FALSE));
    const double scalar = 42.5;
    g_ptr_array_add(outputs, make_output("scalar", sw_tensor_new_copy(SW_DTYPE_FP64, 0, NULL, &scalar, 8), FALSE));

    GPtrArray *decoded = through_the_wire(outputs);
    g_assert_cmpuint(decoded->len, ==, 5);
    for (guint i = 0; i < decoded->len; i++) {
        const sw_output *a = g_ptr_array_index(outputs, i);
        const sw_output *b = g_ptr_array_index(decoded, i);
        g_assert_cmpstr(b->name, ==, a->name);
        g_assert_cmpint(b->json, ==, a->json);
        g_assert_cmpint(b->tensor->dtype, ==, a->tensor->dtype);
        g_assert_cmpint(b->tensor->ndim, ==, a->tensor->ndim);
        for (int d = 0; d < a->tensor->ndim; d++)
            g_assert_cmpint(b->tensor->shape[d], ==, a->tensor->shape[d]);
        size_t na = 0, nb = 0;
        const void *da = sw_tensor_data(a->tensor, &na);
        const void *db = sw_tensor_data(b->tensor, &nb);
        g_assert_cmpmem(db, nb, da, na);
        if (a->tensor->dtype == SW_DTYPE_BYTES)
            g_assert_cmpmem(b->tensor->offsets, 3 * sizeof(size_t), a->tensor->offsets, 3 * sizeof(size_t));
    }
    g_ptr_array_unref(decoded);
    g_ptr_array_unref(outputs);
}

static void test_no_outputs(void)
{
    Response resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    GError *error = NULL;
    GPtrArray *decoded = sw_oip_decode_outputs(&resp, &error);
    g_assert_no_error(error);
    g_assert_nonnull(decoded);
    g_assert_cmpuint(decoded->len, ==, 0);
    g_ptr_array_unref(decoded);
}

/* A reply of up to three outputs, built by hand so it can say anything. */
typedef struct reply {
    Response resp;
    Output outputs[3];
    Output *output_ptrs[3];
    ProtobufCBinaryData raw[3];
    int64_t shapes[3][SW_MAX_DIMS + 1];
    Entry entries[3][2];
    Entry *entry_ptrs[3][2];
    Inference__InferParameter params[3][2];
} reply;

static void reply_init(reply *r, size_t n)
{
    memset(r, 0, sizeof *r);
    inference__model_infer_response__init(&r->resp);
    for (size_t i = 0; i < 3; i++) {
        inference__model_infer_response__infer_output_tensor__init(&r->outputs[i]);
        r->outputs[i].shape = r->shapes[i];
        r->output_ptrs[i] = &r->outputs[i];
        for (size_t p = 0; p < 2; p++) {
            inference__model_infer_response__infer_output_tensor__parameters_entry__init(&r->entries[i][p]);
            inference__infer_parameter__init(&r->params[i][p]);
            r->entries[i][p].value = &r->params[i][p];
            r->entry_ptrs[i][p] = &r->entries[i][p];
        }
    }
    r->resp.n_outputs = n;
    r->resp.outputs = r->output_ptrs;
    r->resp.n_raw_output_contents = n;
    r->resp.raw_output_contents = r->raw;
}

static void reply_set(reply *r, size_t i, const char *name, const char *dtype, const void *raw, size_t len, size_t ndim,
                      const int64_t *shape)
{
    r->outputs[i].name = (char *)name;
    r->outputs[i].datatype = (char *)dtype;
    r->outputs[i].n_shape = ndim;
    memcpy(r->shapes[i], shape, ndim * sizeof(int64_t));
    r->raw[i].data = (uint8_t *)raw;
    r->raw[i].len = len;
}

static void reply_param(reply *r, size_t i, size_t p, const char *key, const char *string_value)
{
    r->entries[i][p].key = (char *)key;
    r->params[i][p].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    r->params[i][p].string_param = (char *)string_value;
    r->outputs[i].n_parameters = p + 1;
    r->outputs[i].parameters = r->entry_ptrs[i];
}

static const uint8_t two_strings[] = {1, 0, 0, 0, 'x', 2, 0, 0, 0, '{', '}'};
static const int64_t shape2[] = {2};

static gboolean decoded_json(reply *r, size_t i)
{
    GError *error = NULL;
    GPtrArray *decoded = sw_oip_decode_outputs(&r->resp, &error);
    g_assert_no_error(error);
    gboolean json = ((sw_output *)g_ptr_array_index(decoded, i))->json;
    g_ptr_array_unref(decoded);
    return json;
}

static void test_content_type(void)
{
    reply r;
    reply_init(&r, 1);
    reply_set(&r, 0, "rows", "BYTES", two_strings, sizeof two_strings, 1, shape2);
    g_assert_false(decoded_json(&r, 0));
    reply_param(&r, 0, 0, "content_type", "json");
    g_assert_true(decoded_json(&r, 0));
    /* Found among other parameters, in any position. */
    reply_param(&r, 0, 0, "binary_data_size", "11");
    reply_param(&r, 0, 1, "content_type", "json");
    g_assert_true(decoded_json(&r, 0));

    reply_init(&r, 1);
    reply_set(&r, 0, "rows", "BYTES", two_strings, sizeof two_strings, 1, shape2);
    reply_param(&r, 0, 0, "content_type", "text");
    g_assert_false(decoded_json(&r, 0));
    reply_param(&r, 0, 0, "content-type", "json");
    g_assert_false(decoded_json(&r, 0));
    reply_param(&r, 0, 0, "content_type", "json");
    r.params[0][0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    r.params[0][0].int64_param = 1;
    g_assert_false(decoded_json(&r, 0));
    r.entries[0][0].value = NULL;
    g_assert_false(decoded_json(&r, 0));

    /* Numbers are never JSON documents, whatever the parameter says. */
    const float f[2] = {1, 2};
    reply_init(&r, 1);
    reply_set(&r, 0, "p", "FP32", f, sizeof f, 1, shape2);
    reply_param(&r, 0, 0, "content_type", "json");
    g_assert_false(decoded_json(&r, 0));
}

static void expect_internal(reply *r, const char *substring)
{
    GError *error = NULL;
    g_assert_null(sw_oip_decode_outputs(&r->resp, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INTERNAL);
    if (strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
    g_error_free(error);
}

static void test_malformed_replies(void)
{
    const float f[2] = {1, 2};
    reply r;
    reply_init(&r, 2);
    reply_set(&r, 0, "a", "FP32", f, sizeof f, 1, shape2);
    reply_set(&r, 1, "b", "FP32", f, sizeof f, 1, shape2);
    r.resp.n_raw_output_contents = 1;
    expect_internal(&r, "2 outputs but 1 raw contents");
    /* Typed contents are not what servers send: no raw entries at all. */
    r.resp.n_raw_output_contents = 0;
    expect_internal(&r, "2 outputs but 0 raw contents");

    /* A later output's failure frees the ones decoded before it. */
    reply_init(&r, 2);
    reply_set(&r, 0, "good", "FP32", f, sizeof f, 1, shape2);
    reply_set(&r, 1, "scores", "FLOAT", f, sizeof f, 1, shape2);
    expect_internal(&r, "output 'scores': unknown datatype 'FLOAT'");

    reply_init(&r, 1);
    reply_set(&r, 0, "scores", "FP32", f, sizeof f - 1, 1, shape2);
    expect_internal(&r, "output 'scores': raw contents do not match its shape");
    const int64_t s3[] = {3};
    reply_set(&r, 0, "scores", "FP32", f, sizeof f, 1, s3);
    expect_internal(&r, "output 'scores'");
    const int64_t huge[] = {INT64_C(1) << 62, 1};
    reply_set(&r, 0, "scores", "FP64", f, sizeof f, 2, huge);
    expect_internal(&r, "output 'scores'");

    const int64_t negative[] = {-2};
    reply_set(&r, 0, "scores", "FP32", f, sizeof f, 1, negative);
    expect_internal(&r, "output 'scores': dimension 0 is negative");
    const int64_t overflow[] = {INT64_C(1) << 32, INT64_C(1) << 32};
    reply_set(&r, 0, "scores", "FP32", f, sizeof f, 2, overflow);
    expect_internal(&r, "output 'scores': shape has too many elements");
    const int64_t nine[SW_MAX_DIMS + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    reply_set(&r, 0, "scores", "FP32", f, sizeof f, SW_MAX_DIMS + 1, nine);
    expect_internal(&r, "output 'scores': 9 dimensions");

    /* BYTES framing that does not hold the shape's elements. */
    reply_set(&r, 0, "rows", "BYTES", two_strings, sizeof two_strings - 1, 1, shape2);
    expect_internal(&r, "output 'rows': BYTES framing truncated");
    reply_set(&r, 0, "rows", "BYTES", two_strings, 5, 1, shape2);
    expect_internal(&r, "output 'rows'");
    const int64_t one[] = {1};
    reply_set(&r, 0, "rows", "BYTES", two_strings, sizeof two_strings, 1, one);
    expect_internal(&r, "output 'rows': BYTES framing overlong");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/decode-outputs/round-trip", test_round_trip);
    g_test_add_func("/decode-outputs/no-outputs", test_no_outputs);
    g_test_add_func("/decode-outputs/content-type", test_content_type);
    g_test_add_func("/decode-outputs/malformed-replies", test_malformed_replies);
    return g_test_run();
}
