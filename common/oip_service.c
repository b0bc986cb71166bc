#include "oip_service.h"

#include <string.h>

#include "health.pb-c.h"
#include "inference.pb-c.h"
#include "oip_codec.h"
#include "sw_error.h"

#define OIP "/inference.GRPCInferenceService/"
#define PLATFORM "ludwig_torchscript"
#define MODEL_VERSION "1"

struct sw_oip_service {
    sw_stage *stage;
    char *base_name;
    gint serving;
    /* ModelMetadata never changes: built once, with everything it points to
     * owned by `metadata_allocations` or borrowed from the stage's specs. */
    Inference__ModelMetadataResponse metadata;
    GPtrArray *metadata_allocations;
};

static void build_model_metadata(sw_oip_service *svc);

sw_oip_service *sw_oip_service_new(sw_stage *stage, const char *model_base_name)
{
    sw_oip_service *svc = g_new0(sw_oip_service, 1);
    svc->stage = stage;
    svc->base_name = g_strdup(model_base_name);
    build_model_metadata(svc);
    return svc;
}

void sw_oip_service_free(sw_oip_service *svc)
{
    if (svc == NULL)
        return;
    g_free(svc->base_name);
    g_ptr_array_unref(svc->metadata_allocations);
    g_free(svc);
}

