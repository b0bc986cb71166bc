/* stagewise-transport-floor: the transport floor of the benchmark. A bare
 * gRPC C core server, deliberately built without the project's rpc layer,
 * against which the served figures are set: what gRPC alone costs for the
 * same messages on the same machine.
 *
 * One process serves one method (ModelInfer by default) on one port, with
 * one thread polling one completion queue and handling every call inline
 * on that thread; the request arrives with the call (a registered method
 * that reads the payload) and its content is ignored. Without --next the
 * call is answered at once with a reply of --reply-bytes. With --next the
 * process sends a message of --next-bytes to the next process over one
 * channel (no retries, no deadline propagation), asynchronously on the same
 * completion queue, and answers its caller when the next one answers.
 * Three of them chained reproduce the message sizes of the one-call
 * pipeline's hops; stagewise-bench drives the first and reads their CPU.
 *
 * With --work-us each call first burns that much CPU on the polling thread
 * (before answering or forwarding), standing in for a model: the working
 * floor. A server that computes lets its client fall asleep, so its answer
 * pays a wake-up an instant answer does not; the working floor measures the
 * transport with that cost in it, and the served figures can be set against
 * a bare server doing the same CPU work per call.
 *
 * With --work-export and --work-request each call first runs one stage of a
 * real export on a canned request instead (stage_work.h): the model floor's
 * own work, paying what real modules pay for running between system calls
 * and sleeps, which a spin does not (its code and data fit in any cache).
 *
 * Messages are zero bytes wrapped in one unknown protobuf field, so any
 * protobuf parser (a ModelInferResponse included) reads them as empty. */
#define _GNU_SOURCE /* getopt_long, sigwait */
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "absl_checks.h"
#include "stage_work.h"

#define DEFAULT_METHOD "/inference.GRPCInferenceService/ModelInfer"
/* Calls waiting to be accepted at any time: more than any concurrency the
 * bench uses, so a call never waits for one to be posted. */
#define PREPOSTED_CALLS 64
#define EXIT_USAGE 2

typedef struct options {
    const char *listen;
    const char *next;
    const char *method;
    long reply_bytes;
    long next_bytes;
    long work_us;
    const char *work_export;
    const char *work_request;
} options;

/* What a completion-queue tag stands for. */
typedef enum tag_kind {
    TAG_ACCEPTED,  /* a call of the method arrived, payload included */
    TAG_UNKNOWN,   /* a call of any other method arrived */
    TAG_NEXT_DONE, /* the next process answered (or failed) */
    TAG_REPLIED    /* our answer went out and the call is closed */
} tag_kind;

typedef struct floor_server floor_server;

/* One call from its acceptance to its answer; its tag is itself, the kind
 * saying which step completed. */
typedef struct floor_call {
    tag_kind kind;
    floor_server *server;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array request_metadata;
    grpc_call_details details; /* TAG_UNKNOWN only */
    grpc_byte_buffer *payload;
    grpc_byte_buffer *reply;
    int cancelled;
    /* The call to the next process. */
    grpc_call *next_call;
    grpc_byte_buffer *next_request;
    grpc_byte_buffer *next_reply;
    grpc_metadata_array next_initial_metadata;
    grpc_metadata_array next_trailing_metadata;
    grpc_status_code next_status;
    grpc_slice next_details;
} floor_call;

/* Everything one process holds, released in reverse order by floor_stop. */
struct floor_server {
    grpc_server *grpc;
    grpc_completion_queue *cq;
    grpc_channel *channel; /* NULL without --next */
    void *method;          /* the registered method's handle */
    grpc_slice method_slice;
    grpc_byte_buffer *reply;        /* the answer every call gets */
    grpc_byte_buffer *next_request; /* what every call sends on */
    long work_us;                   /* CPU each call burns before it goes on */
    floor_stage_work *stage_work;   /* or the stage each call runs first; NULL: none */
    int live_calls;                 /* floor_call objects not yet freed */
    int stopped;                    /* the server accepts no more calls */
    int stopped_tag;                /* its address is the tag saying so */
};

/* `size` bytes that parse as an empty protobuf message: field 100 of wire
 * type 2 (two tag bytes, a varint length) holding zeros. Sizes below 3 are
 * plain zeros. */
