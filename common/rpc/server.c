/* The server: binding, posting request slots, polling, dispatching
 * accepted calls to handlers (inline or on the worker pool), draining. */
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <string.h>

#include "clip.h"
#include "grpc_args.h"
#include "server_internal.h"
#include "sw_error.h"

/* sw_code promises the gRPC numbering: checked here, code by code. */
#define SW_CODE_CHECK_GRPC(name, number)                                                                               \
    G_STATIC_ASSERT(SW_CODE_##name == (int)GRPC_STATUS_##name && (number) == (int)GRPC_STATUS_##name);
SW_CODE_MAP(SW_CODE_CHECK_GRPC)
#undef SW_CODE_CHECK_GRPC

/* Requests kept posted per method, so a burst of calls finds one waiting. */
#define POSTED_PER_METHOD 16

static void accept_done(sw_completion *done, int success);
static void receive_done(sw_completion *done, int success);
static void shutdown_done(sw_completion *done, int success);

/* With an in-flight limit, worker methods receive their request
 * themselves, once the call is admitted: a call refused for the limit costs
 * no buffering. Without one gRPC delivers it with the call, which saves a
 * batch and a completion per call. Streams read theirs one by one. */
static gboolean receives_itself(const sw_server *s, const registered_method *m)
{
    return m && (m->method.on_message || (m->method.dispatch == SW_DISPATCH_WORKER && s->max_in_flight > 0));
}

/* Posts one request slot for `m` (NULL: unregistered methods). */
static void post_request(sw_server *s, const registered_method *m)
{
    if (g_atomic_int_get(&s->shutting_down))
        return;
    sw_call *c = sw__call_new(s, m, accept_done, receive_done);
    grpc_call_error err;
    if (m)
        err = grpc_server_request_registered_call(s->grpc, m->handle, &c->call, &c->deadline, &c->metadata,
                                                  receives_itself(s, m) ? NULL : &c->payload, s->cq, s->cq,
                                                  &c->accept_tag);
    else
        err = grpc_server_request_call(s->grpc, &c->call, &c->details, &c->metadata, s->cq, s->cq, &c->accept_tag);
    if (err != GRPC_CALL_OK)
        sw__call_unref(c); /* no event will come for this tag */
}

void sw__server_release_call(sw_server *s, sw_call *c)
{
    if (c->counted) {
        c->counted = FALSE;
        g_atomic_int_dec_and_test(&s->in_flight);
    }
    if (c->held_bytes) {
        atomic_fetch_sub(&s->request_bytes_held, c->held_bytes);
        c->held_bytes = 0;
    }
}

void sw__server_call_ended(sw_server *s)
{
    g_mutex_lock(&s->lock);
    /* Only a shutdown waits for this, and glib's broadcast is a system call
     * even with no one waiting. */
    if (--s->active == 0 && g_atomic_int_get(&s->shutting_down))
        g_cond_broadcast(&s->shutdown_done_cond);
    g_mutex_unlock(&s->lock);
}

static void run_on_worker(void *item, void *user_data)
{
    (void)user_data;
    sw_call *c = item;
    if (c->resume) {
        sw_method_handler resume = c->resume;
        c->resume = NULL;
        resume(c, c->resume_data);
        return;
    }
    c->method->method.handler(c, c->method->method.user_data);
}

gboolean sw_call_on_polling_thread(const sw_call *c)
{
    return c->server->poller == g_thread_self();
}

void sw_call_continue_on_worker(sw_call *c, sw_method_handler func, void *user_data)
{
    g_return_if_fail(sw_call_on_polling_thread(c));
    c->resume = func;
    c->resume_data = user_data;
    sw_worker_pool_push(c->server->workers, c);
}

/* Events taken per look before an inline call: bounds that look when calls
 * keep arriving. */
#define HAND_OFF_MAX_EVENTS 64

/* Runs the events already waiting on the queue, without waiting for more,
 * with calls among them that could run inline sent to workers instead. */
static void hand_off_waiting(sw_server *s)
{
    s->handing_off = TRUE;
    for (int i = 0; i < HAND_OFF_MAX_EVENTS; i++) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            break; /* nothing waiting (a shut-down queue has no inline call) */
        sw_completion_run(ev.tag, ev.success);
    }
    s->handing_off = FALSE;
}

