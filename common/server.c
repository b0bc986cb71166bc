#include "server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <string.h>

#include "byte_buffer.h"
#include "completion.h"
#include "grpc_args.h"
#include "sw_error.h"
#include "worker_pool.h"

/* sw_code promises the gRPC numbering. */
G_STATIC_ASSERT(SW_CODE_INVALID_ARGUMENT == (int)GRPC_STATUS_INVALID_ARGUMENT);
G_STATIC_ASSERT(SW_CODE_RESOURCE_EXHAUSTED == (int)GRPC_STATUS_RESOURCE_EXHAUSTED);
G_STATIC_ASSERT(SW_CODE_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED);

/* Requests kept posted per method, so a burst of calls finds one waiting. */
#define POSTED_PER_METHOD 16

/* A batch on a call: `base.func` says which. */
typedef struct tag {
    sw_completion base;
    sw_call *call;
} tag;

typedef struct shutdown_tag {
    sw_completion base;
    sw_server *server;
} shutdown_tag;

typedef struct registered_method {
    sw_method method;
    void *handle; /* from grpc_server_register_method */
} registered_method;

struct sw_call {
    sw_server *server;
    const registered_method *method; /* NULL: an unregistered method */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array metadata;
    grpc_call_details details; /* unregistered calls only */
    grpc_byte_buffer *payload;
    GBytes *request;
    gint refs;
    int cancelled; /* written by RECV_CLOSE_ON_SERVER */
    gboolean ended;
    gboolean counted; /* holds one of the server's in-flight slots */
    tag accept_tag, close_tag, send_tag, stream_tag;
    /* Server streaming: messages wait in `outbox` while one is being sent,
     * and the status waits for them. */
    GMutex stream_lock;
    GQueue outbox;
    grpc_byte_buffer *streaming;
    gboolean initial_sent;
    gboolean finish_pending;
    int finish_code;
    char *finish_message;
    sw_call_cancelled_func on_cancel;
    void *on_cancel_data;
    /* What the reply batch sends, kept until it completes. */
    grpc_byte_buffer *response;
    grpc_slice status_details;
    gboolean has_status_details;
};

struct sw_server {
    grpc_server *grpc;
    grpc_completion_queue *cq;
    gboolean owns_cq;
    registered_method *methods;
    size_t n_methods;
    int port;
    GThread *poller;
    sw_worker_pool *workers;
    int max_in_flight;
    gint in_flight;
    sw_admit_func admit;
    void *admit_data;
    void (*on_refused)(int code, void *user_data);
    void *on_refused_data;
    shutdown_tag shutdown_tag;
    GMutex lock;
    GCond shutdown_done_cond;
    gboolean shutdown_done;
    int active; /* calls given to handlers and not yet ended; under lock */
    gint shutting_down;
    gboolean started;
};

static void accept_done(sw_completion *done, int success);
static void close_done(sw_completion *done, int success);
static void stream_done(sw_completion *done, int success);
static void send_done(sw_completion *done, int success);
static void shutdown_done(sw_completion *done, int success);

static void call_unref(sw_call *c)
{
    if (!g_atomic_int_dec_and_test(&c->refs))
        return;
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->metadata);
    if (c->method == NULL)
        grpc_call_details_destroy(&c->details);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->request)
        g_bytes_unref(c->request);
    if (c->response)
        grpc_byte_buffer_destroy(c->response);
    if (c->has_status_details)
        grpc_slice_unref(c->status_details);
    grpc_byte_buffer *bb;
    while ((bb = g_queue_pop_head(&c->outbox)) != NULL)
        grpc_byte_buffer_destroy(bb);
    if (c->streaming)
        grpc_byte_buffer_destroy(c->streaming);
    g_free(c->finish_message);
    g_mutex_clear(&c->stream_lock);
    g_free(c);
}

static sw_call *call_new(sw_server *s, const registered_method *m)
{
    sw_call *c = g_new0(sw_call, 1);
    c->server = s;
    c->method = m;
    c->refs = 1;
    c->accept_tag = (tag){{accept_done}, c};
    c->close_tag = (tag){{close_done}, c};
    c->send_tag = (tag){{send_done}, c};
    c->stream_tag = (tag){{stream_done}, c};
    g_mutex_init(&c->stream_lock);
    g_queue_init(&c->outbox);
    grpc_metadata_array_init(&c->metadata);
    if (m == NULL)
        grpc_call_details_init(&c->details);
    return c;
}

