#include "oip_service.h"

#include <string.h>

#include "health.pb-c.h"
#include "inference.pb-c.h"
#include "batcher.h"
#include "channel.h"
#include "log.h"
#include "oip_codec.h"
#include "sw_error.h"

#define OIP "/inference.GRPCInferenceService/"
#define PLATFORM "ludwig_torchscript"
#define MODEL_VERSION "1"

/* The metadata of one model this service answers for. It never changes:
 * built once, everything it points to owned by `allocations` or borrowed
 * from specs that live as long as the service. */
typedef struct model_entry {
    const char *name;
    Inference__ModelMetadataResponse metadata;
} model_entry;

struct sw_oip_service {
    sw_stage *stage;
    char *base_name;
    sw_channel *next; /* borrowed; NULL at the end of the pipeline */
    char *next_metadata[3]; /* authorization for the next stage, NULL-terminated */
    int max_rows;
    gboolean access_log;
    sw_batcher *batcher; /* NULL: every call runs forward alone */
    sw_metrics *metrics;
    gint loaded; /* the stage's module is loaded: inference may run */
    gint serving;
    GMutex watch_lock;
    GPtrArray *watchers; /* watcher*: open Health/Watch streams */
    model_entry stage_model;
    model_entry pipeline_model; /* name NULL when this stage does not serve the pipeline */
    GPtrArray *pipeline_outputs; /* sw_tensor_spec* of the last stage */
    GPtrArray *allocations;
};

static void build_model_metadata(sw_oip_service *svc, model_entry *entry, const char *name, GPtrArray *inputs,
                                 GPtrArray *outputs);

sw_oip_service *sw_oip_service_new(sw_stage *stage, const sw_export *export, const char *model_base_name,
                                   sw_channel *next, const sw_oip_service_options *options, GError **error)
{
    sw_oip_service *svc = g_new0(sw_oip_service, 1);
    svc->stage = stage;
    svc->base_name = g_strdup(model_base_name);
    svc->next = next;
    svc->max_rows = options->max_rows;
    svc->access_log = options->access_log;
    svc->metrics = options->metrics;
    g_mutex_init(&svc->watch_lock);
    svc->watchers = g_ptr_array_new_with_free_func(g_free);
    if (options->batching.max_batch_size > 0)
        svc->batcher = sw_batcher_new(stage, &options->batching, svc->metrics);
    if (options->next_auth_token) {
        svc->next_metadata[0] = g_strdup("authorization");
        svc->next_metadata[1] = g_strdup_printf("Bearer %s", options->next_auth_token);
    }
    svc->allocations = g_ptr_array_new_with_free_func(g_free);
    build_model_metadata(svc, &svc->stage_model, stage->model_name, stage->inputs, stage->outputs);
    /* Every stage that can reach the end answers for the whole pipeline. */
    if (next || stage->kind == SW_STAGE_POSTPROCESSOR) {
        GPtrArray *unused = NULL;
        if (!sw_stage_specs(SW_STAGE_POSTPROCESSOR, export, &unused, &svc->pipeline_outputs, error)) {
            sw_oip_service_free(svc);
            return NULL;
        }
        g_ptr_array_unref(unused);
        build_model_metadata(svc, &svc->pipeline_model, svc->base_name, stage->inputs, svc->pipeline_outputs);
    }
    return svc;
}

void sw_oip_service_free(sw_oip_service *svc)
{
    if (svc == NULL)
        return;
    sw_batcher_free(svc->batcher);
    sw_oip_service_end_watches(svc);
    g_ptr_array_unref(svc->watchers);
    g_mutex_clear(&svc->watch_lock);
    g_free(svc->base_name);
    g_free(svc->next_metadata[0]);
    g_free(svc->next_metadata[1]);
    if (svc->pipeline_outputs)
        g_ptr_array_unref(svc->pipeline_outputs);
    g_ptr_array_unref(svc->allocations);
    g_free(svc);
}

static gboolean is_serving(sw_oip_service *svc)
{
    return g_atomic_int_get(&svc->serving) != 0;
}

