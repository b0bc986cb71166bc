/* Server streaming, read with a raw gRPC C client (sw_channel is unary
 * only): messages arrive in order and then the status, whether sent from
 * the polling thread or a worker, and a client that cancels a stream makes
 * the server run the call's cancel callback. */
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdlib.h>

#include "byte_buffer.h"
#include "rpc_harness.h"

#define MAX_ITEMS 64

typedef struct ctx {
    counter entered;
    counter cancels;
    GMutex lock;
    GThread *thread;        /* where the last handler ran */
    GThread *cancel_thread; /* where the last cancel callback ran */
} ctx;

static void ctx_init(ctx *x)
{
    memset(x, 0, sizeof *x);
    counter_init(&x->entered);
    counter_init(&x->cancels);
    g_mutex_init(&x->lock);
}

static void ctx_clear(ctx *x)
{
    counter_clear(&x->entered);
    counter_clear(&x->cancels);
    g_mutex_clear(&x->lock);
}

static GThread *ctx_thread(ctx *x)
{
    g_mutex_lock(&x->lock);
    GThread *t = x->thread;
    g_mutex_unlock(&x->lock);
    return t;
}

static void send_item(sw_call *call, int i)
{
    char *name = g_strdup_printf("item-%d", i);
    Grpc__Health__V1__HealthCheckRequest item = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    item.service = name;
    sw_call_send(call, &item.base);
    g_free(name);
}

/* On a call that ends normally this must never run. */
static void count_cancel(sw_call *call, void *user_data)
{
    (void)call;
    ctx *x = user_data;
    counter_add(&x->cancels, 1);
}

/* The request "N" asks for N items then OK; "N:fail" for N items then
 * NOT_FOUND. */
static void stream_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->thread = g_thread_self();
    g_mutex_unlock(&x->lock);
    counter_add(&x->entered, 1);
    char *service = unpack_request(sw_call_request(call));
    int n = atoi(service);
    gboolean fail = g_str_has_suffix(service, ":fail");
    g_free(service);
    for (int i = 0; i < n; i++)
        send_item(call, i);
    if (fail)
        sw_call_finish(call, SW_CODE_NOT_FOUND, "no more items");
    else
        sw_call_finish(call, SW_CODE_OK, NULL);
}

/* The same from the polling thread, which may register a cancel callback. */
static void inline_stream_handler(sw_call *call, void *user_data)
{
    sw_call_on_cancel(call, count_cancel, user_data);
    stream_handler(call, user_data);
}

static void cancel_stream(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->cancel_thread = g_thread_self();
    g_mutex_unlock(&x->lock);
    g_assert_true(sw_call_is_cancelled(call));
    sw_call_finish(call, SW_CODE_CANCELLED, "the client went away");
    counter_add(&x->cancels, 1);
}

/* Sends one item and keeps the stream open until the client cancels. */
static void hold_stream_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->thread = g_thread_self();
    g_mutex_unlock(&x->lock);
    sw_call_on_cancel(call, cancel_stream, x);
    send_item(call, 0);
    counter_add(&x->entered, 1);
}

/* A plain gRPC client with a pluck queue, as any other gRPC user's. */
typedef struct raw_client {
    grpc_channel *channel;
    grpc_completion_queue *cq;
} raw_client;

static void raw_open(raw_client *rc, const sw_server *s)
{
    char *target = g_strdup_printf("127.0.0.1:%d", sw_server_port(s));
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    rc->channel = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    g_free(target);
    rc->cq = grpc_completion_queue_create_for_pluck(NULL);
}