/* Whether a worker method's request of `bytes` runs on the polling thread. */
static gboolean runs_inline(sw_server *s, const sw_method *m, size_t bytes)
{
    if (m->inline_max_bytes == 0 || bytes > m->inline_max_bytes)
        return FALSE;
    if (!m->inline_when_idle)
        return TRUE;
    return !s->handing_off && g_queue_is_empty(&s->deferred) && sw_worker_pool_pending(s->workers) == 0;
}

/* Calls that found the server busy and wait for the polling thread rather
 * than a worker: a hand-off to a worker costs more than the short wait
 * for the call ahead, while two already kept calls from workers that were
 * free (docs/DESIGN.md, "A call's life", 4). */
#define DEFERRED_MAX_CALLS 1

/* Whether a worker method's call that could not run inline waits for the
 * polling thread instead of going to a worker. */
static gboolean defers(sw_server *s, const sw_method *m, size_t bytes)
{
    return m->inline_when_idle && m->inline_max_bytes > 0 && bytes <= m->inline_max_bytes &&
           g_queue_get_length(&s->deferred) < DEFERRED_MAX_CALLS;
}

/* Counted before the refusal is sent, so a client that sees it finds it
 * in the metrics. */
static void refuse(sw_server *s, sw_call *c, int code, const char *message)
{
    if (s->on_refused)
        s->on_refused(code, s->on_refused_data);
    sw_call_fail(c, code, message);
}

static size_t payload_bytes(const sw_call *c)
{
    return c->payload ? grpc_byte_buffer_length(c->payload) : 0;
}

/* Takes `c`'s share of the request memory budget: FALSE (nothing taken)
 * when its request would take the server past it. */
static gboolean hold_request_bytes(sw_server *s, sw_call *c)
{
    size_t bytes = payload_bytes(c);
    if (s->request_budget_bytes == 0 || bytes == 0)
        return TRUE;
    size_t before = atomic_fetch_add(&s->request_bytes_held, bytes);
    if (before + bytes > s->request_budget_bytes) {
        atomic_fetch_sub(&s->request_bytes_held, bytes);
        return FALSE;
    }
    c->held_bytes = bytes;
    return TRUE;
}

/* A worker method's call once its request arrived: within the memory
 * budget, run inline when small enough, else on a worker. */