/* Unpacks the request of `call` as `desc`, or fails the call and returns NULL. */
static ProtobufCMessage *unpack_request(sw_call *call, const ProtobufCMessageDescriptor *desc)
{
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(sw_call_request(call), &len);
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, data);
    if (msg == NULL) {
        char *text = g_strdup_printf("the request is not a valid %s message", desc->name);
        sw_call_fail(call, SW_CODE_INVALID_ARGUMENT, text);
        g_free(text);
    }
    return msg;
}

/* The model `name`/`version` names, or NULL with a NOT_FOUND error. */
static const model_entry *find_model(sw_oip_service *svc, const char *name, const char *version, GError **error)
{
    const model_entry *entry = NULL;
    if (strcmp(name, svc->stage_model.name) == 0)
        entry = &svc->stage_model;
    else if (svc->pipeline_model.name && strcmp(name, svc->pipeline_model.name) == 0)
        entry = &svc->pipeline_model;
    if (entry == NULL) {
        const char *pipeline = svc->pipeline_model.name;
        g_set_error(error, SW_ERROR, SW_CODE_NOT_FOUND, "model '%s' is not served here; this server serves '%s'%s%s%s",
                    name, svc->stage_model.name, pipeline ? " and '" : "", pipeline ? pipeline : "", pipeline ? "'" : "");
        return NULL;
    }
    if (version[0] != '\0' && strcmp(version, MODEL_VERSION) != 0) {
        g_set_error(error, SW_ERROR, SW_CODE_NOT_FOUND,
                    "model '%s' has no version '%s'; its only version is '" MODEL_VERSION "'", name, version);
        return NULL;
    }
    return entry;
}

/* find_model for the metadata RPCs: fails the call itself. */
static const model_entry *find_model_or_fail(sw_oip_service *svc, sw_call *call, const char *name, const char *version)
{
    GError *error = NULL;
    const model_entry *entry = find_model(svc, name, version, &error);
    if (entry == NULL) {
        sw_call_fail_error(call, error);
        g_error_free(error);
    }
    return entry;
}

static void handle_server_live(sw_call *call, void *data)
{
    (void)data;
    Inference__ServerLiveResponse resp = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    resp.live = TRUE;
    sw_call_reply(call, &resp.base);
}

static void handle_server_ready(sw_call *call, void *data)
{
    Inference__ServerReadyResponse resp = INFERENCE__SERVER_READY_RESPONSE__INIT;
    resp.ready = is_serving(data);
    sw_call_reply(call, &resp.base);
}