static grpc_byte_buffer *filler_new(long size)
{
    grpc_slice slice = grpc_slice_malloc((size_t)size);
    uint8_t *p = GRPC_SLICE_START_PTR(slice);
    memset(p, 0, (size_t)size);
    if (size >= 3) {
        /* The length varint's own size depends on the length it encodes. */
        size_t header = 3;
        while (header < (size_t)size && (size_t)size - header >= (1ul << (7 * (header - 2))))
            header++;
        if (header > (size_t)size)
            header = (size_t)size;
        size_t len = (size_t)size - header;
        p[0] = (uint8_t)(((100 << 3 | 2) & 0x7f) | 0x80);
        p[1] = (uint8_t)((100 << 3 | 2) >> 7);
        for (size_t i = 2; i < header; i++) {
            p[i] = (uint8_t)(len & 0x7f) | (i + 1 < header ? 0x80 : 0);
            len >>= 7;
        }
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

static floor_call *call_new(floor_server *s, tag_kind kind)
{
    floor_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        abort();
    c->kind = kind;
    c->server = s;
    grpc_metadata_array_init(&c->request_metadata);
    grpc_call_details_init(&c->details);
    s->live_calls++;
    return c;
}

static void call_free(floor_call *c)
{
    grpc_metadata_array_destroy(&c->request_metadata);
    grpc_call_details_destroy(&c->details);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->reply)
        grpc_byte_buffer_destroy(c->reply);
    if (c->next_call) {
        grpc_byte_buffer_destroy(c->next_request);
        if (c->next_reply)
            grpc_byte_buffer_destroy(c->next_reply);
        grpc_metadata_array_destroy(&c->next_initial_metadata);
        grpc_metadata_array_destroy(&c->next_trailing_metadata);
        grpc_slice_unref(c->next_details);
        grpc_call_unref(c->next_call);
    }
    if (c->call)
        grpc_call_unref(c->call);
    c->server->live_calls--;
    free(c);
}

/* Waits for the next call of the method, or of any other method. */
static void post_accept(floor_server *s, tag_kind kind)
{
    floor_call *c = call_new(s, kind);
    grpc_call_error rc =
        kind == TAG_ACCEPTED
            ? grpc_server_request_registered_call(s->grpc, s->method, &c->call, &c->deadline, &c->request_metadata,
                                                  &c->payload, s->cq, s->cq, c)
            : grpc_server_request_call(s->grpc, &c->call, &c->details, &c->request_metadata, s->cq, s->cq, c);
    if (rc != GRPC_CALL_OK) { /* no event will come for it */
        fprintf(stderr, "stagewise-transport-floor: could not wait for calls (%d)\n", (int)rc);
        call_free(c);
    }
}

/* Answers the call: `message` (owned by the call from now on) with OK, or
 * no message and `code`. */
static void reply(floor_call *c, grpc_byte_buffer *message, grpc_status_code code, const char *details)
{
    grpc_slice text = grpc_slice_from_static_string(details);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (message) {
        c->reply = message;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = message;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &text;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->kind = TAG_REPLIED;
    if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK)
        call_free(c); /* no event will come for it */
}

/* Sends the call on to the next process; its answer arrives as
 * TAG_NEXT_DONE on the same queue. */
static void forward(floor_call *c)
{
    floor_server *s = c->server;
    c->next_call = grpc_channel_create_call(s->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, s->method_slice, NULL,
                                            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    c->next_request = grpc_byte_buffer_copy(s->next_request);
    grpc_metadata_array_init(&c->next_initial_metadata);
    grpc_metadata_array_init(&c->next_trailing_metadata);
    c->next_details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->next_request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->next_initial_metadata;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->next_reply;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->next_trailing_metadata;
    ops[5].data.recv_status_on_client.status = &c->next_status;
    ops[5].data.recv_status_on_client.status_details = &c->next_details;
    c->kind = TAG_NEXT_DONE;
    if (grpc_call_start_batch(c->next_call, ops, 6, c, NULL) != GRPC_CALL_OK)
        reply(c, NULL, GRPC_STATUS_INTERNAL, "could not call the next process");
}

static long thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1000000000l + t.tv_nsec;
}

/* Spins until this thread has used `us` more microseconds of CPU: the
 * thread's CPU clock, not the wall clock, so a preempted spin still costs
 * the full amount, as a model's arithmetic would. Reading that clock is a
 * system call, so it is read between stretches of plain arithmetic (about a
 * microsecond each), keeping the spin in user space as a model's is. */
static void burn_cpu(long us)
{
    long until = thread_cpu_ns() + us * 1000;
    volatile unsigned sink = 0;
    do {
        for (int i = 0; i < 1000; i++)
            sink += (unsigned)i;
    } while (thread_cpu_ns() < until);
}

/* One event of the queue, handled inline on the polling thread. */
static void handle(floor_server *s, floor_call *c, int success)
{
    switch (c->kind) {
    case TAG_ACCEPTED:
    case TAG_UNKNOWN:
        if (!success) { /* the server is shutting down */
            call_free(c);
            return;
        }
        post_accept(s, c->kind);
        if (c->kind == TAG_UNKNOWN) {
            reply(c, NULL, GRPC_STATUS_UNIMPLEMENTED, "this server serves one method");
            return;
        }
        if (s->work_us)
            burn_cpu(s->work_us);
        if (s->stage_work) {
            char *msg = NULL;
            if (floor_stage_work_run(s->stage_work, &msg) != 0) {
                reply(c, NULL, GRPC_STATUS_INTERNAL, msg);
                free(msg);
                return;
            }
        }
        if (s->channel)
            forward(c);
        else
            reply(c, grpc_byte_buffer_copy(s->reply), GRPC_STATUS_OK, "");
        return;
    case TAG_NEXT_DONE:
        if (c->next_status == GRPC_STATUS_OK)
            reply(c, grpc_byte_buffer_copy(s->reply), GRPC_STATUS_OK, "");
        else
            reply(c, NULL, c->next_status, "the next process failed");
        return;
    case TAG_REPLIED: call_free(c); return;
    }
}

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

/* Creates, binds and starts the server (and the channel to --next);
 * prints the bound port. 0 with a message on stderr. */
static int floor_start(floor_server *s, const options *o)
{
    s->cq = grpc_completion_queue_create_for_next(NULL);
    if (o->work_request) {
        char *msg = NULL;
        s->stage_work = floor_stage_work_new(o->work_export, o->work_request, &msg);
        if (s->stage_work == NULL) {
            fprintf(stderr, "stagewise-transport-floor: --work-request: %s\n", msg);
            free(msg);
            return 0;
        }
    }
    grpc_arg args[] = {int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1), int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1),
                       int_arg(GRPC_ARG_ENABLE_RETRIES, 0)};
    grpc_channel_args channel_args = {.num_args = 3, .args = args};
    s->grpc = grpc_server_create(&channel_args, NULL);
    s->method = grpc_server_register_method(s->grpc, o->method, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    s->method_slice = grpc_slice_from_static_string(o->method);
    grpc_server_register_completion_queue(s->grpc, s->cq, NULL);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->grpc, o->listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        fprintf(stderr, "stagewise-transport-floor: cannot listen on %s\n", o->listen);
        return 0;
    }
    if (o->next) {
        grpc_channel_credentials *ccreds = grpc_insecure_credentials_create();
        s->channel = grpc_channel_create(o->next, ccreds, &channel_args);
        grpc_channel_credentials_release(ccreds);
        s->next_request = filler_new(o->next_bytes);
    }
    s->reply = filler_new(o->reply_bytes);
    s->work_us = o->work_us;
    grpc_server_start(s->grpc);
    for (int i = 0; i < PREPOSTED_CALLS; i++)
        post_accept(s, TAG_ACCEPTED);
    post_accept(s, TAG_UNKNOWN);
    /* The " port=N" form the bench scripts read from the servers' logs. */
    fprintf(stderr,
            "stagewise-transport-floor: event=listening port=%d method=%s reply_bytes=%ld next=%s next_bytes=%ld "
            "work_us=%ld work_stage=%s\n",
            port, o->method, o->reply_bytes, o->next ? o->next : "-", o->next ? o->next_bytes : 0L, o->work_us,
            s->stage_work ? floor_stage_work_stage(s->stage_work) : "-");
    return 1;
}

