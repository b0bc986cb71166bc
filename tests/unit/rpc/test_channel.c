/* The channel: invalid options are refused, calls spread round robin over
 * the target's addresses and get past a dead one, freeing waits for calls
 * in flight, and a server and a channel can share one completion queue, a
 * handler forwarding its call to a second server on behalf of the first. */
#include "rpc_harness.h"

#define CHECK_PATH "/grpc.health.v1.Health/Check"

static void expect_invalid(const sw_channel_options *o)
{
    GError *error = NULL;
    g_assert_null(sw_channel_new(o, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_error_free(error);
}

static void test_invalid_options(void)
{
    sw_channel_options o = {.target = NULL};
    expect_invalid(&o);
    o.target = "";
    expect_invalid(&o);
    /* A client certificate needs its key, and the other way round. */
    o.target = "127.0.0.1:1";
    o.tls_cert_chain = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    expect_invalid(&o);
    o.tls_cert_chain = NULL;
    o.tls_private_key = "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n";
    expect_invalid(&o);
    /* Plaintext options are fine; nothing connects until a call. */
    o.tls_private_key = NULL;
    GError *error = NULL;
    sw_channel *ch = sw_channel_new(&o, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(sw_channel_target(ch), ==, "127.0.0.1:1");
    sw_channel_free(ch);
    sw_channel_free(NULL);
}

/* Which of two servers answered, and a gate for the slow method. */
typedef struct ctx {
    counter served[2];
    counter entered;
    counter release;
    counter ended;
    counter forwarded; /* forward callbacks run */
    GMutex lock;
    GThread *handler_thread; /* where the forwarding handler ran */
    GThread *done_thread;    /* where its channel callback ran */
    int64_t remaining_us;
    gboolean saw_cancelled;
    sw_channel *forward; /* the shared-queue channel the handlers forward on */
} ctx;

static void ctx_init(ctx *x)
{
    memset(x, 0, sizeof *x);
    counter_init(&x->served[0]);
    counter_init(&x->served[1]);
    counter_init(&x->entered);
    counter_init(&x->release);
    counter_init(&x->ended);
    counter_init(&x->forwarded);
    g_mutex_init(&x->lock);
}

static void ctx_clear(ctx *x)
{
    counter_clear(&x->served[0]);
    counter_clear(&x->served[1]);
    counter_clear(&x->entered);
    counter_clear(&x->release);
    counter_clear(&x->ended);
    counter_clear(&x->forwarded);
    g_mutex_clear(&x->lock);
}

/* The server a call reached, by which of the two counters it names. */
typedef struct replica {
    ctx *x;
    int index;
} replica;

static void replica_handler(sw_call *call, void *user_data)
{
    replica *r = user_data;
    counter_add(&r->x->served[r->index], 1);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

/* "down": NOT_SERVING; "missing": NOT_FOUND; else SERVING. */
static void check_handler(sw_call *call, void *user_data)
{
    (void)user_data;
    char *service = unpack_request(sw_call_request(call));
    if (strcmp(service, "missing") == 0)
        sw_call_fail(call, SW_CODE_NOT_FOUND, "no such service");
    else
        reply_status(call, strcmp(service, "down") == 0
                               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    g_free(service);
}

static void blocking_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    counter_add(&x->entered, 1);
    counter_wait(&x->release, 1);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

/* Works until its call is cancelled, noting the deadline it was given. */
static void until_cancelled_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->remaining_us = sw_call_remaining_us(call);
    g_mutex_unlock(&x->lock);
    counter_add(&x->entered, 1);
    gint64 until = g_get_monotonic_time() + WAIT_US;
    while (!sw_call_is_cancelled(call) && g_get_monotonic_time() < until)
        g_usleep(1000);
    g_mutex_lock(&x->lock);
    x->saw_cancelled = sw_call_is_cancelled(call);
    g_mutex_unlock(&x->lock);
    /* Past the deadline, say so: this status may reach the client before
     * its own deadline timer fires. */
    if (sw_call_remaining_us(call) <= 0)
        sw_call_fail(call, SW_CODE_DEADLINE_EXCEEDED, "out of time");
    else
        sw_call_fail(call, SW_CODE_CANCELLED, "gave up");
    counter_add(&x->ended, 1);
}

static sw_channel *channel_to_target(const char *target)
{
    sw_channel_options o = {.target = target};
    GError *error = NULL;
    sw_channel *ch = sw_channel_new(&o, &error);
    g_assert_no_error(error);
    return ch;
}

static void test_round_robin(void)
{
    ctx x;
    ctx_init(&x);
    replica r0 = {.x = &x, .index = 0}, r1 = {.x = &x, .index = 1};
    sw_method m0[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = replica_handler, .user_data = &r0}};
    sw_method m1[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = replica_handler, .user_data = &r1}};
    sw_server_options o = harness_server_options();
    sw_server *s0 = harness_server_start(&o, m0, 1);
    sw_server *s1 = harness_server_start(&o, m1, 1);
    char *target = g_strdup_printf("ipv4:127.0.0.1:%d,127.0.0.1:%d", sw_server_port(s0), sw_server_port(s1));
    sw_channel *ch = channel_to_target(target);

    /* Until both connections are up the first may take every call; once
     * they are, calls alternate. Bounded, so it cannot spin forever. */
    int calls = 0;
    while (calls < 200 && (counter_get(&x.served[0]) < 3 || counter_get(&x.served[1]) < 3)) {
        g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
        calls++;
    }
    g_assert_cmpint(counter_get(&x.served[0]), >=, 3);
    g_assert_cmpint(counter_get(&x.served[1]), >=, 3);

    sw_channel_free(ch);
    g_free(target);
    harness_server_stop(s0);
    harness_server_stop(s1);
    ctx_clear(&x);
}

static void test_dead_address(void)
{
    ctx x;
    ctx_init(&x);
    replica r0 = {.x = &x, .index = 0};
    sw_method m0[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = replica_handler, .user_data = &r0}};
    sw_server_options o = harness_server_options();
    /* A port that was just free and is closed again: nothing listens. */
    sw_server *gone = harness_server_start(&o, m0, 1);
    int dead_port = sw_server_port(gone);
    harness_server_stop(gone);
    sw_server *live = harness_server_start(&o, m0, 1);

    char *target = g_strdup_printf("127.0.0.1:%d", dead_port);
    sw_channel *ch = channel_to_target(target);
    /* Refused promptly, after the retries, not at the deadline. */
    g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_UNAVAILABLE);
    sw_channel_free(ch);
    g_free(target);

    /* With a live replica beside it every call gets through. */
    target = g_strdup_printf("ipv4:127.0.0.1:%d,127.0.0.1:%d", dead_port, sw_server_port(live));
    ch = channel_to_target(target);
    for (int i = 0; i < 10; i++)
        g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_cmpint(counter_get(&x.served[0]), ==, 10);
    sw_channel_free(ch);
    g_free(target);

    harness_server_stop(live);
    ctx_clear(&x);
}

