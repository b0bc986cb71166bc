#include "channel.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <string.h>

#include "byte_buffer.h"
#include "completion.h"
#include "grpc_args.h"
#include "server_internal.h"
#include "sw_error.h"

struct sw_channel {
    char *target;
    grpc_channel *grpc;
    grpc_completion_queue *cq;
    GThread *thread; /* NULL when the queue is shared (its owner polls it) */
    gint in_flight;
};

typedef struct pending_call {
    sw_completion base; /* the tag */
    sw_channel *channel;
    grpc_call *call;
    grpc_metadata_array initial_metadata;
    grpc_metadata_array trailing_metadata;
    grpc_metadata *send_metadata;
    size_t n_send_metadata;
    grpc_byte_buffer *request;
    grpc_byte_buffer *response;
    grpc_status_code status;
    grpc_slice details;
    sw_call *parent; /* NULL: made on no server call's behalf */
    sw_channel_done done;
    void *user_data;
} pending_call;

static void release_bytes(void *bytes)
{
    g_bytes_unref(bytes);
}

static void finish_call(pending_call *p)
{
    if (p->parent)
        sw__call_release_child(p->parent, p->call);
    if (p->status == GRPC_STATUS_OK && p->response) {
        GBytes *response = sw_byte_buffer_to_bytes(p->response);
        p->done(response, NULL, p->user_data);
        g_bytes_unref(response);
    } else {
        char *details = grpc_slice_to_c_string(p->details);
        GError *error = g_error_new(SW_ERROR, p->status == GRPC_STATUS_OK ? SW_CODE_INTERNAL : (int)p->status, "%s",
                                    p->status == GRPC_STATUS_OK ? "the reply had no message" : details);
        p->done(NULL, error, p->user_data);
        g_error_free(error);
        gpr_free(details);
    }
    grpc_metadata_array_destroy(&p->initial_metadata);
    grpc_metadata_array_destroy(&p->trailing_metadata);
    for (size_t i = 0; i < p->n_send_metadata; i++) {
        grpc_slice_unref(p->send_metadata[i].key);
        grpc_slice_unref(p->send_metadata[i].value);
    }
    g_free(p->send_metadata);
    grpc_byte_buffer_destroy(p->request);
    if (p->response)
        grpc_byte_buffer_destroy(p->response);
    grpc_slice_unref(p->details);
    grpc_call_unref(p->call);
    g_free(p);
}

/* The call's one batch completed; its status says how. */
static void call_done(sw_completion *done, int success)
{
    (void)success;
    pending_call *p = (pending_call *)done;
    sw_channel *ch = p->channel;
    finish_call(p);
    g_atomic_int_dec_and_test(&ch->in_flight);
}

static gpointer complete_loop(gpointer data)
{
    sw_channel *ch = data;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(ch->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type == GRPC_OP_COMPLETE)
            sw_completion_run(ev.tag, ev.success);
    }
}

/* Round robin over every resolved address; a call that no server answered
 * is retried, and round robin puts the retry on another replica. gRPC
 * retries only calls that got no response headers yet, and stagewise
 * servers send headers with the answer, so a retried call never ran to
 * completion anywhere. CANCELLED is in the list for the calls a server that
 * starts shutting down cancels unstarted (gRPC core's "zombie" calls).
 * The backoffs double four times and add up to `retry_window_ms` (gRPC
 * adds 20% jitter), so the last attempt comes about that long after the
 * first. */
/* How long a connection attempt may take; see GRPC_ARG_MIN_RECONNECT_BACKOFF_MS
 * below. */
#define CONNECT_TIMEOUT_MS 3000

static char *service_config(int max_attempts, int retry_window_ms)
{
    /* 1 + 2 + 4 + 8 = 15 parts; the last is 8/15 of the window. */
    double initial_s = retry_window_ms / 15.0 / 1000.0;
    char initial[G_ASCII_DTOSTR_BUF_SIZE], maximum[G_ASCII_DTOSTR_BUF_SIZE];
    g_ascii_formatd(initial, sizeof initial, "%.3f", initial_s);
    g_ascii_formatd(maximum, sizeof maximum, "%.3f", initial_s * 8);
    return g_strdup_printf("{\"loadBalancingConfig\":[{\"round_robin\":{}}],"
                           "\"methodConfig\":[{\"name\":[{}],\"retryPolicy\":{\"maxAttempts\":%d,"
                           "\"initialBackoff\":\"%ss\",\"maxBackoff\":\"%ss\",\"backoffMultiplier\":2,"
                           "\"retryableStatusCodes\":[\"UNAVAILABLE\",\"CANCELLED\"]}}]}",
                           max_attempts, initial, maximum);
}