/* Posts one request slot for `m` (NULL: unregistered methods). */
static void post_request(sw_server *s, const registered_method *m)
{
    if (g_atomic_int_get(&s->shutting_down))
        return;
    sw_call *c = call_new(s, m);
    grpc_call_error err;
    if (m)
        err = grpc_server_request_registered_call(s->grpc, m->handle, &c->call, &c->deadline, &c->metadata,
                                                  &c->payload, s->cq, s->cq, &c->accept_tag);
    else
        err = grpc_server_request_call(s->grpc, &c->call, &c->details, &c->metadata, s->cq, s->cq,
                                       &c->accept_tag);
    if (err != GRPC_CALL_OK)
        call_unref(c); /* no event will come for this tag */
}

/* FALSE when the batch could not start: then no event will come for it. */
static gboolean start_batch(sw_call *c, const grpc_op *ops, size_t n, tag *t)
{
    g_atomic_int_inc(&c->refs);
    if (grpc_call_start_batch(c->call, ops, n, t, NULL) == GRPC_CALL_OK)
        return TRUE;
    call_unref(c);
    return FALSE;
}

/* Sends the one reply a unary call gets: status, and a message when OK. */
static void send_reply(sw_call *c, grpc_byte_buffer *response, grpc_status_code code, const char *message)
{
    g_assert(!c->ended);
    c->ended = TRUE;
    if (c->counted)
        g_atomic_int_dec_and_test(&c->server->in_flight);
    sw_server *s = c->server;
    c->response = response;
    if (message) {
        c->status_details = grpc_slice_from_copied_string(message);
        c->has_status_details = TRUE;
    }
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!c->initial_sent)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (response) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = response;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = message ? &c->status_details : NULL;
    start_batch(c, ops, n, &c->send_tag);
    call_unref(c); /* the handler's reference */
    /* Last, touching neither the call nor anything of the handler's: a
     * draining server goes on to free them once no call is active. */
    g_mutex_lock(&s->lock);
    if (--s->active == 0)
        g_cond_broadcast(&s->shutdown_done_cond);
    g_mutex_unlock(&s->lock);
}

