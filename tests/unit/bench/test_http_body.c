/* stagewise-bench's HTTP bodies (bench/http_body.c) against the server's own
 * REST codec: a body the bench builds, JSON or binary, parses back into the
 * request it came from; answers the server renders pass the bench's check,
 * and broken ones fail it with a reason. */
#include <math.h>
#include <string.h>

#include "http.h"
#include "inference.pb-c.h"
#include "oip_codec.h"
#include "rest_codec.h"
#include "sw_error.h"

#define N_INPUTS 4

/* The request under test: FP32 [3] (its second number `missing` a NaN when
 * asked), BYTES [2] with text JSON has to escape, INT64 [2], BOOL [2] with a
 * parameter. */
typedef struct sample {
    float num[3];
    guint8 text[32];
    size_t text_len;
    int64_t ids[2];
    guint8 flags[2];
} sample;

static size_t frame(guint8 *out, const char *s)
{
    guint32 n = GUINT32_TO_LE((guint32)strlen(s));
    memcpy(out, &n, 4);
    memcpy(out + 4, s, strlen(s));
    return 4 + strlen(s);
}

static GBytes *sample_request(sample *s, gboolean missing)
{
    *s = (sample){.num = {1.5f, missing ? NAN : 2.25f, -3}, .ids = {7, -9}, .flags = {1, 0}};
    s->text_len = frame(s->text, "h\xc3\xa9llo");
    s->text_len += frame(s->text + s->text_len, "a\"b\\");
    static const char *names[N_INPUTS] = {"num", "txt", "ids", "flag"};
    static const char *types[N_INPUTS] = {"FP32", "BYTES", "INT64", "BOOL"};
    int64_t shapes[N_INPUTS] = {3, 2, 2, 2};
    Inference__ModelInferRequest__InferInputTensor tensors[N_INPUTS], *ptrs[N_INPUTS];
    ProtobufCBinaryData raw[N_INPUTS] = {{sizeof s->num, (uint8_t *)s->num},
                                         {s->text_len, s->text},
                                         {sizeof s->ids, (uint8_t *)s->ids},
                                         {sizeof s->flags, s->flags}};
    Inference__InferParameter value = INFERENCE__INFER_PARAMETER__INIT;
    value.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    value.string_param = "str";
    Inference__ModelInferRequest__InferInputTensor__ParametersEntry entry =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__PARAMETERS_ENTRY__INIT;
    entry.key = "content_type";
    entry.value = &value;
    Inference__ModelInferRequest__InferInputTensor__ParametersEntry *entries[1] = {&entry};
    for (int i = 0; i < N_INPUTS; i++) {
        inference__model_infer_request__infer_input_tensor__init(&tensors[i]);
        tensors[i].name = (char *)names[i];
        tensors[i].datatype = (char *)types[i];
        tensors[i].n_shape = 1;
        tensors[i].shape = &shapes[i];
        ptrs[i] = &tensors[i];
    }
    tensors[3].n_parameters = 1;
    tensors[3].parameters = entries;
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    req.model_name = "m";
    req.id = "bench";
    req.n_inputs = req.n_raw_input_contents = N_INPUTS;
    req.inputs = ptrs;
    req.raw_input_contents = raw;
    return sw_protobuf_pack(&req.base);
}

/* Parses `body` as the server does and checks it is `packed` again:
 * names, datatypes, shapes, parameters and contents byte for byte. */
