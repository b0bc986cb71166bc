/* The server's unary contracts, through a real channel on 127.0.0.1: replies
 * and failures arrive as sent, unknown methods are refused at once, handlers
 * run where their dispatch says, admission and the in-flight limit refuse
 * with their codes, deadlines and cancellation reach the handler, and
 * shutdown drains or cancels. */
#include "rpc_harness.h"

#define CHECK_PATH "/grpc.health.v1.Health/Check"

/* What the handlers saw, for the test to check once the call is over. */
typedef struct ctx {
    counter entered;  /* handlers that started */
    counter release;  /* blocking handlers go on once it is above 0 */
    counter ended;    /* calls the handlers (or their cancel callbacks) ended */
    counter cancels;  /* cancel callbacks run */
    counter refusals; /* on_refused calls; the codes are in `refused` */
    GMutex lock;
    GThread *thread;        /* where the last handler ran */
    GThread *cancel_thread; /* where the last cancel callback ran */
    int64_t remaining_us;
    gboolean saw_cancelled;
    char *request_id; /* x-request-id of the last call (NULL: none sent) */
    int admit_calls;
    int refused[8];
    int n_refused;
} ctx;

static void ctx_init(ctx *x)
{
    memset(x, 0, sizeof *x);
    counter_init(&x->entered);
    counter_init(&x->release);
    counter_init(&x->ended);
    counter_init(&x->cancels);
    counter_init(&x->refusals);
    g_mutex_init(&x->lock);
}

static void ctx_clear(ctx *x)
{
    counter_clear(&x->entered);
    counter_clear(&x->release);
    counter_clear(&x->ended);
    counter_clear(&x->cancels);
    counter_clear(&x->refusals);
    g_mutex_clear(&x->lock);
    g_free(x->request_id);
}

static GThread *ctx_thread(ctx *x)
{
    g_mutex_lock(&x->lock);
    GThread *t = x->thread;
    g_mutex_unlock(&x->lock);
    return t;
}

static void record_thread(ctx *x)
{
    g_mutex_lock(&x->lock);
    x->thread = g_thread_self();
    g_mutex_unlock(&x->lock);
}

/* Does what the requested service name says: fail in one of the ways a
 * handler can, reply in parts, or reply SERVING ("down": NOT_SERVING). */
static void scripted_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    record_thread(x);
    char *service = unpack_request(sw_call_request(call));
    char *request_id = sw_call_metadata(call, "x-request-id");
    g_mutex_lock(&x->lock);
    g_free(x->request_id);
    x->request_id = request_id;
    g_mutex_unlock(&x->lock);
    if (strcmp(service, "not-found") == 0) {
        sw_call_fail(call, SW_CODE_NOT_FOUND, "no model named not-found");
    } else if (strcmp(service, "sw-error") == 0) {
        GError *error = g_error_new(SW_ERROR, SW_CODE_FAILED_PRECONDITION, "not ready yet");
        sw_call_fail_error(call, error);
        g_error_free(error);
    } else if (strcmp(service, "other-error") == 0) {
        /* A failure with no status of its own is the server's. */
        GError *error = g_error_new(G_FILE_ERROR, G_FILE_ERROR_NOENT, "no such file");
        sw_call_fail_error(call, error);
        g_error_free(error);
    } else if (strcmp(service, "parts") == 0) {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
        guint8 packed[16];
        size_t len = grpc__health__v1__health_check_response__pack(&resp, packed);
        g_assert_cmpuint(len, ==, 2);
        GPtrArray *parts = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
        g_ptr_array_add(parts, g_bytes_new(packed, 1));
        g_ptr_array_add(parts, g_bytes_new(NULL, 0));
        g_ptr_array_add(parts, g_bytes_new(packed + 1, len - 1));
        sw_call_reply_parts(call, parts);
        g_ptr_array_unref(parts);
    } else {
        reply_status(call, strcmp(service, "down") == 0
                               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    }
    g_free(service);
    counter_add(&x->ended, 1);
}

/* Holds its worker until the test releases it. */
static void blocking_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    record_thread(x);
    counter_add(&x->entered, 1);
    counter_wait(&x->release, 1);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    counter_add(&x->ended, 1);
}