static void handle_model_ready(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelReadyRequest *req =
        (Inference__ModelReadyRequest *)unpack_request(call, &inference__model_ready_request__descriptor);
    if (req == NULL)
        return;
    if (find_model_or_fail(svc, call, req->name, req->version)) {
        Inference__ModelReadyResponse resp = INFERENCE__MODEL_READY_RESPONSE__INIT;
        resp.ready = is_serving(svc);
        sw_call_reply(call, &resp.base);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void handle_server_metadata(sw_call *call, void *data)
{
    (void)data;
    Inference__ServerMetadataResponse resp = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    resp.name = "stagewise";
    resp.version = SW_VERSION;
    /* No OIP extension (model repository, statistics, ...) is implemented
     * yet, and claiming one would mislead clients that probe for them. */
    resp.n_extensions = 0;
    sw_call_reply(call, &resp.base);
}

/* Allocates zeroed memory that lives as long as the service. */
static gpointer metadata_alloc(sw_oip_service *svc, size_t size)
{
    gpointer p = g_malloc0(size);
    g_ptr_array_add(svc->allocations, p);
    return p;
}

static Inference__ModelMetadataResponse__TensorMetadata **tensor_metadata_list(sw_oip_service *svc,
                                                                               GPtrArray *specs)
{
    Inference__ModelMetadataResponse__TensorMetadata **list =
        metadata_alloc(svc, sizeof(*list) * (specs->len + 1));
    for (guint i = 0; i < specs->len; i++) {
        const sw_tensor_spec *spec = g_ptr_array_index(specs, i);
        Inference__ModelMetadataResponse__TensorMetadata *m = metadata_alloc(svc, sizeof *m);
        inference__model_metadata_response__tensor_metadata__init(m);
        m->name = spec->name;
        m->datatype = (char *)sw_dtype_name(spec->dtype);
        m->n_shape = (size_t)spec->ndim;
        m->shape = (int64_t *)spec->shape;
        list[i] = m;
    }
    return list;
}

static void add_property(sw_oip_service *svc, GPtrArray *entries, char *key, char *value)
{
    Inference__ModelMetadataResponse__PropertiesEntry *e = metadata_alloc(svc, sizeof *e);
    inference__model_metadata_response__properties_entry__init(e);
    e->key = key;
    e->value = value;
    g_ptr_array_add(entries, e);
}

/* Properties say what OIP has no field for: the stage, the device, the
 * Ludwig model name, and which BYTES outputs carry JSON rows. */
static void build_model_metadata(sw_oip_service *svc, model_entry *entry, const char *name, GPtrArray *inputs,
                                 GPtrArray *outputs)
{
    const sw_stage *stage = svc->stage;
    entry->name = name;
    Inference__ModelMetadataResponse *m = &entry->metadata;
    inference__model_metadata_response__init(m);
    m->name = (char *)name;
    static char *versions[] = {MODEL_VERSION};
    m->n_versions = 1;
    m->versions = versions;
    m->platform = PLATFORM;
    m->n_inputs = inputs->len;
    m->inputs = tensor_metadata_list(svc, inputs);
    m->n_outputs = outputs->len;
    m->outputs = tensor_metadata_list(svc, outputs);
    GPtrArray *entries = g_ptr_array_new();
    gboolean pipeline = entry == &svc->pipeline_model;
    add_property(svc, entries, "stage", pipeline ? "pipeline" : (char *)sw_stage_kind_name(stage->kind));
    add_property(svc, entries, "device", stage->device);
    add_property(svc, entries, "ludwig_model", svc->base_name);
    if (pipeline && svc->next)
        add_property(svc, entries, "next", (char *)sw_channel_target(svc->next));
    /* Raw inputs: what a client needs to map its data columns to features. */
    for (guint i = 0; stage->kind == SW_STAGE_PREPROCESSOR && i < inputs->len; i++) {
        const sw_tensor_spec *s = g_ptr_array_index(inputs, i);
        char *key = g_strdup_printf("column:%s", s->name);
        g_ptr_array_add(svc->allocations, key);
        add_property(svc, entries, key, s->column);
        key = g_strdup_printf("type:%s", s->name);
        g_ptr_array_add(svc->allocations, key);
        add_property(svc, entries, key, s->feature_type);
    }
    for (guint i = 0; i < outputs->len; i++) {
        const sw_tensor_spec *s = g_ptr_array_index(outputs, i);
        if (!s->json)
            continue;
        char *key = g_strdup_printf("content_type:%s", s->name);
        g_ptr_array_add(svc->allocations, key);
        add_property(svc, entries, key, "json");
    }
    m->n_properties = entries->len;
    m->properties = metadata_alloc(svc, sizeof(*m->properties) * (entries->len + 1));
    memcpy(m->properties, entries->pdata, sizeof(*m->properties) * entries->len);
    g_ptr_array_unref(entries);
}

static void handle_model_metadata(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelMetadataRequest *req =
        (Inference__ModelMetadataRequest *)unpack_request(call, &inference__model_metadata_request__descriptor);
    if (req == NULL)
        return;
    const model_entry *entry = find_model_or_fail(svc, call, req->name, req->version);
    if (entry)
        sw_call_reply(call, &entry->metadata.base);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* Keeps the outputs the request asks for, in the order it asks; all of them
 * when it names none. */
static GPtrArray *select_outputs(const char *model_name, const Inference__ModelInferRequest *req,
                                 GPtrArray *outputs, GError **error)
{
    if (req->n_outputs == 0)
        return g_ptr_array_ref(outputs);
    GPtrArray *selected = g_ptr_array_new();
    for (size_t i = 0; i < req->n_outputs; i++) {
        const char *want = req->outputs[i]->name;
        sw_oip_output *found = NULL;
        for (guint j = 0; j < outputs->len && !found; j++) {
            sw_oip_output *o = g_ptr_array_index(outputs, j);
            if (strcmp(o->name, want) == 0)
                found = o;
        }
        if (found == NULL) {
            GString *names = g_string_new(NULL);
            for (guint j = 0; j < outputs->len; j++)
                g_string_append_printf(names, "%s'%s'", j ? ", " : "", ((sw_oip_output *)g_ptr_array_index(outputs, j))->name);
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                        "requested output '%s' is not an output of model %s (outputs: %s)", want,
                        model_name, names->str);
            g_string_free(names, TRUE);
            g_ptr_array_unref(selected);
            return NULL;
        }
        g_ptr_array_add(selected, found);
    }
    return selected;
}

/* One ModelInfer call from acceptance to its answer, which may come from a
 * batch executor or from the next stage on other threads. Access logging
 * (and metrics) hook in at its single end. */
typedef struct infer_call {
    sw_call *call;
    sw_oip_service *svc;
    const Inference__ModelInferRequest *req; /* kept alive by `owner` */
    GBytes *owner;
    const model_entry *entry;
    int64_t rows;
    gint64 start_us;
    sw_batch_timing ran;  /* when forward ran for it */
    gint64 forwarded_us; /* when it went to the next stage */
} infer_call;

/* Ends the call with the response in `reply` (GBytes parts: OK) or with
 * `code`/`message`, and frees `ic`. */
static void infer_call_finish(infer_call *ic, GPtrArray *reply, int code, const char *message)
{
    int status = reply ? SW_CODE_OK : code;
    gint64 total = g_get_monotonic_time() - ic->start_us;
    const char *model = ic->req ? ic->req->model_name : NULL;
    gint64 queue = ic->ran.started_us ? ic->ran.started_us - ic->start_us : 0;
    gint64 compute = ic->ran.started_us ? ic->ran.finished_us - ic->ran.started_us : 0;
    sw_metrics_record_request(ic->svc->metrics, model, status, ic->rows, queue, compute, total);
    sw_metrics_in_flight_add(ic->svc->metrics, -1);
    if (ic->svc->access_log) {
        /* Both come from the client: quoted, so they cannot forge fields. */
        char *id = sw_log_quote(ic->req ? ic->req->id : "");
        char *quoted_model = sw_log_quote(model ? model : "");
        sw_log(SW_LOG_INFO, "event=infer id=%s model=%s status=%s rows=%" G_GINT64_FORMAT " queue_us=%" G_GINT64_FORMAT
               " compute_us=%" G_GINT64_FORMAT " latency_us=%" G_GINT64_FORMAT, id, quoted_model, sw_code_name(status),
               ic->rows, queue, compute, total);
        g_free(id);
        g_free(quoted_model);
    }
    sw_call *call = ic->call;
    if (ic->owner)
        g_bytes_unref(ic->owner);
    g_free(ic);
    /* Last: once the call ends, a draining server may free the service. */
    if (reply)
        sw_call_reply_parts(call, reply);
    else
        sw_call_fail(call, code, message);
}

static void infer_call_fail_error(infer_call *ic, const GError *error)
{
    int code = error->domain == SW_ERROR && error->code != SW_CODE_OK ? error->code : SW_CODE_INTERNAL;
    infer_call_finish(ic, NULL, code, error->message);
}

/* Decodes and checks the request: the values to run forward on, or NULL
 * with an error. Runs before batching, so bad requests never join a batch. */
static GPtrArray *prepare(infer_call *ic, GError **error)
{
    GPtrArray *decoded = sw_oip_decode_inputs(ic->req, ic->owner, error);
    if (decoded == NULL)
        return NULL;
    GPtrArray *prepared = sw_stage_prepare(ic->svc->stage, decoded, &ic->rows, error);
    g_ptr_array_unref(decoded);
    if (prepared && ic->svc->max_rows > 0 && ic->rows > ic->svc->max_rows) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "the request has %" G_GINT64_FORMAT " rows; this server takes at most %d per request", ic->rows,
                    ic->svc->max_rows);
        g_clear_pointer(&prepared, g_ptr_array_unref);
    }
    return prepared;
}

