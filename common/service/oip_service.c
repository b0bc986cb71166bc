/* The service of one stage: construction, the models it answers for, and
 * the table of RPCs handed to the server. */
#include <string.h>

#include "clip.h"
#include "oip_paths.h"
#include "service_internal.h"
#include "sw_error.h"

/* With batching, small requests are batched and run on the polling thread
 * that received them (batcher.h, sw_batcher_submit_for_caller) when that
 * thread can: on the CPU (a GPU batch would hold it through the device's
 * work), with one executor (it runs executor 0's instance), without a
 * queue delay (it cannot wait on a timer finer than gRPC's millisecond
 * deadlines), and for the requests it would run inline unbatched. */
static gboolean batches_on_poller(const sw_oip_service *svc)
{
    return svc->batcher && svc->batching.max_queue_delay_us == 0 && svc->batching.executors == 1 &&
           svc->inline_max_rows > 0 && g_strcmp0(svc->stage->device, "cpu") == 0 && !sw_stage_decodes_media(svc->stage);
}

static gboolean poll_work_pending(void *svc)
{
    return sw_batcher_has_ready_for_caller(((sw_oip_service *)svc)->batcher);
}

static void poll_work_run(void *svc)
{
    sw_batcher_run_ready(((sw_oip_service *)svc)->batcher);
}

sw_poll_work sw_oip_service_poll_work(sw_oip_service *svc)
{
    sw_poll_work none = {.pending = NULL, .run = NULL, .user_data = NULL};
    svc->batch_on_poller = batches_on_poller(svc);
    if (!svc->batch_on_poller)
        return none;
    return (sw_poll_work){.pending = poll_work_pending, .run = poll_work_run, .user_data = svc};
}

