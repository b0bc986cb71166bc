/* Client-side gRPC plumbing: a channel to a target and unary calls on it.
 *
 * Shared by the pipeline hops between stages and by the client library.
 * A channel load-balances round-robin over every address its target
 * resolves to, and retries on another address a call that no server
 * answered: UNAVAILABLE (a replica went away), or CANCELLED before any
 * response (a draining server gives that to calls it took but never
 * started). Retrying is safe because inference is a pure function of its
 * request. Reconnecting after a failure waits 0.1 s to 1 s, not gRPC's
 * default of up to 2 minutes, so a restarted replica gets traffic back
 * within a second. A channel completes
 * its calls on a thread of its own, or, when its completion queue is shared
 * with a server (sw_channel_options.cq), on that server's polling thread;
 * callbacks run there and must not block.
 * Thread-safe: calls may start from any thread at once; free the channel
 * once, after its last call completed. */
#ifndef SW_CHANNEL_H
#define SW_CHANNEL_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* gRPC C core's types (grpc/grpc.h defines them the same way). */
struct grpc_call;
struct grpc_completion_queue;
/* A server call (server.h). */
typedef struct sw_call sw_call;

typedef struct sw_channel sw_channel;

typedef struct sw_channel_options {
    const char *target;    /* "host:port", "ipv4:a:p,b:q", "dns:///name:port", "unix:path" */
    int max_message_bytes; /* receive and send limit; 0 = 256 MiB, -1 = unlimited */
    int max_attempts;      /* attempts per call that no server answered; 0 = 5 */
    /* How long after its first attempt such a call is last retried; 0 =
     * 150 ms, which fails fast when no replica is up. The stages' next-hop
     * channels (services/service_main.c) wait 3 s, so that their calls
     * outlast the reconnect after a connection drops on a busy host. */
    int retry_window_ms;
    /* Pings on the connection every this many ms, even when idle, and drops
     * it when a ping goes unanswered for as long: a dead link or host is
     * noticed within about twice this, and its calls retried elsewhere.
     * 0: no pings. Only towards servers that accept pings this often
     * (stagewise servers accept one a second); others may close the
     * connection for "too many pings". */
    int keepalive_ms;
    /* TLS: all NULL is plaintext. PEM contents, not paths. */
    const char *tls_root_certs;
    const char *tls_cert_chain;
    const char *tls_private_key;
    const char *tls_server_name; /* override of the name checked in the server certificate */
    /* NULL: the channel completes its calls on a thread of its own. Else a
     * queue polled by someone else (sw_server_options.cq) who runs each tag
     * as an sw_completion; it must outlive the channel, which may be freed
     * only once the queue's poller has seen its calls complete. The blocking
     * sw_channel_call() must not be used from that poller. */
    struct grpc_completion_queue *cq;
} sw_channel_options;

/* NULL with an error when the options are invalid. Connects lazily. */
sw_channel *sw_channel_new(const sw_channel_options *options, GError **error);
/* Waits for calls in flight to complete (their callbacks run), then frees. */
void sw_channel_free(sw_channel *channel);
const char *sw_channel_target(const sw_channel *channel);

/* Called once per call, on the thread completing the channel's calls. `response` (on OK) and
 * `error` (otherwise: SW_ERROR domain, code = gRPC status, message = the
 * status details) are borrowed for the duration of the callback. */
typedef void (*sw_channel_done)(GBytes *response, const GError *error, void *user_data);

/* Starts a unary call of `method` ("/pkg.Service/Method") with the packed
 * `request` (a reference is taken; it is not copied). `timeout_us` < 0
 * means no deadline. `metadata` is NULL or a NULL-terminated list of
 * key, value, key, value... copied before returning. */
void sw_channel_call_async(sw_channel *channel, const char *method, GBytes *request, int64_t timeout_us,
                           const char *const *metadata, sw_channel_done done, void *user_data);

/* The same with the request as `parts` (GBytes sent back to back without
 * copying; references are taken), made on behalf of the server call
 * `parent` (NULL for none): it is cancelled when the parent is (the
 * client cancelled, its deadline passed, a drain ran out). Its deadline is
 * `timeout_us` alone: pass what is left of the parent's
 * (sw_call_remaining_us). The parent must not end before `done` has run. */
void sw_channel_call_async_parts(sw_channel *channel, const char *method, GPtrArray *parts, int64_t timeout_us,
                                 const char *const *metadata, sw_call *parent, sw_channel_done done, void *user_data);

/* The blocking form: the response (new reference) or NULL and an error. */
GBytes *sw_channel_call(sw_channel *channel, const char *method, GBytes *request, int64_t timeout_us,
                        const char *const *metadata, GError **error);

G_END_DECLS

#endif
