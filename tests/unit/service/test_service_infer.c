/* sw_oip_service_infer(): a packed ModelInferRequest from a transport other
 * than gRPC (the REST layer) runs the gRPC ModelInfer path, alone and
 * batched, and its single end reaches the completion callback exactly
 * once, with the answer or the code and message a gRPC client would get. */
#include <grpc/grpc.h>
#include <string.h>

#include "harness.h"
#include "metrics.h"
#include "oip_codec.h"
#include "oip_service.h"
#include "sw_error.h"

#define WAIT_US (10 * G_USEC_PER_SEC)

/* What the completion callback saw. */
typedef struct result {
    GMutex lock;
    GCond cond;
    int calls;
    GBytes *response;
    int code;
    char *message;
} result;

static void done(GBytes *response, int code, const char *message, void *user_data)
{
    result *r = user_data;
    g_mutex_lock(&r->lock);
    r->calls++;
    r->response = response ? g_bytes_ref(response) : NULL;
    r->code = code;
    r->message = g_strdup(message);
    g_cond_signal(&r->cond);
    g_mutex_unlock(&r->lock);
}

/* Runs `request` (consumed) through the service on this thread and waits
 * for its end (a batch executor may deliver it). */
static void run_until(stage_server *s, GBytes *request, gint64 deadline_us, result *r)
{
    memset(r, 0, sizeof *r);
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    sw_oip_service_infer(s->oip, request, deadline_us, done, r);
    g_bytes_unref(request);
    gint64 until = g_get_monotonic_time() + WAIT_US;
    g_mutex_lock(&r->lock);
    while (r->calls == 0)
        g_assert_true(g_cond_wait_until(&r->cond, &r->lock, until));
    g_mutex_unlock(&r->lock);
    /* Exactly once: nothing more arrives. */
    g_usleep(20000);
    g_assert_cmpint(r->calls, ==, 1);
}

static void run(stage_server *s, GBytes *request, result *r)
{
    run_until(s, request, 0, r);
}

static void result_clear(result *r)
{
    if (r->response)
        g_bytes_unref(r->response);
    g_free(r->message);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
}

/* The outputs of the packed response in `r`. */
static GPtrArray *decode(const result *r)
{
    g_assert_nonnull(r->response);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(r->response, &len);
    Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, len, data);
    g_assert_nonnull(resp);
    g_assert_cmpstr(resp->id, ==, "rest-1");
    GError *error = NULL;
    GPtrArray *outputs = sw_oip_decode_outputs(resp, &error);
    g_assert_no_error(error);
    inference__model_infer_response__free_unpacked(resp, NULL);
    return outputs;
}

static void check_scaled(stage_server *s, sw_metrics *metrics)
{
    result r;
    run(s, infer_request("m_predictor", NULL, "rest-1", predictor_inputs(3, 10), NULL), &r);
    g_assert_cmpstr(r.message, ==, NULL);
    g_assert_cmpint(r.code, ==, SW_CODE_OK);
    GPtrArray *outputs = decode(&r);
    const float *age = sw_tensor_data(output_named(outputs, "age")->tensor, NULL);
    g_assert_cmpfloat(age[0], ==, 20);
    g_assert_cmpfloat(age[2], ==, 24);
    g_ptr_array_unref(outputs);
    result_clear(&r);
    /* Counted like a gRPC call. */
    char *text = sw_metrics_render(metrics);
    g_assert_nonnull(strstr(text, "stagewise_inference_requests_total{model=\"m_predictor\",code=\"OK\"} 1"));
    g_free(text);
}

static void test_alone(void)
{
    const char *models[] = {"m_predictor", NULL};
    sw_metrics *metrics = sw_metrics_new(models);
    server_setup setup = {.kind = SW_STAGE_PREDICTOR, .module = "op=scale\nfactor=2", .options.metrics = metrics};
    stage_server *s = stage_server_start(&setup);
    check_scaled(s, metrics);
    stage_server_stop(s);
    sw_metrics_free(metrics);
}

static void test_batched(void)
{
    const char *models[] = {"m_predictor", NULL};
    sw_metrics *metrics = sw_metrics_new(models);
    server_setup setup = {
        .kind = SW_STAGE_PREDICTOR,
        .module = "op=scale\nfactor=2",
        .options = {.metrics = metrics,
                    .batching = {.max_batch_size = 8, .max_queue_delay_us = 1000, .max_queue_size = 8, .executors = 1}},
    };
    stage_server *s = stage_server_start(&setup);
    check_scaled(s, metrics);
    stage_server_stop(s);
    sw_metrics_free(metrics);
}

static void test_failures(void)
{
    server_setup setup = {.kind = SW_STAGE_PREDICTOR, .module = "op=echo"};
    stage_server *s = stage_server_start(&setup);
    result r;
    run(s, infer_request("nosuch", NULL, "x", predictor_inputs(1, 0), NULL), &r);
    g_assert_cmpint(r.code, ==, SW_CODE_NOT_FOUND);
    g_assert_null(r.response);
    g_assert_nonnull(strstr(r.message, "'nosuch' is not served here"));
    result_clear(&r);
    /* Validation is the gRPC path's: a missing input is named. */
    run(s, infer_request("m_predictor", NULL, "x", sw_output_array_new(), NULL), &r);
    g_assert_cmpint(r.code, ==, SW_CODE_INVALID_ARGUMENT);
    result_clear(&r);
    /* Not a request at all. */
    run(s, g_bytes_new_static("\xff\xff\xff", 3), &r);
    g_assert_cmpint(r.code, ==, SW_CODE_INVALID_ARGUMENT);
    result_clear(&r);
    /* A deadline already past: DEADLINE_EXCEEDED before the stage runs; one
     * in the future: answered. */
    run_until(s, infer_request("m_predictor", NULL, "x", predictor_inputs(1, 0), NULL), g_get_monotonic_time() - 1, &r);
    g_assert_cmpint(r.code, ==, SW_CODE_DEADLINE_EXCEEDED);
    result_clear(&r);
    run_until(s, infer_request("m_predictor", NULL, "x", predictor_inputs(1, 0), NULL),
              g_get_monotonic_time() + 10 * G_USEC_PER_SEC, &r);
    g_assert_cmpint(r.code, ==, SW_CODE_OK);
    result_clear(&r);
    stage_server_stop(s);
    /* While the module loads: UNAVAILABLE, as on gRPC. */
    server_setup loading = {.kind = SW_STAGE_PREDICTOR, .module = "op=echo", .not_loaded = TRUE};
    s = stage_server_start(&loading);
    run(s, infer_request("m_predictor", NULL, "x", predictor_inputs(1, 0), NULL), &r);
    g_assert_cmpint(r.code, ==, SW_CODE_UNAVAILABLE);
    result_clear(&r);
    stage_server_stop(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/service_infer/alone", test_alone);
    g_test_add_func("/service_infer/batched", test_batched);
    g_test_add_func("/service_infer/failures", test_failures);
    grpc_init();
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
