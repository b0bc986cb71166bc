/* grpc.health.v1.Health over a real server: Check follows set_serving,
 * Watch streams the status and each change of it until end_watches or
 * the client ends it, and both stay open to callers that admission
 * refuses. Watch is driven by a raw gRPC C client call, since sw_channel
 * makes only unary calls. */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <string.h>

#include "byte_buffer.h"
#include "channel.h"
#include "harness.h"
#include "health.pb-c.h"
#include "oip_codec.h"
#include "oip_paths.h"
#include "oip_service.h"
#include "sw_error.h"
#include "unit_support.h"

#define WAIT_S 5

#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define SERVICE_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

static gboolean refuse_all(sw_call *call, void *data)
{
    sw_call_fail(call, SW_CODE_UNAUTHENTICATED, "nobody gets in");
    return FALSE;
}

/* A loaded predictor, not yet serving; with `refuse`, admission refuses
 * every call that is not open. */
static stage_server *serve_predictor(gboolean refuse)
{
    server_setup setup = {.kind = SW_STAGE_PREDICTOR, .module = "op=echo", .admit = refuse ? refuse_all : NULL};
    return stage_server_start(&setup);
}

/* Check of `service`: its status, or -1 with `error`. */
static int health_check(stage_server *s, const char *service, GError **error)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    GBytes *request = sw_protobuf_pack(&req.base);
    GBytes *response = sw_channel_call(s->client, SW_PATH_HEALTH_CHECK, request, CALL_TIMEOUT_US, NULL, error);
    g_bytes_unref(request);
    if (response == NULL)
        return -1;
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Grpc__Health__V1__HealthCheckResponse *resp = grpc__health__v1__health_check_response__unpack(NULL, len, data);
    g_assert_nonnull(resp);
    int status = resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    g_bytes_unref(response);
    return status;
}

static void test_check_follows_serving(void)
{
    stage_server *s = serve_predictor(FALSE);
    GError *error = NULL;
    g_assert_cmpint(health_check(s, "", &error), ==, NOT_SERVING);
    g_assert_cmpint(health_check(s, SW_OIP_SERVICE, &error), ==, NOT_SERVING);
    g_assert_no_error(error);
    sw_oip_service_set_serving(s->oip, TRUE);
    g_assert_cmpint(health_check(s, "", &error), ==, SERVING);
    g_assert_cmpint(health_check(s, SW_OIP_SERVICE, &error), ==, SERVING);
    g_assert_no_error(error);
    sw_oip_service_set_serving(s->oip, FALSE);
    g_assert_cmpint(health_check(s, "", &error), ==, NOT_SERVING);
    g_assert_no_error(error);

    g_assert_cmpint(health_check(s, "inference.Other", &error), ==, -1);
    assert_error(error, SW_CODE_NOT_FOUND, "unknown service 'inference.Other'");
    g_clear_error(&error);
    stage_server_stop(s);
}

/* Probes carry no token: health answers where admission refuses the rest. */
static void test_health_is_open(void)
{
    stage_server *s = serve_predictor(TRUE);
    sw_oip_service_set_serving(s->oip, TRUE);
    GError *error = NULL;
    g_assert_cmpint(health_check(s, "", &error), ==, SERVING);
    g_assert_no_error(error);
    Inference__ServerLiveRequest req = INFERENCE__SERVER_LIVE_REQUEST__INIT;
    GBytes *request = sw_protobuf_pack(&req.base);
    g_assert_null(sw_channel_call(s->client, SW_PATH_SERVER_LIVE, request, CALL_TIMEOUT_US, NULL, &error));
    assert_error(error, SW_CODE_UNAUTHENTICATED, "nobody gets in");
    g_clear_error(&error);
    g_assert_null(sw_channel_call(s->client, SW_PATH_MODEL_INFER, request, CALL_TIMEOUT_US, NULL, &error));
    assert_error(error, SW_CODE_UNAUTHENTICATED, NULL);
    g_clear_error(&error);
    g_bytes_unref(request);
    stage_server_stop(s);
}

/* --- Watch, as a raw gRPC client call --- */

enum { TAG_START, TAG_MESSAGE, TAG_STATUS, N_TAGS };

typedef struct watch {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *request;
    grpc_metadata_array initial_metadata;
    grpc_metadata_array trailing_metadata;
    grpc_byte_buffer *message;
    grpc_status_code status;
    grpc_slice details;
    gboolean pending[N_TAGS]; /* started and not yet completed */
    int tags[N_TAGS];         /* their addresses are the tags */
} watch;

