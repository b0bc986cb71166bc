/* The metadata RPCs: ServerLive, ServerReady, ModelReady, ServerMetadata,
 * ModelMetadata. All run inline on the polling thread. */
#include <string.h>

#include "service_internal.h"
#include "sw_error.h"

/* find_model for the metadata RPCs: fails the call itself. */
static const model_entry *find_model_or_fail(sw_oip_service *svc, sw_call *call, const char *name, const char *version)
{
    GError *error = NULL;
    const model_entry *entry = sw__find_model(svc, name, version, &error);
    if (entry == NULL) {
        sw_call_fail_error(call, error);
        g_error_free(error);
    }
    return entry;
}

/* Requests with no fields still have to be requests: garbage gets the
 * INVALID_ARGUMENT every other method gives it. FALSE after failing. */
static gboolean check_request(sw_call *call, const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *req = sw__unpack_request(call, desc);
    if (req == NULL)
        return FALSE;
    protobuf_c_message_free_unpacked(req, NULL);
    return TRUE;
}

void sw__handle_server_live(sw_call *call, void *data)
{
    (void)data;
    if (!check_request(call, &inference__server_live_request__descriptor))
        return;
    Inference__ServerLiveResponse resp = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    resp.live = TRUE;
    sw_call_reply(call, &resp.base);
}

void sw__handle_server_ready(sw_call *call, void *data)
{
    if (!check_request(call, &inference__server_ready_request__descriptor))
        return;
    Inference__ServerReadyResponse resp = INFERENCE__SERVER_READY_RESPONSE__INIT;
    resp.ready = sw__is_serving(data);
    sw_call_reply(call, &resp.base);
}

void sw__handle_model_ready(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelReadyRequest *req =
        (Inference__ModelReadyRequest *)sw__unpack_request(call, &inference__model_ready_request__descriptor);
    if (req == NULL)
        return;
    if (find_model_or_fail(svc, call, req->name, req->version)) {
        Inference__ModelReadyResponse resp = INFERENCE__MODEL_READY_RESPONSE__INIT;
        resp.ready = sw__is_serving(svc);
        sw_call_reply(call, &resp.base);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

void sw__handle_server_metadata(sw_call *call, void *data)
{
    (void)data;
    if (!check_request(call, &inference__server_metadata_request__descriptor))
        return;
    Inference__ServerMetadataResponse resp = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    sw_oip_service_server_metadata(&resp);
    sw_call_reply(call, &resp.base);
}

void sw_oip_service_server_metadata(Inference__ServerMetadataResponse *resp)
{
    inference__server_metadata_response__init(resp);
    resp->name = "stagewise";
    resp->version = SW_VERSION;
    /* Triton's names for what this server implements, over gRPC and REST:
     * the classification parameter, binary tensor data (REST's), model
     * configuration and statistics. No model repository extension. */
    static char *extensions[] = {"classification", "binary_tensor_data", "model_configuration", "statistics"};
    resp->n_extensions = G_N_ELEMENTS(extensions);
    resp->extensions = extensions;
}

const Inference__ModelMetadataResponse *sw_oip_service_model_metadata(sw_oip_service *svc, const char *name,
                                                                      const char *version, GError **error)
{
    const model_entry *entry = sw__find_model(svc, name, version ? version : "", error);
    return entry ? &entry->metadata : NULL;
}

gboolean sw_oip_service_is_serving(sw_oip_service *svc)
{
    return sw__is_serving(svc);
}

/* Allocates zeroed memory that lives as long as the service. */
static gpointer metadata_alloc(sw_oip_service *svc, size_t size)
{
    gpointer p = g_malloc0(size);
    g_ptr_array_add(svc->allocations, p);
    return p;
}

static Inference__ModelMetadataResponse__TensorMetadata **tensor_metadata_list(sw_oip_service *svc, GPtrArray *specs)
{
    Inference__ModelMetadataResponse__TensorMetadata **list = metadata_alloc(svc, sizeof(*list) * (specs->len + 1));
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

/* A property whose key and value the service owns. */
static void add_owned_property(sw_oip_service *svc, GPtrArray *entries, char *key, char *value)
{
    g_ptr_array_add(svc->allocations, key);
    g_ptr_array_add(svc->allocations, value);
    add_property(svc, entries, key, value);
}

/* Image and audio inputs take files as BYTES (the advertised datatype) or
 * tensors already decoded: "formats:" lists the file formats, "accepts:" the
 * tensor form, "num_channels:" the channels image files are decoded to. */
static void add_media_properties(sw_oip_service *svc, GPtrArray *entries, const sw_tensor_spec *s)
{
    gboolean image = strcmp(s->feature_type, "image") == 0;
    if (!image && strcmp(s->feature_type, "audio") != 0)
        return;
    add_owned_property(svc, entries, g_strdup_printf("formats:%s", s->name),
                       g_strdup(image ? sw_image_formats() : "WAV, FLAC, Ogg"));
    add_owned_property(
        svc, entries, g_strdup_printf("accepts:%s", s->name),
        g_strdup(image ? "UINT8 [-1,C,H,W]" : "FP32 [-1,T] or [-1,C,T] with the input parameter sample_rate (Hz)"));
    if (image && s->image_channels > 0)
        add_owned_property(svc, entries, g_strdup_printf("num_channels:%s", s->name),
                           g_strdup_printf("%d", s->image_channels));
}

/* Properties say what OIP has no field for: the stage, the device, the
 * Ludwig model name, and which BYTES outputs carry JSON rows. */
void sw__build_model_metadata(sw_oip_service *svc, model_entry *entry, const char *name, GPtrArray *inputs,
                              GPtrArray *outputs)
{
    const sw_stage *stage = svc->stage;
    entry->name = name;
    Inference__ModelMetadataResponse *m = &entry->metadata;
    inference__model_metadata_response__init(m);
    m->name = (char *)name;
    static char *versions[] = {SW_MODEL_VERSION};
    m->n_versions = 1;
    m->versions = versions;
    m->platform = SW_PLATFORM;
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
        add_media_properties(svc, entries, s);
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
    entry->stats = g_new0(model_stats, 1);
    g_mutex_init(&entry->stats->lock);
    sw__build_model_config(svc, entry, inputs, outputs);
}

void sw__handle_model_metadata(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelMetadataRequest *req =
        (Inference__ModelMetadataRequest *)sw__unpack_request(call, &inference__model_metadata_request__descriptor);
    if (req == NULL)
        return;
    const model_entry *entry = find_model_or_fail(svc, call, req->name, req->version);
    if (entry)
        sw_call_reply(call, &entry->metadata.base);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
