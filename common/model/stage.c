#include "stage.h"

#include <string.h>

#include "output.h"
#include "sw_error.h"

sw_stage *sw_stage_new(sw_stage_kind kind, const sw_export *export, const char *name, const char *device,
                       GError **error)
{
    const char *path = kind == SW_STAGE_PREPROCESSOR ? export->preprocessor_path
                       : kind == SW_STAGE_PREDICTOR  ? export->predictor_path
                                                     : export->postprocessor_path;
    if (path == NULL || !g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, "%s: no %s module%s%s", export->dir,
                    sw_stage_kind_name(kind), path ? " at " : " (inference_predictor-<device>.pt)", path ? path : "");
        return NULL;
    }
    sw_stage *stage = g_new0(sw_stage, 1);
    stage->kind = kind;
    stage->model_name = g_strdup_printf("%s_%s", name, sw_stage_kind_name(kind));
    stage->device = g_strdup(device ? device : "cpu");
    stage->module_path = g_strdup(path);
    stage->image_limits = (sw_image_limits){.max_bytes = (size_t)SW_STAGE_DEFAULT_MAX_MEDIA_MB * 1024 * 1024,
                                            .max_pixels = SW_STAGE_DEFAULT_MAX_IMAGE_PIXELS};
    stage->audio_limits = (sw_audio_limits){.max_bytes = (size_t)SW_STAGE_DEFAULT_MAX_MEDIA_MB * 1024 * 1024,
                                            .max_samples = SW_STAGE_DEFAULT_MAX_AUDIO_SAMPLES};
    if (!sw_stage_specs(kind, export, &stage->inputs, &stage->outputs, error) ||
        !sw_torch_device_check(stage->device, error)) {
        sw_stage_free(stage);
        return NULL;
    }
    return stage;
}

gboolean sw_stage_load_module(sw_stage *stage, int n_instances, GError **error)
{
    if (stage->instances != NULL || n_instances < 1) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "%s: cannot load %d instances%s", stage->model_name, n_instances,
                    stage->instances ? " again" : "");
        return FALSE;
    }
    sw_torch_module **instances = g_new0(sw_torch_module *, n_instances);
    for (int i = 0; i < n_instances; i++) {
        instances[i] = sw_torch_module_load(stage->module_path, stage->device, error);
        if (instances[i] == NULL) {
            for (int k = 0; k < i; k++)
                sw_torch_module_free(instances[k]);
            g_free(instances);
            return FALSE;
        }
    }
    stage->instances = instances;
    stage->n_instances = n_instances;
    return TRUE;
}

sw_stage *sw_stage_load(sw_stage_kind kind, const sw_export *export, const char *name, const char *device,
                        GError **error)
{
    sw_stage *stage = sw_stage_new(kind, export, name, device, error);
    if (stage && !sw_stage_load_module(stage, 1, error))
        g_clear_pointer(&stage, sw_stage_free);
    return stage;
}

void sw_stage_free(sw_stage *stage)
{
    if (stage == NULL)
        return;
    for (int i = 0; i < stage->n_instances; i++)
        sw_torch_module_free(stage->instances[i]);
    g_free(stage->instances);
    if (stage->inputs)
        g_ptr_array_unref(stage->inputs);
    if (stage->outputs)
        g_ptr_array_unref(stage->outputs);
    g_free(stage->model_name);
    g_free(stage->device);
    g_free(stage->module_path);
    g_free(stage);
}

GPtrArray *sw_stage_run(sw_stage *stage, GPtrArray *prepared, GError **error)
{
    guint turn = (guint)g_atomic_int_add(&stage->next_instance, 1);
    int instance = stage->n_instances > 0 ? (int)(turn % (guint)stage->n_instances) : 0;
    return sw_stage_run_instance(stage, instance, prepared, error);
}

GBytes *sw_stage_new_input_buffer(sw_stage *stage, int instance, size_t size)
{
    if (instance < 0 || instance >= stage->n_instances) /* running it will fail */
        return g_bytes_new_take(g_malloc(size), size);
    return sw_torch_module_new_host_buffer(stage->instances[instance], size);
}

GPtrArray *sw_stage_run_instance(sw_stage *stage, int instance, GPtrArray *prepared, GError **error)
{
    if (instance < 0 || instance >= stage->n_instances) {
        g_set_error(error, SW_ERROR, SW_CODE_UNAVAILABLE, "%s: instance %d of %d is not loaded", stage->model_name,
                    instance, stage->n_instances);
        return NULL;
    }
    GPtrArray *values =
        sw_torch_module_forward(stage->instances[instance], (sw_value *const *)prepared->pdata, prepared->len, error);
    if (values == NULL) {
        g_prefix_error(error, "%s: ", stage->model_name);
        return NULL;
    }
    GPtrArray *outputs = sw_output_array_new();
    for (guint i = 0; i < values->len; i++) {
        sw_output *o = sw_output_from_value(g_ptr_array_index(values, i), error);
        if (o == NULL) {
            g_ptr_array_unref(outputs);
            outputs = NULL;
            break;
        }
        g_ptr_array_add(outputs, o);
    }
    g_ptr_array_unref(values);
    return outputs;
}
