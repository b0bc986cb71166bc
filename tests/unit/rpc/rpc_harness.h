/* What the rpc tests share: a server on 127.0.0.1:0 with a channel to it,
 * health messages as requests and responses, and counters to wait on.
 * Included by each test_*.c here (each is its own program), so everything
 * is static inline. */
#ifndef RPC_HARNESS_H
#define RPC_HARNESS_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <string.h>

#include "channel.h"
#include "health.pb-c.h"
#include "server.h"
#include "sw_error.h"

/* Bounds a wait that only a bug makes long: a failing test aborts instead
 * of hanging. */
#define WAIT_US (10 * G_USEC_PER_SEC)
/* Timeouts for calls that must come back long before them. */
#define CALL_TIMEOUT_US (10 * G_USEC_PER_SEC)
/* The bound on what a handler sees left of a client's timeout: gRPC rounds
 * the timeout it sends up to a coarser unit, so the server may see a little
 * more than the client asked for (5 s arrived as 5.009 s). */
#define WITH_SLACK(us) ((us) + (us) / 10 + 20 * 1000)

/* A count that threads raise and the test waits on. */
typedef struct counter {
    GMutex lock;
    GCond changed;
    int value;
} counter;

static inline void counter_init(counter *c)
{
    g_mutex_init(&c->lock);
    g_cond_init(&c->changed);
    c->value = 0;
}

static inline void counter_clear(counter *c)
{
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->changed);
}

static inline void counter_add(counter *c, int n)
{
    g_mutex_lock(&c->lock);
    c->value += n;
    g_cond_broadcast(&c->changed);
    g_mutex_unlock(&c->lock);
}

static inline int counter_get(counter *c)
{
    g_mutex_lock(&c->lock);
    int v = c->value;
    g_mutex_unlock(&c->lock);
    return v;
}

/* Waits until the count reaches `n`; aborts after WAIT_US. */
static inline void counter_wait(counter *c, int n)
{
    gint64 until = g_get_monotonic_time() + WAIT_US;
    g_mutex_lock(&c->lock);
    while (c->value < n)
        if (!g_cond_wait_until(&c->changed, &c->lock, until))
            break;
    int v = c->value;
    g_mutex_unlock(&c->lock);
    g_assert_cmpint(v, >=, n);
}

static inline sw_server_options harness_server_options(void)
{
    sw_server_options o = {.listen = "127.0.0.1:0", .worker_threads = 2, .max_message_bytes = -1};
    return o;
}

static inline sw_server *harness_server_start(const sw_server_options *o, const sw_method *methods, size_t n)
{
    GError *error = NULL;
    sw_server *s = sw_server_new(o, methods, n, &error);
    g_assert_no_error(error);
    g_assert_nonnull(s);
    g_assert_cmpint(sw_server_port(s), >, 0);
    sw_server_start(s);
    return s;
}

static inline sw_channel *harness_channel_to(const sw_server *s, struct grpc_completion_queue *cq)
{
    char *target = g_strdup_printf("127.0.0.1:%d", sw_server_port(s));
    sw_channel_options o = {.target = target, .cq = cq};
    GError *error = NULL;
    sw_channel *ch = sw_channel_new(&o, &error);
    g_assert_no_error(error);
    g_assert_nonnull(ch);
    g_assert_cmpstr(sw_channel_target(ch), ==, target);
    g_free(target);
    return ch;
}

/* Every call ended within the drain: it must not have been cut short. */
static inline void harness_server_stop(sw_server *s)
{
    g_assert_false(sw_server_shutdown(s, 5000));
    sw_server_free(s);
}

/* A client call made with gRPC itself, for what sw_channel does not do
 * (cancel midway, never send the message): `path` on 127.0.0.1:`port`,
 * a 30 s deadline, a pluck queue of its own. The status and its details
 * land in the struct; raw_call_end() frees everything. */
typedef struct raw_call {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array initial, trailing;
    grpc_status_code status;
    grpc_slice details;
} raw_call;

static inline void raw_call_start(raw_call *r, int port, const char *path)
{
    memset(r, 0, sizeof *r);
    char *target = g_strdup_printf("127.0.0.1:%d", port);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    r->channel = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    g_free(target);
    r->cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(30, GPR_TIMESPAN));
    r->call = grpc_channel_create_call(r->channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq,
                                       grpc_slice_from_static_string(path), NULL, deadline, NULL);
    grpc_metadata_array_init(&r->initial);
    grpc_metadata_array_init(&r->trailing);
    r->status = GRPC_STATUS_OK;
    r->details = grpc_empty_slice();
}