void sw_oip_service_set_serving(sw_oip_service *svc, gboolean serving)
{
    g_atomic_int_set(&svc->serving, serving ? 1 : 0);
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

/* FALSE (and the call failed with NOT_FOUND) unless `name`/`version` is the
 * stage's model. */
static gboolean check_model(sw_oip_service *svc, sw_call *call, const char *name, const char *version)
{
    if (strcmp(name, svc->stage->model_name) != 0) {
        char *text = g_strdup_printf("model '%s' is not served here; this server serves '%s'", name,
                                     svc->stage->model_name);
        sw_call_fail(call, SW_CODE_NOT_FOUND, text);
        g_free(text);
        return FALSE;
    }
    if (version[0] != '\0' && strcmp(version, MODEL_VERSION) != 0) {
        char *text = g_strdup_printf("model '%s' has no version '%s'; its only version is '" MODEL_VERSION "'",
                                     name, version);
        sw_call_fail(call, SW_CODE_NOT_FOUND, text);
        g_free(text);
        return FALSE;
    }
    return TRUE;
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
    if (check_model(svc, call, req->name, req->version)) {
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

/* Allocates zeroed memory that lives as long as the service's metadata. */
static gpointer metadata_alloc(sw_oip_service *svc, size_t size)
{
    gpointer p = g_malloc0(size);
    g_ptr_array_add(svc->metadata_allocations, p);
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
static void build_model_metadata(sw_oip_service *svc)
{
    const sw_stage *stage = svc->stage;
    svc->metadata_allocations = g_ptr_array_new_with_free_func(g_free);
    Inference__ModelMetadataResponse *m = &svc->metadata;
    inference__model_metadata_response__init(m);
    m->name = stage->model_name;
    static char *versions[] = {MODEL_VERSION};
    m->n_versions = 1;
    m->versions = versions;
    m->platform = PLATFORM;
    m->n_inputs = stage->inputs->len;
    m->inputs = tensor_metadata_list(svc, stage->inputs);
    m->n_outputs = stage->outputs->len;
    m->outputs = tensor_metadata_list(svc, stage->outputs);
    GPtrArray *entries = g_ptr_array_new();
    add_property(svc, entries, "stage", (char *)sw_stage_kind_name(stage->kind));
    add_property(svc, entries, "device", stage->device);
    add_property(svc, entries, "ludwig_model", svc->base_name);
    for (guint i = 0; i < stage->outputs->len; i++) {
        const sw_tensor_spec *s = g_ptr_array_index(stage->outputs, i);
        if (!s->json)
            continue;
        char *key = g_strdup_printf("content_type:%s", s->name);
        g_ptr_array_add(svc->metadata_allocations, key);
        add_property(svc, entries, key, "json");
    }
    m->n_properties = entries->len;
    m->properties = metadata_alloc(svc, sizeof(*m->properties) * entries->len);
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
    if (check_model(svc, call, req->name, req->version))
        sw_call_reply(call, &svc->metadata.base);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void free_unpacked_request(gpointer msg)
{
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* Keeps the outputs the request asks for, in the order it asks; all of them
 * when it names none. */
static GPtrArray *select_outputs(const sw_oip_service *svc, const Inference__ModelInferRequest *req,
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
                        svc->stage->model_name, names->str);
            g_string_free(names, TRUE);
            g_ptr_array_unref(selected);
            return NULL;
        }
        g_ptr_array_add(selected, found);
    }
    return selected;
}

/* Runs one inference request through the stage; returns the outputs to send
 * (which keep `owner`, and so `req`, alive as long as they need it). */
static GPtrArray *infer(sw_oip_service *svc, const Inference__ModelInferRequest *req, GBytes *owner,
                        GError **error)
{
    GPtrArray *decoded = sw_oip_decode_inputs(req, owner, error);
    if (decoded == NULL)
        return NULL;
    int64_t batch = 0;
    GPtrArray *prepared = sw_stage_prepare(svc->stage, decoded, &batch, error);
    g_ptr_array_unref(decoded);
    if (prepared == NULL)
        return NULL;
    GPtrArray *outputs = sw_stage_run(svc->stage, prepared, error);
    g_ptr_array_unref(prepared);
    return outputs;
}

static void handle_model_infer(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    if (sw_call_is_cancelled(call)) {
        sw_call_fail(call, SW_CODE_DEADLINE_EXCEEDED, "the deadline passed or the call was cancelled before it ran");
        return;
    }
    Inference__ModelInferRequest *req =
        (Inference__ModelInferRequest *)unpack_request(call, &inference__model_infer_request__descriptor);
    if (req == NULL)
        return;
    GBytes *owner = g_bytes_new_with_free_func(req, sizeof *req, free_unpacked_request, req);
    if (!check_model(svc, call, req->model_name, req->model_version)) {
        g_bytes_unref(owner);
        return;
    }
    GError *error = NULL;
    GPtrArray *outputs = infer(svc, req, owner, &error);
    GPtrArray *selected = outputs ? select_outputs(svc, req, outputs, &error) : NULL;
    if (selected) {
        Inference__ModelInferResponse *resp = sw_oip_response_build(svc->stage->model_name, req->id, selected);
        sw_call_reply(call, &resp->base);
        sw_oip_response_free(resp);
        g_ptr_array_unref(selected);
    } else {
        sw_call_fail_error(call, error);
        g_error_free(error);
    }
    if (outputs)
        g_ptr_array_unref(outputs);
    g_bytes_unref(owner);
}

static void handle_health_check(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Grpc__Health__V1__HealthCheckRequest *req =
        (Grpc__Health__V1__HealthCheckRequest *)unpack_request(call, &grpc__health__v1__health_check_request__descriptor);
    if (req == NULL)
        return;
    if (req->service[0] != '\0' && strcmp(req->service, "inference.GRPCInferenceService") != 0) {
        char *text = g_strdup_printf("unknown service '%s'", req->service);
        sw_call_fail(call, SW_CODE_NOT_FOUND, text);
        g_free(text);
    } else {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = is_serving(svc) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                      : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        sw_call_reply(call, &resp.base);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

size_t sw_oip_service_methods(sw_oip_service *svc, sw_method *methods)
{
    const sw_method table[] = {
        {OIP "ServerLive", SW_DISPATCH_INLINE, handle_server_live, svc},
        {OIP "ServerReady", SW_DISPATCH_INLINE, handle_server_ready, svc},
        {OIP "ModelReady", SW_DISPATCH_INLINE, handle_model_ready, svc},
        {OIP "ServerMetadata", SW_DISPATCH_INLINE, handle_server_metadata, svc},
        {OIP "ModelMetadata", SW_DISPATCH_INLINE, handle_model_metadata, svc},
        {OIP "ModelInfer", SW_DISPATCH_WORKER, handle_model_infer, svc},
        {"/grpc.health.v1.Health/Check", SW_DISPATCH_INLINE, handle_health_check, svc},
    };
    G_STATIC_ASSERT(G_N_ELEMENTS(table) <= SW_OIP_SERVICE_MAX_METHODS);
    memcpy(methods, table, sizeof table);
    return G_N_ELEMENTS(table);
}