static const char *next_stage_name(const sw_stage *stage)
{
    return stage->kind == SW_STAGE_PREPROCESSOR ? "predictor" : "postprocessor";
}

/* The caller's view of a failure of the next hop: codes about the hop's own
 * credentials or configuration are this server's fault, not the caller's. */
static int downstream_code(int code)
{
    switch (code) {
    case SW_CODE_UNAUTHENTICATED:
    case SW_CODE_PERMISSION_DENIED:
    case SW_CODE_NOT_FOUND:
    case SW_CODE_UNIMPLEMENTED: return SW_CODE_INTERNAL;
    default: return code;
    }
}

/* The next stage's answer is the caller's answer, passed on as packed. */
static void forward_done(GBytes *response, const GError *error, void *user_data)
{
    infer_call *ic = user_data;
    sw_metrics_record_downstream(ic->svc->metrics, sw_channel_target(ic->svc->next), error ? error->code : SW_CODE_OK,
                                 g_get_monotonic_time() - ic->forwarded_us);
    if (response) {
        GPtrArray *reply = g_ptr_array_new();
        g_ptr_array_add(reply, response);
        infer_call_finish(ic, reply, SW_CODE_OK, NULL);
        g_ptr_array_unref(reply);
        return;
    }
    /* A hop cancelled because our own deadline passed is our deadline. */
    int code = error->code == SW_CODE_CANCELLED && sw_call_remaining_us(ic->call) <= 0 ? SW_CODE_DEADLINE_EXCEEDED
                                                                                      : error->code;
    char *text = g_strdup_printf("%s at %s: %s: %s", next_stage_name(ic->svc->stage), sw_channel_target(ic->svc->next),
                                 sw_code_name(code), error->message);
    infer_call_finish(ic, NULL, downstream_code(code), text);
    g_free(text);
}

