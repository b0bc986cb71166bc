/* ModelConfig (Triton's model_configuration extension): what Triton's
 * model configuration would say of each model, built once with its
 * metadata. */
#include <string.h>

#include "service_internal.h"
#include "sw_error.h"

/* max_batch_size when neither --max-rows nor batching bounds the rows of a
 * request: Triton's field is an int32, and stagewise sets no limit. */
#define SW_CONFIG_UNBOUNDED_BATCH G_MAXINT32

static gpointer config_alloc(sw_oip_service *svc, size_t size)
{
    gpointer p = g_malloc0(size);
    g_ptr_array_add(svc->allocations, p);
    return p;
}

static Inference__DataType config_datatype(sw_dtype dtype)
{
    switch (dtype) {
    case SW_DTYPE_BOOL: return INFERENCE__DATA_TYPE__TYPE_BOOL;
    case SW_DTYPE_UINT8: return INFERENCE__DATA_TYPE__TYPE_UINT8;
    case SW_DTYPE_UINT16: return INFERENCE__DATA_TYPE__TYPE_UINT16;
    case SW_DTYPE_UINT32: return INFERENCE__DATA_TYPE__TYPE_UINT32;
    case SW_DTYPE_UINT64: return INFERENCE__DATA_TYPE__TYPE_UINT64;
    case SW_DTYPE_INT8: return INFERENCE__DATA_TYPE__TYPE_INT8;
    case SW_DTYPE_INT16: return INFERENCE__DATA_TYPE__TYPE_INT16;
    case SW_DTYPE_INT32: return INFERENCE__DATA_TYPE__TYPE_INT32;
    case SW_DTYPE_INT64: return INFERENCE__DATA_TYPE__TYPE_INT64;
    case SW_DTYPE_FP16: return INFERENCE__DATA_TYPE__TYPE_FP16;
    case SW_DTYPE_BF16: return INFERENCE__DATA_TYPE__TYPE_BF16;
    case SW_DTYPE_FP32: return INFERENCE__DATA_TYPE__TYPE_FP32;
    case SW_DTYPE_FP64: return INFERENCE__DATA_TYPE__TYPE_FP64;
    case SW_DTYPE_BYTES: return INFERENCE__DATA_TYPE__TYPE_STRING;
    default: return INFERENCE__DATA_TYPE__TYPE_INVALID;
    }
}

/* Dims without the batch dimension, as Triton gives them with
 * max_batch_size > 0: the spec's own array, past its first entry. */
static void set_dims(const sw_tensor_spec *spec, size_t *n_dims, int64_t **dims)
{
    *n_dims = spec->ndim > 1 ? (size_t)(spec->ndim - 1) : 0;
    *dims = spec->ndim > 1 ? (int64_t *)&spec->shape[1] : NULL;
}

static int32_t max_batch_size(const sw_oip_service *svc)
{
    if (svc->max_rows > 0)
        return svc->max_rows;
    if (svc->batching.max_batch_size > 0)
        return svc->batching.max_batch_size;
    return SW_CONFIG_UNBOUNDED_BATCH;
}

/* One group: the stage's device. Its count is the batcher's executors (the
 * forward calls that run at once); without batching calls share the one
 * loaded module from the server's workers, counted as 1. */
static Inference__ModelInstanceGroup **instance_groups(sw_oip_service *svc, const char *name)
{
    Inference__ModelInstanceGroup **list = config_alloc(svc, sizeof(*list));
    Inference__ModelInstanceGroup *g = config_alloc(svc, sizeof *g);
    inference__model_instance_group__init(g);
    g->name = (char *)name;
    g->count = svc->batcher ? MAX(svc->batching.executors, 1) : 1;
    const char *device = svc->stage->device ? svc->stage->device : "cpu";
    if (g_str_has_prefix(device, "cuda")) {
        g->kind = INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_GPU;
        const char *colon = strchr(device, ':');
        int32_t *gpus = config_alloc(svc, sizeof *gpus);
        gpus[0] = colon ? (int32_t)g_ascii_strtoll(colon + 1, NULL, 10) : 0;
        g->n_gpus = 1;
        g->gpus = gpus;
    } else {
        g->kind = INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU;
    }
    list[0] = g;
    return list;
}

