/* ModelInfer: from the request to its single end, through validation,
 * the stage (alone or in a batch) and, for the pipeline model, the hop. */
#include <string.h>

#include "clip.h"
#include "log.h"
#include "oip_codec.h"
#include "service_internal.h"
#include "sw_error.h"

/* Keeps the outputs the request asks for, in the order it asks; all of them
 * when it names none. Outputs asked for with Triton's classification are
 * replaced by their top classes, new outputs kept in `made` (which frees
 * them); the rest are borrowed from `outputs`. */
static GPtrArray *select_outputs(const sw_stage *stage, const char *model_name, const Inference__ModelInferRequest *req,
                                 GPtrArray *outputs, GPtrArray *made, GError **error)
{
    if (req->n_outputs == 0)
        return g_ptr_array_ref(outputs);
    GPtrArray *selected = g_ptr_array_new();
    for (size_t i = 0; i < req->n_outputs; i++) {
        const char *want = req->outputs[i]->name;
        sw_output *found = NULL;
        for (guint j = 0; j < outputs->len && !found; j++) {
            sw_output *o = g_ptr_array_index(outputs, j);
            if (strcmp(o->name, want) == 0)
                found = o;
        }
        if (found == NULL) {
            GString *names = g_string_new(NULL);
            for (guint j = 0; j < outputs->len; j++)
                g_string_append_printf(names, "%s'%s'", j ? ", " : "",
                                       ((sw_output *)g_ptr_array_index(outputs, j))->name);
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                        "requested output '" SW_CLIP_FMT "' is not an output of model %s (outputs: %s)", SW_CLIP(want),
                        model_name, names->str);
            g_string_free(names, TRUE);
            g_ptr_array_unref(selected);
            return NULL;
        }
        gboolean repeated = FALSE;
        for (size_t k = 0; k < i && !repeated; k++)
            repeated = strcmp(req->outputs[k]->name, want) == 0;
        if (repeated) {
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                        "requested output '" SW_CLIP_FMT "' appears more than once", SW_CLIP(want));
            g_ptr_array_unref(selected);
            return NULL;
        }
        int64_t classes = sw__classification_count(req->outputs[i]);
        if (classes > 0) {
            const sw_tensor_spec *spec = sw_spec_find(stage->outputs, found->name);
            sw_output *top = sw__classify(found, classes, spec ? (const char *const *)spec->labels : NULL, error);
            if (top == NULL) {
                g_ptr_array_unref(selected);
                return NULL;
            }
            g_ptr_array_add(made, top);
            g_ptr_array_add(selected, top);
            continue;
        }
        g_ptr_array_add(selected, found);
    }
    return selected;
}

/* `text` from a client as one bounded, quoted log value. Newly allocated. */
static char *quote_clipped(const char *text)
{
    char *clipped = g_strdup_printf(SW_CLIP_FMT, SW_CLIP(text));
    char *quoted = sw_log_quote(clipped);
    g_free(clipped);
    return quoted;
}

/* The answer of a call without a gRPC call: the parts joined into one
 * packed response. */
static void answer_done(sw_oip_infer_done done, void *done_data, GPtrArray *reply, int code, const char *message)
{
    if (reply == NULL) {
        done(NULL, code, message, done_data);
        return;
    }
    GBytes *packed;
    if (reply->len == 1) {
        packed = g_bytes_ref(g_ptr_array_index(reply, 0));
    } else {
        GByteArray *joined = g_byte_array_new();
        for (guint i = 0; i < reply->len; i++) {
            gsize len = 0;
            const guint8 *data = g_bytes_get_data(g_ptr_array_index(reply, i), &len);
            g_byte_array_append(joined, data, (guint)len);
        }
        packed = g_byte_array_free_to_bytes(joined);
    }
    done(packed, SW_CODE_OK, NULL, done_data);
    g_bytes_unref(packed);
}

/* Ends the call with the response in `reply` (GBytes parts: OK) or with
 * `code`/`message`, and frees `ic`. */
void sw__infer_call_finish(infer_call *ic, GPtrArray *reply, int code, const char *message)
{
    int status = reply ? SW_CODE_OK : code;
    gint64 end_us = g_get_monotonic_time();
    gint64 total = end_us - ic->start_us;
    sw__stats_record_call(ic, status, end_us);
    const char *model = ic->req ? ic->req->model_name : NULL;
    gint64 queue = ic->ran.started_us ? ic->ran.started_us - ic->start_us : 0;
    gint64 compute = ic->ran.started_us ? ic->ran.finished_us - ic->ran.started_us : 0;
    sw_metrics_record_request(ic->svc->metrics, model, status, ic->rows, queue, compute, total);
    sw_metrics_in_flight_add(ic->svc->metrics, -1);
    if (ic->svc->access_log) {
        /* Both come from the client: clipped, and quoted so they cannot forge
         * fields. */
        char *id = quote_clipped(ic->req ? ic->req->id : "");
        char *quoted_model = quote_clipped(model ? model : "");
        sw_log(SW_LOG_INFO,
               "event=infer id=%s model=%s status=%s rows=%" G_GINT64_FORMAT " queue_us=%" G_GINT64_FORMAT
               " compute_us=%" G_GINT64_FORMAT " latency_us=%" G_GINT64_FORMAT,
               id, quoted_model, sw_code_name(status), ic->rows, queue, compute, total);
        g_free(id);
        g_free(quoted_model);
    }
    sw_call *call = ic->call;
    sw_oip_infer_done done = ic->done;
    void *done_data = ic->done_data;
    if (ic->owner)
        g_bytes_unref(ic->owner);
    g_free(ic);
    /* Last: once the call ends, a draining server may free the service. */
    if (call == NULL)
        answer_done(done, done_data, reply, code, message);
    else if (reply)
        sw_call_reply_parts(call, reply);
    else
        sw_call_fail(call, code, message);
}