sw_oip_service *sw_oip_service_new(sw_stage *stage, const sw_export *export, const char *model_base_name,
                                   sw_channel *next, const sw_oip_service_options *options, GError **error)
{
    sw_oip_service *svc = g_new0(sw_oip_service, 1);
    svc->stage = stage;
    svc->base_name = g_strdup(model_base_name);
    svc->next = next;
    svc->max_rows = options->max_rows;
    svc->inline_max_rows = options->inline_max_rows;
    svc->inline_when_busy = options->inline_when_busy;
    svc->batching = options->batching;
    svc->max_reply_bytes = options->max_reply_bytes;
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
    sw__build_model_metadata(svc, &svc->stage_model, stage->model_name, stage->inputs, stage->outputs);
    /* Every stage that can reach the end answers for the whole pipeline. */
    if (next || stage->kind == SW_STAGE_POSTPROCESSOR) {
        GPtrArray *unused = NULL;
        if (!sw_stage_specs(SW_STAGE_POSTPROCESSOR, export, &unused, &svc->pipeline_outputs, error)) {
            sw_oip_service_free(svc);
            return NULL;
        }
        g_ptr_array_unref(unused);
        sw__build_model_metadata(svc, &svc->pipeline_model, svc->base_name, stage->inputs, svc->pipeline_outputs);
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
    sw__stats_free(&svc->stage_model);
    sw__stats_free(&svc->pipeline_model);
    g_ptr_array_unref(svc->allocations);
    g_free(svc);
}

gboolean sw__is_serving(sw_oip_service *svc)
{
    return g_atomic_int_get(&svc->serving) != 0;
}

/* Unpacks the request of `call` as `desc`, or fails the call and returns NULL. */
ProtobufCMessage *sw__unpack_request(sw_call *call, const ProtobufCMessageDescriptor *desc)
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
const model_entry *sw__find_model(sw_oip_service *svc, const char *name, const char *version, GError **error)
{
    const model_entry *entry = NULL;
    if (strcmp(name, svc->stage_model.name) == 0)
        entry = &svc->stage_model;
    else if (svc->pipeline_model.name && strcmp(name, svc->pipeline_model.name) == 0)
        entry = &svc->pipeline_model;
    if (entry == NULL) {
        const char *pipeline = svc->pipeline_model.name;
        g_set_error(error, SW_ERROR, SW_CODE_NOT_FOUND,
                    "model '" SW_CLIP_FMT "' is not served here; this server serves '%s'%s%s%s", SW_CLIP(name),
                    svc->stage_model.name, pipeline ? " and '" : "", pipeline ? pipeline : "", pipeline ? "'" : "");
        return NULL;
    }
    if (version[0] != '\0' && strcmp(version, SW_MODEL_VERSION) != 0) {
        g_set_error(error, SW_ERROR, SW_CODE_NOT_FOUND,
                    "model '" SW_CLIP_FMT "' has no version '" SW_CLIP_FMT "'; its only version is '" SW_MODEL_VERSION
                    "'",
                    SW_CLIP(name), SW_CLIP(version));
        return NULL;
    }
    return entry;
}

/* With batching the handler only decodes, validates and queues, which for
 * a small request costs less than waking a worker to do it. The bound keeps
 * that to a few rows: 4 KiB of date strings parse in tens of microseconds,
 * while 64 KiB of them held every other client's calls for milliseconds. */
#define BATCHED_INLINE_MAX_BYTES 4096

/* Without batching, a small request runs to completion on the polling
 * thread while no other inference call is in flight (server.h,
 * inline_when_idle): no thread hand-off, and the stage's module stays warm
 * on that one thread. The bounds keep what one call can hold the polling
 * thread for to a stage's run on a few rows (rows are checked once the
 * request is read, against inline_max_rows: infer.c). */
#define RUN_INLINE_MAX_BYTES 16384

static size_t infer_inline_max_bytes(const sw_oip_service *svc)
{
    if (svc->batcher)
        return BATCHED_INLINE_MAX_BYTES;
    /* Never for image or audio files: a small one can decode to many
     * megapixels. */
    return svc->inline_max_rows == 0 || sw_stage_decodes_media(svc->stage) ? 0 : RUN_INLINE_MAX_BYTES;
}

size_t sw_oip_service_methods(sw_oip_service *svc, sw_method *methods)
{
#define SW_INLINE_METHOD(method_path, method_handler, is_open)                                                         \
    {                                                                                                                  \
        .path = method_path, .dispatch = SW_DISPATCH_INLINE, .handler = method_handler, .user_data = svc,              \
        .open = is_open                                                                                                \
    }
    const sw_method table[] = {
        SW_INLINE_METHOD(SW_PATH_SERVER_LIVE, sw__handle_server_live, FALSE),
        SW_INLINE_METHOD(SW_PATH_SERVER_READY, sw__handle_server_ready, FALSE),
        SW_INLINE_METHOD(SW_PATH_MODEL_READY, sw__handle_model_ready, FALSE),
        SW_INLINE_METHOD(SW_PATH_SERVER_METADATA, sw__handle_server_metadata, FALSE),
        SW_INLINE_METHOD(SW_PATH_MODEL_METADATA, sw__handle_model_metadata, FALSE),
        SW_INLINE_METHOD(SW_PATH_MODEL_CONFIG, sw__handle_model_config, FALSE),
        SW_INLINE_METHOD(SW_PATH_MODEL_STATISTICS, sw__handle_model_statistics, FALSE),
        {
            .path = SW_PATH_MODEL_INFER,
            .dispatch = SW_DISPATCH_WORKER,
            .handler = sw__handle_model_infer,
            .user_data = svc,
            .inline_max_bytes = infer_inline_max_bytes(svc),
            .inline_when_idle = svc->batcher == NULL && !svc->inline_when_busy,
        },
        /* Open: Kubernetes probes carry no token. */
        SW_INLINE_METHOD(SW_PATH_HEALTH_CHECK, sw__handle_health_check, TRUE),
        SW_INLINE_METHOD(SW_PATH_HEALTH_WATCH, sw__handle_health_watch, TRUE),
    };
#undef SW_INLINE_METHOD
    G_STATIC_ASSERT(G_N_ELEMENTS(table) <= SW_OIP_SERVICE_MAX_METHODS);
    memcpy(methods, table, sizeof table);
    return G_N_ELEMENTS(table);
}
