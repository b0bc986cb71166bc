#include "batches.h"

#include "cli.h"
#include "progress.h"

/* One batch's place between the threads that call and the one that writes. */
typedef struct slot {
    stagewise_result *result;
    GError *error;
    gboolean done;
} slot;

typedef struct batch_run {
    const cli_route *route;
    const cli_inputs *inputs;
    size_t batch_size;
    size_t total;
    size_t window; /* batches dispatched and not yet written, at most */
    GMutex lock;
    GCond cond;      /* a slot is done */
    slot *slots;     /* batch b in slots[b % window] */
    gboolean failed; /* a batch failed: no other starts */
} batch_run;

static stagewise_result *predict(const cli_route *route, const stagewise_rows *rows, GError **error)
{
    stagewise_error *lib_error = NULL;
    stagewise_result *result = route->staged
                                   ? stagewise_predict_staged(route->clients[0], route->clients[1], route->clients[2],
                                                              route->model, rows, &lib_error)
                                   : stagewise_predict(route->clients[0], route->model, rows, &lib_error);
    if (result == NULL)
        cli_error_take_stagewise(error, lib_error);
    return result;
}

/* One batch: rows [first, first + count) in, their predictions out. */
static stagewise_result *run_batch(const cli_route *route, const cli_inputs *inputs, size_t first, size_t count,
                                   GError **error)
{
    stagewise_rows *rows = cli_inputs_batch(inputs, first, count, error);
    stagewise_result *result = rows ? predict(route, rows, error) : NULL;
    stagewise_rows_free(rows);
    if (result && stagewise_result_rows(result) != count) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%zu rows were sent but the server answered %zu", count,
                    stagewise_result_rows(result));
        g_clear_pointer(&result, stagewise_result_free);
    }
    if (result == NULL)
        g_prefix_error(error, "rows %zu-%zu: ", first + 1, first + count);
    return result;
}

/* A worker thread's task: batch number GPOINTER_TO_SIZE(data) - 1. */
static void worker(gpointer data, gpointer user_data)
{
    batch_run *run = user_data;
    size_t batch = GPOINTER_TO_SIZE(data) - 1;
    size_t first = batch * run->batch_size;
    size_t count = MIN(run->batch_size, run->total - first);
    g_mutex_lock(&run->lock);
    gboolean skip = run->failed;
    g_mutex_unlock(&run->lock);
    GError *error = NULL;
    stagewise_result *result = skip ? NULL : run_batch(run->route, run->inputs, first, count, &error);
    g_mutex_lock(&run->lock);
    slot *s = &run->slots[batch % run->window];
    s->result = result;
    s->error = error;
    s->done = TRUE;
    if (!skip && result == NULL)
        run->failed = TRUE;
    g_cond_broadcast(&run->cond);
    g_mutex_unlock(&run->lock);
}

/* Waits for batch `batch` and takes what its slot holds. */
static slot take(batch_run *run, size_t batch)
{
    g_mutex_lock(&run->lock);
    slot *s = &run->slots[batch % run->window];
    while (!s->done)
        g_cond_wait(&run->cond, &run->lock);
    slot taken = *s;
    *s = (slot){0};
    g_mutex_unlock(&run->lock);
    return taken;
}

gboolean cli_batches_run(const cli_route *route, const cli_inputs *inputs, size_t batch_size, int concurrency,
                         cli_output *out, GError **error)
{
    batch_run run = {.route = route, .inputs = inputs, .batch_size = batch_size, .total = cli_inputs_rows(inputs)};
    size_t n_batches = (run.total + batch_size - 1) / batch_size;
    /* Twice the calls in flight: the threads go on with later batches while
     * an earlier, slower one holds up the writing. */
    run.window = 2 * (size_t)MAX(concurrency, 1);
    run.slots = g_new0(slot, run.window);
    g_mutex_init(&run.lock);
    g_cond_init(&run.cond);
    GThreadPool *pool = g_thread_pool_new(worker, &run, MAX(concurrency, 1), TRUE, NULL);

    cli_progress progress;
    cli_progress_start(&progress, run.total);
    size_t dispatched = 0, written = 0, done_rows = 0;
    gboolean ok = TRUE;
    while (ok && written < n_batches) {
        g_mutex_lock(&run.lock);
        gboolean failed = run.failed;
        g_mutex_unlock(&run.lock);
        /* A failure found: no more batches; the one being waited for was
         * dispatched before it, so it comes. */
        while (!failed && dispatched < n_batches && dispatched < written + run.window) {
            dispatched++;
            g_thread_pool_push(pool, GSIZE_TO_POINTER(dispatched), NULL);
        }
        slot s = take(&run, written);
        if (s.result == NULL) {
            /* Batches are started in order, so one skipped after a failure
             * comes after the failed one, which is written first. */
            g_propagate_error(
                error,
                s.error ? s.error : g_error_new(CLI_ERROR, CLI_ERROR_FAILED, "batch %zu was not sent", written + 1));
            ok = FALSE;
            break;
        }
        ok = cli_output_write(out, s.result, error);
        if (ok) {
            written++;
            done_rows += stagewise_result_rows(s.result);
            cli_progress_update(&progress, done_rows);
        }
        stagewise_result_free(s.result);
    }
    if (!ok) {
        g_mutex_lock(&run.lock);
        run.failed = TRUE;
        g_mutex_unlock(&run.lock);
    }
    /* Waits for the calls in flight; tasks not started yet see the failure and skip. */
    g_thread_pool_free(pool, FALSE, TRUE);
    for (size_t i = 0; i < run.window; i++) {
        stagewise_result_free(run.slots[i].result);
        g_clear_error(&run.slots[i].error);
    }
    g_free(run.slots);
    g_cond_clear(&run.cond);
    g_mutex_clear(&run.lock);
    cli_progress_finish(&progress, done_rows, ok);
    return ok;
}