/* `message` packed into a new byte buffer of one slice. */
static grpc_byte_buffer *pack_message(const ProtobufCMessage *message)
{
    grpc_slice slice = grpc_slice_malloc(protobuf_c_message_get_packed_size(message));
    protobuf_c_message_pack(message, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

void sw_call_reply(sw_call *c, const ProtobufCMessage *message)
{
    send_reply(c, pack_message(message), GRPC_STATUS_OK, NULL);
}

static void unref_bytes(void *bytes)
{
    g_bytes_unref(bytes);
}

static grpc_slice slice_over(GBytes *bytes)
{
    gsize len = 0;
    const void *data = g_bytes_get_data(bytes, &len);
    return len ? grpc_slice_new_with_user_data((void *)data, len, unref_bytes, g_bytes_ref(bytes)) : grpc_empty_slice();
}

void sw_call_reply_parts(sw_call *c, GPtrArray *parts)
{
    grpc_slice *slices = g_new(grpc_slice, parts->len ? parts->len : 1);
    for (guint i = 0; i < parts->len; i++)
        slices[i] = slice_over(g_ptr_array_index(parts, i));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, parts->len);
    for (guint i = 0; i < parts->len; i++)
        grpc_slice_unref(slices[i]);
    g_free(slices);
    send_reply(c, bb, GRPC_STATUS_OK, NULL);
}

void sw_call_fail(sw_call *c, int code, const char *message)
{
    send_reply(c, NULL, (grpc_status_code)code, message);
}

void sw_call_fail_error(sw_call *c, const GError *error)
{
    int code = error->domain == SW_ERROR ? error->code : GRPC_STATUS_INTERNAL;
    if (code == GRPC_STATUS_OK)
        code = GRPC_STATUS_INTERNAL;
    sw_call_fail(c, code, error->message);
}

/* With stream_lock held and nothing in flight: sends the next queued
 * message, or the pending status once the queue is empty. */
static void stream_next(sw_call *c)
{
    while (!g_queue_is_empty(&c->outbox)) {
        grpc_op ops[2];
        memset(ops, 0, sizeof ops);
        size_t n = 0;
        if (!c->initial_sent)
            ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->streaming = g_queue_pop_head(&c->outbox);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->streaming;
        c->initial_sent = TRUE;
        if (start_batch(c, ops, n, &c->stream_tag))
            return;
        grpc_byte_buffer_destroy(c->streaming);
        c->streaming = NULL;
    }
    if (c->finish_pending) {
        c->finish_pending = FALSE;
        send_reply(c, NULL, (grpc_status_code)c->finish_code, c->finish_message);
    }
}

void sw_call_send(sw_call *c, const ProtobufCMessage *message)
{
    grpc_byte_buffer *bb = pack_message(message);
    /* Held across the lock: a batch completing on the poller must not free
     * the call under us. */
    g_atomic_int_inc(&c->refs);
    g_mutex_lock(&c->stream_lock);
    if (c->ended || c->finish_pending) {
        grpc_byte_buffer_destroy(bb);
    } else {
        g_queue_push_tail(&c->outbox, bb);
        if (c->streaming == NULL)
            stream_next(c);
    }
    g_mutex_unlock(&c->stream_lock);
    call_unref(c);
}

void sw_call_finish(sw_call *c, int code, const char *message)
{
    g_atomic_int_inc(&c->refs);
    g_mutex_lock(&c->stream_lock);
    g_assert(!c->ended && !c->finish_pending);
    c->finish_pending = TRUE;
    c->finish_code = code;
    c->finish_message = g_strdup(message);
    if (c->streaming == NULL)
        stream_next(c);
    g_mutex_unlock(&c->stream_lock);
    call_unref(c);
}

void sw_call_on_cancel(sw_call *c, sw_call_cancelled_func func, void *user_data)
{
    c->on_cancel = func;
    c->on_cancel_data = user_data;
}

static void on_stream_sent(sw_call *c)
{
    g_mutex_lock(&c->stream_lock);
    grpc_byte_buffer_destroy(c->streaming);
    c->streaming = NULL;
    stream_next(c);
    g_mutex_unlock(&c->stream_lock);
    call_unref(c);
}

static void on_close(sw_call *c)
{
    if (g_atomic_int_get(&c->cancelled) && c->on_cancel)
        c->on_cancel(c, c->on_cancel_data);
    call_unref(c);
}

GBytes *sw_call_request(sw_call *c)
{
    if (c->request == NULL)
        c->request = sw_byte_buffer_to_bytes(c->payload);
    return c->request;
}

struct grpc_call *sw_call_grpc_call(const sw_call *c)
{
    return c->call;
}

char *sw_call_metadata(const sw_call *c, const char *key)
{
    for (size_t i = 0; i < c->metadata.count; i++) {
        const grpc_metadata *md = &c->metadata.metadata[i];
        if (grpc_slice_str_cmp(md->key, key) == 0)
            return g_strndup((const char *)GRPC_SLICE_START_PTR(md->value), GRPC_SLICE_LENGTH(md->value));
    }
    return NULL;
}

gboolean sw_call_is_cancelled(const sw_call *c)
{
    return g_atomic_int_get(&c->cancelled) != 0 || sw_call_remaining_us(c) <= 0;
}

int64_t sw_call_remaining_us(const sw_call *c)
{
    if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0)
        return G_MAXINT64;
    gpr_timespec deadline = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(GPR_CLOCK_MONOTONIC));
    return (int64_t)left.tv_sec * 1000000 + left.tv_nsec / 1000;
}

static void run_on_worker(void *item, void *user_data)
{
    (void)user_data;
    sw_call *c = item;
    c->method->method.handler(c, c->method->method.user_data);
}