static inline void raw_call_end(raw_call *r)
{
    grpc_slice_unref(r->details);
    grpc_metadata_array_destroy(&r->initial);
    grpc_metadata_array_destroy(&r->trailing);
    grpc_call_unref(r->call);
    grpc_completion_queue_shutdown(r->cq);
    while (grpc_completion_queue_pluck(r->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(r->cq);
    grpc_channel_destroy(r->channel);
}

static inline GBytes *pack_request(const char *service)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    size_t len = grpc__health__v1__health_check_request__get_packed_size(&req);
    guint8 *buf = g_malloc(len ? len : 1);
    grpc__health__v1__health_check_request__pack(&req, buf);
    return g_bytes_new_take(buf, len);
}

/* The service named by a packed request, newly allocated. */
static inline char *unpack_request(GBytes *bytes)
{
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(bytes, &len);
    Grpc__Health__V1__HealthCheckRequest *req = grpc__health__v1__health_check_request__unpack(NULL, len, data);
    g_assert_nonnull(req);
    char *service = g_strdup(req->service);
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    return service;
}

static inline int unpack_status(GBytes *bytes)
{
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(bytes, &len);
    Grpc__Health__V1__HealthCheckResponse *resp = grpc__health__v1__health_check_response__unpack(NULL, len, data);
    g_assert_nonnull(resp);
    int status = resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    return status;
}

static inline void reply_status(sw_call *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = status;
    sw_call_reply(call, &resp.base);
}

/* A blocking call of `path` with a request for `service`: the response's
 * status, or -1 with `error` set. */
static inline int call_check(sw_channel *ch, const char *path, const char *service, int64_t timeout_us,
                             const char *const *metadata, GError **error)
{
    GBytes *req = pack_request(service);
    GBytes *resp = sw_channel_call(ch, path, req, timeout_us, metadata, error);
    g_bytes_unref(req);
    if (resp == NULL)
        return -1;
    int status = unpack_status(resp);
    g_bytes_unref(resp);
    return status;
}

/* A call's gRPC status as the client saw it: 0 for OK. */
static inline int call_code(sw_channel *ch, const char *path, const char *service, int64_t timeout_us,
                            const char *const *metadata)
{
    GError *error = NULL;
    int status = call_check(ch, path, service, timeout_us, metadata, &error);
    if (status >= 0) {
        g_assert_no_error(error);
        return SW_CODE_OK;
    }
    g_assert_nonnull(error);
    g_assert_true(error->domain == SW_ERROR);
    int code = error->code;
    g_error_free(error);
    return code;
}

/* What an asynchronous call ended with, filled on the channel's thread. */
typedef struct async_result {
    counter *done;
    int status; /* the response's, when OK */
    int code;
    char *message;
    GThread *thread;
} async_result;

static inline void async_result_done(GBytes *response, const GError *error, void *user_data)
{
    async_result *r = user_data;
    r->thread = g_thread_self();
    if (response) {
        g_assert_null(error);
        r->code = SW_CODE_OK;
        r->status = unpack_status(response);
    } else {
        g_assert_nonnull(error);
        g_assert_true(error->domain == SW_ERROR);
        r->code = error->code;
        r->message = g_strdup(error->message);
    }
    counter_add(r->done, 1);
}

static inline void call_check_async(sw_channel *ch, const char *path, const char *service, int64_t timeout_us,
                                    async_result *r)
{
    GBytes *req = pack_request(service);
    sw_channel_call_async(ch, path, req, timeout_us, NULL, async_result_done, r);
    g_bytes_unref(req);
}

/* Sends `n` calls of `path` for `service` at once and waits for them all:
 * each must end with gRPC status `code`. */
static inline void call_many_expecting(sw_channel *ch, const char *path, const char *service, int n, int code)
{
    counter done;
    counter_init(&done);
    async_result *results = g_new0(async_result, n);
    for (int i = 0; i < n; i++) {
        results[i].done = &done;
        call_check_async(ch, path, service, CALL_TIMEOUT_US, &results[i]);
    }
    counter_wait(&done, n);
    for (int i = 0; i < n; i++) {
        g_assert_cmpint(results[i].code, ==, code);
        g_free(results[i].message);
    }
    g_free(results);
    counter_clear(&done);
}

#endif
