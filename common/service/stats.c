/* ModelStatistics (Triton's statistics extension): cumulative counters per
 * model, updated where a call's stage ran and where the call ends; with
 * batching, also per executed batch size. */
#include <string.h>

#include "service_internal.h"
#include "sw_error.h"

/* The executions of one batch size (Triton's InferBatchStatistics). */
typedef struct batch_bucket {
    guint64 size, count, input_ns, infer_ns, output_ns;
} batch_bucket;

static guint64 ns_between(gint64 from_us, gint64 to_us)
{
    return from_us > 0 && to_us > from_us ? (guint64)(to_us - from_us) * 1000 : 0;
}

/* The bucket of `size`, added in order when `add`; NULL when absent. */
static batch_bucket *find_bucket(model_stats *st, guint64 size, gboolean add)
{
    if (st->batches == NULL) {
        if (!add)
            return NULL;
        st->batches = g_array_new(FALSE, TRUE, sizeof(batch_bucket));
    }
    guint at = 0;
    for (; at < st->batches->len; at++) {
        batch_bucket *b = &g_array_index(st->batches, batch_bucket, at);
        if (b->size == size)
            return b;
        if (b->size > size)
            break;
    }
    if (!add)
        return NULL;
    batch_bucket fresh = {.size = size};
    g_array_insert_val(st->batches, at, fresh);
    return &g_array_index(st->batches, batch_bucket, at);
}

void sw__stats_count_execution(const model_entry *entry, const sw_batch_timing *ran, gboolean batched)
{
    if (entry == NULL || ran->execution == 0)
        return;
    model_stats *st = entry->stats;
    g_mutex_lock(&st->lock);
    gboolean seen = FALSE;
    for (guint i = 0; i < SW_STATS_RECENT && !seen; i++)
        seen = st->recent[i] == ran->execution;
    if (!seen) {
        st->execution_count++;
        st->recent[st->recent_next] = ran->execution;
        st->recent_next = (st->recent_next + 1) % SW_STATS_RECENT;
        if (batched && ran->rows > 0) {
            batch_bucket *b = find_bucket(st, (guint64)ran->rows, TRUE);
            b->count++;
            b->input_ns += ns_between(ran->formed_us, ran->started_us);
            b->infer_ns += ns_between(ran->started_us, ran->finished_us);
        }
    }
    g_mutex_unlock(&st->lock);
}

/* Calls whose model was not found count nowhere. The phases, for calls
 * answered OK: queue from the end of preparing to forward's start (the
 * batcher's queue; near 0 without batching), compute_input from the
 * call's start to the end of preparing (unpacking, checks, decoding,
 * sw_stage_prepare), compute_infer the forward call (the whole batch's),
 * compute_output from forward's end to the answer (selecting and encoding
 * outputs; for the pipeline model on a stage with a next stage, that
 * includes the rest of the pipeline). A batch's compute_output is the sum
 * of its calls' (the executor hands their rows out one after another). */
void sw__stats_record_call(const infer_call *ic, int status, gint64 end_us)
{
    if (ic->entry == NULL)
        return;
    model_stats *st = ic->entry->stats;
    guint64 total = ns_between(ic->start_us, end_us);
    g_mutex_lock(&st->lock);
    st->last_inference_ms = (guint64)(g_get_real_time() / 1000);
    if (status == SW_CODE_OK) {
        guint64 output_ns = ns_between(ic->ran.finished_us, end_us);
        st->success_count++;
        st->success_ns += total;
        st->inference_count += (guint64)MAX(ic->rows, 0);
        st->input_ns += ns_between(ic->start_us, ic->prepared_us);
        st->queue_ns += ns_between(ic->prepared_us, ic->ran.started_us);
        st->infer_ns += ns_between(ic->ran.started_us, ic->ran.finished_us);
        st->output_ns += output_ns;
        batch_bucket *b = ic->ran.rows > 0 ? find_bucket(st, (guint64)ic->ran.rows, FALSE) : NULL;
        if (b)
            b->output_ns += output_ns;
    } else {
        st->fail_count++;
        st->fail_ns += total;
    }
    g_mutex_unlock(&st->lock);
}

void sw__stats_free(model_entry *entry)
{
    if (entry->stats == NULL)
        return;
    g_mutex_clear(&entry->stats->lock);
    if (entry->stats->batches)
        g_array_unref(entry->stats->batches);
    g_free(entry->stats);
    entry->stats = NULL;
}

static Inference__StatisticDuration *duration(Inference__StatisticDuration *d, guint64 count, guint64 ns)
{
    inference__statistic_duration__init(d);
    d->count = count;
    d->ns = ns;
    return d;
}

/* Everything a ModelStatistics entry points to, filled from a snapshot. */
typedef struct stats_reply {
    Inference__ModelStatistics model;
    Inference__InferStatistics infer;
    Inference__StatisticDuration d[6];
    Inference__InferBatchStatistics *batches; /* n: model.n_batch_stats */
    Inference__StatisticDuration *batch_d;    /* 3 per batch size */
} stats_reply;

