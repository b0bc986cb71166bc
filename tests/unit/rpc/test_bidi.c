/* Bidirectional streaming (sw_method.on_message), driven by a raw gRPC C
 * client: several messages on one stream, each answered in order by any
 * number of messages, until the client half-closes and the handler ends
 * with a status; a handler ending the stream early; a client cancelling
 * mid-stream; and a server shutting down while a stream waits for the
 * client's next message, which must end it at once instead of holding the
 * drain. */
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdlib.h>

#include "byte_buffer.h"
#include "rpc_harness.h"

#define BIDI_PATH "/test.Bidi/Chat"

typedef struct ctx {
    counter messages;    /* messages the handler was given */
    counter half_closes; /* NULL messages */
    counter cancels;     /* on_cancel callbacks */
} ctx;

static void count_cancel(sw_call *call, void *user_data)
{
    (void)call;
    counter_add(&((ctx *)user_data)->cancels, 1);
}

static void send_text(sw_call *call, const char *text)
{
    Grpc__Health__V1__HealthCheckRequest item = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    item.service = (char *)text;
    sw_call_send(call, &item.base);
}

/* "TAG*N" answers N messages "TAG-0".."TAG-(N-1)"; "end" ends the stream
 * with NOT_FOUND; the half-close ends it with OK. */
static void on_message(sw_call *call, GBytes *message, void *user_data)
{
    ctx *x = user_data;
    if (message == NULL) {
        counter_add(&x->half_closes, 1);
        sw_call_finish(call, SW_CODE_OK, NULL);
        return;
    }
    if (counter_get(&x->messages) == 0)
        sw_call_on_cancel(call, count_cancel, x);
    counter_add(&x->messages, 1);
    char *text = unpack_request(message);
    if (strcmp(text, "end") == 0) {
        sw_call_finish(call, SW_CODE_NOT_FOUND, "ended by the handler");
    } else {
        char **parts = g_strsplit(text, "*", 2);
        int n = parts[1] ? atoi(parts[1]) : 0;
        for (int i = 0; i < n; i++) {
            char *item = g_strdup_printf("%s-%d", parts[0], i);
            send_text(call, item);
            g_free(item);
        }
        g_strfreev(parts);
    }
    g_free(text);
}

typedef struct bidi {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array initial, trailing;
    gboolean got_initial;
} bidi;

static void batch(bidi *b, grpc_op *ops, size_t n, intptr_t tag)
{
    g_assert_cmpint(grpc_call_start_batch(b->call, ops, n, (void *)tag, NULL), ==, GRPC_CALL_OK);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(WAIT_US, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(b->cq, (void *)tag, deadline, NULL);
    g_assert_cmpint(ev.type, ==, GRPC_OP_COMPLETE);
}

static void bidi_open(bidi *b, const sw_server *s)
{
    memset(b, 0, sizeof *b);
    char *target = g_strdup_printf("127.0.0.1:%d", sw_server_port(s));
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    b->channel = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    g_free(target);
    b->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&b->initial);
    grpc_metadata_array_init(&b->trailing);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(WAIT_US, GPR_TIMESPAN));
    b->call = grpc_channel_create_call(b->channel, NULL, GRPC_PROPAGATE_DEFAULTS, b->cq,
                                       grpc_slice_from_static_string(BIDI_PATH), NULL, deadline, NULL);
    g_assert_nonnull(b->call);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    batch(b, &op, 1, 1);
}

static void bidi_send(bidi *b, const char *text)
{
    GBytes *req = pack_request(text);
    gsize len = 0;
    const void *data = g_bytes_get_data(req, &len);
    grpc_slice slice = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    g_bytes_unref(req);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    batch(b, &op, 1, 2);
    grpc_byte_buffer_destroy(bb);
}

static void bidi_half_close(bidi *b)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    batch(b, &op, 1, 3);
}

/* The next message's text, or NULL at the end of the stream. */
static char *bidi_recv(bidi *b)
{
    grpc_byte_buffer *message = NULL;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!b->got_initial) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &b->initial;
        b->got_initial = TRUE;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &message;
    batch(b, ops, n, 4);
    if (message == NULL)
        return NULL;
    GBytes *bytes = sw_byte_buffer_to_bytes(message);
    grpc_byte_buffer_destroy(message);
    char *text = unpack_request(bytes);
    g_bytes_unref(bytes);
    return text;
}

static void expect_recv(bidi *b, const char *want)
{
    char *got = bidi_recv(b);
    g_assert_cmpstr(got, ==, want);
    g_free(got);
}

/* The status, after which the call is released; `details` (may be NULL)
 * gets its text. */
