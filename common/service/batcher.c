#include "batcher.h"

#include <string.h>
#include <sys/prctl.h>

#include "log.h"
#include "oip_codec.h"
#include "sw_error.h"

typedef struct pending {
    GPtrArray *prepared; /* sw_value* */
    int64_t rows;
    gint64 queued_at;
    sw_batch_wanted wanted;
    sw_batch_done done;
    void *user_data;
    gboolean for_caller; /* sw_batcher_submit_for_caller() */
} pending;

struct sw_batcher {
    sw_stage *stage;
    sw_metrics *metrics;
    sw_batcher_options options;
    GMutex lock;
    GCond arrived;
    GQueue queue; /* pending*, oldest first */
    /* Of them, submitted for the caller: written under the lock, read
     * without it by sw_batcher_has_ready_for_caller(). */
    gint for_caller;
    /* Executors in a wait on `arrived`, under the lock: a busy executor
     * looks at the queue before it waits again, so only waiting ones need
     * the signal. */
    int executors_waiting;
    gboolean stopping;
    struct executor *executors;
};

/* One thread running batches; executor i uses instance i mod n_instances
 * of the stage's module (loaded after the batcher starts, before any batch). */
typedef struct executor {
    sw_batcher *batcher;
    int index;
    GThread *thread;
} executor;

static int instance_of(const executor *ex)
{
    int n = ex->batcher->stage->n_instances;
    return n > 0 ? ex->index % n : 0; /* 0 of 0 fails the batch cleanly */
}

/* With the lock held: takes `l`'s request out of the queue. */
static pending *unlink_pending(sw_batcher *b, GList *l)
{
    pending *p = l->data;
    g_queue_delete_link(&b->queue, l);
    if (p->for_caller)
        g_atomic_int_add(&b->for_caller, -1);
    return p;
}

static void pending_free(pending *p)
{
    g_ptr_array_unref(p->prepared);
    g_free(p);
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp((*(sw_value *const *)a)->name, (*(sw_value *const *)b)->name);
}

/* Concatenation needs the same inputs with the same types and row shapes. */
static gboolean compatible(const pending *a, const pending *b)
{
    if (a->prepared->len != b->prepared->len)
        return FALSE;
    for (guint i = 0; i < a->prepared->len; i++) {
        const sw_value *x = g_ptr_array_index(a->prepared, i), *y = g_ptr_array_index(b->prepared, i);
        if (strcmp(x->name, y->name) != 0 || x->kind != y->kind || !x->tensor || !y->tensor ||
            x->tensor->dtype != y->tensor->dtype || x->tensor->ndim != y->tensor->ndim || x->tensor->ndim < 1)
            return FALSE;
        for (int d = 1; d < x->tensor->ndim; d++)
            if (x->tensor->shape[d] != y->tensor->shape[d])
                return FALSE;
    }
    return TRUE;
}

/* Takes the request at `first` and every compatible one after it that fits
 * in `max_rows` (only those submitted for the caller with `caller_only`). */
static GPtrArray *take_batch(sw_batcher *b, GList *first, int64_t max_rows, gboolean caller_only, int64_t *rows)
{
    GPtrArray *batch = g_ptr_array_new();
    GList *l = first->next;
    pending *head = unlink_pending(b, first);
    g_ptr_array_add(batch, head);
    *rows = head->rows;
    while (l && *rows < max_rows) {
        GList *next = l->next;
        pending *p = l->data;
        if ((!caller_only || p->for_caller) && *rows + p->rows <= max_rows && compatible(head, p)) {
            g_ptr_array_add(batch, unlink_pending(b, l));
            *rows += p->rows;
        }
        l = next;
    }
    return batch;
}

static int64_t queued_rows(sw_batcher *b)
{
    int64_t rows = 0;
    for (GList *l = b->queue.head; l; l = l->next)
        rows += ((pending *)l->data)->rows;
    return rows;
}

/* How often waiting requests are checked for having been given up (deadline
 * passed, client gone, server draining), so they are answered promptly
 * rather than when their batch would have formed. */
#define RECHECK_US 50000

guint64 sw_batch_next_execution(void)
{
    static guint64 last;
    return __atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
}

