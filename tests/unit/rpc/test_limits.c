/* What one client can make the server hold, through a real channel on
 * 127.0.0.1: a worker call over the in-flight limit is refused before its
 * request is read, requests past the memory budget are refused before a
 * handler sees them, inline methods take no large request, and one
 * connection carries at most the configured number of calls at once. */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpc_harness.h"

#define BLOCK_PATH "/test.Limits/Block"
#define INLINE_PATH "/test.Limits/Inline"

typedef struct ctx {
    counter entered; /* handlers that started */
    counter release; /* blocking handlers go on once it is above 0 */
} ctx;

static void ctx_init(ctx *x)
{
    counter_init(&x->entered);
    counter_init(&x->release);
}

static void ctx_clear(ctx *x)
{
    counter_clear(&x->entered);
    counter_clear(&x->release);
}

static void blocking_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    counter_add(&x->entered, 1);
    counter_wait(&x->release, 1);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

static void answering_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    counter_add(&x->entered, 1);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

/* A service name that makes a request of about `bytes` bytes. Newly
 * allocated. */
static char *name_of_size(size_t bytes)
{
    return g_strnfill(bytes, 'n');
}

/* Opens a call of `path` that sends its metadata but never its message,
 * and waits for its status: the code, or -1 when none came within
 * `wait_ms`. */
static int status_without_message(int port, const char *path, int wait_ms)
{
    raw_call r;
    raw_call_start(&r, port, path);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &r.initial;
    ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[2].data.recv_status_on_client.trailing_metadata = &r.trailing;
    ops[2].data.recv_status_on_client.status = &r.status;
    ops[2].data.recv_status_on_client.status_details = &r.details;
    static int tag;
    g_assert_cmpint(grpc_call_start_batch(r.call, ops, 3, &tag, NULL), ==, GRPC_CALL_OK);
    gpr_timespec wait = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(r.cq, &tag, wait, NULL);
    int code = ev.type == GRPC_OP_COMPLETE ? (int)r.status : -1;
    if (ev.type != GRPC_OP_COMPLETE) {
        grpc_call_cancel(r.call, NULL);
        grpc_completion_queue_pluck(r.cq, &tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    }
    raw_call_end(&r);
    return code;
}

static void test_refused_before_the_request_is_read(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = BLOCK_PATH, .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    o.max_in_flight = 1;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);
    counter done;
    counter_init(&done);
    async_result first = {.done = &done};
    call_check_async(ch, BLOCK_PATH, "first", CALL_TIMEOUT_US, &first);
    counter_wait(&x.entered, 1);

    /* Its message never comes, so only a refusal made before reading it
     * can answer. */
    g_assert_cmpint(status_without_message(sw_server_port(s), BLOCK_PATH, 5000), ==, SW_CODE_RESOURCE_EXHAUSTED);
    g_assert_cmpint(counter_get(&x.entered), ==, 1);

    counter_add(&x.release, 1);
    counter_wait(&done, 1);
    g_assert_cmpint(first.code, ==, SW_CODE_OK);
    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_memory_budget(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = BLOCK_PATH, .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    o.request_budget_bytes = 100000;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);
    char *big = name_of_size(60000);
    counter done;
    counter_init(&done);
    async_result first = {.done = &done};
    call_check_async(ch, BLOCK_PATH, big, CALL_TIMEOUT_US, &first);
    counter_wait(&x.entered, 1);

    /* A second one would hold 120,000 bytes: refused, its handler never
     * called; a small one still fits. */
    GError *error = NULL;
    g_assert_cmpint(call_check(ch, BLOCK_PATH, big, CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED);
    g_assert_nonnull(strstr(error->message, "memory budget"));
    g_assert_nonnull(strstr(error->message, "100000 bytes"));
    g_clear_error(&error);
    g_assert_cmpint(counter_get(&x.entered), ==, 1);
    async_result small = {.done = &done};
    call_check_async(ch, BLOCK_PATH, "small", CALL_TIMEOUT_US, &small);
    counter_wait(&x.entered, 2);

    /* What the answered calls held comes back. */
    counter_add(&x.release, 1);
    counter_wait(&done, 2);
    g_assert_cmpint(first.code, ==, SW_CODE_OK);
    g_assert_cmpint(small.code, ==, SW_CODE_OK);
    g_assert_cmpint(call_code(ch, BLOCK_PATH, big, CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_cmpint(call_code(ch, BLOCK_PATH, big, CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);

    g_free(big);
    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_inline_methods_take_no_large_request(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = INLINE_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = answering_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    char *fits = name_of_size(SW_INLINE_REQUEST_MAX_BYTES - 8);
    g_assert_cmpint(call_code(ch, INLINE_PATH, fits, CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_cmpint(counter_get(&x.entered), ==, 1);
    char *large = name_of_size(10 * 1024 * 1024);
    GError *error = NULL;
    g_assert_cmpint(call_check(ch, INLINE_PATH, large, CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED);
    g_assert_nonnull(strstr(error->message, "takes at most 65536"));
    g_clear_error(&error);
    g_assert_cmpint(counter_get(&x.entered), ==, 1);

    g_free(fits);
    g_free(large);
    sw_channel_free(ch);
    harness_server_stop(s);
    ctx_clear(&x);
}

static void test_streams_per_connection(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = BLOCK_PATH, .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    o.worker_threads = 4;
    o.max_streams_per_connection = 2;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);
    counter done;
    counter_init(&done);
    async_result results[3];
    for (int i = 0; i < 3; i++) {
        results[i] = (async_result){.done = &done};
        call_check_async(ch, BLOCK_PATH, "held", CALL_TIMEOUT_US, &results[i]);
    }
    counter_wait(&x.entered, 2);
    /* The third waits in the client for a stream, not in the server. */
    g_usleep(300 * 1000);
    g_assert_cmpint(counter_get(&x.entered), ==, 2);

    counter_add(&x.release, 1);
    counter_wait(&done, 3);
    g_assert_cmpint(counter_get(&x.entered), ==, 3);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(results[i].code, ==, SW_CODE_OK);
        g_free(results[i].message);
    }
    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/limits/refused-before-the-request-is-read", test_refused_before_the_request_is_read);
    g_test_add_func("/rpc/limits/memory-budget", test_memory_budget);
    g_test_add_func("/rpc/limits/inline-methods-take-no-large-request", test_inline_methods_take_no_large_request);
    g_test_add_func("/rpc/limits/streams-per-connection", test_streams_per_connection);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