static grpc_status_code bidi_close(bidi *b, char **details)
{
    grpc_status_code code;
    grpc_slice text;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &b->trailing;
    op.data.recv_status_on_client.status = &code;
    op.data.recv_status_on_client.status_details = &text;
    batch(b, &op, 1, 5);
    if (details) {
        char *c = grpc_slice_to_c_string(text);
        *details = g_strdup(c);
        gpr_free(c);
    }
    grpc_slice_unref(text);
    grpc_metadata_array_destroy(&b->initial);
    grpc_metadata_array_destroy(&b->trailing);
    grpc_call_unref(b->call);
    grpc_channel_destroy(b->channel);
    grpc_completion_queue_shutdown(b->cq);
    grpc_event ev = grpc_completion_queue_pluck(b->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    g_assert_cmpint(ev.type, ==, GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(b->cq);
    return code;
}

static sw_server *start(ctx *x)
{
    memset(x, 0, sizeof *x);
    counter_init(&x->messages);
    counter_init(&x->half_closes);
    counter_init(&x->cancels);
    sw_method methods[] = {
        {.path = BIDI_PATH, .dispatch = SW_DISPATCH_INLINE, .on_message = on_message, .user_data = x}};
    sw_server_options o = harness_server_options();
    return harness_server_start(&o, methods, G_N_ELEMENTS(methods));
}

static void ctx_clear(ctx *x)
{
    counter_clear(&x->messages);
    counter_clear(&x->half_closes);
    counter_clear(&x->cancels);
}

static void test_messages_until_half_close(void)
{
    ctx x;
    sw_server *s = start(&x);
    bidi b;
    bidi_open(&b, s);
    bidi_send(&b, "a*1");
    expect_recv(&b, "a-0");
    bidi_send(&b, "b*2");
    expect_recv(&b, "b-0");
    expect_recv(&b, "b-1");
    /* No answer to this one; then many, sent before the client reads any:
     * they stay in order and the next request is still read after them. */
    bidi_send(&b, "c*0");
    bidi_send(&b, "d*30");
    bidi_send(&b, "e*1");
    for (int i = 0; i < 30; i++) {
        char *want = g_strdup_printf("d-%d", i);
        expect_recv(&b, want);
        g_free(want);
    }
    expect_recv(&b, "e-0");
    g_assert_cmpint(counter_get(&x.half_closes), ==, 0);
    bidi_half_close(&b);
    g_assert_null(bidi_recv(&b));
    g_assert_cmpint(bidi_close(&b, NULL), ==, GRPC_STATUS_OK);
    g_assert_cmpint(counter_get(&x.messages), ==, 5);
    g_assert_cmpint(counter_get(&x.half_closes), ==, 1);

    /* A stream closed before any message: the handler still ends it. */
    bidi_open(&b, s);
    bidi_half_close(&b);
    g_assert_null(bidi_recv(&b));
    g_assert_cmpint(bidi_close(&b, NULL), ==, GRPC_STATUS_OK);
    g_assert_cmpint(counter_get(&x.half_closes), ==, 2);

    harness_server_stop(s);
    g_assert_cmpint(counter_get(&x.cancels), ==, 0);
    ctx_clear(&x);
}

static void test_handler_ends_stream(void)
{
    ctx x;
    sw_server *s = start(&x);
    bidi b;
    bidi_open(&b, s);
    bidi_send(&b, "a*1");
    expect_recv(&b, "a-0");
    bidi_send(&b, "end");
    g_assert_null(bidi_recv(&b));
    char *details = NULL;
    g_assert_cmpint(bidi_close(&b, &details), ==, GRPC_STATUS_NOT_FOUND);
    g_assert_cmpstr(details, ==, "ended by the handler");
    g_free(details);
    harness_server_stop(s);
    g_assert_cmpint(counter_get(&x.messages), ==, 2);
    g_assert_cmpint(counter_get(&x.half_closes), ==, 0);
    ctx_clear(&x);
}

static void test_client_cancel(void)
{
    ctx x;
    sw_server *s = start(&x);
    bidi b;
    bidi_open(&b, s);
    bidi_send(&b, "a*1");
    expect_recv(&b, "a-0");
    grpc_call_cancel(b.call, NULL);
    g_assert_cmpint(bidi_close(&b, NULL), ==, GRPC_STATUS_CANCELLED);
    counter_wait(&x.cancels, 1);
    /* The server ended the call itself (the drain finds nothing left), and
     * the handler never saw a half-close. */
    harness_server_stop(s);
    g_assert_cmpint(counter_get(&x.half_closes), ==, 0);
    g_assert_cmpint(counter_get(&x.messages), ==, 1);
    ctx_clear(&x);
}

static void test_shutdown_ends_idle_stream(void)
{
    ctx x;
    sw_server *s = start(&x);
    bidi b;
    bidi_open(&b, s);
    bidi_send(&b, "a*2");
    expect_recv(&b, "a-0");
    expect_recv(&b, "a-1");
    /* The stream waits for the client's next message, which never comes. */
    gint64 t0 = g_get_monotonic_time();
    g_assert_false(sw_server_shutdown(s, 5000));
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
    g_assert_null(bidi_recv(&b));
    char *details = NULL;
    g_assert_cmpint(bidi_close(&b, &details), ==, GRPC_STATUS_UNAVAILABLE);
    g_assert_cmpstr(details, ==, "the server is shutting down");
    g_free(details);
    sw_server_free(s);
    g_assert_cmpint(counter_get(&x.half_closes), ==, 0);
    ctx_clear(&x);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/bidi/messages-until-half-close", test_messages_until_half_close);
    g_test_add_func("/rpc/bidi/handler-ends-stream", test_handler_ends_stream);
    g_test_add_func("/rpc/bidi/client-cancel", test_client_cancel);
    g_test_add_func("/rpc/bidi/shutdown-ends-idle-stream", test_shutdown_ends_idle_stream);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
