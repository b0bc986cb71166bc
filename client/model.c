#include <json-glib/json-glib.h>
#include <string.h>

#include "internal.h"
#include "oip_codec.h"
#include "sw_error.h"

struct stagewise_model {
    Inference__ModelMetadataResponse *metadata;
    stagewise_feature *inputs;
    size_t n_inputs;
};

static const char *property(const Inference__ModelMetadataResponse *m, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < m->n_properties; i++) {
        const char *key = m->properties[i]->key;
        if (strncmp(key, prefix, plen) == 0 && strcmp(key + plen, name) == 0)
            return m->properties[i]->value;
    }
    return NULL;
}

STAGEWISE_API stagewise_model *stagewise_model_get(stagewise_client *client, const char *model, stagewise_error **error)
{
    Inference__ModelMetadataRequest req = INFERENCE__MODEL_METADATA_REQUEST__INIT;
    req.name = (char *)model;
    GBytes *request = sw_protobuf_pack(&req.base);
    GBytes *response =
        stagewise_client_call(client, "/inference.GRPCInferenceService/ModelMetadata", request, model, error);
    g_bytes_unref(request);
    if (response == NULL)
        return NULL;
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Inference__ModelMetadataResponse *m = inference__model_metadata_response__unpack(NULL, len, data);
    g_bytes_unref(response);
    if (m == NULL) {
        stagewise_error_setf(error, SW_CODE_INTERNAL, "the reply is not a ModelMetadataResponse");
        return NULL;
    }
    stagewise_model *out = g_new0(stagewise_model, 1);
    out->metadata = m;
    out->n_inputs = m->n_inputs;
    out->inputs = g_new0(stagewise_feature, m->n_inputs ? m->n_inputs : 1);
    for (size_t i = 0; i < m->n_inputs; i++) {
        const char *name = m->inputs[i]->name;
        const char *type = property(m, "type:", name);
        const char *column = property(m, "column:", name);
        /* Servers that publish no Ludwig properties: the input is its own
         * column, and its datatype says strings or numbers. */
        out->inputs[i].name = name;
        out->inputs[i].type = type ? type : (strcmp(m->inputs[i]->datatype, "BYTES") == 0 ? "text" : "number");
        out->inputs[i].column = column ? column : name;
    }
    return out;
}

STAGEWISE_API size_t stagewise_model_input_count(const stagewise_model *model)
{
    return model->n_inputs;
}

STAGEWISE_API const stagewise_feature *stagewise_model_input(const stagewise_model *model, size_t i)
{
    return i < model->n_inputs ? &model->inputs[i] : NULL;
}

static void add_tensors(JsonBuilder *b, const char *member, Inference__ModelMetadataResponse__TensorMetadata **tensors,
                        size_t n)
{
    json_builder_set_member_name(b, member);
    json_builder_begin_array(b);
    for (size_t i = 0; i < n; i++) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, tensors[i]->name);
        json_builder_set_member_name(b, "datatype");
        json_builder_add_string_value(b, tensors[i]->datatype);
        json_builder_set_member_name(b, "shape");
        json_builder_begin_array(b);
        for (size_t d = 0; d < tensors[i]->n_shape; d++)
            json_builder_add_int_value(b, tensors[i]->shape[d]);
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}

STAGEWISE_API char *stagewise_model_to_json(const stagewise_model *model)
{
    const Inference__ModelMetadataResponse *m = model->metadata;
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, m->name);
    json_builder_set_member_name(b, "versions");
    json_builder_begin_array(b);
    for (size_t i = 0; i < m->n_versions; i++)
        json_builder_add_string_value(b, m->versions[i]);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "platform");
    json_builder_add_string_value(b, m->platform);
    add_tensors(b, "inputs", m->inputs, m->n_inputs);
    add_tensors(b, "outputs", m->outputs, m->n_outputs);
    json_builder_set_member_name(b, "properties");
    json_builder_begin_object(b);
    for (size_t i = 0; i < m->n_properties; i++) {
        json_builder_set_member_name(b, m->properties[i]->key);
        json_builder_add_string_value(b, m->properties[i]->value);
    }
    json_builder_end_object(b);
    json_builder_end_object(b);
    JsonGenerator *gen = json_generator_new();
    json_generator_set_pretty(gen, TRUE);
    JsonNode *root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    char *text = json_generator_to_data(gen, NULL);
    json_node_unref(root);
    g_object_unref(gen);
    g_object_unref(b);
    /* Callers free() it. */
    char *out = strdup(text);
    g_free(text);
    return out;
}

STAGEWISE_API void stagewise_model_free(stagewise_model *model)
{
    if (model == NULL)
        return;
    inference__model_metadata_response__free_unpacked(model->metadata, NULL);
    g_free(model->inputs);
    g_free(model);
}