void sw__infer_call_fail_error(infer_call *ic, const GError *error)
{
    sw__infer_call_finish(ic, NULL, sw_error_code(error), error->message);
}

/* The rows the request declares: the largest first dimension of its inputs. */
static int64_t declared_rows(const Inference__ModelInferRequest *req)
{
    int64_t rows = 0;
    for (size_t i = 0; i < req->n_inputs; i++)
        if (req->inputs[i]->n_shape > 0)
            rows = MAX(rows, req->inputs[i]->shape[0]);
    return rows;
}

/* The row limit, from the declared shapes alone: checked before anything is
 * decoded (dates parsed, BYTES framing walked), so a request over the limit
 * costs nothing but its unpacking. */
static gboolean check_declared_rows(const infer_call *ic, GError **error)
{
    int64_t rows = declared_rows(ic->req);
    if (ic->svc->max_rows > 0 && rows > ic->svc->max_rows) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "the request has %" G_GINT64_FORMAT " rows; this server takes at most %d per request", rows,
                    ic->svc->max_rows);
        return FALSE;
    }
    return TRUE;
}

/* Decodes and checks the request: the values to run forward on, or NULL
 * with an error. Runs before batching, so bad requests never join a batch. */
static GPtrArray *prepare(infer_call *ic, GError **error)
{
    if (!sw__check_parameters(ic->req, error) || !check_declared_rows(ic, error))
        return NULL;
    GPtrArray *decoded = sw_oip_decode_inputs(ic->req, ic->owner, error);
    if (decoded == NULL)
        return NULL;
    GPtrArray *prepared = sw_stage_prepare(ic->svc->stage, decoded, &ic->rows, error);
    g_ptr_array_unref(decoded);
    ic->prepared_us = g_get_monotonic_time();
    if (prepared && ic->svc->max_rows > 0 && ic->rows > ic->svc->max_rows) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "the request has %" G_GINT64_FORMAT " rows; this server takes at most %d per request", ic->rows,
                    ic->svc->max_rows);
        g_clear_pointer(&prepared, g_ptr_array_unref);
    }
    return prepared;
}

