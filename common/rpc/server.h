/* A gRPC server on gRPC C core that dispatches unary calls to handlers.
 *
 * One polling thread drives the completion queue. Each accepted call becomes
 * one sw_call object, owned by the server and reference counted across the
 * batches in flight on it; the handler borrows it. Cheap methods run inline
 * on the polling thread; the rest go to a pool of worker threads (the one
 * that went idle last first: see worker_pool.h), so
 * inference never blocks polling. Calls to methods no handler serves get
 * UNIMPLEMENTED rather than hanging.
 *
 * What one client can make the server hold is bounded before the work
 * starts: worker calls are counted against `max_in_flight` before their
 * request is read, then against the request memory budget once it is; the
 * polling thread handles no request larger than SW_INLINE_REQUEST_MAX_BYTES
 * (inline methods) or `inline_max_bytes` (worker methods).
 *
 * A handler ends every call it is given exactly once, with sw_call_reply() or
 * sw_call_fail(); after that it must not touch the call. */
#ifndef SW_SERVER_H
#define SW_SERVER_H

#include <glib.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

G_BEGIN_DECLS

struct grpc_call;
struct grpc_completion_queue;

typedef struct sw_server sw_server;
typedef struct sw_call sw_call;

typedef void (*sw_method_handler)(sw_call *call, void *user_data);

/* Bidirectional streaming: one request message of a stream (borrowed: valid
 * during the call), or NULL once the client half-closed it. See
 * sw_method.on_message. */
typedef void (*sw_stream_message_func)(sw_call *call, GBytes *message, void *user_data);

/* The longest status message sent, in bytes: longer ones are cut (and
 * marked) so a status always fits gRPC's 8 KiB header limit. */
#define SW_STATUS_MAX_BYTES 2000

/* The largest request an inline method takes; larger ones get
 * RESOURCE_EXHAUSTED, so no client can hold the polling thread with one. */
#define SW_INLINE_REQUEST_MAX_BYTES 65536

typedef enum sw_dispatch {
    SW_DISPATCH_INLINE, /* on the polling thread: must not block */
    SW_DISPATCH_WORKER, /* on a worker thread */
} sw_dispatch;

typedef struct sw_method {
    const char *path; /* "/inference.GRPCInferenceService/ModelInfer"; static */
    sw_dispatch dispatch;
    sw_method_handler handler;
    void *user_data;
    gboolean open; /* skips the admission check (health probes) */
    /* SW_DISPATCH_WORKER only: a request of at most this many bytes runs on
     * the polling thread instead, saving a thread hand-off, so the handler
     * must not block on it (queueing it for a batch is fine), and this
     * bounds the polling thread's work for one call: keep it to a few KiB.
     * 0: never. */
    size_t inline_max_bytes;
    /* With inline_max_bytes, for handlers that do the work themselves (run
     * a model) rather than queue it: such a request runs on the polling
     * thread only while no call of this server waits for or runs on a
     * worker. Before it runs, the events already waiting on the completion
     * queue are taken, and calls among them go to workers, so no call waits
     * behind it for more than the one it runs. A handler that finds the
     * work larger than it looked (rows, not bytes) passes it on with
     * sw_call_continue_on_worker(). A request that finds the server busy
     * waits for the polling thread to have no event to handle and runs
     * there, if no other call waits so; else it goes to a worker. */
    gboolean inline_when_idle;
    /* Bidirectional streaming (SW_DISPATCH_INLINE only; `handler` unused):
     * the server reads the client's messages one at a time and gives each
     * to this function on the polling thread, which answers with
     * sw_call_send() (any number of messages, none included) or ends the
     * stream with sw_call_finish(), only from inside this function. The
     * next message is read once the answers queued so far are sent. After
     * the client half-closes it gets NULL and must sw_call_finish(). The
     * server ends the stream itself (and calls this no more) when the
     * client cancels (CANCELLED), a message is larger than
     * SW_INLINE_REQUEST_MAX_BYTES (RESOURCE_EXHAUSTED), or the server
     * shuts down while it waits for the next message (UNAVAILABLE), so a
     * sw_call_on_cancel() callback must not end it. */
    sw_stream_message_func on_message;
} sw_method;

/* Work a handler left for the polling thread to do once no event waits on
 * its completion queue (a batch of the requests it queued there). */
typedef struct sw_poll_work {
    /* Whether any waits: asked before every wait for an event, so it must
     * be cheap. NULL: no such work. */
    gboolean (*pending)(void *user_data);
    /* Does one piece of it, bounded as an inline call's work is. */
    void (*run)(void *user_data);
    void *user_data;
} sw_poll_work;

/* Middleware run on every call to a method that is not open, before its
 * handler: return TRUE to let it through, or end the call (sw_call_fail)
 * and return FALSE. Runs on the polling thread: must not block. */
typedef gboolean (*sw_admit_func)(sw_call *call, void *user_data);