static void dispatch_received(sw_server *s, sw_call *c)
{
    if (!hold_request_bytes(s, c)) {
        char *msg = g_strdup_printf("the server is at its memory budget for requests in flight (%zu bytes); this "
                                    "request is %zu bytes: retry later or send smaller requests",
                                    s->request_budget_bytes, payload_bytes(c));
        refuse(s, c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        g_free(msg);
        return;
    }
    const sw_method *m = &c->method->method;
    if (runs_inline(s, m, payload_bytes(c))) {
        if (m->inline_when_idle)
            hand_off_waiting(s);
        m->handler(c, m->user_data);
        return;
    }
    if (defers(s, m, payload_bytes(c))) {
        g_queue_push_tail(&s->deferred, c);
        return;
    }
    sw_worker_pool_push(s->workers, c);
}

/* A worker method's call once reading its request ended (`received`). */
static void request_arrived(sw_server *s, sw_call *c, gboolean received)
{
    if (!received || (c->payload == NULL && sw_call_is_cancelled(c))) {
        /* Gone before its request arrived: nothing for a handler to see. */
        sw_call_fail(c, GRPC_STATUS_CANCELLED, "the call ended before its request arrived");
    } else {
        dispatch_received(s, c);
    }
}

static void receive_done(sw_completion *done, int success)
{
    sw_call *c = ((sw_call_tag *)done)->call;
    request_arrived(c->server, c, success);
    sw__call_unref(c); /* the receiving batch's reference */
}

/* Starts receiving the request of an admitted worker call. */
static void receive_request(sw_server *s, sw_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->payload;
    if (!sw__call_start_batch(c, &op, 1, &c->recv_tag))
        refuse(s, c, GRPC_STATUS_INTERNAL, "the request message could not be received");
}

static void on_accept(sw_server *s, sw_call *c, int success)
{
    if (!success) { /* the server is shutting down: the slot comes back unused */
        sw__call_unref(c);
        return;
    }
    post_request(s, c->method);
    g_mutex_lock(&s->lock);
    s->active++;
    g_mutex_unlock(&s->lock);
    sw__call_watch_close(c);
    if (c->method == NULL) {
        char *path = grpc_slice_to_c_string(c->details.method);
        char *msg = g_strdup_printf("method " SW_CLIP_FMT " is not served here", SW_CLIP(path));
        sw_call_fail(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        g_free(msg);
        gpr_free(path);
        return;
    }
    if (!c->method->method.open && s->admit && !s->admit(c, s->admit_data)) {
        if (s->on_refused)
            s->on_refused(GRPC_STATUS_UNAUTHENTICATED, s->on_refused_data);
        return;
    }
    if (c->method->method.on_message) {
        g_mutex_lock(&s->lock);
        g_hash_table_add(s->streams, c);
        g_mutex_unlock(&s->lock);
        sw__call_stream_start(c);
        return;
    }
    if (c->method->method.dispatch == SW_DISPATCH_INLINE) {
        /* Inline work is bounded: nothing these methods take is this large. */
        if (payload_bytes(c) > SW_INLINE_REQUEST_MAX_BYTES) {
            char *msg = g_strdup_printf("the request is %zu bytes; this method takes at most %d", payload_bytes(c),
                                        SW_INLINE_REQUEST_MAX_BYTES);
            refuse(s, c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
            g_free(msg);
            return;
        }
        c->method->method.handler(c, c->method->method.user_data);
        return;
    }
    /* Refuse at once, before the request is read, rather than queue
     * without bound. */
    if (s->max_in_flight > 0 && g_atomic_int_add(&s->in_flight, 1) >= s->max_in_flight) {
        g_atomic_int_dec_and_test(&s->in_flight);
        char *msg = g_strdup_printf("the server is at its limit of %d concurrent inference calls", s->max_in_flight);
        refuse(s, c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        g_free(msg);
        return;
    }
    c->counted = s->max_in_flight > 0;
    if (receives_itself(s, c->method))
        receive_request(s, c);
    else
        request_arrived(s, c, TRUE);
}

static void accept_done(sw_completion *done, int success)
{
    sw_call *c = ((sw_call_tag *)done)->call;
    on_accept(c->server, c, success);
}

static void shutdown_done(sw_completion *done, int success)
{
    (void)success;
    sw_server *s = ((shutdown_tag *)done)->server;
    g_mutex_lock(&s->lock);
    s->shutdown_done = TRUE;
    g_cond_broadcast(&s->shutdown_done_cond);
    g_mutex_unlock(&s->lock);
}

static gboolean poll_work_pending(sw_server *s)
{
    return !g_queue_is_empty(&s->deferred) || (s->poll_work.pending && s->poll_work.pending(s->poll_work.user_data));
}

/* One piece of the polling thread's own work: the oldest deferred call,
 * else the poll work's. */
static void run_poll_work(sw_server *s)
{
    sw_call *c = g_queue_pop_head(&s->deferred);
    if (c) {
        c->method->method.handler(c, c->method->method.user_data);
        return;
    }
    s->poll_work.run(s->poll_work.user_data);
}

/* Events handled while poll work waits, before it runs anyway: under a
 * flood of calls the queue is never empty, and the work (answers to calls
 * already taken) must not wait for it to be. */
#define POLL_WORK_MAX_EVENTS 64

/* Also runs the completions of channels sharing the queue. With poll work
 * pending it only looks for events, and does the work once none waits (or
 * after POLL_WORK_MAX_EVENTS), so the work takes in whatever arrived
 * meanwhile (a batch fills up). */
static gpointer poll_loop(gpointer data)
{
    sw_server *s = data;
    int events_while_pending = 0;
    for (;;) {
        gboolean work = poll_work_pending(s);
        if (work && events_while_pending >= POLL_WORK_MAX_EVENTS) {
            run_poll_work(s);
            events_while_pending = 0;
            continue;
        }
        grpc_event ev = grpc_completion_queue_next(
            s->cq, work ? gpr_inf_past(GPR_CLOCK_MONOTONIC) : gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            sw_completion_run(ev.tag, ev.success);
            events_while_pending = work ? events_while_pending + 1 : 0;
        } else if (work) {
            run_poll_work(s);
            events_while_pending = 0;
        }
    }
    return NULL;
}

static grpc_server_credentials *server_credentials(const sw_server_options *o)
{
    if (o->tls_cert_pem == NULL)
        return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair = {.private_key = o->tls_key_pem, .cert_chain = o->tls_cert_pem};
    grpc_ssl_client_certificate_request_type request = o->tls_client_ca_pem
                                                           ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    return grpc_ssl_server_credentials_create_ex(o->tls_client_ca_pem, &pair, 1, request, NULL);
}

static void add_connection(int fd, void *user_data)
{
    sw_server *s = user_data;
    grpc_server_add_channel_from_fd(s->grpc, fd, s->fd_credentials);
}

/* Plaintext TCP ports get our listener (listener.h says why); TLS and
 * unix sockets gRPC's, which is the only one that speaks TLS. */
static gboolean listen_on(sw_server *s, const sw_server_options *o, GError **error)
{
    if (o->tls_cert_pem == NULL && sw_listener_serves(o->listen)) {
        sw_listener_options lo = {
            .address = o->listen,
            .reserve_fds = o->reserve_fds,
            .on_accept = add_connection,
            .user_data = s,
        };
        s->listener = sw_listener_new(&lo, error);
        if (s->listener == NULL)
            return FALSE;
        s->fd_credentials = grpc_insecure_server_credentials_create();
        s->port = sw_listener_port(s->listener);
        return TRUE;
    }
    grpc_server_credentials *creds = server_credentials(o);
    s->port = grpc_server_add_http2_port(s->grpc, o->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port <= 0) {
        g_set_error(error, SW_ERROR, SW_CODE_UNAVAILABLE, "cannot listen on %s", o->listen);
        return FALSE;
    }
    return TRUE;
}

sw_server *sw_server_new(const sw_server_options *options, const sw_method *methods, size_t n_methods, GError **error)
{
    sw_server *s = g_new0(sw_server, 1);
    g_mutex_init(&s->lock);
    g_cond_init(&s->shutdown_done_cond);
    s->shutdown_tag = (shutdown_tag){.base = {.func = shutdown_done}, .server = s};
    s->streams = g_hash_table_new(NULL, NULL);
    g_queue_init(&s->deferred);
    grpc_arg args[9];
    size_t n_args = 0;
    args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, options->max_message_bytes);
    args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, options->max_message_bytes);
    /* Next-hop channels ping every second (sw_channel_options.keepalive_ms)
     * to notice a dead link quickly; accept that rather than closing the
     * connection for "too many pings". */
    args[n_args++] = sw_grpc_int_arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
    args[n_args++] = sw_grpc_int_arg(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    if (options->keepalive_time_ms > 0)
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, options->keepalive_time_ms);
    if (options->keepalive_timeout_ms > 0)
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options->keepalive_timeout_ms);
    if (options->max_streams_per_connection > 0)
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_CONCURRENT_STREAMS, options->max_streams_per_connection);
    if (options->max_connection_age_ms > 0) {
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_CONNECTION_AGE_MS, options->max_connection_age_ms);
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, options->max_connection_age_ms);
    }
    grpc_channel_args channel_args = {.num_args = n_args, .args = args};
    s->max_in_flight = options->max_in_flight;
    s->request_budget_bytes = options->request_budget_bytes;
    s->admit = options->admit;
    s->admit_data = options->admit_data;
    s->on_refused = options->on_refused;
    s->on_refused_data = options->on_refused_data;
    s->poll_work = options->poll_work;
    s->grpc = grpc_server_create(&channel_args, NULL);
    s->owns_cq = options->cq == NULL;
    s->cq = s->owns_cq ? grpc_completion_queue_create_for_next(NULL) : options->cq;
    grpc_server_register_completion_queue(s->grpc, s->cq, NULL);
    s->n_methods = n_methods;
    s->methods = g_new0(registered_method, n_methods);
    for (size_t i = 0; i < n_methods; i++) {
        g_assert(methods[i].on_message == NULL || methods[i].dispatch == SW_DISPATCH_INLINE);
        s->methods[i].method = methods[i];
        s->methods[i].handle = grpc_server_register_method(
            s->grpc, methods[i].path, NULL,
            receives_itself(s, &s->methods[i]) ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    if (!listen_on(s, options, error)) {
        sw_server_free(s);
        return NULL;
    }
    s->workers = sw_worker_pool_new("sw-worker", MAX(options->worker_threads, 1), run_on_worker, s);
    return s;
}

int sw_server_port(const sw_server *s)
{
    return s->port;
}

void sw_server_start(sw_server *s)
{
    grpc_server_start(s->grpc);
    if (s->listener)
        sw_listener_start(s->listener);
    s->started = TRUE;
    s->poller = g_thread_new("sw-poll", poll_loop, s);
    for (size_t i = 0; i < s->n_methods; i++)
        for (int k = 0; k < POSTED_PER_METHOD; k++)
            post_request(s, &s->methods[i]);
    for (int k = 0; k < 2; k++)
        post_request(s, NULL);
}

/* Waits until gRPC reports the shutdown done and every handler has ended
 * its call (a cancelled call may still sit in a batch queue, and must be
 * ended while the completion queue lives). */
static gboolean wait_shutdown(sw_server *s, gint64 until)
{
    g_mutex_lock(&s->lock);
    while (!s->shutdown_done || s->active > 0)
        if (!g_cond_wait_until(&s->shutdown_done_cond, &s->lock, until))
            break;
    gboolean done = s->shutdown_done && s->active == 0;
    g_mutex_unlock(&s->lock);
    return done;
}

/* How long no call may be in flight before a draining server stops waiting
 * for clients to close their connections: long enough for an accept that
 * already completed to reach the polling thread and be counted. */
#define IDLE_SETTLE_US 100000

/* Waits until the calls in flight have ended: TRUE once gRPC reports the
 * shutdown done or no handler has held a call for IDLE_SETTLE_US (idle
 * connections would otherwise hold the shutdown until their clients leave),
 * FALSE when `until` passes with calls still in flight. */
static gboolean wait_drained(sw_server *s, gint64 until)
{
    gint64 idle_since = 0;
    g_mutex_lock(&s->lock);
    for (;;) {
        gint64 now = g_get_monotonic_time();
        if (s->active == 0) {
            idle_since = idle_since ? idle_since : now;
            if (s->shutdown_done || now - idle_since >= IDLE_SETTLE_US)
                break;
        } else {
            idle_since = 0;
        }
        if (now >= until) {
            g_mutex_unlock(&s->lock);
            return FALSE;
        }
        g_cond_wait_until(&s->shutdown_done_cond, &s->lock, MIN(until, now + IDLE_SETTLE_US / 4));
    }
    g_mutex_unlock(&s->lock);
    return TRUE;
}

/* Bidirectional streams waiting for their client's next message would
 * hold the drain until it timed out: end them now. One answering a message
 * ends when its handler returns (stream_read sees `shutting_down`). */
static void end_idle_streams(sw_server *s)
{
    GPtrArray *open = g_ptr_array_new();
    g_mutex_lock(&s->lock);
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, s->streams);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        /* Safe: a call leaves the table before its handler's reference goes. */
        g_atomic_int_inc(&((sw_call *)key)->refs);
        g_ptr_array_add(open, key);
    }
    g_mutex_unlock(&s->lock);
    for (guint i = 0; i < open->len; i++) {
        sw__call_stream_shutdown(g_ptr_array_index(open, i));
        sw__call_unref(g_ptr_array_index(open, i));
    }
    g_ptr_array_free(open, TRUE);
}