/* A whole ModelStatisticsResponse in one block: `response` first, so the
 * block is freed through it. */
typedef struct stats_snapshot {
    Inference__ModelStatisticsResponse response;
    Inference__ModelStatistics *list[2];
    stats_reply replies[2];
} stats_snapshot;

static void fill_batches(stats_reply *r, const model_stats *st)
{
    guint n = st->batches ? st->batches->len : 0;
    r->batches = g_new0(Inference__InferBatchStatistics, n);
    r->batch_d = g_new0(Inference__StatisticDuration, 3 * (gsize)n);
    r->model.n_batch_stats = n;
    r->model.batch_stats = g_new0(Inference__InferBatchStatistics *, n + 1);
    for (guint i = 0; i < n; i++) {
        const batch_bucket *b = &g_array_index(st->batches, batch_bucket, i);
        Inference__InferBatchStatistics *out = &r->batches[i];
        inference__infer_batch_statistics__init(out);
        out->batch_size = b->size;
        out->compute_input = duration(&r->batch_d[3 * i], b->count, b->input_ns);
        out->compute_infer = duration(&r->batch_d[3 * i + 1], b->count, b->infer_ns);
        out->compute_output = duration(&r->batch_d[3 * i + 2], b->count, b->output_ns);
        r->model.batch_stats[i] = out;
    }
}

static void fill(stats_reply *r, const model_entry *entry)
{
    model_stats *st = entry->stats;
    inference__model_statistics__init(&r->model);
    inference__infer_statistics__init(&r->infer);
    r->model.name = (char *)entry->name;
    r->model.version = SW_MODEL_VERSION;
    r->model.inference_stats = &r->infer;
    g_mutex_lock(&st->lock);
    r->model.last_inference = st->last_inference_ms;
    r->model.inference_count = st->inference_count;
    r->model.execution_count = st->execution_count;
    /* The phases are measured for calls answered OK only. */
    r->infer.success = duration(&r->d[0], st->success_count, st->success_ns);
    r->infer.fail = duration(&r->d[1], st->fail_count, st->fail_ns);
    r->infer.queue = duration(&r->d[2], st->success_count, st->queue_ns);
    r->infer.compute_input = duration(&r->d[3], st->success_count, st->input_ns);
    r->infer.compute_infer = duration(&r->d[4], st->success_count, st->infer_ns);
    r->infer.compute_output = duration(&r->d[5], st->success_count, st->output_ns);
    fill_batches(r, st);
    g_mutex_unlock(&st->lock);
}

Inference__ModelStatisticsResponse *sw_oip_service_model_statistics(sw_oip_service *svc, const char *name,
                                                                    const char *version, GError **error)
{
    const model_entry *entries[2];
    size_t n = 0;
    name = name ? name : "";
    version = version ? version : "";
    if (name[0] != '\0') {
        const model_entry *entry = sw__find_model(svc, name, version, error);
        if (entry == NULL)
            return NULL;
        entries[n++] = entry;
    } else if (version[0] != '\0' && strcmp(version, SW_MODEL_VERSION) != 0) {
        g_set_error(error, SW_ERROR, SW_CODE_NOT_FOUND,
                    "no model here has a version other than '" SW_MODEL_VERSION "'");
        return NULL;
    } else {
        entries[n++] = &svc->stage_model;
        if (svc->pipeline_model.name)
            entries[n++] = &svc->pipeline_model;
    }
    stats_snapshot *snap = g_new0(stats_snapshot, 1);
    inference__model_statistics_response__init(&snap->response);
    for (size_t i = 0; i < n; i++) {
        fill(&snap->replies[i], entries[i]);
        snap->list[i] = &snap->replies[i].model;
    }
    snap->response.n_model_stats = n;
    snap->response.model_stats = snap->list;
    return &snap->response;
}

void sw_oip_service_statistics_free(Inference__ModelStatisticsResponse *statistics)
{
    if (statistics == NULL)
        return;
    stats_snapshot *snap = (stats_snapshot *)statistics;
    for (size_t i = 0; i < snap->response.n_model_stats; i++) {
        g_free(snap->replies[i].batches);
        g_free(snap->replies[i].batch_d);
        g_free(snap->replies[i].model.batch_stats);
    }
    g_free(snap);
}

void sw__handle_model_statistics(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelStatisticsRequest *req =
        (Inference__ModelStatisticsRequest *)sw__unpack_request(call, &inference__model_statistics_request__descriptor);
    if (req == NULL)
        return;
    GError *error = NULL;
    Inference__ModelStatisticsResponse *resp = sw_oip_service_model_statistics(svc, req->name, req->version, &error);
    if (resp) {
        sw_call_reply(call, &resp->base);
        sw_oip_service_statistics_free(resp);
    } else {
        sw_call_fail_error(call, error);
        g_error_free(error);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