void sw__build_model_config(sw_oip_service *svc, model_entry *entry, GPtrArray *inputs, GPtrArray *outputs)
{
    gboolean pipeline = entry == &svc->pipeline_model;
    Inference__ModelConfig *c = config_alloc(svc, sizeof *c);
    inference__model_config__init(c);
    inference__model_config_response__init(&entry->config);
    entry->config.config = c;
    c->name = (char *)entry->name;
    /* As Ludwig's own Triton export names them: the stages are TorchScript
     * modules, the pipeline model chains them like an ensemble. */
    c->platform = pipeline ? "ensemble" : "pytorch_libtorch";
    c->backend = pipeline ? "" : "pytorch";
    c->max_batch_size = max_batch_size(svc);
    c->n_input = inputs->len;
    c->input = config_alloc(svc, sizeof(*c->input) * (inputs->len + 1));
    for (guint i = 0; i < inputs->len; i++) {
        const sw_tensor_spec *spec = g_ptr_array_index(inputs, i);
        Inference__ModelInput *in = config_alloc(svc, sizeof *in);
        inference__model_input__init(in);
        in->name = spec->name;
        in->data_type = config_datatype(spec->dtype);
        set_dims(spec, &in->n_dims, &in->dims);
        in->optional = !spec->required;
        c->input[i] = in;
    }
    c->n_output = outputs->len;
    c->output = config_alloc(svc, sizeof(*c->output) * (outputs->len + 1));
    for (guint i = 0; i < outputs->len; i++) {
        const sw_tensor_spec *spec = g_ptr_array_index(outputs, i);
        Inference__ModelOutput *out = config_alloc(svc, sizeof *out);
        inference__model_output__init(out);
        out->name = spec->name;
        out->data_type = config_datatype(spec->dtype);
        set_dims(spec, &out->n_dims, &out->dims);
        c->output[i] = out;
    }
    c->n_instance_group = 1;
    c->instance_group = instance_groups(svc, entry->name);
    if (svc->batcher) {
        /* A batch runs once it holds max_batch_size rows, or its oldest
         * request has waited the delay. */
        Inference__ModelDynamicBatching *b = config_alloc(svc, sizeof *b);
        inference__model_dynamic_batching__init(b);
        int32_t *preferred = config_alloc(svc, sizeof *preferred);
        preferred[0] = svc->batching.max_batch_size;
        b->n_preferred_batch_size = 1;
        b->preferred_batch_size = preferred;
        b->max_queue_delay_microseconds = (uint64_t)MAX(svc->batching.max_queue_delay_us, 0);
        c->dynamic_batching = b;
    }
    /* The hints ModelMetadata gives as properties, as string parameters. */
    const Inference__ModelMetadataResponse *m = &entry->metadata;
    c->n_parameters = m->n_properties;
    c->parameters = config_alloc(svc, sizeof(*c->parameters) * (m->n_properties + 1));
    for (size_t i = 0; i < m->n_properties; i++) {
        Inference__ModelConfig__ParametersEntry *e = config_alloc(svc, sizeof *e);
        inference__model_config__parameters_entry__init(e);
        Inference__ModelParameter *p = config_alloc(svc, sizeof *p);
        inference__model_parameter__init(p);
        p->string_value = m->properties[i]->value;
        e->key = m->properties[i]->key;
        e->value = p;
        c->parameters[i] = e;
    }
}

const Inference__ModelConfigResponse *sw_oip_service_model_config(sw_oip_service *svc, const char *name,
                                                                  const char *version, GError **error)
{
    const model_entry *entry = sw__find_model(svc, name, version ? version : "", error);
    return entry ? &entry->config : NULL;
}

void sw__handle_model_config(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Inference__ModelConfigRequest *req =
        (Inference__ModelConfigRequest *)sw__unpack_request(call, &inference__model_config_request__descriptor);
    if (req == NULL)
        return;
    GError *error = NULL;
    const Inference__ModelConfigResponse *config = sw_oip_service_model_config(svc, req->name, req->version, &error);
    if (config) {
        sw_call_reply(call, &config->base);
    } else {
        sw_call_fail_error(call, error);
        g_error_free(error);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