static void answer_unwanted(pending *p)
{
    static const sw_batch_timing never_ran = {.formed_us = 0, .started_us = 0, .finished_us = 0, .execution = 0};
    GError *error = g_error_new_literal(SW_ERROR, SW_CODE_DEADLINE_EXCEEDED,
                                        "the deadline passed or the call was cancelled while it was queued");
    p->done(NULL, error, &never_ran, p->user_data);
    g_error_free(error);
    pending_free(p);
}

/* With the lock held: moves the requests nobody waits for to `out`. */
static void take_unwanted(sw_batcher *b, GPtrArray *out)
{
    for (GList *l = b->queue.head; l;) {
        GList *next = l->next;
        pending *p = l->data;
        if (p->wanted && !p->wanted(p->user_data))
            g_ptr_array_add(out, unlink_pending(b, l));
        l = next;
    }
}

/* With the lock held: answers the requests nobody waits for any more,
 * outside the lock (answering calls back into the server). FALSE when there
 * were none and the lock was never let go. */
static gboolean answer_unwanted_unlocked(sw_batcher *b)
{
    GPtrArray *unwanted = g_ptr_array_new();
    take_unwanted(b, unwanted);
    gboolean any = unwanted->len > 0;
    if (any) {
        g_mutex_unlock(&b->lock);
        for (guint i = 0; i < unwanted->len; i++)
            answer_unwanted(g_ptr_array_index(unwanted, i));
        g_mutex_lock(&b->lock);
    }
    g_ptr_array_unref(unwanted);
    return any;
}

/* Blocks until a batch is due; NULL when stopping with nothing left. */
static GPtrArray *wait_for_batch(sw_batcher *b, int64_t *rows)
{
    GPtrArray *batch = NULL;
    g_mutex_lock(&b->lock);
    for (;;) {
        if (answer_unwanted_unlocked(b))
            continue;
        if (g_queue_is_empty(&b->queue)) {
            if (b->stopping)
                break;
            b->executors_waiting++;
            g_cond_wait(&b->arrived, &b->lock);
            b->executors_waiting--;
            continue;
        }
        pending *oldest = g_queue_peek_head(&b->queue);
        gint64 due = oldest->queued_at + b->options.max_queue_delay_us;
        gint64 now = g_get_monotonic_time();
        if (b->stopping || queued_rows(b) >= b->options.max_batch_size || now >= due) {
            batch = take_batch(b, b->queue.head, b->options.max_batch_size, FALSE, rows);
            break;
        }
        b->executors_waiting++;
        g_cond_wait_until(&b->arrived, &b->lock, MIN(due, now + RECHECK_US));
        b->executors_waiting--;
    }
    g_mutex_unlock(&b->lock);
    return batch;
}

/* One tensor holding the rows of `parts` (same dtype and row shape) in order.
 * Numeric tensors are assembled in the instance's input memory (pinned on a
 * GPU), so they travel to the device without another copy. */