/* Polls until the server has stopped and every call has ended. */
static void floor_run(floor_server *s)
{
    while (!s->stopped || s->live_calls > 0) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        if (ev.tag == &s->stopped_tag)
            s->stopped = 1;
        else
            handle(s, ev.tag, ev.success);
    }
}

static void floor_stop(floor_server *s)
{
    if (s->grpc)
        grpc_server_destroy(s->grpc);
    if (s->channel)
        grpc_channel_destroy(s->channel);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(s->cq);
    if (s->reply)
        grpc_byte_buffer_destroy(s->reply);
    if (s->next_request)
        grpc_byte_buffer_destroy(s->next_request);
    floor_stage_work_free(s->stage_work);
}

/* Waits for SIGTERM or SIGINT (blocked in every thread), then stops the
 * server: calls in progress are cancelled, the polling thread drains. */
static void *signal_thread(void *arg)
{
    floor_server *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    grpc_server_shutdown_and_notify(s->grpc, s->cq, &s->stopped_tag);
    grpc_server_cancel_all_calls(s->grpc);
    return NULL;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: stagewise-transport-floor --listen HOST:PORT [--reply-bytes N] [--next TARGET --next-bytes N]\n"
            "                                 [--method PATH] [--work-us US | --work-export DIR --work-request FILE]\n"
            "\n"
            "A bare gRPC C core server for the benchmark's transport floor: one thread, one completion queue,\n"
            "every call handled inline. It answers each call of PATH (default " DEFAULT_METHOD ")\n"
            "with a message of N reply bytes (default 0), ignoring the request; with --next it first sends a\n"
            "message of --next-bytes to TARGET and answers when TARGET does. With --work-us each call first\n"
            "spends US microseconds of CPU on the polling thread, standing in for a model's work; with\n"
            "--work-export and --work-request it runs the real stage that FILE (written by stagewise-bench\n"
            "--write-request --write-stage STAGE) feeds, from the export in DIR, on that request. Port 0\n"
            "picks a free port; the bound one is printed on stderr as ' port=N'. Stops on SIGTERM or SIGINT.\n");
}

