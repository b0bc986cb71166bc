/* Dynamic batching: requests to one stage wait briefly in a bounded queue,
 * are concatenated along the batch dimension, run as one forward call, and
 * get their own rows of the outputs back.
 *
 * Requests arrive already validated (sw_stage_prepare), so a bad request
 * never joins, let alone fails, a batch. A batch forms when the queue holds
 * `max_batch_size` rows (counting every waiting request, compatible or
 * not: checking compatibility on every arrival would cost more than an
 * early batch) or its oldest request has waited `max_queue_delay_us`; it
 * takes the oldest request and every later one that fits beside it, up to
 * `max_batch_size` rows. Requests whose inputs differ in names, datatypes or
 * non-batch dimensions go in different batches. A request that is no longer
 * wanted when its batch forms (deadline passed, client gone) is answered
 * without computing it.
 *
 * Executor threads form and run batches. A request may instead be left for
 * the thread that submitted it (sw_batcher_submit_for_caller): the server's
 * polling thread, which runs what waits for it once it has no event to
 * handle (sw_batcher_run_ready), so a small request is decoded, batched,
 * run and answered on the one thread that received it, with no thread
 * woken and the module warm in that thread's caches. Such a batch is
 * whatever arrived while the previous one ran: no queue delay. */
#ifndef SW_BATCHER_H
#define SW_BATCHER_H

#include <glib.h>

#include "metrics.h"
#include "stage.h"

G_BEGIN_DECLS

typedef struct sw_batcher sw_batcher;

typedef struct sw_batcher_options {
    int max_batch_size;     /* rows; >= 1 */
    int max_queue_delay_us; /* >= 0 */
    int max_queue_size;     /* requests waiting; >= 1 */
    int executors;          /* threads running batches; >= 1 */
} sw_batcher_options;

/* When the forward call serving a request ran (g_get_monotonic_time);
 * all 0 when it never ran. */
typedef struct sw_batch_timing {
    gint64 formed_us; /* the batch formed: its inputs are concatenated from here to started_us */
    gint64 started_us;
    gint64 finished_us;
    guint64 execution; /* which forward call (sw_batch_next_execution); 0 never ran */
    int64_t rows;      /* the rows of that forward call, every request's of the batch */
} sw_batch_timing;

/* A new number, unique in the process, for one forward call: the requests
 * of one batch share it, so statistics count the batch once. */
guint64 sw_batch_next_execution(void);

/* Called once per request, on the thread that ran its batch (an executor,
 * or the caller of sw_batcher_run_ready): `outputs` (sw_output, this
 * request's rows only) on success, else `error`. All borrowed. */
typedef void (*sw_batch_done)(GPtrArray *outputs, const GError *error, const sw_batch_timing *timing, void *user_data);
/* Asked when the batch forms: FALSE means the request is no longer wanted
 * and it completes with DEADLINE_EXCEEDED instead of running. */
typedef gboolean (*sw_batch_wanted)(void *user_data);

/* `stage` and `metrics` (may be NULL) are borrowed and must outlive the
 * batcher. */
sw_batcher *sw_batcher_new(sw_stage *stage, const sw_batcher_options *options, sw_metrics *metrics);
/* Stops taking requests, runs what is queued, joins the executors. */
void sw_batcher_free(sw_batcher *batcher);

/* Queues `prepared` (sw_value array; ownership taken) holding `rows` rows,
 * sorting it by input name. When the queue is full returns FALSE with
 * RESOURCE_EXHAUSTED, takes nothing and `done` is not called. */
gboolean sw_batcher_submit(sw_batcher *batcher, GPtrArray *prepared, int64_t rows, sw_batch_wanted wanted,
                           sw_batch_done done, void *user_data, GError **error);

/* The most rows sw_batcher_run_ready() runs at once (or max_batch_size if
 * less): what it holds the polling thread for. */
#define SW_BATCHER_CALLER_MAX_ROWS 64

/* As sw_batcher_submit(), but no executor is woken for the request: it
 * waits for this thread's next sw_batcher_run_ready() (or for an executor
 * that is awake anyway, or the batcher's end). For batchers with one
 * executor and no queue delay, and requests of a few rows. */
gboolean sw_batcher_submit_for_caller(sw_batcher *batcher, GPtrArray *prepared, int64_t rows, sw_batch_wanted wanted,
                                      sw_batch_done done, void *user_data, GError **error);
/* Whether requests submitted for the caller wait. Lock-free; any thread. */
gboolean sw_batcher_has_ready_for_caller(sw_batcher *batcher);
/* Runs one batch of the requests submitted for the caller (the oldest and
 * those beside it, up to SW_BATCHER_CALLER_MAX_ROWS rows) on this thread,
 * their `done` called here; nothing when none waits. */
void sw_batcher_run_ready(sw_batcher *batcher);

G_END_DECLS

#endif