static void assert_round_trip(GBytes *packed, const bench_http_body *body, sw_rest_request *parsed)
{
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(body->bytes, &len);
    GError *error = NULL;
    gboolean ok = sw_rest_request_parse("m", "", data, len, body->header_len, parsed, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
    const guint8 *a = g_bytes_get_data(packed, &len);
    Inference__ModelInferRequest *want = inference__model_infer_request__unpack(NULL, len, a);
    const guint8 *b = g_bytes_get_data(parsed->packed, &len);
    Inference__ModelInferRequest *got = inference__model_infer_request__unpack(NULL, len, b);
    g_assert_cmpstr(got->id, ==, want->id);
    g_assert_cmpuint(got->n_inputs, ==, want->n_inputs);
    for (size_t i = 0; i < want->n_inputs; i++) {
        g_assert_cmpstr(got->inputs[i]->name, ==, want->inputs[i]->name);
        g_assert_cmpstr(got->inputs[i]->datatype, ==, want->inputs[i]->datatype);
        g_assert_cmpmem(got->inputs[i]->shape, got->inputs[i]->n_shape * sizeof(int64_t), want->inputs[i]->shape,
                        want->inputs[i]->n_shape * sizeof(int64_t));
        g_assert_cmpuint(got->inputs[i]->n_parameters, ==, want->inputs[i]->n_parameters);
        g_assert_cmpmem(got->raw_input_contents[i].data, got->raw_input_contents[i].len,
                        want->raw_input_contents[i].data, want->raw_input_contents[i].len);
    }
    g_assert_cmpstr(got->inputs[3]->parameters[0]->value->string_param, ==, "str");
    inference__model_infer_request__free_unpacked(want, NULL);
    inference__model_infer_request__free_unpacked(got, NULL);
}

static void test_json_body(void)
{
    sample s;
    GBytes *packed = sample_request(&s, FALSE);
    bench_http_body body;
    GError *error = NULL;
    g_assert_true(bench_http_body_build(packed, FALSE, &body, &error));
    g_assert_no_error(error);
    g_assert_cmpint(body.header_len, ==, -1); /* all JSON */
    g_assert_cmpuint(body.binary_inputs->len, ==, 0);
    sw_rest_request parsed;
    assert_round_trip(packed, &body, &parsed);
    g_assert_false(parsed.all_binary);
    sw_rest_request_clear(&parsed);
    bench_http_body_clear(&body);
    g_bytes_unref(packed);
}

static void test_json_body_with_a_missing_number(void)
{
    sample s;
    GBytes *packed = sample_request(&s, TRUE);
    bench_http_body body;
    g_assert_true(bench_http_body_build(packed, FALSE, &body, NULL));
    /* JSON has no NaN: that input alone goes as binary data, and says why. */
    g_assert_cmpint(body.header_len, >, 0);
    g_assert_cmpuint(body.binary_inputs->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(body.binary_inputs, 0), ==, "input 'num': element 1 (FP32) has no JSON number");
    const char *text = g_bytes_get_data(body.bytes, NULL);
    g_assert_nonnull(g_strstr_len(text, body.header_len, "\"data\":[\"h\xc3\xa9llo\",\"a\\\"b\\\\\"]"));
    sw_rest_request parsed;
    assert_round_trip(packed, &body, &parsed);
    g_assert_false(parsed.all_binary);
    sw_rest_request_clear(&parsed);
    bench_http_body_clear(&body);
    g_bytes_unref(packed);
}

static void test_binary_body(void)
{
    sample s;
    GBytes *packed = sample_request(&s, TRUE);
    bench_http_body body;
    g_assert_true(bench_http_body_build(packed, TRUE, &body, NULL));
    g_assert_cmpint(body.header_len, >, 0);
    g_assert_cmpuint(body.binary_inputs->len, ==, 0);
    sw_rest_request parsed;
    assert_round_trip(packed, &body, &parsed);
    g_assert_true(parsed.all_binary); /* the outputs asked for as binary too */
    sw_rest_request_clear(&parsed);
    bench_http_body_clear(&body);
    g_bytes_unref(packed);
}

/* A two-output response as the service answers, rendered by the server's
 * REST codec for `request`. */
static sw_rest_reply render_answer(const sw_rest_request *request)
{
    static const float probs[4] = {0.25f, 0.75f, 0.5f, 0.5f};
    guint8 labels[16];
    size_t labels_len = frame(labels, "yes");
    labels_len += frame(labels + labels_len, "no");
    int64_t prob_shape[2] = {2, 2}, label_shape[1] = {2};
    Inference__ModelInferResponse__InferOutputTensor outs[2], *ptrs[2] = {&outs[0], &outs[1]};
    inference__model_infer_response__infer_output_tensor__init(&outs[0]);
    outs[0].name = "p::probabilities";
    outs[0].datatype = "FP32";
    outs[0].n_shape = 2;
    outs[0].shape = prob_shape;
    inference__model_infer_response__infer_output_tensor__init(&outs[1]);
    outs[1].name = "p::predictions";
    outs[1].datatype = "BYTES";
    outs[1].n_shape = 1;
    outs[1].shape = label_shape;
    ProtobufCBinaryData raw[2] = {{sizeof probs, (uint8_t *)probs}, {labels_len, labels}};
    Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    resp.model_name = "m";
    resp.id = "bench";
    resp.n_outputs = resp.n_raw_output_contents = 2;
    resp.outputs = ptrs;
    resp.raw_output_contents = raw;
    GBytes *packed = sw_protobuf_pack(&resp.base);
    sw_rest_reply reply;
    GError *error = NULL;
    g_assert_true(sw_rest_response_render(packed, request, &reply, &error));
    g_assert_no_error(error);
    g_bytes_unref(packed);
    return reply;
}

static void test_answers_the_server_renders(void)
{
    for (int binary = 0; binary <= 1; binary++) {
        sw_rest_request request = {.all_binary = binary};
        sw_rest_reply reply = render_answer(&request);
        g_assert_true(binary ? reply.header_len > 0 : reply.header_len < 0);
        gsize len = 0;
        const guint8 *data = g_bytes_get_data(reply.body, &len);
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        GError *error = NULL;
        g_assert_true(bench_http_answer_check(data, len, reply.header_len, names, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(names->len, ==, 2);
        g_assert_cmpstr(g_ptr_array_index(names, 0), ==, "p::probabilities");
        g_assert_cmpstr(g_ptr_array_index(names, 1), ==, "p::predictions");
        g_ptr_array_unref(names);
        if (binary) {
            /* The header's length must match the answer it came with. */
            g_assert_false(bench_http_answer_check(data, len - 1, reply.header_len, NULL, &error));
            g_assert_nonnull(strstr(error->message, "binary_data_size add up to"));
            g_clear_error(&error);
        }
        g_bytes_unref(reply.body);
    }
}

static void expect_bad_answer(const char *body, gssize header_len, const char *fragment)
{
    GError *error = NULL;
    g_assert_false(bench_http_answer_check((const guint8 *)body, strlen(body), header_len, NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    if (strstr(error->message, fragment) == NULL)
        g_error("'%s' does not contain '%s'", error->message, fragment);
    g_error_free(error);
}

static void test_answers_refused(void)
{
    expect_bad_answer("<html>", -1, "the answer is not JSON");
    expect_bad_answer("{\"model_name\":\"m\"}", -1, "no \"outputs\" array");
    expect_bad_answer("{\"outputs\":[]}", -1, "no \"outputs\" array");
    expect_bad_answer("{\"outputs\":[{\"name\":\"a\",\"shape\":[2],\"data\":[1,2]}]}", -1,
                      "outputs[0] is not an object with a name, a datatype and a shape");
    expect_bad_answer("{\"outputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[[1,2],[3]]}]}", -1,
                      "output 'a': no binary_data_size and no data array of the 4 elements its shape holds");
    expect_bad_answer("{\"outputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", 99,
                      "Inference-Header-Content-Length is 99");
}

static void test_error_text(void)
{
    const char *json = "{\"error\":\"model 'x' is not served here\"}";
    char *text = bench_http_error_text((const guint8 *)json, strlen(json));
    g_assert_cmpstr(text, ==, "model 'x' is not served here");
    g_free(text);
    text = bench_http_error_text((const guint8 *)"Bad Gateway", 11);
    g_assert_cmpstr(text, ==, "Bad Gateway");
    g_free(text);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bench/http_body/json", test_json_body);
    g_test_add_func("/bench/http_body/json_with_a_missing_number", test_json_body_with_a_missing_number);
    g_test_add_func("/bench/http_body/binary", test_binary_body);
    g_test_add_func("/bench/http_body/answers_the_server_renders", test_answers_the_server_renders);
    g_test_add_func("/bench/http_body/answers_refused", test_answers_refused);
    g_test_add_func("/bench/http_body/error_text", test_error_text);
    return g_test_run();
}