static grpc_channel_credentials *make_credentials(const sw_channel_options *o, GError **error)
{
    if (!o->tls_root_certs && !o->tls_cert_chain && !o->tls_private_key)
        return grpc_insecure_credentials_create();
    if (!o->tls_cert_chain != !o->tls_private_key) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "a TLS client certificate needs both the certificate chain and the private key");
        return NULL;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = o->tls_private_key, .cert_chain = o->tls_cert_chain};
    return grpc_ssl_credentials_create_ex(o->tls_root_certs, o->tls_cert_chain ? &pair : NULL, NULL, NULL);
}

sw_channel *sw_channel_new(const sw_channel_options *o, GError **error)
{
    if (o->target == NULL || o->target[0] == '\0') {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "no target given");
        return NULL;
    }
    /* gRPC counts its users: each channel holds the library open. */
    grpc_init();
    grpc_channel_credentials *creds = make_credentials(o, error);
    if (creds == NULL) {
        grpc_shutdown();
        return NULL;
    }
    int max_message = o->max_message_bytes == 0 ? 256 * 1024 * 1024 : o->max_message_bytes;
    char *config = service_config(o->max_attempts > 0 ? MIN(o->max_attempts, 5) : 5,
                                  o->retry_window_ms > 0 ? o->retry_window_ms : 150);
    grpc_arg args[14];
    size_t n = 0;
    args[n++] = sw_grpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_message);
    args[n++] = sw_grpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_message);
    args[n++] = sw_grpc_string_arg(GRPC_ARG_SERVICE_CONFIG, config);
    args[n++] = sw_grpc_int_arg(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
    args[n++] = sw_grpc_int_arg(GRPC_ARG_ENABLE_RETRIES, 1);
    /* A call is retried only while its request fits the retry buffer
     * (256 KiB by default): let every request that may be sent be retried. */
    args[n++] = sw_grpc_int_arg(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, max_message < 0 ? G_MAXINT : max_message);
    /* gRPC's default backoff grows to two minutes: a replica back after an
     * outage would wait that long for traffic. */
    args[n++] = sw_grpc_int_arg(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args[n++] = sw_grpc_int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    /* Despite its name, gRPC takes this as the least time a connection
     * attempt (TCP and the HTTP/2 handshake) is given. At 100 ms a busy
     * next stage missed it: after a keepalive false alarm every reconnect
     * failed ("tcp handshaker shutdown") for about a second, and so did the
     * calls waiting on it. A refused connection still fails at once. */
    args[n++] = sw_grpc_int_arg(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, CONNECT_TIMEOUT_MS);
    if (o->keepalive_ms > 0) {
        args[n++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, o->keepalive_ms);
        args[n++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o->keepalive_ms);
        args[n++] = sw_grpc_int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
        args[n++] = sw_grpc_int_arg(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    if (o->tls_server_name)
        args[n++] = sw_grpc_string_arg(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, o->tls_server_name);
    grpc_channel_args channel_args = {.num_args = n, .args = args};
    sw_channel *ch = g_new0(sw_channel, 1);
    ch->target = g_strdup(o->target);
    ch->grpc = grpc_channel_create(o->target, creds, &channel_args);
    grpc_channel_credentials_release(creds);
    g_free(config);
    if (o->cq) {
        ch->cq = o->cq;
    } else {
        ch->cq = grpc_completion_queue_create_for_next(NULL);
        ch->thread = g_thread_new("sw-channel", complete_loop, ch);
    }
    return ch;
}

void sw_channel_free(sw_channel *ch)
{
    if (ch == NULL)
        return;
    if (ch->thread) {
        /* Shutting the queue down lets pending calls complete first. */
        grpc_completion_queue_shutdown(ch->cq);
        g_thread_join(ch->thread);
        grpc_completion_queue_destroy(ch->cq);
    } else {
        g_warn_if_fail(g_atomic_int_get(&ch->in_flight) == 0);
    }
    grpc_channel_destroy(ch->grpc);
    g_free(ch->target);
    g_free(ch);
    grpc_shutdown();
}

const char *sw_channel_target(const sw_channel *ch)
{
    return ch->target;
}

static grpc_byte_buffer *byte_buffer_over(GBytes *const *parts, size_t n)
{
    grpc_slice *slices = g_new(grpc_slice, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        gsize len = 0;
        const void *data = g_bytes_get_data(parts[i], &len);
        slices[i] = len ? grpc_slice_new_with_user_data((void *)data, len, release_bytes, g_bytes_ref(parts[i]))
                        : grpc_empty_slice();
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
    for (size_t i = 0; i < n; i++)
        grpc_slice_unref(slices[i]);
    g_free(slices);
    return bb;
}

static void start_call(sw_channel *ch, const char *method, grpc_byte_buffer *request, int64_t timeout_us,
                       const char *const *metadata, sw_call *parent, sw_channel_done done, void *user_data);

void sw_channel_call_async(sw_channel *ch, const char *method, GBytes *request, int64_t timeout_us,
                           const char *const *metadata, sw_channel_done done, void *user_data)
{
    start_call(ch, method, byte_buffer_over(&request, 1), timeout_us, metadata, NULL, done, user_data);
}

void sw_channel_call_async_parts(sw_channel *ch, const char *method, GPtrArray *parts, int64_t timeout_us,
                                 const char *const *metadata, sw_call *parent, sw_channel_done done, void *user_data)
{
    start_call(ch, method, byte_buffer_over((GBytes *const *)parts->pdata, parts->len), timeout_us, metadata, parent,
               done, user_data);
}

static void start_call(sw_channel *ch, const char *method, grpc_byte_buffer *request, int64_t timeout_us,
                       const char *const *metadata, sw_call *parent, sw_channel_done done, void *user_data)
{
    pending_call *p = g_new0(pending_call, 1);
    p->base.func = call_done;
    p->channel = ch;
    p->done = done;
    p->user_data = user_data;
    p->request = request;
    p->details = grpc_empty_slice();
    grpc_metadata_array_init(&p->initial_metadata);
    grpc_metadata_array_init(&p->trailing_metadata);
    for (size_t i = 0; metadata && metadata[i]; i += 2)
        p->n_send_metadata++;
    p->send_metadata = g_new0(grpc_metadata, p->n_send_metadata ? p->n_send_metadata : 1);
    for (size_t i = 0; i < p->n_send_metadata; i++) {
        p->send_metadata[i].key = grpc_slice_from_copied_string(metadata[2 * i]);
        p->send_metadata[i].value = grpc_slice_from_copied_string(metadata[2 * i + 1]);
    }
    gpr_timespec deadline =
        timeout_us < 0 ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                       : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(timeout_us, GPR_TIMESPAN));
    grpc_slice method_slice = grpc_slice_from_static_string(method);
    /* Not gRPC's parent call, which costs far more than adopting it
     * (server_internal.h, sw__call_adopt_child). */
    p->call =
        grpc_channel_create_call(ch->grpc, NULL, GRPC_PROPAGATE_DEFAULTS, ch->cq, method_slice, NULL, deadline, NULL);
    if (parent) {
        p->parent = parent;
        sw__call_adopt_child(parent, p->call);
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = p->n_send_metadata;
    ops[0].data.send_initial_metadata.metadata = p->send_metadata;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = p->request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &p->initial_metadata;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &p->response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &p->trailing_metadata;
    ops[5].data.recv_status_on_client.status = &p->status;
    ops[5].data.recv_status_on_client.status_details = &p->details;
    g_atomic_int_inc(&ch->in_flight);
    grpc_call_error err = grpc_call_start_batch(p->call, ops, 6, p, NULL);
    if (err != GRPC_CALL_OK) {
        /* No event will come: complete it here. */
        p->status = GRPC_STATUS_INTERNAL;
        grpc_slice_unref(p->details);
        p->details = grpc_slice_from_copied_string(grpc_call_error_to_string(err));
        finish_call(p);
        g_atomic_int_dec_and_test(&ch->in_flight);
    }
}

typedef struct blocking_result {
    GMutex lock;
    GCond cond;
    gboolean finished;
    GBytes *response;
    GError *error;
} blocking_result;

static void blocking_done(GBytes *response, const GError *error, void *user_data)
{
    blocking_result *r = user_data;
    g_mutex_lock(&r->lock);
    r->response = response ? g_bytes_ref(response) : NULL;
    r->error = error ? g_error_copy(error) : NULL;
    r->finished = TRUE;
    g_cond_signal(&r->cond);
    g_mutex_unlock(&r->lock);
}

GBytes *sw_channel_call(sw_channel *ch, const char *method, GBytes *request, int64_t timeout_us,
                        const char *const *metadata, GError **error)
{
    blocking_result r = {0};
    g_mutex_init(&r.lock);
    g_cond_init(&r.cond);
    sw_channel_call_async(ch, method, request, timeout_us, metadata, blocking_done, &r);
    g_mutex_lock(&r.lock);
    while (!r.finished)
        g_cond_wait(&r.cond, &r.lock);
    g_mutex_unlock(&r.lock);
    g_mutex_clear(&r.lock);
    g_cond_clear(&r.cond);
    if (r.error)
        g_propagate_error(error, r.error);
    return r.response;
}