static sw_tensor *concat_tensors(sw_batcher *b, int instance, GPtrArray *parts, int64_t rows)
{
    const sw_tensor *first = g_ptr_array_index(parts, 0);
    int64_t shape[SW_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[0] = rows;
    if (first->dtype != SW_DTYPE_BYTES) {
        size_t total = 0, n = 0;
        for (guint i = 0; i < parts->len; i++) {
            sw_tensor_data(g_ptr_array_index(parts, i), &n);
            total += n;
        }
        GBytes *bytes = sw_stage_new_input_buffer(b->stage, instance, total);
        guint8 *at = (guint8 *)g_bytes_get_data(bytes, NULL);
        for (guint i = 0; i < parts->len; i++) {
            const void *p = sw_tensor_data(g_ptr_array_index(parts, i), &n);
            if (n)
                memcpy(at, p, n);
            at += n;
        }
        sw_tensor *t = sw_tensor_new(first->dtype, first->ndim, shape, bytes);
        g_bytes_unref(bytes);
        return t;
    }
    GByteArray *payloads = g_byte_array_new();
    GArray *offsets = g_array_new(FALSE, FALSE, sizeof(size_t));
    for (guint i = 0; i < parts->len; i++) {
        const sw_tensor *t = g_ptr_array_index(parts, i);
        int64_t n = sw_tensor_element_count(t);
        for (int64_t k = 0; k < n; k++) {
            size_t len = 0;
            const char *e = sw_tensor_bytes_element(t, (size_t)k, &len);
            size_t start = payloads->len;
            g_array_append_val(offsets, start);
            g_byte_array_append(payloads, (const guint8 *)e, (guint)len);
        }
    }
    size_t end = payloads->len;
    g_array_append_val(offsets, end);
    GBytes *bytes = g_byte_array_free_to_bytes(payloads);
    sw_tensor *t = sw_tensor_new_bytes(first->ndim, shape, bytes, (size_t *)g_array_free(offsets, FALSE));
    g_bytes_unref(bytes);
    return t;
}

static GPtrArray *concat_inputs(sw_batcher *b, int instance, GPtrArray *batch, int64_t rows)
{
    const pending *first = g_ptr_array_index(batch, 0);
    GPtrArray *inputs = sw_value_array_new();
    GPtrArray *parts = g_ptr_array_new();
    for (guint i = 0; i < first->prepared->len; i++) {
        g_ptr_array_set_size(parts, 0);
        for (guint r = 0; r < batch->len; r++)
            g_ptr_array_add(
                parts, ((sw_value *)g_ptr_array_index(((pending *)g_ptr_array_index(batch, r))->prepared, i))->tensor);
        const sw_value *v = g_ptr_array_index(first->prepared, i);
        g_ptr_array_add(inputs, sw_value_new_tensor(v->name, v->kind, concat_tensors(b, instance, parts, rows)));
    }
    g_ptr_array_unref(parts);
    return inputs;
}

/* Rows [start, start + n) of `t`, sharing its buffer. */
static sw_tensor *slice_rows(const sw_tensor *t, int64_t start, int64_t n)
{
    int64_t shape[SW_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = n;
    int64_t per_row = t->shape[0] ? sw_tensor_element_count(t) / t->shape[0] : 0;
    if (t->dtype != SW_DTYPE_BYTES) {
        size_t row_bytes = (size_t)per_row * sw_dtype_size(t->dtype);
        GBytes *part = g_bytes_new_from_bytes(t->data, (size_t)start * row_bytes, (size_t)n * row_bytes);
        sw_tensor *s = sw_tensor_new(t->dtype, t->ndim, shape, part);
        g_bytes_unref(part);
        return s;
    }
    size_t first = (size_t)(start * per_row), count = (size_t)(n * per_row);
    size_t *offsets = g_new(size_t, count + 1);
    for (size_t k = 0; k <= count; k++)
        offsets[k] = t->offsets[first + k] - t->offsets[first];
    GBytes *part = g_bytes_new_from_bytes(t->data, t->offsets[first], t->offsets[first + count] - t->offsets[first]);
    sw_tensor *s = sw_tensor_new_bytes(t->ndim, shape, part, offsets);
    g_bytes_unref(part);
    return s;
}

static void complete_all(GPtrArray *batch, const GError *error, const sw_batch_timing *timing)
{
    for (guint r = 0; r < batch->len; r++) {
        pending *p = g_ptr_array_index(batch, r);
        p->done(NULL, error, timing, p->user_data);
    }
}

/* Hands each request its rows of every output. */
static void split_outputs(GPtrArray *batch, GPtrArray *outputs, int64_t rows, const sw_batch_timing *timing)
{
    if (batch->len == 1) { /* all of them are its rows, as when it runs unbatched */
        pending *p = g_ptr_array_index(batch, 0);
        p->done(outputs, NULL, timing, p->user_data);
        return;
    }
    for (guint i = 0; i < outputs->len; i++) {
        const sw_output *o = g_ptr_array_index(outputs, i);
        if (o->tensor->ndim < 1 || o->tensor->shape[0] != rows) {
            GError *error = g_error_new(SW_ERROR, SW_CODE_INTERNAL,
                                        "output '%s' does not have one row per input row, so a batch cannot be split; "
                                        "run this stage without --max-batch-size",
                                        o->name);
            complete_all(batch, error, timing);
            g_error_free(error);
            return;
        }
    }
    int64_t start = 0;
    for (guint r = 0; r < batch->len; r++) {
        pending *p = g_ptr_array_index(batch, r);
        GPtrArray *mine = sw_output_array_new();
        for (guint i = 0; i < outputs->len; i++) {
            const sw_output *o = g_ptr_array_index(outputs, i);
            sw_output *part = g_new0(sw_output, 1);
            part->name = g_strdup(o->name);
            part->json = o->json;
            part->tensor = slice_rows(o->tensor, start, p->rows);
            g_ptr_array_add(mine, part);
        }
        p->done(mine, NULL, timing, p->user_data);
        g_ptr_array_unref(mine);
        start += p->rows;
    }
}

/* Answers the requests nobody waits for any more; returns the rows left. */
static int64_t drop_unwanted(GPtrArray *batch)
{
    int64_t rows = 0;
    for (guint r = 0; r < batch->len;) {
        pending *p = g_ptr_array_index(batch, r);
        if (p->wanted == NULL || p->wanted(p->user_data)) {
            rows += p->rows;
            r++;
            continue;
        }
        answer_unwanted(g_ptr_array_steal_index(batch, r));
    }
    return rows;
}

/* Each request of a batch that failed, run again alone: one client's bad
 * rows (an index out of range, a value the module refuses) fail only its
 * own call, and its error counts rows as that client does. */
static void run_each_alone(sw_batcher *b, int instance, GPtrArray *batch)
{
    for (guint r = 0; r < batch->len; r++) {
        pending *p = g_ptr_array_index(batch, r);
        GError *error = NULL;
        gint64 now = g_get_monotonic_time();
        sw_batch_timing timing = {
            .formed_us = now, .started_us = now, .execution = sw_batch_next_execution(), .rows = p->rows};
        GPtrArray *outputs = sw_stage_run_instance(b->stage, instance, p->prepared, &error);
        timing.finished_us = g_get_monotonic_time();
        sw_metrics_record_execution(b->metrics, p->rows);
        p->done(outputs, error, &timing, p->user_data);
        g_clear_error(&error);
        if (outputs)
            g_ptr_array_unref(outputs);
    }
}

/* Runs `batch` (pending*; taken) on `instance` of the stage's module. */
static void run_batch(sw_batcher *b, int instance, GPtrArray *batch)
{
    g_ptr_array_set_free_func(batch, (GDestroyNotify)pending_free);
    int64_t rows = drop_unwanted(batch);
    if (batch->len == 0)
        return;
    gint64 formed_us = g_get_monotonic_time();
    GPtrArray *inputs = batch->len == 1 ? g_ptr_array_ref(((pending *)g_ptr_array_index(batch, 0))->prepared)
                                        : concat_inputs(b, instance, batch, rows);
    sw_log(SW_LOG_DEBUG, "event=batch requests=%u rows=%" G_GINT64_FORMAT, batch->len, rows);
    GError *error = NULL;
    sw_batch_timing timing = {.formed_us = formed_us,
                              .started_us = g_get_monotonic_time(),
                              .execution = sw_batch_next_execution(),
                              .rows = rows};
    GPtrArray *outputs = sw_stage_run_instance(b->stage, instance, inputs, &error);
    timing.finished_us = g_get_monotonic_time();
    sw_metrics_record_execution(b->metrics, rows);
    g_ptr_array_unref(inputs);
    if (outputs) {
        split_outputs(batch, outputs, rows, &timing);
        g_ptr_array_unref(outputs);
    } else if (batch->len > 1) {
        g_error_free(error);
        run_each_alone(b, instance, batch);
    } else {
        complete_all(batch, error, &timing);
        g_error_free(error);
    }
    g_ptr_array_unref(batch);
}

static gpointer executor_loop(gpointer data)
{
    const executor *ex = data;
    sw_batcher *b = ex->batcher;
    /* The queue delay is a promise of tens of microseconds; Linux would let
     * the timed wait overrun by its default 50 µs slack. */
    prctl(PR_SET_TIMERSLACK, 1000UL);
    int64_t rows = 0;
    GPtrArray *batch;
    while ((batch = wait_for_batch(b, &rows)) != NULL)
        run_batch(b, instance_of(ex), batch);
    return NULL;
}

sw_batcher *sw_batcher_new(sw_stage *stage, const sw_batcher_options *options, sw_metrics *metrics)
{
    sw_batcher *b = g_new0(sw_batcher, 1);
    b->stage = stage;
    b->metrics = metrics;
    b->options = *options;
    g_mutex_init(&b->lock);
    g_cond_init(&b->arrived);
    g_queue_init(&b->queue);
    b->executors = g_new0(executor, options->executors);
    for (int i = 0; i < options->executors; i++) {
        executor *ex = &b->executors[i];
        ex->batcher = b;
        ex->index = i;
        ex->thread = g_thread_new("sw-batch", executor_loop, ex);
    }
    return b;
}

void sw_batcher_free(sw_batcher *b)
{
    if (b == NULL)
        return;
    g_mutex_lock(&b->lock);
    b->stopping = TRUE;
    g_cond_broadcast(&b->arrived);
    g_mutex_unlock(&b->lock);
    for (int i = 0; i < b->options.executors; i++)
        g_thread_join(b->executors[i].thread);
    g_free(b->executors);
    g_mutex_clear(&b->lock);
    g_cond_clear(&b->arrived);
    g_free(b);
}

static gboolean submit(sw_batcher *b, GPtrArray *prepared, int64_t rows, sw_batch_wanted wanted, sw_batch_done done,
                       void *user_data, gboolean for_caller, GError **error)
{
    /* Sorted by name, so requests listing inputs in any order batch
     * together; before taking the lock every submitter and executor share. */
    g_ptr_array_sort(prepared, compare_names);
    pending *p = g_new0(pending, 1);
    p->prepared = prepared;
    p->rows = rows;
    p->wanted = wanted;
    p->done = done;
    p->user_data = user_data;
    p->for_caller = for_caller;
    g_mutex_lock(&b->lock);
    if ((int)b->queue.length >= b->options.max_queue_size || b->stopping) {
        g_mutex_unlock(&b->lock);
        g_free(p); /* the caller keeps `prepared` */
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "the batch queue is full (%d requests waiting); try again later", b->options.max_queue_size);
        return FALSE;
    }
    p->queued_at = g_get_monotonic_time();
    g_queue_push_tail(&b->queue, p);
    if (for_caller)
        g_atomic_int_inc(&b->for_caller);
    else if (b->executors_waiting > 0)
        g_cond_signal(&b->arrived); /* a system call, even with no one waiting */
    g_mutex_unlock(&b->lock);
    return TRUE;
}

gboolean sw_batcher_submit(sw_batcher *b, GPtrArray *prepared, int64_t rows, sw_batch_wanted wanted, sw_batch_done done,
                           void *user_data, GError **error)
{
    return submit(b, prepared, rows, wanted, done, user_data, FALSE, error);
}

gboolean sw_batcher_submit_for_caller(sw_batcher *b, GPtrArray *prepared, int64_t rows, sw_batch_wanted wanted,
                                      sw_batch_done done, void *user_data, GError **error)
{
    return submit(b, prepared, rows, wanted, done, user_data, TRUE, error);
}

gboolean sw_batcher_has_ready_for_caller(sw_batcher *b)
{
    return g_atomic_int_get(&b->for_caller) > 0;
}

void sw_batcher_run_ready(sw_batcher *b)
{
    GPtrArray *batch = NULL;
    int64_t rows = 0;
    g_mutex_lock(&b->lock);
    while (answer_unwanted_unlocked(b)) {
    }
    GList *first = b->queue.head;
    while (first && !((pending *)first->data)->for_caller)
        first = first->next;
    if (first)
        batch = take_batch(b, first, MIN(b->options.max_batch_size, SW_BATCHER_CALLER_MAX_ROWS), TRUE, &rows);
    g_mutex_unlock(&b->lock);
    /* Executor 0's instance: only a batcher with one executor is driven so. */
    if (batch)
        run_batch(b, 0, batch);
}