/* Works until the call is cancelled (or the test releases it), as an
 * inference that checks between steps would. */
static void until_cancelled_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->remaining_us = sw_call_remaining_us(call);
    g_mutex_unlock(&x->lock);
    counter_add(&x->entered, 1);
    gint64 until = g_get_monotonic_time() + WAIT_US;
    while (!sw_call_is_cancelled(call) && counter_get(&x->release) == 0 && g_get_monotonic_time() < until)
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

static void remaining_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->remaining_us = sw_call_remaining_us(call);
    g_mutex_unlock(&x->lock);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

static void cancelled(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->cancel_thread = g_thread_self();
    x->saw_cancelled = sw_call_is_cancelled(call);
    g_mutex_unlock(&x->lock);
    counter_add(&x->cancels, 1);
    sw_call_fail(call, SW_CODE_CANCELLED, "cancelled");
    counter_add(&x->ended, 1);
}

/* Leaves the call open and ends it only when it is cancelled. */
static void hold_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    record_thread(x);
    sw_call_on_cancel(call, cancelled, x);
    counter_add(&x->entered, 1);
}

static gboolean admit_token(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    x->admit_calls++;
    g_mutex_unlock(&x->lock);
    char *token = sw_call_metadata(call, "authorization");
    gboolean ok = g_strcmp0(token, "Bearer good") == 0;
    g_free(token);
    if (!ok)
        sw_call_fail(call, SW_CODE_UNAUTHENTICATED, "bad or missing token");
    return ok;
}

static void record_refused(int code, void *user_data)
{
    ctx *x = user_data;
    g_mutex_lock(&x->lock);
    g_assert_cmpint(x->n_refused, <, (int)G_N_ELEMENTS(x->refused));
    x->refused[x->n_refused++] = code;
    g_mutex_unlock(&x->lock);
    counter_add(&x->refusals, 1);
}

