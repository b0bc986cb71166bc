/* One accepted call: its replies, its stream, what it tells a handler.
 * Every function here may run on any thread; the call stays alive while a
 * reference (the handler's, or one per batch in flight) is held. */
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <string.h>

#include "byte_buffer.h"
#include "clip.h"
#include "server_internal.h"
#include "sw_error.h"

static void close_done(sw_completion *done, int success);
static void stream_done(sw_completion *done, int success);
static void send_done(sw_completion *done, int success);
static void read_done(sw_completion *done, int success);
static void stream_read(sw_call *c);

void sw__call_unref(sw_call *c)
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
    if (c->incoming)
        grpc_byte_buffer_destroy(c->incoming);
    g_free(c->finish_message);
    g_mutex_clear(&c->stream_lock);
    g_warn_if_fail(c->child == NULL);
    g_mutex_clear(&c->child_lock);
    g_free(c);
}

sw_call *sw__call_new(sw_server *s, const registered_method *m, sw_completion_func accept, sw_completion_func receive)
{
    sw_call *c = g_new0(sw_call, 1);
    c->server = s;
    c->method = m;
    c->refs = 1;
    c->accept_tag = (sw_call_tag){.base = {.func = accept}, .call = c};
    c->recv_tag = (sw_call_tag){.base = {.func = receive}, .call = c};
    c->close_tag = (sw_call_tag){.base = {.func = close_done}, .call = c};
    c->send_tag = (sw_call_tag){.base = {.func = send_done}, .call = c};
    c->stream_tag = (sw_call_tag){.base = {.func = stream_done}, .call = c};
    c->read_tag = (sw_call_tag){.base = {.func = read_done}, .call = c};
    g_mutex_init(&c->stream_lock);
    g_mutex_init(&c->child_lock);
    g_queue_init(&c->outbox);
    grpc_metadata_array_init(&c->metadata);
    if (m == NULL)
        grpc_call_details_init(&c->details);
    return c;
}

/* FALSE when the batch could not start: then no event will come for it. */
gboolean sw__call_start_batch(sw_call *c, const grpc_op *ops, size_t n, sw_call_tag *t)
{
    g_atomic_int_inc(&c->refs);
    if (grpc_call_start_batch(c->call, ops, n, t, NULL) == GRPC_CALL_OK)
        return TRUE;
    sw__call_unref(c);
    return FALSE;
}