static gpr_timespec seconds_from_now(int s)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(s, GPR_TIMESPAN));
}

/* Runs the queue until batch `tag` has completed or `deadline` passes. */
static gboolean watch_wait_until(watch *w, int tag, gpr_timespec deadline)
{
    while (w->pending[tag]) {
        grpc_event ev = grpc_completion_queue_next(w->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            return FALSE;
        g_assert_cmpint(ev.type, ==, GRPC_OP_COMPLETE);
        w->pending[(int *)ev.tag - w->tags] = FALSE;
    }
    return TRUE;
}

static gboolean watch_wait(watch *w, int tag, int timeout_s)
{
    return watch_wait_until(w, tag, seconds_from_now(timeout_s));
}

static void watch_batch(watch *w, const grpc_op *ops, size_t n, int tag)
{
    g_assert_false(w->pending[tag]);
    w->pending[tag] = TRUE;
    g_assert_cmpint(grpc_call_start_batch(w->call, ops, n, &w->tags[tag], NULL), ==, GRPC_CALL_OK);
}

static watch *watch_start(const char *target, const char *service)
{
    watch *w = g_new0(watch, 1);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    w->channel = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->call =
        grpc_channel_create_call(w->channel, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                 grpc_slice_from_static_string(SW_PATH_HEALTH_WATCH), NULL, seconds_from_now(30), NULL);
    grpc_metadata_array_init(&w->initial_metadata);
    grpc_metadata_array_init(&w->trailing_metadata);
    w->details = grpc_empty_slice();
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    GBytes *packed = sw_protobuf_pack(&req.base);
    gsize len = 0;
    const void *data = g_bytes_get_data(packed, &len);
    grpc_slice slice = grpc_slice_from_copied_buffer(data, len);
    w->request = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    g_bytes_unref(packed);

    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = w->request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &w->initial_metadata;
    watch_batch(w, ops, 4, TAG_START);
    /* The status arrives whenever the stream ends; ask for it now. */
    grpc_op status_op;
    memset(&status_op, 0, sizeof status_op);
    status_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    status_op.data.recv_status_on_client.trailing_metadata = &w->trailing_metadata;
    status_op.data.recv_status_on_client.status = &w->status;
    status_op.data.recv_status_on_client.status_details = &w->details;
    watch_batch(w, &status_op, 1, TAG_STATUS);
    g_assert_true(watch_wait(w, TAG_START, WAIT_S));
    return w;
}

/* The next status streamed, or -1 once the stream has ended. */
static int watch_next(watch *w)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &w->message;
    w->message = NULL;
    watch_batch(w, &op, 1, TAG_MESSAGE);
    g_assert_true(watch_wait(w, TAG_MESSAGE, WAIT_S));
    if (w->message == NULL)
        return -1;
    GBytes *bytes = sw_byte_buffer_to_bytes(w->message);
    grpc_byte_buffer_destroy(w->message);
    w->message = NULL;
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(bytes, &len);
    Grpc__Health__V1__HealthCheckResponse *resp = grpc__health__v1__health_check_response__unpack(NULL, len, data);
    g_assert_nonnull(resp);
    int status = resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    g_bytes_unref(bytes);
    return status;
}

/* Nothing more is streamed within `timeout_ms`: a message that should not
 * come would have come by then. Leaves the receive pending. */
static gboolean watch_quiet(watch *w, int timeout_ms)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &w->message;
    w->message = NULL;
    watch_batch(w, &op, 1, TAG_MESSAGE);
    return !watch_wait_until(
        w, TAG_MESSAGE, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN)));
}

/* The status the stream ended with, and its details in `details`. */
static grpc_status_code watch_status(watch *w, char **details)
{
    g_assert_true(watch_wait(w, TAG_STATUS, WAIT_S));
    *details = grpc_slice_to_c_string(w->details);
    return w->status;
}

static void watch_free(watch *w)
{
    /* Every batch must have completed before the queue goes. */
    grpc_call_cancel(w->call, NULL);
    for (int t = 0; t < N_TAGS; t++)
        g_assert_true(watch_wait(w, t, WAIT_S));
    if (w->message)
        grpc_byte_buffer_destroy(w->message);
    grpc_call_unref(w->call);
    grpc_byte_buffer_destroy(w->request);
    grpc_metadata_array_destroy(&w->initial_metadata);
    grpc_metadata_array_destroy(&w->trailing_metadata);
    grpc_slice_unref(w->details);
    grpc_channel_destroy(w->channel);
    grpc_completion_queue_shutdown(w->cq);
    while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(w->cq);
    g_free(w);
}

