/* ModelStatistics (Triton's statistics extension): cumulative counters per
 * model, updated where a call's stage ran and where the call ends. */
#include <string.h>

#include "service_internal.h"
#include "sw_error.h"

void sw__stats_count_execution(const model_entry *entry, const sw_batch_timing *ran)
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
    }
    g_mutex_unlock(&st->lock);
}

static guint64 ns_between(gint64 from_us, gint64 to_us)
{
    return from_us > 0 && to_us > from_us ? (guint64)(to_us - from_us) * 1000 : 0;
}

/* Calls whose model was not found count nowhere. The phases, for calls
 * answered OK: queue from the end of preparing to forward's start (the
 * batcher's queue; near 0 without batching), compute_input from the
 * call's start to the end of preparing (unpacking, checks, decoding,
 * sw_stage_prepare), compute_infer the forward call (the whole batch's),
 * compute_output from forward's end to the answer (selecting and encoding
 * outputs; for the pipeline model on a stage with a next stage, that
 * includes the rest of the pipeline). */
void sw__stats_record_call(const infer_call *ic, int status, gint64 end_us)
{
    if (ic->entry == NULL)
        return;
    model_stats *st = ic->entry->stats;
    guint64 total = ns_between(ic->start_us, end_us);
    g_mutex_lock(&st->lock);
    st->last_inference_ms = (guint64)(g_get_real_time() / 1000);
    if (status == SW_CODE_OK) {
        st->success_count++;
        st->success_ns += total;
        st->inference_count += (guint64)MAX(ic->rows, 0);
        st->input_ns += ns_between(ic->start_us, ic->prepared_us);
        st->queue_ns += ns_between(ic->prepared_us, ic->ran.started_us);
        st->infer_ns += ns_between(ic->ran.started_us, ic->ran.finished_us);
        st->output_ns += ns_between(ic->ran.finished_us, end_us);
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
} stats_reply;

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
    g_mutex_unlock(&st->lock);
}

void sw__handle_model_statistics(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelStatisticsRequest *req =
        (Inference__ModelStatisticsRequest *)sw__unpack_request(call, &inference__model_statistics_request__descriptor);
    if (req == NULL)
        return;
    const model_entry *entries[2];
    size_t n = 0;
    GError *error = NULL;
    if (req->name[0] != '\0') {
        const model_entry *entry = sw__find_model(svc, req->name, req->version, &error);
        if (entry)
            entries[n++] = entry;
    } else if (req->version[0] != '\0' && strcmp(req->version, SW_MODEL_VERSION) != 0) {
        g_set_error(&error, SW_ERROR, SW_CODE_NOT_FOUND,
                    "no model here has a version other than '" SW_MODEL_VERSION "'");
    } else {
        entries[n++] = &svc->stage_model;
        if (svc->pipeline_model.name)
            entries[n++] = &svc->pipeline_model;
    }
    if (error) {
        sw_call_fail_error(call, error);
        g_error_free(error);
    } else {
        stats_reply replies[2];
        Inference__ModelStatistics *list[2];
        for (size_t i = 0; i < n; i++) {
            fill(&replies[i], entries[i]);
            list[i] = &replies[i].model;
        }
        Inference__ModelStatisticsResponse resp = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
        resp.n_model_stats = n;
        resp.model_stats = list;
        sw_call_reply(call, &resp.base);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
