/* The pipeline hop, with two stage servers in this process: a stage with a
 * next stage answers the pipeline model with what the next stage answers,
 * and reports a next stage that fails, is gone or refuses it, naming it. */
#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "fake_torch.h"
#include "harness.h"
#include "metrics.h"
#include "oip_codec.h"
#include "oip_paths.h"
#include "oip_service.h"
#include "sw_error.h"
#include "unit_support.h"

/* Lets through calls carrying "authorization: Bearer <data>". */
static gboolean admit_bearer(sw_call *call, void *data)
{
    char *value = sw_call_metadata(call, "authorization");
    char *expected = g_strdup_printf("Bearer %s", (const char *)data);
    gboolean ok = g_strcmp0(value, expected) == 0;
    g_free(value);
    g_free(expected);
    if (!ok)
        sw_call_fail(call, SW_CODE_UNAUTHENTICATED, "a valid bearer token is required");
    return ok;
}

static sw_channel *channel_to(const char *target)
{
    sw_channel_options co = {.target = target};
    GError *error = NULL;
    sw_channel *ch = sw_channel_new(&co, &error);
    g_assert_no_error(error);
    return ch;
}

/* A channel to a next stage that will not answer: two attempts, where the
 * default's five take about three seconds to fail. */
static sw_channel *channel_to_dead_end(const char *target)
{
    sw_channel_options co = {.target = target, .max_attempts = 2};
    GError *error = NULL;
    sw_channel *ch = sw_channel_new(&co, &error);
    g_assert_no_error(error);
    return ch;
}

static int forward_calls(const stage_server *s)
{
    return sw_fake_torch_forward_calls(s->stage->instances[0]);
}

/* --- requests --- */

static void add_strings(GPtrArray *inputs, const char *name, const char *const *strings, size_t n)
{
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup(name);
    o->tensor = sw_tensor_new_strings(strings, NULL, n);
    g_ptr_array_add(inputs, o);
}

/* One row for the predictor that also carries what the postprocessor
 * needs: the predictor passes tensors its specs do not know on untouched,
 * and the fake module echoes them. score::predictions holds `score`. */
static GPtrArray *pipeline_inputs(float score, gboolean with_label)
{
    GPtrArray *inputs = sw_output_array_new();
    int64_t one[1] = {1}, review_shape[2] = {1, 6}, when_shape[2] = {1, 9}, probs_shape[2] = {1, 3};
    float age = 30;
    int32_t color = 1;
    int64_t review[6] = {1, 4, 0, 2, 2, 2};
    int32_t when[9] = {2021, 2, 3};
    int64_t label = 2;
    float probs[3] = {0.25f, 0.25f, 0.5f};
    add_tensor(inputs, "age", SW_DTYPE_FP32, 1, one, &age);
    add_tensor(inputs, "color", SW_DTYPE_INT32, 1, one, &color);
    add_tensor(inputs, "review", SW_DTYPE_INT64, 2, review_shape, review);
    add_tensor(inputs, "when", SW_DTYPE_INT32, 2, when_shape, when);
    if (with_label) {
        add_tensor(inputs, "label::predictions", SW_DTYPE_INT64, 1, one, &label);
        add_tensor(inputs, "label::probabilities", SW_DTYPE_FP32, 2, probs_shape, probs);
    }
    add_tensor(inputs, "score::predictions", SW_DTYPE_FP32, 1, one, &score);
    return inputs;
}

static GPtrArray *infer_ok(stage_server *s, GBytes *request, const char *model, const char *id)
{
    GError *error = NULL;
    GBytes *response = sw_channel_call(s->client, SW_PATH_MODEL_INFER, request, CALL_TIMEOUT_US, NULL, &error);
    g_assert_no_error(error);
    g_bytes_unref(request);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, len, data);
    g_assert_nonnull(resp);
    g_assert_cmpstr(resp->model_name, ==, model);
    g_assert_cmpstr(resp->id, ==, id);
    GPtrArray *outputs = sw_oip_decode_outputs(resp, &error);
    g_assert_no_error(error);
    inference__model_infer_response__free_unpacked(resp, NULL);
    g_bytes_unref(response);
    return outputs;
}