static void test_unary_reply(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    GError *error = NULL;
    g_assert_cmpint(call_check(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL, &error), ==,
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    g_assert_no_error(error);
    /* The reply answers this request, not a canned one. */
    g_assert_cmpint(call_check(ch, CHECK_PATH, "down", -1, NULL, &error), ==,
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    g_assert_no_error(error);
    /* A reply sent in parts arrives as one message. */
    g_assert_cmpint(call_check(ch, CHECK_PATH, "parts", CALL_TIMEOUT_US, NULL, &error), ==,
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
    g_assert_no_error(error);

    /* A burst wider than the request slots kept posted: each call is
     * answered on the channel's own thread. */
    enum { N = 40 };
    counter done;
    counter_init(&done);
    async_result results[N];
    memset(results, 0, sizeof results);
    for (int i = 0; i < N; i++) {
        results[i].done = &done;
        call_check_async(ch, CHECK_PATH, i % 2 ? "down" : "up", CALL_TIMEOUT_US, &results[i]);
    }
    counter_wait(&done, N);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(results[i].code, ==, SW_CODE_OK);
        g_assert_cmpint(results[i].status, ==,
                        i % 2 ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                              : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
        g_assert_true(results[i].thread != g_thread_self());
    }
    /* A handler counts its call after ending it: wait, then count. */
    counter_wait(&x.ended, N + 3);
    g_assert_cmpint(counter_get(&x.ended), ==, N + 3);

    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void expect_failure(sw_channel *ch, const char *service, int code, const char *message)
{
    GError *error = NULL;
    g_assert_cmpint(call_check(ch, CHECK_PATH, service, CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, code);
    g_assert_cmpstr(error->message, ==, message);
    g_error_free(error);
}

static void test_fail_code_and_message(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_WORKER, .handler = scripted_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    expect_failure(ch, "not-found", SW_CODE_NOT_FOUND, "no model named not-found");
    expect_failure(ch, "sw-error", SW_CODE_FAILED_PRECONDITION, "not ready yet");
    expect_failure(ch, "other-error", SW_CODE_INTERNAL, "no such file");

    /* The asynchronous form reports the same. */
    counter done;
    counter_init(&done);
    async_result r = {.done = &done};
    call_check_async(ch, CHECK_PATH, "not-found", CALL_TIMEOUT_US, &r);
    counter_wait(&done, 1);
    g_assert_cmpint(r.code, ==, SW_CODE_NOT_FOUND);
    g_assert_cmpstr(r.message, ==, "no model named not-found");
    g_free(r.message);

    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_unregistered_method_is_unimplemented(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    /* Promptly: long before the deadline, which would say DEADLINE_EXCEEDED. */
    gint64 start = g_get_monotonic_time();
    GError *error = NULL;
    g_assert_cmpint(call_check(ch, "/grpc.health.v1.Health/Nope", "up", CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, SW_CODE_UNIMPLEMENTED);
    g_assert_nonnull(strstr(error->message, "/grpc.health.v1.Health/Nope"));
    g_clear_error(&error);
    g_assert_cmpint(g_get_monotonic_time() - start, <, CALL_TIMEOUT_US / 2);

    /* More at once than the slots posted for unknown methods. */
    call_many_expecting(ch, "/other.Service/Method", "up", 8, SW_CODE_UNIMPLEMENTED);
    /* The registered method is still served. */
    g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    counter_wait(&x.ended, 1);
    g_assert_cmpint(counter_get(&x.ended), ==, 1);

    sw_channel_free(ch);
    harness_server_stop(s);
    ctx_clear(&x);
}

static void test_dispatch_threads(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Dispatch/Inline", .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x},
        {.path = "/test.Dispatch/Worker", .dispatch = SW_DISPATCH_WORKER, .handler = scripted_handler, .user_data = &x},
        {.path = "/test.Dispatch/Small",
         .dispatch = SW_DISPATCH_WORKER,
         .handler = scripted_handler,
         .user_data = &x,
         .inline_max_bytes = 16},
    };
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    g_assert_cmpint(call_code(ch, "/test.Dispatch/Inline", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    GThread *poller = ctx_thread(&x);
    g_assert_nonnull(poller);
    g_assert_true(poller != g_thread_self());

    g_assert_cmpint(call_code(ch, "/test.Dispatch/Worker", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    GThread *worker = ctx_thread(&x);
    g_assert_true(worker != poller);
    g_assert_true(worker != g_thread_self());

    /* A request within inline_max_bytes saves the hand-off; a larger one
     * still goes to a worker. */
    g_assert_cmpint(call_code(ch, "/test.Dispatch/Small", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_true(ctx_thread(&x) == poller);
    g_assert_cmpint(call_code(ch, "/test.Dispatch/Small", "", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_true(ctx_thread(&x) == poller);
    char *big = g_strnfill(64, 'x');
    g_assert_cmpint(call_code(ch, "/test.Dispatch/Small", big, CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_free(big);
    g_assert_true(ctx_thread(&x) != poller);
    g_assert_true(ctx_thread(&x) != g_thread_self());

    sw_channel_free(ch);
    harness_server_stop(s);
    ctx_clear(&x);
}

/* Where a resumed call ran, and where its handler first ran. */
static void resumed_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    record_thread(x);
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    counter_add(&x->ended, 1);
}

/* "more" asks for the rest of the work on a worker, as a request found too
 * large to run inline once read would (a handler already on a worker just
 * goes on). */
static void maybe_resume_handler(sw_call *call, void *user_data)
{
    ctx *x = user_data;
    char *service = unpack_request(sw_call_request(call));
    gboolean more = strcmp(service, "more") == 0;
    g_free(service);
    g_mutex_lock(&x->lock);
    x->cancel_thread = g_thread_self(); /* reused: where the handler began */
    g_mutex_unlock(&x->lock);
    if (more && sw_call_on_polling_thread(call)) {
        sw_call_continue_on_worker(call, resumed_handler, x);
        return;
    }
    resumed_handler(call, x);
}

static void test_inline_when_idle(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Idle/Inline", .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x},
        {.path = "/test.Idle/Block", .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x},
        {.path = "/test.Idle/Run",
         .dispatch = SW_DISPATCH_WORKER,
         .handler = maybe_resume_handler,
         .user_data = &x,
         .inline_max_bytes = 16,
         .inline_when_idle = TRUE},
    };
    sw_server_options o = harness_server_options();
    o.worker_threads = 2;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);
    g_assert_cmpint(call_code(ch, "/test.Idle/Inline", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    GThread *poller = ctx_thread(&x);

    /* Idle: runs to completion on the polling thread. */
    g_assert_cmpint(call_code(ch, "/test.Idle/Run", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_true(ctx_thread(&x) == poller);

    /* Asked to go on elsewhere: begins on the polling thread, ends on a
     * worker. */
    g_assert_cmpint(call_code(ch, "/test.Idle/Run", "more", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_mutex_lock(&x.lock);
    g_assert_true(x.cancel_thread == poller);
    g_mutex_unlock(&x.lock);
    g_assert_true(ctx_thread(&x) != poller);

    /* A worker busy: a small call waits for the polling thread to have no
     * event to handle, and runs there, rather than go to the other worker
     * (one such call at a time: the next ones go to workers). */
    counter done;
    counter_init(&done);
    async_result blocked = {.done = &done};
    call_check_async(ch, "/test.Idle/Block", "up", CALL_TIMEOUT_US, &blocked);
    counter_wait(&x.entered, 1);
    g_assert_true(ctx_thread(&x) != poller);
    g_assert_cmpint(call_code(ch, "/test.Idle/Run", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_true(ctx_thread(&x) == poller);
    counter_add(&x.release, 1);
    counter_wait(&done, 1);
    g_assert_cmpint(blocked.code, ==, SW_CODE_OK);
    g_free(blocked.message);

    /* Many at once, wherever each runs, all answered. */
    enum { N = 32 };
    async_result results[N];
    memset(results, 0, sizeof results);
    for (int i = 0; i < N; i++) {
        results[i].done = &done;
        call_check_async(ch, "/test.Idle/Run", i % 4 ? "up" : "more", CALL_TIMEOUT_US, &results[i]);
    }
    counter_wait(&done, 1 + N);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(results[i].code, ==, SW_CODE_OK);
        g_free(results[i].message);
    }

    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

/* Calls a handler left for the polling thread (poll_work), answered there
 * a few at a time when no event waits. */
typedef struct deferred {
    GMutex lock;
    GQueue calls; /* sw_call*, waiting for poll_work_run */
    gint waiting;
    int runs;
    gboolean off_thread; /* some run or handler was not on the polling thread */
} deferred;

static void deferring_handler(sw_call *call, void *user_data)
{
    deferred *d = user_data;
    if (!sw_call_on_polling_thread(call))
        d->off_thread = TRUE;
    g_mutex_lock(&d->lock);
    g_queue_push_tail(&d->calls, call);
    g_atomic_int_inc(&d->waiting);
    g_mutex_unlock(&d->lock);
}

static gboolean deferred_pending(void *user_data)
{
    return g_atomic_int_get(&((deferred *)user_data)->waiting) > 0;
}

/* Answers up to three waiting calls. */
static void deferred_run(void *user_data)
{
    deferred *d = user_data;
    d->runs++;
    for (int i = 0; i < 3; i++) {
        g_mutex_lock(&d->lock);
        sw_call *call = g_queue_pop_head(&d->calls);
        if (call)
            g_atomic_int_add(&d->waiting, -1);
        g_mutex_unlock(&d->lock);
        if (call == NULL)
            break;
        if (!sw_call_on_polling_thread(call))
            d->off_thread = TRUE;
        reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    }
}

static void test_poll_work_answers_what_handlers_left(void)
{
    deferred d;
    memset(&d, 0, sizeof d);
    g_mutex_init(&d.lock);
    g_queue_init(&d.calls);
    sw_method methods[] = {
        {.path = "/test.Poll/Defer",
         .dispatch = SW_DISPATCH_WORKER,
         .handler = deferring_handler,
         .user_data = &d,
         .inline_max_bytes = 64},
    };
    sw_server_options o = harness_server_options();
    o.poll_work = (sw_poll_work){.pending = deferred_pending, .run = deferred_run, .user_data = &d};
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    g_assert_cmpint(call_code(ch, "/test.Poll/Defer", "one", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    enum { N = 40 };
    call_many_expecting(ch, "/test.Poll/Defer", "many", N, SW_CODE_OK);
    /* Each run answers three at most: 41 calls took 14 runs or more. */
    g_assert_cmpint(d.runs, >=, (1 + N + 2) / 3);
    g_assert_false(d.off_thread);
    g_assert_cmpint(g_atomic_int_get(&d.waiting), ==, 0);

    sw_channel_free(ch);
    harness_server_stop(s);
    g_mutex_clear(&d.lock);
}

static void test_admission(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x},
        {.path = "/test.Admit/Open",
         .dispatch = SW_DISPATCH_INLINE,
         .handler = scripted_handler,
         .user_data = &x,
         .open = TRUE},
        {.path = "/test.Admit/Worker", .dispatch = SW_DISPATCH_WORKER, .handler = scripted_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    o.admit = admit_token;
    o.admit_data = &x;
    o.on_refused = record_refused;
    o.on_refused_data = &x;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    GError *error = NULL;
    g_assert_cmpint(call_check(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, SW_CODE_UNAUTHENTICATED);
    g_assert_cmpstr(error->message, ==, "bad or missing token");
    g_clear_error(&error);
    const char *const bad[] = {"authorization", "Bearer bad", NULL};
    g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, bad), ==, SW_CODE_UNAUTHENTICATED);
    g_assert_cmpint(call_code(ch, "/test.Admit/Worker", "up", CALL_TIMEOUT_US, bad), ==, SW_CODE_UNAUTHENTICATED);
    /* Refused calls never reach their handler, and each is reported (after
     * the refusal is sent: the client may see it first). */
    g_assert_cmpint(counter_get(&x.ended), ==, 0);
    counter_wait(&x.refusals, 3);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.n_refused, ==, 3);
    for (int i = 0; i < x.n_refused; i++)
        g_assert_cmpint(x.refused[i], ==, SW_CODE_UNAUTHENTICATED);
    g_mutex_unlock(&x.lock);

    const char *const good[] = {"authorization", "Bearer good", "x-request-id", "abc-123", NULL};
    g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, good), ==, SW_CODE_OK);
    g_mutex_lock(&x.lock);
    g_assert_cmpstr(x.request_id, ==, "abc-123");
    g_mutex_unlock(&x.lock);
    g_assert_cmpint(call_code(ch, "/test.Admit/Worker", "up", CALL_TIMEOUT_US, good), ==, SW_CODE_OK);

    /* An open method is never asked about, and a key not sent reads NULL. */
    g_mutex_lock(&x.lock);
    int admit_calls = x.admit_calls;
    g_mutex_unlock(&x.lock);
    g_assert_cmpint(admit_calls, ==, 5);
    g_assert_cmpint(call_code(ch, "/test.Admit/Open", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.admit_calls, ==, admit_calls);
    g_assert_null(x.request_id);
    g_assert_cmpint(x.n_refused, ==, 3);
    g_mutex_unlock(&x.lock);
    counter_wait(&x.ended, 3);
    g_assert_cmpint(counter_get(&x.ended), ==, 3);

    sw_channel_free(ch);
    harness_server_stop(s);
    ctx_clear(&x);
}

static void test_max_in_flight(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Limit/Block", .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x},
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    o.max_in_flight = 1;
    o.on_refused = record_refused;
    o.on_refused_data = &x;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    counter done;
    counter_init(&done);
    async_result first = {.done = &done};
    call_check_async(ch, "/test.Limit/Block", "first", CALL_TIMEOUT_US, &first);
    counter_wait(&x.entered, 1);

    /* Refused at once although a worker is idle: the limit counts calls. */
    GError *error = NULL;
    g_assert_cmpint(call_check(ch, "/test.Limit/Block", "second", CALL_TIMEOUT_US, NULL, &error), ==, -1);
    g_assert_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED);
    g_clear_error(&error);
    g_assert_cmpint(counter_get(&x.entered), ==, 1);
    counter_wait(&x.refusals, 1);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.n_refused, ==, 1);
    g_assert_cmpint(x.refused[0], ==, SW_CODE_RESOURCE_EXHAUSTED);
    g_mutex_unlock(&x.lock);
    /* Inline methods hold no slot. */
    g_assert_cmpint(call_code(ch, CHECK_PATH, "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);

    counter_add(&x.release, 1);
    counter_wait(&done, 1);
    g_assert_cmpint(first.code, ==, SW_CODE_OK);
    /* The slot came back when the first call ended. */
    g_assert_cmpint(call_code(ch, "/test.Limit/Block", "third", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    g_assert_cmpint(counter_get(&x.entered), ==, 2);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.n_refused, ==, 1);
    g_mutex_unlock(&x.lock);

    sw_channel_free(ch);
    harness_server_stop(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_deadline_reaches_handler(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Deadline/Work",
         .dispatch = SW_DISPATCH_WORKER,
         .handler = until_cancelled_handler,
         .user_data = &x},
        {.path = "/test.Deadline/Remaining",
         .dispatch = SW_DISPATCH_INLINE,
         .handler = remaining_handler,
         .user_data = &x},
    };
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    g_assert_cmpint(call_code(ch, "/test.Deadline/Remaining", "up", 5 * G_USEC_PER_SEC, NULL), ==, SW_CODE_OK);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.remaining_us, >, 0);
    g_assert_cmpint(x.remaining_us, <=, WITH_SLACK(5 * G_USEC_PER_SEC));
    g_mutex_unlock(&x.lock);
    g_assert_cmpint(call_code(ch, "/test.Deadline/Remaining", "up", -1, NULL), ==, SW_CODE_OK);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.remaining_us, ==, G_MAXINT64);
    g_mutex_unlock(&x.lock);

    /* The handler notices the deadline passing while it works. */
    g_assert_cmpint(call_code(ch, "/test.Deadline/Work", "up", 100 * 1000, NULL), ==, SW_CODE_DEADLINE_EXCEEDED);
    counter_wait(&x.ended, 1);
    g_mutex_lock(&x.lock);
    g_assert_cmpint(x.remaining_us, >, 0);
    g_assert_cmpint(x.remaining_us, <=, WITH_SLACK(100 * 1000));
    g_assert_true(x.saw_cancelled);
    g_mutex_unlock(&x.lock);

    sw_channel_free(ch);
    harness_server_stop(s);
    ctx_clear(&x);
}

static void test_on_cancel_at_deadline(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Cancel/Hold", .dispatch = SW_DISPATCH_INLINE, .handler = hold_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    g_assert_cmpint(call_code(ch, "/test.Cancel/Hold", "up", 100 * 1000, NULL), ==, SW_CODE_DEADLINE_EXCEEDED);
    counter_wait(&x.cancels, 1);
    counter_wait(&x.ended, 1);
    g_mutex_lock(&x.lock);
    /* On the polling thread, where the inline handler ran. */
    g_assert_true(x.cancel_thread == x.thread);
    g_assert_true(x.saw_cancelled);
    g_mutex_unlock(&x.lock);
    g_assert_cmpint(counter_get(&x.cancels), ==, 1);

    sw_channel_free(ch);
    harness_server_stop(s);
    ctx_clear(&x);
}

typedef struct shutdown_job {
    sw_server *server;
    int drain_ms;
    gboolean cancelled;
} shutdown_job;

static gpointer run_shutdown(gpointer data)
{
    shutdown_job *job = data;
    job->cancelled = sw_server_shutdown(job->server, job->drain_ms);
    return NULL;
}

static void test_shutdown_drains(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = "/test.Drain/Block", .dispatch = SW_DISPATCH_WORKER, .handler = blocking_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    counter done;
    counter_init(&done);
    async_result r = {.done = &done};
    call_check_async(ch, "/test.Drain/Block", "up", CALL_TIMEOUT_US, &r);
    counter_wait(&x.entered, 1);

    shutdown_job job = {.server = s, .drain_ms = 10 * 1000, .cancelled = TRUE};
    GThread *t = g_thread_new("test-shutdown", run_shutdown, &job);
    /* Lets the shutdown begin while the call is in flight; the outcome is
     * the same if it has not yet. */
    g_usleep(50 * 1000);
    g_assert_cmpint(counter_get(&done), ==, 0);
    counter_add(&x.release, 1);
    g_thread_join(t);
    g_assert_false(job.cancelled);
    counter_wait(&done, 1);
    g_assert_cmpint(r.code, ==, SW_CODE_OK);
    g_assert_cmpint(r.status, ==, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);

    sw_channel_free(ch);
    sw_server_free(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_shutdown_cancels_after_drain_timeout(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {{.path = "/test.Drain/Work",
                            .dispatch = SW_DISPATCH_WORKER,
                            .handler = until_cancelled_handler,
                            .user_data = &x}};
    sw_server_options o = harness_server_options();
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    sw_channel *ch = harness_channel_to(s, NULL);

    counter done;
    counter_init(&done);
    async_result r = {.done = &done};
    call_check_async(ch, "/test.Drain/Work", "up", -1, &r);
    counter_wait(&x.entered, 1);

    gint64 start = g_get_monotonic_time();
    g_assert_true(sw_server_shutdown(s, 100));
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 100 * 1000);
    /* It returned only once the handler had ended the cancelled call, so
     * after the handler saw the cancellation (it notes that first). */
    g_mutex_lock(&x.lock);
    g_assert_true(x.saw_cancelled);
    g_mutex_unlock(&x.lock);
    counter_wait(&x.ended, 1);
    counter_wait(&done, 1);
    g_assert_cmpint(r.code, !=, SW_CODE_OK);
    g_test_message("the client saw %s: %s", sw_code_name(r.code), r.message);
    g_free(r.message);

    sw_channel_free(ch);
    sw_server_free(s);
    counter_clear(&done);
    ctx_clear(&x);
}

static void test_lifecycle_without_start(void)
{
    ctx x;
    ctx_init(&x);
    sw_method methods[] = {
        {.path = CHECK_PATH, .dispatch = SW_DISPATCH_INLINE, .handler = scripted_handler, .user_data = &x}};
    sw_server_options o = harness_server_options();
    GError *error = NULL;

    sw_server *s = sw_server_new(&o, methods, G_N_ELEMENTS(methods), &error);
    g_assert_no_error(error);
    g_assert_false(sw_server_shutdown(s, 100));
    sw_server_free(s);
    /* Freed without ever being shut down. */
    s = sw_server_new(&o, methods, G_N_ELEMENTS(methods), &error);
    g_assert_no_error(error);
    sw_server_free(s);
    sw_server_free(NULL);

    o.listen = "127.0.0.1:no-such-port";
    g_assert_null(sw_server_new(&o, methods, G_N_ELEMENTS(methods), &error));
    g_assert_error(error, SW_ERROR, SW_CODE_UNAVAILABLE);
    g_assert_nonnull(strstr(error->message, "127.0.0.1:no-such-port"));
    g_clear_error(&error);
    ctx_clear(&x);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/server/unary-reply", test_unary_reply);
    g_test_add_func("/rpc/server/fail-code-and-message", test_fail_code_and_message);
    g_test_add_func("/rpc/server/unregistered-method-is-unimplemented", test_unregistered_method_is_unimplemented);
    g_test_add_func("/rpc/server/dispatch-threads", test_dispatch_threads);
    g_test_add_func("/rpc/server/inline-when-idle", test_inline_when_idle);
    g_test_add_func("/rpc/server/poll-work-answers-what-handlers-left", test_poll_work_answers_what_handlers_left);
    g_test_add_func("/rpc/server/admission", test_admission);
    g_test_add_func("/rpc/server/max-in-flight", test_max_in_flight);
    g_test_add_func("/rpc/server/deadline-reaches-handler", test_deadline_reaches_handler);
    g_test_add_func("/rpc/server/on-cancel-at-deadline", test_on_cancel_at_deadline);
    g_test_add_func("/rpc/server/shutdown-drains", test_shutdown_drains);
    g_test_add_func("/rpc/server/shutdown-cancels-after-drain-timeout", test_shutdown_cancels_after_drain_timeout);
    g_test_add_func("/rpc/server/lifecycle-without-start", test_lifecycle_without_start);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