/* Sends the one reply a unary call gets: status, and a message when OK. */
static void send_reply(sw_call *c, grpc_byte_buffer *response, grpc_status_code code, const char *message)
{
    g_assert(!c->ended);
    c->ended = TRUE;
    sw_server *s = c->server;
    c->response = response;
    if (message) {
        /* Whatever a message carries (a module's exception quoting client
         * data, say), it must fit the headers of a connection other calls
         * share, and be UTF-8. */
        char *fit = sw_clip_status(message, SW_STATUS_MAX_BYTES);
        c->status_details = grpc_slice_from_copied_string(fit);
        c->has_status_details = TRUE;
        g_free(fit);
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
    if (c->refuse_retry && code != GRPC_STATUS_OK) {
        /* gRPC clients read a negative pushback as "do not retry". */
        c->pushback.key = grpc_slice_from_static_string("grpc-retry-pushback-ms");
        c->pushback.value = grpc_slice_from_static_string("-1");
        ops[n].data.send_status_from_server.trailing_metadata_count = 1;
        ops[n].data.send_status_from_server.trailing_metadata = &c->pushback;
    }
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = message ? &c->status_details : NULL;
    /* Before the reply can reach the client: a client that waits for each
     * reply before its next call must not find this call holding the slot. */
    sw__server_release_call(s, c);
    if (c->method && c->method->method.on_message) {
        g_mutex_lock(&s->lock);
        g_hash_table_remove(s->streams, c);
        g_mutex_unlock(&s->lock);
    }
    sw__call_start_batch(c, ops, n, &c->send_tag);
    sw__call_unref(c); /* the handler's reference */
    /* Last, touching neither the call nor anything of the handler's: a
     * draining server goes on to free them once no call is active. */
    sw__server_call_ended(s);
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

void sw_call_refuse_retry(sw_call *c)
{
    c->refuse_retry = TRUE;
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
    sw_call_fail(c, sw_error_code(error), error->message);
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
        if (sw__call_start_batch(c, ops, n, &c->stream_tag))
            return;
        grpc_byte_buffer_destroy(c->streaming);
        c->streaming = NULL;
    }
    if (c->finish_pending) {
        c->finish_pending = FALSE;
        send_reply(c, NULL, (grpc_status_code)c->finish_code, c->finish_message);
    } else if (c->read_pending) {
        stream_read(c);
    }
}

/* With stream_lock held: the status follows the queued messages. */
static void end_stream_locked(sw_call *c, int code, const char *message)
{
    g_assert(!c->ended && !c->finish_pending);
    c->finish_pending = TRUE;
    c->finish_code = code;
    c->finish_message = g_strdup(message);
    if (c->streaming == NULL)
        stream_next(c);
}

/* With stream_lock held, nothing being sent: reads the client's next
 * message, unless the stream ended or the server is shutting down. */
static void stream_read(sw_call *c)
{
    c->read_pending = FALSE;
    if (c->ended || c->finish_pending)
        return;
    if (g_atomic_int_get(&c->server->shutting_down)) {
        end_stream_locked(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
        return;
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->incoming;
    c->reading = TRUE;
    if (!sw__call_start_batch(c, &op, 1, &c->read_tag)) {
        c->reading = FALSE;
        end_stream_locked(c, GRPC_STATUS_INTERNAL, "the next message could not be received");
    }
}

void sw__call_stream_start(sw_call *c)
{
    g_mutex_lock(&c->stream_lock);
    stream_read(c);
    g_mutex_unlock(&c->stream_lock);
}

void sw__call_stream_shutdown(sw_call *c)
{
    g_mutex_lock(&c->stream_lock);
    /* A handler running now reads no further: stream_read() sees the
     * shutdown when it returns. */
    if (!c->ended && !c->finish_pending && !c->in_handler)
        end_stream_locked(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
    g_mutex_unlock(&c->stream_lock);
}

/* One message of a bidirectional stream arrived (or its end). */
static void on_read(sw_call *c, int success)
{
    g_mutex_lock(&c->stream_lock);
    c->reading = FALSE;
    grpc_byte_buffer *bb = c->incoming;
    c->incoming = NULL;
    if (c->ended || c->finish_pending) {
        /* Ended meanwhile (shutdown): nothing more to read or answer. */
    } else if (!success || (bb == NULL && g_atomic_int_get(&c->cancelled))) {
        end_stream_locked(c, GRPC_STATUS_CANCELLED, "the stream was cancelled");
    } else if (bb && grpc_byte_buffer_length(bb) > SW_INLINE_REQUEST_MAX_BYTES) {
        char *msg = g_strdup_printf("a message of %zu bytes; this method takes at most %d", grpc_byte_buffer_length(bb),
                                    SW_INLINE_REQUEST_MAX_BYTES);
        end_stream_locked(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        g_free(msg);
    } else {
        GBytes *message = bb ? sw_byte_buffer_to_bytes(bb) : NULL;
        c->in_handler = TRUE;
        g_mutex_unlock(&c->stream_lock);
        c->method->method.on_message(c, message, c->method->method.user_data);
        g_mutex_lock(&c->stream_lock);
        c->in_handler = FALSE;
        if (message)
            g_bytes_unref(message);
        if (c->ended || c->finish_pending) {
            /* The handler ended the stream. */
        } else if (bb == NULL) {
            end_stream_locked(c, GRPC_STATUS_INTERNAL, "the stream's handler did not end it");
        } else if (c->streaming == NULL && g_queue_is_empty(&c->outbox)) {
            stream_read(c);
        } else {
            c->read_pending = TRUE; /* once the answers are sent */
        }
    }
    g_mutex_unlock(&c->stream_lock);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    sw__call_unref(c);
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
    sw__call_unref(c);
}

void sw_call_finish(sw_call *c, int code, const char *message)
{
    g_atomic_int_inc(&c->refs);
    g_mutex_lock(&c->stream_lock);
    end_stream_locked(c, code, message);
    g_mutex_unlock(&c->stream_lock);
    sw__call_unref(c);
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
    sw__call_unref(c);
}

static void on_close(sw_call *c)
{
    if (g_atomic_int_get(&c->cancelled)) {
        gboolean out_of_time = sw__call_out_of_time(c);
        g_mutex_lock(&c->child_lock);
        c->cancel_seen = TRUE;
        c->cancel_out_of_time = out_of_time;
        grpc_call *child = g_steal_pointer(&c->child);
        g_mutex_unlock(&c->child_lock);
        if (child) {
            sw__call_cancel_child(child, out_of_time);
            grpc_call_unref(child);
        }
        if (c->on_cancel)
            c->on_cancel(c, c->on_cancel_data);
    }
    sw__call_unref(c);
}

GBytes *sw_call_request(sw_call *c)
{
    if (c->request == NULL) {
        c->request = sw_byte_buffer_to_bytes(c->payload);
        /* A large message arrives in many slices, which the request copies
         * into one: drop them now, not when the call ends. */
        g_clear_pointer(&c->payload, grpc_byte_buffer_destroy);
    }
    return c->request;
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

static void close_done(sw_completion *done, int success)
{
    (void)success; /* the outcome is in `cancelled` */
    on_close(((sw_call_tag *)done)->call);
}

static void stream_done(sw_completion *done, int success)
{
    (void)success; /* a failed send ends the call, which RECV_CLOSE reports */
    on_stream_sent(((sw_call_tag *)done)->call);
}

static void read_done(sw_completion *done, int success)
{
    on_read(((sw_call_tag *)done)->call, success);
}

static void send_done(sw_completion *done, int success)
{
    (void)success;
    sw__call_unref(((sw_call_tag *)done)->call);
}

void sw__call_watch_close(sw_call *c)
{
    grpc_op close_op;
    memset(&close_op, 0, sizeof close_op);
    close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close_op.data.recv_close_on_server.cancelled = &c->cancelled;
    sw__call_start_batch(c, &close_op, 1, &c->close_tag);
}