static void forward(infer_call *ic, GPtrArray *outputs)
{
    sw_oip_service *svc = ic->svc;
    Inference__ModelInferRequest *next_req = sw_oip_request_build(svc->base_name, ic->req->id, outputs, ic->req);
    GPtrArray *parts = sw_oip_request_pack_parts(next_req);
    sw_oip_request_free(next_req);
    int64_t remaining = sw_call_remaining_us(ic->call);
    ic->forwarded_us = g_get_monotonic_time();
    sw_channel_call_async_parts(svc->next, "/inference.GRPCInferenceService/ModelInfer", parts,
                                remaining == G_MAXINT64 ? -1 : MAX(remaining, 0),
                                svc->next_metadata[0] ? (const char *const *)svc->next_metadata : NULL,
                                sw_call_grpc_call(ic->call), forward_done, ic);
    g_ptr_array_unref(parts);
}

/* Requested outputs apply where the answer is made: at the end. */
static void answer(infer_call *ic, GPtrArray *outputs)
{
    GError *error = NULL;
    GPtrArray *selected = select_outputs(ic->entry->name, ic->req, outputs, &error);
    if (selected == NULL) {
        infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    Inference__ModelInferResponse *resp = sw_oip_response_build(ic->entry->name, ic->req->id, selected);
    GPtrArray *reply = sw_oip_response_pack_parts(resp);
    sw_oip_response_free(resp);
    g_ptr_array_unref(selected);
    infer_call_finish(ic, reply, SW_CODE_OK, NULL);
    g_ptr_array_unref(reply);
}

/* What happens once the stage ran: pass the outputs on, or answer. */
static void stage_done(GPtrArray *outputs, const GError *error, const sw_batch_timing *timing, void *user_data)
{
    infer_call *ic = user_data;
    ic->ran = *timing;
    if (outputs == NULL)
        infer_call_fail_error(ic, error);
    else if (ic->entry == &ic->svc->pipeline_model && ic->svc->next)
        forward(ic, outputs);
    else
        answer(ic, outputs);
}

static gboolean still_wanted(void *user_data)
{
    return !sw_call_is_cancelled(((infer_call *)user_data)->call);
}

static void run_stage(infer_call *ic, GPtrArray *prepared)
{
    GError *error = NULL;
    if (ic->svc->batcher) {
        if (!sw_batcher_submit(ic->svc->batcher, prepared, ic->rows, still_wanted, stage_done, ic, &error)) {
            g_ptr_array_unref(prepared);
            infer_call_fail_error(ic, error);
            g_error_free(error);
        }
        return;
    }
    sw_batch_timing timing = {g_get_monotonic_time(), 0};
    GPtrArray *outputs = sw_stage_run(ic->svc->stage, prepared, &error);
    timing.finished_us = g_get_monotonic_time();
    sw_metrics_record_execution(ic->svc->metrics, ic->rows);
    g_ptr_array_unref(prepared);
    stage_done(outputs, error, &timing, ic);
    g_clear_error(&error);
    if (outputs)
        g_ptr_array_unref(outputs);
}

static void handle_model_infer(sw_call *call, void *data)
{
    infer_call *ic = g_new0(infer_call, 1);
    ic->call = call;
    ic->svc = data;
    ic->start_us = g_get_monotonic_time();
    sw_metrics_in_flight_add(ic->svc->metrics, 1);
    GError *error = NULL;
    Inference__ModelInferRequest *req = sw_oip_unpack_infer_request(sw_call_request(call), &ic->owner, &error);
    if (req == NULL) {
        infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    ic->req = req;
    /* Checked once the request is read, so the answer is logged and counted
     * under its id and model. */
    if (sw_call_is_cancelled(call)) {
        infer_call_finish(ic, NULL, SW_CODE_DEADLINE_EXCEEDED, "the deadline passed or the call was cancelled before it ran");
        return;
    }
    ic->entry = find_model(ic->svc, req->model_name, req->model_version, &error);
    if (ic->entry && !g_atomic_int_get(&ic->svc->loaded)) {
        ic->entry = NULL;
        g_set_error(&error, SW_ERROR, SW_CODE_UNAVAILABLE, "model '%s' is still loading; ask again when health says SERVING",
                    req->model_name);
    }
    GPtrArray *prepared = ic->entry ? prepare(ic, &error) : NULL;
    if (prepared == NULL) {
        infer_call_fail_error(ic, error);
        g_error_free(error);
        return;
    }
    run_stage(ic, prepared);
}

/* One open Health/Watch stream and the status it was last sent. */
typedef struct watcher {
    sw_call *call;
    int sent;
    gboolean unknown_service; /* sent SERVICE_UNKNOWN once; never changes */
} watcher;

static int health_status(sw_oip_service *svc)
{
    return is_serving(svc) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                           : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void send_health(sw_call *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    sw_call_send(call, &resp.base);
}

static gboolean known_service(const char *service)
{
    return service[0] == '\0' || strcmp(service, "inference.GRPCInferenceService") == 0;
}

void sw_oip_service_set_loaded(sw_oip_service *svc)
{
    /* Publishes the stage's module to the worker threads. */
    g_atomic_int_set(&svc->loaded, 1);
}

void sw_oip_service_set_serving(sw_oip_service *svc, gboolean serving)
{
    g_atomic_int_set(&svc->serving, serving ? 1 : 0);
    int status = health_status(svc);
    g_mutex_lock(&svc->watch_lock);
    for (guint i = 0; i < svc->watchers->len; i++) {
        watcher *w = g_ptr_array_index(svc->watchers, i);
        if (!w->unknown_service && w->sent != status) {
            send_health(w->call, status);
            w->sent = status;
        }
    }
    g_mutex_unlock(&svc->watch_lock);
}

void sw_oip_service_end_watches(sw_oip_service *svc)
{
    g_mutex_lock(&svc->watch_lock);
    GPtrArray *ending = svc->watchers;
    svc->watchers = g_ptr_array_new_with_free_func(g_free);
    g_mutex_unlock(&svc->watch_lock);
    for (guint i = 0; i < ending->len; i++)
        sw_call_finish(((watcher *)g_ptr_array_index(ending, i))->call, SW_CODE_UNAVAILABLE,
                       "the server is shutting down");
    g_ptr_array_unref(ending);
}

static void watch_cancelled(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    gboolean found = FALSE;
    g_mutex_lock(&svc->watch_lock);
    for (guint i = 0; i < svc->watchers->len && !found; i++) {
        if (((watcher *)g_ptr_array_index(svc->watchers, i))->call == call) {
            g_ptr_array_remove_index_fast(svc->watchers, i);
            found = TRUE;
        }
    }
    g_mutex_unlock(&svc->watch_lock);
    /* Not found: shutdown already ended it. */
    if (found)
        sw_call_finish(call, SW_CODE_CANCELLED, "the client cancelled the watch");
}

static void handle_health_watch(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Grpc__Health__V1__HealthCheckRequest *req =
        (Grpc__Health__V1__HealthCheckRequest *)unpack_request(call, &grpc__health__v1__health_check_request__descriptor);
    if (req == NULL)
        return;
    watcher *w = g_new0(watcher, 1);
    w->call = call;
    w->unknown_service = !known_service(req->service);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    g_mutex_lock(&svc->watch_lock);
    w->sent = w->unknown_service ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                                 : health_status(svc);
    send_health(call, w->sent);
    g_ptr_array_add(svc->watchers, w);
    g_mutex_unlock(&svc->watch_lock);
    sw_call_on_cancel(call, watch_cancelled, svc);
}

static void handle_health_check(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Grpc__Health__V1__HealthCheckRequest *req =
        (Grpc__Health__V1__HealthCheckRequest *)unpack_request(call, &grpc__health__v1__health_check_request__descriptor);
    if (req == NULL)
        return;
    if (!known_service(req->service)) {
        char *text = g_strdup_printf("unknown service '%s'", req->service);
        sw_call_fail(call, SW_CODE_NOT_FOUND, text);
        g_free(text);
    } else {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)health_status(svc);
        sw_call_reply(call, &resp.base);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* With batching the handler only decodes, validates and queues, which for
 * a small request costs less than waking a worker to do it; large requests
 * still go to a worker so decoding them never holds up polling. */
#define BATCHED_INLINE_MAX_BYTES (64 * 1024)

size_t sw_oip_service_methods(sw_oip_service *svc, sw_method *methods)
{
    const sw_method table[] = {
        {OIP "ServerLive", SW_DISPATCH_INLINE, handle_server_live, svc, FALSE, 0},
        {OIP "ServerReady", SW_DISPATCH_INLINE, handle_server_ready, svc, FALSE, 0},
        {OIP "ModelReady", SW_DISPATCH_INLINE, handle_model_ready, svc, FALSE, 0},
        {OIP "ServerMetadata", SW_DISPATCH_INLINE, handle_server_metadata, svc, FALSE, 0},
        {OIP "ModelMetadata", SW_DISPATCH_INLINE, handle_model_metadata, svc, FALSE, 0},
        {OIP "ModelInfer", SW_DISPATCH_WORKER, handle_model_infer, svc, FALSE,
         svc->batcher ? BATCHED_INLINE_MAX_BYTES : 0},
        {"/grpc.health.v1.Health/Check", SW_DISPATCH_INLINE, handle_health_check, svc, TRUE, 0},
        {"/grpc.health.v1.Health/Watch", SW_DISPATCH_INLINE, handle_health_watch, svc, TRUE, 0},
    };
    G_STATIC_ASSERT(G_N_ELEMENTS(table) <= SW_OIP_SERVICE_MAX_METHODS);
    memcpy(methods, table, sizeof table);
    return G_N_ELEMENTS(table);
}