gboolean sw_server_shutdown(sw_server *s, int drain_timeout_ms)
{
    if (!s->started)
        return FALSE;
    g_atomic_int_set(&s->shutting_down, 1);
    /* No connection may reach gRPC once it shuts down. */
    g_clear_pointer(&s->listener, sw_listener_free);
    grpc_server_shutdown_and_notify(s->grpc, s->cq, &s->shutdown_tag);
    end_idle_streams(s);
    gboolean cancelled = !wait_drained(s, g_get_monotonic_time() + (gint64)drain_timeout_ms * 1000);
    /* Cancels what is left and closes every connection, idle ones included,
     * so the shutdown completes now rather than when clients hang up. */
    grpc_server_cancel_all_calls(s->grpc);
    wait_shutdown(s, G_MAXINT64);
    /* Workers may still be finishing cancelled calls; they need the poller. */
    sw_worker_pool_free(s->workers);
    s->workers = NULL;
    grpc_server_destroy(s->grpc);
    s->grpc = NULL;
    grpc_completion_queue_shutdown(s->cq);
    g_thread_join(s->poller);
    s->poller = NULL;
    s->started = FALSE;
    return cancelled;
}

void sw_server_free(sw_server *s)
{
    if (s == NULL)
        return;
    g_assert(!s->started);
    if (s->workers)
        sw_worker_pool_free(s->workers);
    if (s->grpc) {
        /* Never started: nothing is in flight. */
        grpc_server_shutdown_and_notify(s->grpc, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->grpc);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_server_destroy(s->grpc);
    }
    if (s->cq && s->owns_cq)
        grpc_completion_queue_destroy(s->cq);
    sw_listener_free(s->listener);
    if (s->fd_credentials)
        grpc_server_credentials_release(s->fd_credentials);
    g_free(s->methods);
    g_hash_table_destroy(s->streams);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->shutdown_done_cond);
    g_free(s);
}