static gpointer release_later(gpointer data)
{
    ctx *x = data;
    g_usleep(50 * 1000);
    counter_add(&x->release, 1);
    return NULL;
}

static void test_free_waits_for_calls(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Block/Block", .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    counter done;
    counter_init(&done);
    async_result r = {.done = &done};
    call_check_async(ch, "/test.Block/Block", "up", CALL_TIMEOUT_US, &r);
    counter_wait(&x.entered, 1);
    GThread *t = g_thread_new("test-release", release_later, &x);
    sw_channel_free(ch);
    /* The callback ran before the channel was gone. */
    g_assert_cmpint(counter_get(&done), ==, 1);
    g_assert_cmpint(r.code, ==, SW_CODE_OK);
    g_thread_join(t);

    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_method_is_copied(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = check_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    /* The caller's string may be gone as soon as the call has started. */
    counter done;
    counter_init(&done);
    async_result r = {.done = &done};
    char *method = g_strdup(CHECK_PATH);
    GBytes *req = pack_request("down");
    sw_channel_call_async(ch, method, req, CALL_TIMEOUT_US, NULL, async_result_done, &r);
    g_bytes_unref(req);
    memset(method, 'x', strlen(method));
    g_free(method);
    counter_wait(&done, 1);
    g_assert_cmpint(r.code, ==, SW_CODE_OK);
    g_assert_cmpint(r.status, ==, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);

    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

/* One forwarded call: the server call it answers and what to forward to. */
typedef struct forward {
    ctx *x;
    sw_call *call;
} forward;

static void forward_done(GBytes *response, const GError *error, void *user_data)
{
    forward *f = user_data;
    g_mutex_lock(&f->x->lock);
    f->x->done_thread = g_thread_self();
    g_mutex_unlock(&f->x->lock);
    if (response) {
        GPtrArray *parts = g_ptr_array_new();
        g_ptr_array_add(parts, response);
        sw_call_reply_parts(f->call, parts);
        g_ptr_array_unref(parts);
    } else {
        sw_call_fail_error(f->call, error);
    }
    counter_add(&f->x->forwarded, 1);
    g_free(f);
}

/* Forwards the request as it came to `path` on the back server, on behalf
 * of `call`, and answers `call` with what comes back. */
static void forward_handler(sw_call *call, void *user_data, const char *path)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->handler_thread = g_thread_self();
    g_mutex_unlock(&x->lock);
    forward *f = g_new0(forward, 1);
    f->x = x;
    f->call = call;
    GPtrArray *parts = g_ptr_array_new();
    g_ptr_array_add(parts, sw_call_request(call));
    int64_t left = sw_call_remaining_us(call);
    sw_channel_call_async_parts(x->forward, path, parts, left == G_MAXINT64 ? -1 : MAX(left, 0), NULL, call,
                                forward_done, f);
    g_ptr_array_unref(parts);
}

static void forward_check(sw_call *call, void *user_data)
{
    forward_handler(call, user_data, CHECK_PATH);
}

static void forward_slow(sw_call *call, void *user_data)
{
    forward_handler(call, user_data, "/test.Back/Slow");
}

/* Calls `path` on the server at `port` with a 30 s deadline and cancels
 * the call once `entered` reaches `n`; waits for its status. */
static void call_and_cancel(int port, const char *path, counter *entered, int n)
{
    raw_call r;
    raw_call_start(&r, port, path);
    GBytes *request = pack_request("up");
    gsize len = 0;
    const void *data = g_bytes_get_data(request, &len);
    grpc_slice slice = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *message = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_op ops[5];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = message;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &r.initial;
    ops[4].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[4].data.recv_status_on_client.trailing_metadata = &r.trailing;
    ops[4].data.recv_status_on_client.status = &r.status;
    ops[4].data.recv_status_on_client.status_details = &r.details;
    static int tag;
    g_assert_cmpint(grpc_call_start_batch(r.call, ops, 5, &tag, NULL), ==, GRPC_CALL_OK);
    counter_wait(entered, n);
    grpc_call_cancel(r.call, NULL);
    grpc_event ev = grpc_completion_queue_pluck(r.cq, &tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    g_assert_cmpint(ev.type, ==, GRPC_OP_COMPLETE);
    g_assert_cmpint(r.status, ==, GRPC_STATUS_CANCELLED);
    grpc_slice_unref(slice);
    grpc_byte_buffer_destroy(message);
    g_bytes_unref(request);
    raw_call_end(&r);
}

static void test_shared_queue_forwarding(void)
{
    ctx x;
    ctx_init(&x);
    sw_method back_methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = check_handler, .user_data = &x},
        {.path = "/test.Back/Slow",
         .dispatch = SW_DISPATCH_WORKER,
         .handler = until_cancelled_handler,
         .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    sw_server *back = harness_server_start(&o, back_methods, G_N_ELEMENTS(back_methods));

    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    x.forward = harness_channel_to(back, cq);
    sw_method front_methods[] = {
        {.path = "/test.Front/Check", .dispatch = SW_DISPATCH_INLINE, .handler = forward_check, .user_data = &x},
        {.path = "/test.Front/Slow", .dispatch = SW_DISPATCH_INLINE, .handler = forward_slow, .user_data = &x},
    };
    o.cq = cq;
    sw_server *front = harness_server_start(&o, front_methods, G_N_ELEMENTS(front_methods));
    sw_channel *ch = harness_channel_to(front, NULL);

    GError *error = NULL;
    g_assert_cmpint(call_check(ch, "/test.Front/Check", "down", CALL_TIMEOUT_US, NULL, &error), ==,
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    g_assert_no_error(error);
    /* The channel's completion ran on the front server's polling thread. */
    g_mutex_lock(&x.lock);
    g_assert_nonnull(x.handler_thread);
    g_assert_true(x.done_thread == x.handler_thread);
    g_mutex_unlock(&x.lock);
    g_assert_cmpint(call_check(ch, "/test.Front/Check", "missing", CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, SW_CODE_NOT_FOUND);
    g_assert_cmpstr(error->message, ==, "no such service");
    g_clear_error(&error);

    /* The forwarded call gets what is left of the client's deadline and is
     * cancelled with it. */
    g_assert_cmpint(call_code(ch, "/test.Front/Slow", "up", 100 * 1000, NULL), ==, SW_CODE_DEADLINE_EXCEEDED);
    counter_wait(&x.ended, 1);
    counter_wait(&x.forwarded, 3);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.remaining_us, >, 0);
    g_assert_cmpint(x.remaining_us, <=, WITH_SLACK(100 * 1000));
    g_assert_true(x.saw_cancelled);
    x.saw_cancelled = FALSE;
    g_mutex_unlock(&x.lock);

    /* A client that gives up cancels the forwarded call too, long before
     * either deadline (the back handler waits up to WAIT_US otherwise). */
    gint64 started = g_get_monotonic_time();
    call_and_cancel(sw_server_port(front), "/test.Front/Slow", &x.entered, 2);
    counter_wait(&x.ended, 2);
    counter_wait(&x.forwarded, 4);
    g_assert_cmpint(g_get_monotonic_time() - started, <, WAIT_US / 2);
    g_mutex_lock(&x.lock);
    g_assert_true(x.saw_cancelled);
    g_assert_cmpint(x.remaining_us, >, 20 * G_USEC_PER_SEC);
    g_mutex_unlock(&x.lock);

    /* The order the shared queue asks for: the front server's shutdown
     * stops its poller (and the queue) once every call is done, then the
     * channel, the server and the queue go. */
    sw_channel_free(ch);
    g_assert_false(sw_server_shutdown(front, 5000));
    sw_channel_free(x.forward);
    sw_server_free(front);
    grpc_completion_queue_destroy(cq);
    harness_server_stop(back);
    ctx_clear(&x);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/channel/invalid-options", test_invalid_options);
    g_test_add_func("/rpc/channel/round-robin", test_round_robin);
    g_test_add_func("/rpc/channel/dead-address", test_dead_address);
    g_test_add_func("/rpc/channel/free-waits-for-calls", test_free_waits_for_calls);
    g_test_add_func("/rpc/channel/method-is-copied", test_method_is_copied);
    g_test_add_func("/rpc/channel/shared-queue-forwarding", test_shared_queue_forwarding);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