typedef struct sw_server_options {
    const char *listen;    /* "HOST:PORT" (port 0 picks a free one) or "unix:PATH" */
    int worker_threads;    /* >= 1 */
    int max_message_bytes; /* receive and send limit; -1 unlimited */
    int max_in_flight;     /* worker calls queued or running; more get RESOURCE_EXHAUSTED unread; 0 no limit */
    /* Bytes of worker-call requests held at once (received and not yet
     * answered); a request that would exceed it gets RESOURCE_EXHAUSTED
     * before any handler sees it. 0: no budget. */
    size_t request_budget_bytes;
    int max_streams_per_connection; /* concurrent calls on one connection; 0: gRPC's default (no limit) */
    /* Plaintext TCP ports: descriptors kept free for all but client
     * connections; past that new connections are closed at once
     * (listener.h). 0: the listener's default. */
    int reserve_fds;
    int keepalive_time_ms;     /* 0: gRPC's default */
    int keepalive_timeout_ms;  /* 0: gRPC's default */
    int max_connection_age_ms; /* 0: connections live forever */
    /* TLS: PEM text. With cert and key the port is TLS only; with a client
     * CA too, clients must present a certificate it signed. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    const char *tls_client_ca_pem;
    sw_admit_func admit;
    void *admit_data;
    /* Told of every call the server itself refused (admission failed, too
     * many in flight) with its gRPC code; on the polling thread. May be NULL. */
    void (*on_refused)(int code, void *user_data);
    void *on_refused_data;
    /* NULL: the server makes its own completion queue. Else a queue made
     * with grpc_completion_queue_create_for_next() whose every tag is an
     * sw_completion (completion.h), for example one shared with the
     * channels the handlers call (sw_channel_options.cq): the server's
     * polling thread runs their completions too, and shuts the queue down
     * in sw_server_shutdown(); its creator destroys it after freeing the
     * server and those channels. */
    struct grpc_completion_queue *cq;
    /* Zeroed: none. The polling thread keeps running it until it is done,
     * through a drain too, so the calls it answers end. */
    sw_poll_work poll_work;
} sw_server_options;

/* Binds `options->listen` and registers `methods` (copied; user_data
 * borrowed and must outlive the server). Nothing is served until
 * sw_server_start(). NULL with an error when the address cannot be bound. */
sw_server *sw_server_new(const sw_server_options *options, const sw_method *methods, size_t n_methods, GError **error);
/* The bound port (useful after listening on port 0; 1 for unix sockets). */
int sw_server_port(const sw_server *server);
void sw_server_start(sw_server *server);
/* Stops accepting calls and lets the ones in flight finish; after
 * `drain_timeout_ms` the rest are cancelled. Connections are closed once no
 * call is in flight, so idle clients do not hold the shutdown. TRUE when the
 * drain timed out and calls were cancelled, FALSE when every call finished
 * in time (or the server never started). Blocks until every call is done and every thread
 * has stopped. Call from one thread, not from a handler. */
gboolean sw_server_shutdown(sw_server *server, int drain_timeout_ms);
/* Frees a server that is shut down (or was never started). */
void sw_server_free(sw_server *server);

/* The request message. Borrowed: valid until the call ends. */
GBytes *sw_call_request(sw_call *call);
/* The first value of request metadata `key`, newly allocated, or NULL. */
char *sw_call_metadata(const sw_call *call, const char *key);
/* TRUE once the client cancelled the call or its deadline passed. */
gboolean sw_call_is_cancelled(const sw_call *call);
/* Microseconds left before the call's deadline (G_MAXINT64: none). */
int64_t sw_call_remaining_us(const sw_call *call);

/* TRUE while the handler runs on the server's polling thread (an inline
 * method, or a worker method's small request: see inline_max_bytes). */
gboolean sw_call_on_polling_thread(const sw_call *call);
/* From a handler on the polling thread: `func(call, user_data)` runs on a
 * worker instead, and the handler returns without ending the call, for
 * work found too large to hold the polling thread once the request was
 * read. `user_data` is the caller's (typically what the handler decoded so
 * far) and passes to `func` untouched. */
void sw_call_continue_on_worker(sw_call *call, sw_method_handler func, void *user_data);

/* Marks the call's failure, whenever it ends with one, as not to be
 * retried by the client's gRPC retry policy (trailing metadata
 * `grpc-retry-pushback-ms: -1`): for failures that retries elsewhere have
 * already covered, such as a next stage that stayed unreachable through
 * the hop's own retries, which callers retrying in turn would multiply.
 * Call before the call ends. */
void sw_call_refuse_retry(sw_call *call);

/* Ends the call with OK and `message` packed as the response. The message is
 * borrowed (packed before returning). */
void sw_call_reply(sw_call *call, const ProtobufCMessage *message);
/* Ends the call with OK and a response sent as `parts` (GBytes, sent back
 * to back without copying; references are taken). */
void sw_call_reply_parts(sw_call *call, GPtrArray *parts);
/* Ends the call with a non-OK status; `code` is a gRPC status code. */
void sw_call_fail(sw_call *call, int code, const char *message);
/* Server streaming (and the answers of bidirectional streams). sw_call_send() queues one response message (packed at
 * once; `message` is borrowed); messages go out in order, one at a time.
 * sw_call_finish() ends the stream with a status after the queued messages.
 * Both may be called from any thread; nothing may follow finish. */
void sw_call_send(sw_call *call, const ProtobufCMessage *message);
void sw_call_finish(sw_call *call, int code, const char *message);

/* Runs `func` on the polling thread if the client cancels the call (or its
 * deadline passes) before it ended; the handler must still end it. Register
 * from an inline handler, before returning. */
typedef void (*sw_call_cancelled_func)(sw_call *call, void *user_data);
void sw_call_on_cancel(sw_call *call, sw_call_cancelled_func func, void *user_data);

/* Ends the call with the code and message of `error` (SW_ERROR domain;
 * other domains become INTERNAL). `error` is borrowed. */
void sw_call_fail_error(sw_call *call, const GError *error);

G_END_DECLS

#endif