static void raw_close(raw_client *rc)
{
    grpc_channel_destroy(rc->channel);
    grpc_completion_queue_shutdown(rc->cq);
    grpc_event ev = grpc_completion_queue_pluck(rc->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    g_assert_cmpint(ev.type, ==, GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(rc->cq);
}

static void raw_batch(raw_client *rc, grpc_call *call, const grpc_op *ops, size_t n, intptr_t tag)
{
    g_assert_cmpint(grpc_call_start_batch(call, ops, n, (void *)tag, NULL), ==, GRPC_CALL_OK);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(WAIT_US, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(rc->cq, (void *)tag, deadline, NULL);
    g_assert_cmpint(ev.type, ==, GRPC_OP_COMPLETE);
}

typedef struct stream_result {
    int n_items;
    char *items[MAX_ITEMS];
    grpc_status_code status;
    char *details;
} stream_result;

static void stream_result_clear(stream_result *r)
{
    for (int i = 0; i < r->n_items; i++)
        g_free(r->items[i]);
    g_free(r->details);
}

/* Calls the streaming `method` with a request for `service` and reads
 * every message and the status; after `cancel_after` messages (-1: never)
 * the client cancels instead of reading on. */
static void raw_stream(raw_client *rc, const char *method, const char *service, int cancel_after, stream_result *out)
{
    memset(out, 0, sizeof *out);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(WAIT_US, GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(rc->channel, NULL, GRPC_PROPAGATE_DEFAULTS, rc->cq,
                                               grpc_slice_from_static_string(method), NULL, deadline, NULL);
    g_assert_nonnull(call);
    GBytes *req = pack_request(service);
    gsize len = 0;
    const void *data = g_bytes_get_data(req, &len);
    grpc_slice slice = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    g_bytes_unref(req);
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);

    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    raw_batch(rc, call, ops, 4, 1);

    for (;;) {
        if (out->n_items == cancel_after)
            grpc_call_cancel(call, NULL);
        grpc_byte_buffer *message = NULL;
        grpc_op recv;
        memset(&recv, 0, sizeof recv);
        recv.op = GRPC_OP_RECV_MESSAGE;
        recv.data.recv_message.recv_message = &message;
        raw_batch(rc, call, &recv, 1, 2);
        if (message == NULL)
            break;
        GBytes *bytes = sw_byte_buffer_to_bytes(message);
        grpc_byte_buffer_destroy(message);
        g_assert_cmpint(out->n_items, <, MAX_ITEMS);
        out->items[out->n_items++] = unpack_request(bytes);
        g_bytes_unref(bytes);
    }

    grpc_slice details;
    grpc_op status;
    memset(&status, 0, sizeof status);
    status.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    status.data.recv_status_on_client.trailing_metadata = &trailing;
    status.data.recv_status_on_client.status = &out->status;
    status.data.recv_status_on_client.status_details = &details;
    raw_batch(rc, call, &status, 1, 3);
    char *text = grpc_slice_to_c_string(details);
    out->details = g_strdup(text);
    gpr_free(text);
    grpc_slice_unref(details);

    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_byte_buffer_destroy(request);
    grpc_call_unref(call);
}

static void expect_items(const stream_result *r, int n)
{
    g_assert_cmpint(r->n_items, ==, n);
    for (int i = 0; i < n; i++) {
        char *want = g_strdup_printf("item-%d", i);
        g_assert_cmpstr(r->items[i], ==, want);
        g_free(want);
    }
}

static void test_messages_then_status(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Stream/Inline",
         .dispatch = SW_DISPATCH_INLINE,
         .handler = inline_stream_handler,
         .user_data = &x},
        {.path = "/test.Stream/Worker", .dispatch = SW_DISPATCH_WORKER, .handler = stream_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    raw_client rc;
    raw_open(&rc, s);

    stream_result r;
    raw_stream(&rc, "/test.Stream/Inline", "3", -1, &r);
    expect_items(&r, 3);
    g_assert_cmpint(r.status, ==, GRPC_STATUS_OK);
    stream_result_clear(&r);
    GThread *poller = ctx_thread(&x);

    /* No message at all: the status alone. */
    raw_stream(&rc, "/test.Stream/Inline", "0:fail", -1, &r);
    expect_items(&r, 0);
    g_assert_cmpint(r.status, ==, GRPC_STATUS_NOT_FOUND);
    g_assert_cmpstr(r.details, ==, "no more items");
    stream_result_clear(&r);

    /* From a worker, faster than they go out: they queue and keep their
     * order, and the status waits for the last. */
    raw_stream(&rc, "/test.Stream/Worker", "50:fail", -1, &r);
    g_assert_true(ctx_thread(&x) != poller);
    expect_items(&r, 50);
    g_assert_cmpint(r.status, ==, GRPC_STATUS_NOT_FOUND);
    g_assert_cmpstr(r.details, ==, "no more items");
    stream_result_clear(&r);
    raw_stream(&rc, "/test.Stream/Worker", "5", -1, &r);
    expect_items(&r, 5);
    g_assert_cmpint(r.status, ==, GRPC_STATUS_OK);
    stream_result_clear(&r);

    raw_close(&rc);
    harness_server_stop(s);
    /* Every call's close is reported by now: none was a cancellation. */
    g_assert_cmpint(counter_get(&x.cancels), ==, 0);
    g_assert_cmpint(counter_get(&x.entered), ==, 4);
    ctx_clear(&x);
}

static void test_client_cancel_runs_on_cancel(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Stream/Hold", .dispatch = SW_DISPATCH_INLINE, .handler = hold_stream_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    raw_client rc;
    raw_open(&rc, s);

    stream_result r;
    raw_stream(&rc, "/test.Stream/Hold", "", 1, &r);
    expect_items(&r, 1);
    g_assert_cmpint(r.status, ==, GRPC_STATUS_CANCELLED);
    stream_result_clear(&r);
    counter_wait(&x.cancels, 1);
    g_mutex_lock(&x.lock);
    g_assert_true(x.cancel_thread == x.thread);
    g_mutex_unlock(&x.lock);

    raw_close(&rc);
    harness_server_stop(s);
    g_assert_cmpint(counter_get(&x.cancels), ==, 1);
    ctx_clear(&x);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/stream/messages-then-status", test_messages_then_status);
    g_test_add_func("/rpc/stream/client-cancel-runs-on-cancel", test_client_cancel_runs_on_cancel);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