/* Requested outputs apply where the answer is made: at the end. */
static void answer(infer_call *ic, GPtrArray *outputs)
{
    GError *error = NULL;
    GPtrArray *made = sw_output_array_new();
    GPtrArray *selected = select_outputs(ic->svc->stage, ic->entry->name, ic->req, outputs, made, &error);
    if (selected == NULL) {
        g_ptr_array_unref(made);
        sw__infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    Inference__ModelInferResponse *resp = sw_oip_response_build(ic->entry->name, ic->req->id, selected);
    /* The version that answered, as Triton reports it, whether or not the
     * request named one. */
    resp->model_version = SW_MODEL_VERSION;
    GPtrArray *reply = sw_oip_response_pack_parts(resp);
    sw_oip_response_free(resp);
    g_ptr_array_unref(selected);
    g_ptr_array_unref(made);
    size_t reply_bytes = 0;
    for (guint i = 0; i < reply->len; i++)
        reply_bytes += g_bytes_get_size(g_ptr_array_index(reply, i));
    /* Said here, with the sizes, rather than by gRPC refusing to send it. */
    if (ic->svc->max_reply_bytes > 0 && reply_bytes > ic->svc->max_reply_bytes) {
        char *message = g_strdup_printf("the reply would be %zu bytes; this server sends at most %zu per message: send "
                                        "fewer rows per request",
                                        reply_bytes, ic->svc->max_reply_bytes);
        sw__infer_call_finish(ic, NULL, SW_CODE_RESOURCE_EXHAUSTED, message);
        g_free(message);
    } else {
        sw__infer_call_finish(ic, reply, SW_CODE_OK, NULL);
    }
    g_ptr_array_unref(reply);
}

/* What happens once the stage ran: pass the outputs on, or answer. */
static void stage_done(GPtrArray *outputs, const GError *error, const sw_batch_timing *timing, void *user_data)
{
    infer_call *ic = user_data;
    ic->ran = *timing;
    if (outputs)
        sw__stats_count_execution(ic->entry, timing, ic->svc->batcher != NULL);
    if (outputs == NULL)
        sw__infer_call_fail_error(ic, error);
    else if (ic->entry == &ic->svc->pipeline_model && ic->svc->next)
        sw__hop_forward(ic, outputs);
    else
        answer(ic, outputs);
}

/* Calls without a gRPC call end only at their own deadline. */
static gboolean is_cancelled(const infer_call *ic)
{
    return ic->call ? sw_call_is_cancelled(ic->call) : sw__infer_call_remaining_us(ic) <= 0;
}

static gboolean still_wanted(void *user_data)
{
    return !is_cancelled(user_data);
}

/* Whether the call's batch runs on the polling thread that received it
 * (oip_service.c, batches_on_poller). */
static gboolean batches_here(const infer_call *ic)
{
    return ic->svc->batch_on_poller && ic->call && ic->rows <= ic->svc->inline_max_rows &&
           sw_call_on_polling_thread(ic->call);
}

static void run_stage(infer_call *ic, GPtrArray *prepared)
{
    GError *error = NULL;
    if (ic->svc->batcher) {
        gboolean queued = batches_here(ic) ? sw_batcher_submit_for_caller(ic->svc->batcher, prepared, ic->rows,
                                                                          still_wanted, stage_done, ic, &error)
                                           : sw_batcher_submit(ic->svc->batcher, prepared, ic->rows, still_wanted,
                                                               stage_done, ic, &error);
        if (!queued) {
            g_ptr_array_unref(prepared);
            sw__infer_call_fail_error(ic, error);
            g_error_free(error);
        }
        return;
    }
    gint64 now = g_get_monotonic_time();
    sw_batch_timing timing = {
        .formed_us = now, .started_us = now, .execution = sw_batch_next_execution(), .rows = ic->rows};
    GPtrArray *outputs = sw_stage_run(ic->svc->stage, prepared, &error);
    timing.finished_us = g_get_monotonic_time();
    sw_metrics_record_execution(ic->svc->metrics, ic->rows);
    g_ptr_array_unref(prepared);
    stage_done(outputs, error, &timing, ic);
    g_clear_error(&error);
    if (outputs)
        g_ptr_array_unref(outputs);
}

int64_t sw__infer_call_remaining_us(const infer_call *ic)
{
    if (ic->call)
        return sw_call_remaining_us(ic->call);
    return ic->deadline_us > 0 ? ic->deadline_us - g_get_monotonic_time() : G_MAXINT64;
}

/* The rest of infer_start(), wherever it runs. */
static void infer_prepare_and_run(infer_call *ic)
{
    GError *error = NULL;
    GPtrArray *prepared = prepare(ic, &error);
    if (prepared == NULL) {
        sw__infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    run_stage(ic, prepared);
}

static void infer_resume_on_worker(sw_call *call, void *user_data)
{
    (void)call;
    infer_prepare_and_run(user_data);
}

/* Runs the call `ic` on the packed request `request`, to its single end. */
static void infer_start(infer_call *ic, GBytes *request)
{
    ic->start_us = g_get_monotonic_time();
    sw_metrics_in_flight_add(ic->svc->metrics, 1);
    GError *error = NULL;
    Inference__ModelInferRequest *req = sw_oip_unpack_infer_request(request, &ic->owner, &error);
    if (req == NULL) {
        sw__infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    ic->req = req;
    /* Checked once the request is read, so the answer is logged and counted
     * under its id and model. */
    if (is_cancelled(ic)) {
        sw__infer_call_finish(ic, NULL, SW_CODE_DEADLINE_EXCEEDED,
                              "the deadline passed or the call was cancelled before it ran");
        return;
    }
    ic->entry = sw__find_model(ic->svc, req->model_name, req->model_version, &error);
    if (ic->entry && !g_atomic_int_get(&ic->svc->loaded)) {
        ic->entry = NULL;
        g_set_error(&error, SW_ERROR, SW_CODE_UNAVAILABLE,
                    "model '%s' is still loading; ask again when health says SERVING", req->model_name);
    }
    if (ic->entry == NULL) {
        sw__infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    /* Batched calls only queue here; others run the stage. */
    if (ic->call && ic->svc->batcher == NULL && declared_rows(req) > ic->svc->inline_max_rows &&
        sw_call_on_polling_thread(ic->call)) {
        sw_call_continue_on_worker(ic->call, infer_resume_on_worker, ic);
        return;
    }
    infer_prepare_and_run(ic);
}

void sw__handle_model_infer(sw_call *call, void *data)
{
    infer_call *ic = g_new0(infer_call, 1);
    ic->call = call;
    ic->svc = data;
    infer_start(ic, sw_call_request(call));
}

void sw_oip_service_infer(sw_oip_service *service, GBytes *request, gint64 deadline_us, sw_oip_infer_done done,
                          void *user_data)
{
    infer_call *ic = g_new0(infer_call, 1);
    ic->svc = service;
    ic->deadline_us = deadline_us;
    ic->done = done;
    ic->done_data = user_data;
    infer_start(ic, request);
}