static void assert_ended(watch *w, grpc_status_code code, const char *substring)
{
    char *details = NULL;
    grpc_status_code status = watch_status(w, &details);
    if ((int)status != (int)code || (substring && strstr(details, substring) == NULL))
        g_error("the watch ended %d '%s', expected %d '%s'", status, details, code, substring ? substring : "");
    gpr_free(details);
}

static void test_watch_follows_serving(void)
{
    stage_server *s = serve_predictor(FALSE);
    watch *all = watch_start(s->target, "");
    watch *oip = watch_start(s->target, SW_OIP_SERVICE);
    watch *unknown = watch_start(s->target, "inference.Other");
    /* The current status first. */
    g_assert_cmpint(watch_next(all), ==, NOT_SERVING);
    g_assert_cmpint(watch_next(oip), ==, NOT_SERVING);
    g_assert_cmpint(watch_next(unknown), ==, SERVICE_UNKNOWN);

    sw_oip_service_set_serving(s->oip, TRUE);
    g_assert_cmpint(watch_next(all), ==, SERVING);
    g_assert_cmpint(watch_next(oip), ==, SERVING);
    /* Saying the same again streams nothing new: the next message is the
     * next change. */
    sw_oip_service_set_serving(s->oip, TRUE);
    sw_oip_service_set_serving(s->oip, FALSE);
    g_assert_cmpint(watch_next(all), ==, NOT_SERVING);
    g_assert_cmpint(watch_next(oip), ==, NOT_SERVING);

    /* A watch started now starts from now. */
    sw_oip_service_set_serving(s->oip, TRUE);
    watch *late = watch_start(s->target, "");
    g_assert_cmpint(watch_next(late), ==, SERVING);
    g_assert_cmpint(watch_next(all), ==, SERVING);
    g_assert_cmpint(watch_next(oip), ==, SERVING);

    /* An unknown service never changes. */
    g_assert_true(watch_quiet(unknown, 50));

    sw_oip_service_end_watches(s->oip);
    g_assert_cmpint(watch_next(all), ==, -1);
    g_assert_cmpint(watch_next(oip), ==, -1);
    g_assert_cmpint(watch_next(late), ==, -1);
    assert_ended(all, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
    assert_ended(oip, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
    assert_ended(late, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
    assert_ended(unknown, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
    /* Ended streams hear nothing more, and ending them twice is harmless. */
    sw_oip_service_set_serving(s->oip, FALSE);
    sw_oip_service_end_watches(s->oip);

    watch_free(all);
    watch_free(oip);
    watch_free(late);
    watch_free(unknown);
    stage_server_stop(s);
}

/* A watch the client cancels ends on the server too: a drain does not
 * wait for it, and later changes do not go to it. */
static void test_cancelled_watch_ends(void)
{
    stage_server *s = serve_predictor(FALSE);
    watch *w = watch_start(s->target, "");
    g_assert_cmpint(watch_next(w), ==, NOT_SERVING);
    grpc_call_cancel(w->call, NULL);
    assert_ended(w, GRPC_STATUS_CANCELLED, NULL);
    watch_free(w);
    sw_oip_service_set_serving(s->oip, TRUE);
    /* Without end_watches: only the cancellation can have ended it. */
    g_assert_false(sw_server_shutdown(s->server, 3000));
    s->shut_down = TRUE;
    stage_server_stop(s);
}

/* Without end_watches a drain waits for open watches until it times out
 * and cancels them; the service survives that too. */
static void test_drain_cancels_open_watches(void)
{
    stage_server *s = serve_predictor(FALSE);
    watch *w = watch_start(s->target, "");
    g_assert_cmpint(watch_next(w), ==, NOT_SERVING);
    g_assert_true(sw_server_shutdown(s->server, 100));
    g_assert_cmpint(watch_next(w), ==, -1);
    char *details = NULL;
    g_assert_cmpint(watch_status(w, &details), !=, GRPC_STATUS_OK);
    gpr_free(details);
    watch_free(w);
    /* The cancelled watch is gone: nothing is sent on a freed call. */
    sw_oip_service_set_serving(s->oip, TRUE);
    sw_oip_service_end_watches(s->oip);
    s->shut_down = TRUE;
    stage_server_stop(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/health/check-follows-serving", test_check_follows_serving);
    g_test_add_func("/health/health-is-open", test_health_is_open);
    g_test_add_func("/health/watch-follows-serving", test_watch_follows_serving);
    g_test_add_func("/health/cancelled-watch-ends", test_cancelled_watch_ends);
    g_test_add_func("/health/drain-cancels-open-watches", test_drain_cancels_open_watches);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