static int parse_size(const char *text, const char *flag, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0 || v > (1l << 30)) {
        fprintf(stderr, "stagewise-transport-floor: %s takes a whole number from 0 to 2^30, not '%s'\n", flag, text);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {{"listen", required_argument, NULL, 'l'},
                                          {"next", required_argument, NULL, 'n'},
                                          {"method", required_argument, NULL, 'm'},
                                          {"reply-bytes", required_argument, NULL, 'r'},
                                          {"next-bytes", required_argument, NULL, 'b'},
                                          {"work-us", required_argument, NULL, 'w'},
                                          {"work-export", required_argument, NULL, 'e'},
                                          {"work-request", required_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (options){.method = DEFAULT_METHOD};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (opt) {
        case 'l': o->listen = optarg; break;
        case 'n': o->next = optarg; break;
        case 'm': o->method = optarg; break;
        case 'r':
            if (!parse_size(optarg, "--reply-bytes", &o->reply_bytes))
                return 0;
            break;
        case 'b':
            if (!parse_size(optarg, "--next-bytes", &o->next_bytes))
                return 0;
            break;
        case 'w':
            if (!parse_size(optarg, "--work-us", &o->work_us))
                return 0;
            break;
        case 'e': o->work_export = optarg; break;
        case 'q': o->work_request = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 0;
        }
    }
    if (optind < argc || o->listen == NULL) {
        usage(stderr);
        return 0;
    }
    if (!o->work_export != !o->work_request || (o->work_request && o->work_us)) {
        fprintf(stderr, "stagewise-transport-floor: --work-export and --work-request go together, and not with "
                        "--work-us\n");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    options o;
    if (!parse_options(argc, argv, &o))
        return EXIT_USAGE;
    /* Blocked before gRPC starts its threads, so only sigwait sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sw_absl_deadlock_detection_off(); /* as the servers do */
    grpc_init();
    floor_server s;
    memset(&s, 0, sizeof s);
    int ok = floor_start(&s, &o);
    if (ok) {
        pthread_t signals;
        pthread_create(&signals, NULL, signal_thread, &s);
        floor_run(&s);
        pthread_join(signals, NULL);
    }
    floor_stop(&s);
    grpc_shutdown();
    return ok ? 0 : 1;
}