static void on_accept(sw_server *s, sw_call *c, int success)
{
    if (!success) { /* the server is shutting down: the slot comes back unused */
        call_unref(c);
        return;
    }
    post_request(s, c->method);
    g_mutex_lock(&s->lock);
    s->active++;
    g_mutex_unlock(&s->lock);
    grpc_op close_op;
    memset(&close_op, 0, sizeof close_op);
    close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close_op.data.recv_close_on_server.cancelled = &c->cancelled;
    start_batch(c, &close_op, 1, &c->close_tag);
    if (c->method == NULL) {
        char *path = grpc_slice_to_c_string(c->details.method);
        char *msg = g_strdup_printf("method %s is not served here", path);
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
    if (c->method->method.dispatch == SW_DISPATCH_INLINE) {
        c->method->method.handler(c, c->method->method.user_data);
        return;
    }
    /* Refuse at once rather than queue without bound. */
    if (s->max_in_flight > 0 && g_atomic_int_add(&s->in_flight, 1) >= s->max_in_flight) {
        g_atomic_int_dec_and_test(&s->in_flight);
        char *msg = g_strdup_printf("the server is at its limit of %d concurrent inference calls", s->max_in_flight);
        sw_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        g_free(msg);
        if (s->on_refused)
            s->on_refused(GRPC_STATUS_RESOURCE_EXHAUSTED, s->on_refused_data);
        return;
    }
    c->counted = s->max_in_flight > 0;
    size_t inline_max = c->method->method.inline_max_bytes;
    if (inline_max > 0 && (c->payload == NULL || grpc_byte_buffer_length(c->payload) <= inline_max)) {
        c->method->method.handler(c, c->method->method.user_data);
        return;
    }
    sw_worker_pool_push(s->workers, c);
}

static void accept_done(sw_completion *done, int success)
{
    sw_call *c = ((tag *)done)->call;
    on_accept(c->server, c, success);
}

static void close_done(sw_completion *done, int success)
{
    (void)success; /* the outcome is in `cancelled` */
    on_close(((tag *)done)->call);
}

static void stream_done(sw_completion *done, int success)
{
    (void)success; /* a failed send ends the call, which RECV_CLOSE reports */
    on_stream_sent(((tag *)done)->call);
}

static void send_done(sw_completion *done, int success)
{
    (void)success;
    call_unref(((tag *)done)->call);
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

/* Also runs the completions of channels sharing the queue. */
static gpointer poll_loop(gpointer data)
{
    sw_server *s = data;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        sw_completion_run(ev.tag, ev.success);
    }
    return NULL;
}

static grpc_server_credentials *server_credentials(const sw_server_options *o)
{
    if (o->tls_cert_pem == NULL)
        return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair = {o->tls_key_pem, o->tls_cert_pem};
    grpc_ssl_client_certificate_request_type request =
        o->tls_client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    return grpc_ssl_server_credentials_create_ex(o->tls_client_ca_pem, &pair, 1, request, NULL);
}

sw_server *sw_server_new(const sw_server_options *options, const sw_method *methods, size_t n_methods,
                         GError **error)
{
    sw_server *s = g_new0(sw_server, 1);
    g_mutex_init(&s->lock);
    g_cond_init(&s->shutdown_done_cond);
    s->shutdown_tag = (shutdown_tag){{shutdown_done}, s};
    grpc_arg args[6];
    size_t n_args = 0;
    args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, options->max_message_bytes);
    args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, options->max_message_bytes);
    if (options->keepalive_time_ms > 0)
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, options->keepalive_time_ms);
    if (options->keepalive_timeout_ms > 0)
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options->keepalive_timeout_ms);
    if (options->max_connection_age_ms > 0) {
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_CONNECTION_AGE_MS, options->max_connection_age_ms);
        args[n_args++] = sw_grpc_int_arg(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, options->max_connection_age_ms);
    }
    grpc_channel_args channel_args = {n_args, args};
    s->max_in_flight = options->max_in_flight;
    s->admit = options->admit;
    s->admit_data = options->admit_data;
    s->on_refused = options->on_refused;
    s->on_refused_data = options->on_refused_data;
    s->grpc = grpc_server_create(&channel_args, NULL);
    s->owns_cq = options->cq == NULL;
    s->cq = s->owns_cq ? grpc_completion_queue_create_for_next(NULL) : options->cq;
    grpc_server_register_completion_queue(s->grpc, s->cq, NULL);
    s->n_methods = n_methods;
    s->methods = g_new0(registered_method, n_methods);
    for (size_t i = 0; i < n_methods; i++) {
        s->methods[i].method = methods[i];
        s->methods[i].handle = grpc_server_register_method(s->grpc, methods[i].path, NULL,
                                                           GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    grpc_server_credentials *creds = server_credentials(options);
    s->port = grpc_server_add_http2_port(s->grpc, options->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port <= 0) {
        g_set_error(error, SW_ERROR, SW_CODE_UNAVAILABLE, "cannot listen on %s", options->listen);
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

int sw_server_shutdown(sw_server *s, int drain_timeout_ms)
{
    if (!s->started)
        return 0;
    g_atomic_int_set(&s->shutting_down, 1);
    grpc_server_shutdown_and_notify(s->grpc, s->cq, &s->shutdown_tag);
    int cancelled = 0;
    if (!wait_shutdown(s, g_get_monotonic_time() + (gint64)drain_timeout_ms * 1000)) {
        cancelled = 1;
        grpc_server_cancel_all_calls(s->grpc);
        wait_shutdown(s, G_MAXINT64);
    }
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
    g_free(s->methods);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->shutdown_done_cond);
    g_free(s);
}
