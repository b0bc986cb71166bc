/* What server.c and call.c share about calls and servers; not for other
 * layers. Names with two underscores (sw__) cross files inside rpc/ only. */
#ifndef SW_SERVER_INTERNAL_H
#define SW_SERVER_INTERNAL_H

#include <grpc/grpc.h>
#include <stdatomic.h>

#include "completion.h"
#include "listener.h"
#include "server.h"
#include "worker_pool.h"

/* A batch on a call: `base.func` says which. */
typedef struct sw_call_tag {
    sw_completion base;
    sw_call *call;
} sw_call_tag;

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
    gboolean counted;  /* holds one of the server's in-flight slots */
    size_t held_bytes; /* of the server's request memory budget */
    sw_call_tag accept_tag, recv_tag, close_tag, send_tag, stream_tag, read_tag;
    /* Server streaming: messages wait in `outbox` while one is being sent,
     * and the status waits for them. */
    GMutex stream_lock;
    GQueue outbox;
    grpc_byte_buffer *streaming;
    gboolean initial_sent;
    gboolean finish_pending;
    int finish_code;
    char *finish_message;
    /* Bidirectional streams: a message read is in flight (`reading`), is
     * due once the outbox is sent (`read_pending`), or is with the method's
     * on_message (`in_handler`); under stream_lock. `incoming` is what the
     * read received. */
    gboolean reading, read_pending, in_handler;
    grpc_byte_buffer *incoming;
    /* sw_call_continue_on_worker(): what the worker runs instead of the
     * method's handler. */
    sw_method_handler resume;
    void *resume_data;
    sw_call_cancelled_func on_cancel;
    void *on_cancel_data;
    /* What the reply batch sends, kept until it completes. */
    grpc_byte_buffer *response;
    grpc_slice status_details;
    gboolean has_status_details;
    gboolean refuse_retry;  /* sw_call_refuse_retry() */
    grpc_metadata pushback; /* its trailing metadata, static slices */
    /* The call a channel makes on this call's behalf (sw_channel's
     * `parent`), cancelled when this one is; under child_lock, as is
     * `cancel_seen`, set once the close reported cancellation. */
    GMutex child_lock;
    grpc_call *child;
    gboolean cancel_seen;
    gboolean cancel_out_of_time; /* the cancellation was the deadline's */
};

struct sw_server {
    grpc_server *grpc;
    grpc_completion_queue *cq;
    gboolean owns_cq;
    registered_method *methods;
    size_t n_methods;
    int port;
    sw_listener *listener; /* plaintext TCP ports: ours rather than gRPC's */
    grpc_server_credentials *fd_credentials;
    GThread *poller;
    sw_worker_pool *workers;
    int max_in_flight;
    gint in_flight;
    size_t request_budget_bytes; /* 0: no budget */
    atomic_size_t request_bytes_held;
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
    GHashTable *streams; /* bidirectional calls not yet ended; under lock */
    /* The polling thread is taking the events already waiting before it
     * runs a call inline (inline_when_idle): calls among them go to
     * workers. Polling thread only. */
    gboolean handing_off;
    /* Calls of inline_when_idle methods that found the server busy, left
     * for the polling thread to run once no event waits (at most
     * DEFERRED_MAX_CALLS; more go to workers). Polling thread only. */
    GQueue deferred;
    sw_poll_work poll_work;
    gboolean started;
};

/* A new call for one request slot of `m` (NULL: unregistered methods),
 * holding one reference; `accept` finishes its accept tag and `receive`
 * the tag of the request message, for methods that receive it themselves. */
sw_call *sw__call_new(sw_server *server, const registered_method *m, sw_completion_func accept,
                      sw_completion_func receive);
/* Drops one reference; the last frees the call. */
void sw__call_unref(sw_call *call);
/* Starts a batch holding a reference for it. FALSE when it could not start:
 * then no event will come for `t` and the reference is dropped again. */
gboolean sw__call_start_batch(sw_call *call, const grpc_op *ops, size_t n, sw_call_tag *t);
/* Starts the RECV_CLOSE_ON_SERVER batch that reports cancellation. */
void sw__call_watch_close(sw_call *call);
/* A call `child` made on `call`'s behalf (channel.c) is cancelled when
 * `call` is, at once if it already was (call_child.c). Adopting takes a
 * reference on `child`; releasing, once `child` completed, drops it; `call`
 * must not end in between. One child at a time; any thread. gRPC's own
 * parent calls do this and more (census contexts, a list of children) for
 * about 18,000 more instructions per forwarded call (docs/DESIGN.md, "A
 * call's life"). */
void sw__call_adopt_child(sw_call *call, grpc_call *child);
void sw__call_release_child(sw_call *call, grpc_call *child);
/* gRPC's deadline timers work in whole milliseconds and may fire up to
 * one early; a call cancelled this close to its deadline was cancelled by
 * it. */
#define SW_DEADLINE_SLACK_US 2000
/* Whether a cancelled call's cancellation was its deadline passing. */
gboolean sw__call_out_of_time(const sw_call *call);
/* Cancels `child` as made on behalf of a call that was cancelled: with
 * DEADLINE_EXCEEDED when that call ran out of time, else CANCELLED. */
void sw__call_cancel_child(grpc_call *child, gboolean out_of_time);
/* Frees what a call held of the server's limits: its in-flight slot
 * (`counted`) and its share of the request memory budget (`held_bytes`),
 * as its reply is about to be sent. */
void sw__server_release_call(sw_server *server, sw_call *call);
/* Bidirectional streaming (call.c): starts reading the first message of an
 * accepted call; and, at shutdown, ends with UNAVAILABLE a stream that
 * waits for the client's next message. */
void sw__call_stream_start(sw_call *call);
void sw__call_stream_shutdown(sw_call *call);
/* Told by call.c when a handler ended a call: wakes a drain waiting for the
 * last call. Touches nothing of the call's. */
void sw__server_call_ended(sw_server *server);

#endif