static void infer_fails(stage_server *s, GBytes *request, int code, const char *const *substrings)
{
    GError *error = NULL;
    GBytes *response = sw_channel_call(s->client, SW_PATH_MODEL_INFER, request, CALL_TIMEOUT_US, NULL, &error);
    g_bytes_unref(request);
    g_assert_null(response);
    g_assert_nonnull(error);
    if (error->code != code)
        g_error("expected %s, got %s: %s", sw_code_name(code), sw_code_name(error->code), error->message);
    for (size_t i = 0; substrings && substrings[i]; i++)
        if (strstr(error->message, substrings[i]) == NULL)
            g_error("message '%s' lacks '%s'", error->message, substrings[i]);
    g_error_free(error);
}

static float first_float(GPtrArray *outputs, const char *name)
{
    const sw_output *o = output_named(outputs, name);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_FP32);
    return ((const float *)sw_tensor_data(o->tensor, NULL))[0];
}

/* --- tests --- */

static void test_pipeline_answer_comes_from_the_next_stage(void)
{
    server_setup post_setup = {
        .serving = TRUE, .kind = SW_STAGE_POSTPROCESSOR, .module = "op=scale\nfactor=10", .name = "m"};
    stage_server *post = stage_server_start(&post_setup);
    sw_channel *next = channel_to(post->target);
    sw_metrics *metrics = sw_metrics_new((const char *const[]){"m_predictor", "m", NULL});
    server_setup pred_setup = {.serving = TRUE,
                               .kind = SW_STAGE_PREDICTOR,
                               .module = "op=scale\nfactor=2",
                               .name = "m",
                               .next = next,
                               .options = {.metrics = metrics}};
    stage_server *pred = stage_server_start(&pred_setup);

    /* Both scaled it: it went through the predictor and then the postprocessor. */
    GPtrArray *outputs =
        infer_ok(pred, infer_request("m", NULL, "trip", pipeline_inputs(1.5f, TRUE), NULL), "m", "trip");
    g_assert_cmpfloat(first_float(outputs, "score::predictions"), ==, 30.0f);
    g_assert_cmpfloat(first_float(outputs, "age"), ==, 600.0f);
    const sw_output *label = output_named(outputs, "label::predictions");
    g_assert_cmpint(label->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(((const int64_t *)sw_tensor_data(label->tensor, NULL))[0], ==, 2);
    g_assert_cmpuint(outputs->len, ==, 7);
    g_ptr_array_unref(outputs);
    g_assert_cmpint(forward_calls(pred), ==, 1);
    g_assert_cmpint(forward_calls(post), ==, 1);

    /* Requested outputs travel with the hop and apply where the answer is made. */
    static const char *const wanted[] = {"score::predictions", "label::predictions", NULL};
    outputs = infer_ok(pred, infer_request("m", NULL, "two", pipeline_inputs(2.0f, TRUE), wanted), "m", "two");
    g_assert_cmpuint(outputs->len, ==, 2);
    g_assert_cmpstr(((sw_output *)g_ptr_array_index(outputs, 0))->name, ==, "score::predictions");
    g_assert_cmpstr(((sw_output *)g_ptr_array_index(outputs, 1))->name, ==, "label::predictions");
    g_assert_cmpfloat(first_float(outputs, "score::predictions"), ==, 40.0f);
    g_ptr_array_unref(outputs);

    /* The stage model alone does not hop. */
    outputs = infer_ok(pred, infer_request("m_predictor", NULL, "one", pipeline_inputs(1.0f, TRUE), NULL),
                       "m_predictor", "one");
    g_assert_cmpfloat(first_float(outputs, "score::predictions"), ==, 2.0f);
    g_ptr_array_unref(outputs);
    g_assert_cmpint(forward_calls(post), ==, 2);

    /* The last stage answers the pipeline model itself. */
    outputs = infer_ok(post, infer_request("m", NULL, "end", pipeline_inputs(1.0f, TRUE), NULL), "m", "end");
    g_assert_cmpfloat(first_float(outputs, "score::predictions"), ==, 10.0f);
    g_ptr_array_unref(outputs);

    char *text = sw_metrics_render(metrics);
    char *line = g_strdup_printf("stagewise_downstream_requests_total{target=\"%s\",code=\"OK\"} 2\n", post->target);
    g_assert_nonnull(strstr(text, line));
    g_free(line);
    g_assert_nonnull(strstr(text, "stagewise_inference_requests_total{model=\"m\",code=\"OK\"} 2\n"));
    g_assert_nonnull(strstr(text, "stagewise_inference_requests_total{model=\"m_predictor\",code=\"OK\"} 1\n"));
    g_free(text);

    stage_server_stop(pred);
    sw_channel_free(next);
    sw_metrics_free(metrics);
    stage_server_stop(post);
}

static void test_pipeline_metadata_names_the_next_stage(void)
{
    server_setup post_setup = {.serving = TRUE, .kind = SW_STAGE_POSTPROCESSOR, .module = "op=echo", .name = "m"};
    stage_server *post = stage_server_start(&post_setup);
    sw_channel *next = channel_to(post->target);
    server_setup pred_setup = {
        .serving = TRUE, .kind = SW_STAGE_PREDICTOR, .module = "op=echo", .name = "m", .next = next};
    stage_server *pred = stage_server_start(&pred_setup);

    Inference__ModelMetadataRequest req = INFERENCE__MODEL_METADATA_REQUEST__INIT;
    req.name = "m";
    req.version = "";
    GBytes *request = sw_protobuf_pack(&req.base);
    GError *error = NULL;
    GBytes *response = sw_channel_call(pred->client, SW_PATH_MODEL_METADATA, request, CALL_TIMEOUT_US, NULL, &error);
    g_assert_no_error(error);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Inference__ModelMetadataResponse *m = inference__model_metadata_response__unpack(NULL, len, data);
    g_assert_nonnull(m);
    g_assert_cmpstr(m->name, ==, "m");
    const char *stage = NULL, *next_target = NULL;
    for (size_t i = 0; i < m->n_properties; i++) {
        if (strcmp(m->properties[i]->key, "stage") == 0)
            stage = m->properties[i]->value;
        if (strcmp(m->properties[i]->key, "next") == 0)
            next_target = m->properties[i]->value;
    }
    g_assert_cmpstr(stage, ==, "pipeline");
    g_assert_cmpstr(next_target, ==, post->target);
    /* The predictor's inputs, the postprocessor's outputs. */
    g_assert_cmpuint(m->n_inputs, ==, 4);
    g_assert_cmpstr(m->inputs[0]->name, ==, "age");
    g_assert_cmpuint(m->n_outputs, ==, 3);
    g_assert_cmpstr(m->outputs[0]->name, ==, "label::predictions");
    g_assert_cmpstr(m->outputs[0]->datatype, ==, "BYTES");
    g_assert_cmpstr(m->outputs[2]->name, ==, "score::predictions");
    inference__model_metadata_response__free_unpacked(m, NULL);
    g_bytes_unref(response);
    g_bytes_unref(request);

    stage_server_stop(pred);
    sw_channel_free(next);
    stage_server_stop(post);
}

/* What the next stage says is wrong with the request reaches the caller as is. */
static void test_next_stage_failures_pass_through(void)
{
    server_setup post_setup = {
        .serving = TRUE, .kind = SW_STAGE_POSTPROCESSOR, .module = "op=fail\nerror=KeyError: x", .name = "m"};
    stage_server *post = stage_server_start(&post_setup);
    sw_channel *next = channel_to(post->target);
    server_setup pred_setup = {
        .serving = TRUE, .kind = SW_STAGE_PREDICTOR, .module = "op=echo", .name = "m", .next = next};
    stage_server *pred = stage_server_start(&pred_setup);

    char *where = g_strdup_printf("postprocessor at %s: INVALID_ARGUMENT: ", post->target);
    const char *const failed[] = {where, "m_postprocessor: forward failed: KeyError: x", NULL};
    infer_fails(pred, infer_request("m", NULL, "f", pipeline_inputs(1.0f, TRUE), NULL), SW_CODE_INVALID_ARGUMENT,
                failed);
    const char *const missing[] = {where, "input 'label::predictions' (category feature) is missing", NULL};
    infer_fails(pred, infer_request("m", NULL, "g", pipeline_inputs(1.0f, FALSE), NULL), SW_CODE_INVALID_ARGUMENT,
                missing);
    g_free(where);
    g_assert_cmpint(forward_calls(pred), ==, 2);
    g_assert_cmpint(forward_calls(post), ==, 1);

    stage_server_stop(pred);
    sw_channel_free(next);
    stage_server_stop(post);
}

/* A NOT_FOUND from the next stage means this server was configured with
 * the wrong next stage: the caller asked for a model that exists. */
static void test_next_stage_not_found_is_internal(void)
{
    server_setup post_setup = {.serving = TRUE, .kind = SW_STAGE_POSTPROCESSOR, .module = "op=echo", .name = "other"};
    stage_server *post = stage_server_start(&post_setup);
    sw_channel *next = channel_to(post->target);
    server_setup pred_setup = {
        .serving = TRUE, .kind = SW_STAGE_PREDICTOR, .module = "op=echo", .name = "m", .next = next};
    stage_server *pred = stage_server_start(&pred_setup);

    char *where = g_strdup_printf("postprocessor at %s: NOT_FOUND: ", post->target);
    const char *const expected[] = {where, "model 'm' is not served here", NULL};
    infer_fails(pred, infer_request("m", NULL, "x", pipeline_inputs(1.0f, TRUE), NULL), SW_CODE_INTERNAL, expected);
    g_free(where);

    stage_server_stop(pred);
    sw_channel_free(next);
    stage_server_stop(post);
}

/* The hop carries the next stage's token; without it the next stage
 * refuses, which is this server's fault: INTERNAL, not UNAUTHENTICATED. */
static void test_next_stage_token(void)
{
    server_setup post_setup = {.serving = TRUE,
                               .kind = SW_STAGE_POSTPROCESSOR,
                               .module = "op=echo",
                               .name = "m",
                               .admit = admit_bearer,
                               .admit_data = (void *)"s3cret"};
    stage_server *post = stage_server_start(&post_setup);
    sw_channel *next = channel_to(post->target);
    server_setup with_setup = {.serving = TRUE,
                               .kind = SW_STAGE_PREDICTOR,
                               .module = "op=echo",
                               .name = "m",
                               .next = next,
                               .options = {.next_auth_token = "s3cret"}};
    stage_server *with = stage_server_start(&with_setup);
    server_setup without_setup = {
        .serving = TRUE, .kind = SW_STAGE_PREDICTOR, .module = "op=echo", .name = "m", .next = next};
    stage_server *without = stage_server_start(&without_setup);

    GPtrArray *outputs = infer_ok(with, infer_request("m", NULL, "t", pipeline_inputs(4.0f, TRUE), NULL), "m", "t");
    g_assert_cmpfloat(first_float(outputs, "score::predictions"), ==, 4.0f);
    g_ptr_array_unref(outputs);
    char *where = g_strdup_printf("postprocessor at %s: UNAUTHENTICATED: ", post->target);
    const char *const expected[] = {where, "a valid bearer token is required", NULL};
    infer_fails(without, infer_request("m", NULL, "u", pipeline_inputs(4.0f, TRUE), NULL), SW_CODE_INTERNAL, expected);
    g_free(where);
    g_assert_cmpint(forward_calls(post), ==, 1);

    stage_server_stop(with);
    stage_server_stop(without);
    sw_channel_free(next);
    stage_server_stop(post);
}

/* A port on 127.0.0.1 that is bound but not listening: connecting to it is
 * refused, and nothing else can take it while `fd` is open. */
static int refusing_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(*fd, >=, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    g_assert_cmpint(bind(*fd, (struct sockaddr *)&addr, sizeof addr), ==, 0);
    socklen_t len = sizeof addr;
    g_assert_cmpint(getsockname(*fd, (struct sockaddr *)&addr, &len), ==, 0);
    return ntohs(addr.sin_port);
}

static void test_unreachable_next_stage_is_unavailable(void)
{
    int fd = -1;
    char *target = g_strdup_printf("127.0.0.1:%d", refusing_port(&fd));
    sw_channel *next = channel_to_dead_end(target);
    sw_metrics *metrics = sw_metrics_new((const char *const[]){"m_predictor", "m", NULL});
    server_setup pred_setup = {.serving = TRUE,
                               .kind = SW_STAGE_PREDICTOR,
                               .module = "op=echo",
                               .name = "m",
                               .next = next,
                               .options = {.metrics = metrics}};
    stage_server *pred = stage_server_start(&pred_setup);
    char *where = g_strdup_printf("postprocessor at %s: UNAVAILABLE", target);
    const char *const expected[] = {where, NULL};
    infer_fails(pred, infer_request("m", NULL, "x", pipeline_inputs(1.0f, TRUE), NULL), SW_CODE_UNAVAILABLE, expected);
    g_free(where);
    /* Counted under the next stage's target. */
    char *text = sw_metrics_render(metrics);
    char *line = g_strdup_printf("stagewise_downstream_requests_total{target=\"%s\",code=\"UNAVAILABLE\"}", target);
    g_assert_nonnull(strstr(text, line));
    g_free(line);
    /* The hop retried over the next stage's replicas already: its failure
     * comes back marked not to be retried, or this client's retry policy
     * (and each stage before this one) would run the call five times. */
    g_assert_nonnull(strstr(text, "stagewise_inference_requests_total{model=\"m\",code=\"UNAVAILABLE\"} 1\n"));
    g_assert_cmpint(forward_calls(pred), ==, 1);
    g_free(text);
    stage_server_stop(pred);

    /* A preprocessor names the predictor as its next stage. */
    GPtrArray *raw = sw_output_array_new();
    int64_t one[1] = {1};
    float age = 40;
    static const char *const color[] = {"red"}, *const review[] = {"good"}, *const when[] = {"2021-02-03"};
    add_tensor(raw, "age", SW_DTYPE_FP32, 1, one, &age);
    add_strings(raw, "color", color, 1);
    add_strings(raw, "review", review, 1);
    add_strings(raw, "when", when, 1);
    server_setup pre_setup = {
        .serving = TRUE, .kind = SW_STAGE_PREPROCESSOR, .module = "op=echo", .name = "m", .next = next};
    stage_server *pre = stage_server_start(&pre_setup);
    where = g_strdup_printf("predictor at %s: UNAVAILABLE", target);
    const char *const expected_pre[] = {where, NULL};
    infer_fails(pre, infer_request("m", NULL, "y", raw, NULL), SW_CODE_UNAVAILABLE, expected_pre);
    g_free(where);
    g_assert_cmpint(forward_calls(pre), >=, 1);
    stage_server_stop(pre);

    sw_channel_free(next);
    sw_metrics_free(metrics);
    close(fd);
    g_free(target);
}

/* The next stage going away after serving: the hop fails UNAVAILABLE. */
static void test_stopped_next_stage_is_unavailable(void)
{
    server_setup post_setup = {.serving = TRUE, .kind = SW_STAGE_POSTPROCESSOR, .module = "op=echo", .name = "m"};
    stage_server *post = stage_server_start(&post_setup);
    sw_channel *next = channel_to_dead_end(post->target);
    server_setup pred_setup = {
        .serving = TRUE, .kind = SW_STAGE_PREDICTOR, .module = "op=echo", .name = "m", .next = next};
    stage_server *pred = stage_server_start(&pred_setup);

    GPtrArray *outputs = infer_ok(pred, infer_request("m", NULL, "a", pipeline_inputs(1.0f, TRUE), NULL), "m", "a");
    g_ptr_array_unref(outputs);
    stage_server_halt(post);
    char *where = g_strdup_printf("postprocessor at %s: UNAVAILABLE", post->target);
    const char *const expected[] = {where, NULL};
    infer_fails(pred, infer_request("m", NULL, "b", pipeline_inputs(1.0f, TRUE), NULL), SW_CODE_UNAVAILABLE, expected);
    g_free(where);

    stage_server_stop(pred);
    sw_channel_free(next);
    stage_server_stop(post);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/hop/pipeline-answer-comes-from-the-next-stage", test_pipeline_answer_comes_from_the_next_stage);
    g_test_add_func("/hop/pipeline-metadata-names-the-next-stage", test_pipeline_metadata_names_the_next_stage);
    g_test_add_func("/hop/next-stage-failures-pass-through", test_next_stage_failures_pass_through);
    g_test_add_func("/hop/next-stage-not-found-is-internal", test_next_stage_not_found_is_internal);
    g_test_add_func("/hop/next-stage-token", test_next_stage_token);
    g_test_add_func("/hop/unreachable-next-stage-is-unavailable", test_unreachable_next_stage_is_unavailable);
    g_test_add_func("/hop/stopped-next-stage-is-unavailable", test_stopped_next_stage_is_unavailable);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
