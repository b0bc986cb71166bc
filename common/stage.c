#include "stage.h"

#include <string.h>

#include "date_parse.h"
#include "oip_codec.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

sw_stage *sw_stage_new(sw_stage_kind kind, const sw_export *export, const char *name, const char *device,
                       GError **error)
{
    const char *path = kind == SW_STAGE_PREPROCESSOR  ? export->preprocessor_path
                       : kind == SW_STAGE_PREDICTOR ? export->predictor_path
                                                    : export->postprocessor_path;
    if (path == NULL || !g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, "%s: no %s module%s%s", export->dir,
                    sw_stage_kind_name(kind), path ? " at " : " (inference_predictor-<device>.pt)",
                    path ? path : "");
        return NULL;
    }
    sw_stage *stage = g_new0(sw_stage, 1);
    stage->kind = kind;
    stage->model_name = g_strdup_printf("%s_%s", name, sw_stage_kind_name(kind));
    stage->device = g_strdup(device ? device : "cpu");
    stage->module_path = g_strdup(path);
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
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "%s: cannot load %d instances%s", stage->model_name,
                    n_instances, stage->instances ? " again" : "");
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

sw_stage *sw_stage_load(sw_stage_kind kind, const sw_export *export, const char *name,
                        const char *device, GError **error)
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

static gboolean fail_spec(const sw_tensor_spec *spec, const sw_tensor *t, const char *why, GError **error)
{
    char *want = sw_spec_describe(spec);
    char *got = sw_shape_to_string(t->ndim, t->shape);
    INVALID(error, "input '%s' (%s): %s: expected %s, got %s with shape %s", spec->name, spec->feature_type,
            why, want, sw_dtype_name(t->dtype), got);
    g_free(want);
    g_free(got);
    return FALSE;
}

/* BYTES sent for a feature whose tensor form is numeric (vectors, binaries as
 * strings) is one string per row: [B] or [B,1]. */
static gboolean check_string_form(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    if (t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1))
        return TRUE;
    return fail_spec(spec, t, "strings must have shape [-1] or [-1,1]", error);
}

static gboolean check_tensor(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    if (!(spec->accepted & SW_DTYPE_BIT(t->dtype)))
        return fail_spec(spec, t, "wrong datatype", error);
    if (t->dtype == SW_DTYPE_BYTES && spec->dtype != SW_DTYPE_BYTES)
        return check_string_form(spec, t, error);
    /* Triton clients often send one column per row as [B,1]: accept it for
     * one-dimensional inputs. */
    gboolean column = spec->ndim == 1 && t->ndim == 2 && t->shape[1] == 1;
    if (t->ndim != spec->ndim && !column)
        return fail_spec(spec, t, "wrong number of dimensions", error);
    for (int i = 1; i < spec->ndim && !column; i++)
        if (spec->shape[i] >= 0 && t->shape[i] != spec->shape[i])
            return fail_spec(spec, t, "wrong shape", error);
    return TRUE;
}

/* Dates sent as strings become Ludwig's 9-integer vectors, parsed as
 * InferenceModule.predict would before calling the preprocessor. */
static sw_tensor *date_strings_to_vectors(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    int64_t rows = t->shape[0];
    int64_t fill[SW_DATE_VECTOR_LEN];
    gboolean has_fill = spec->fill_value &&
                        sw_date_vector_parse(spec->fill_value, strlen(spec->fill_value), spec->datetime_format, fill);
    int64_t *out = g_new(int64_t, (size_t)rows * SW_DATE_VECTOR_LEN);
    for (int64_t r = 0; r < rows; r++) {
        size_t len = 0;
        const char *text = sw_tensor_bytes_element(t, (size_t)r, &len);
        int64_t *row = out + r * SW_DATE_VECTOR_LEN;
        if (sw_date_vector_parse(text, len, spec->datetime_format, row))
            continue;
        if (has_fill) {
            memcpy(row, fill, sizeof fill);
            continue;
        }
        INVALID(error, "input '%s' row %" G_GINT64_FORMAT ": cannot read date '%.*s'%s%s%s, and the feature has no "
                "fill value", spec->name, r, (int)MIN(len, 64), text, spec->datetime_format ? " with format '" : "",
                spec->datetime_format ? spec->datetime_format : "", spec->datetime_format ? "' or as ISO 8601" : "");
        g_free(out);
        return NULL;
    }
    int64_t shape[2] = {rows, SW_DATE_VECTOR_LEN};
    GBytes *bytes = g_bytes_new_take(out, sizeof(int64_t) * (size_t)rows * SW_DATE_VECTOR_LEN);
    sw_tensor *vectors = sw_tensor_new(SW_DTYPE_INT64, 2, shape, bytes);
    g_bytes_unref(bytes);
    return vectors;
}

/* The value forward receives: one-dimensional views where the spec is
 * one-dimensional, BYTES as List[str]. Shares buffers with `in`. */
static sw_value *convert_input(const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    const sw_tensor *t = in->tensor;
    if (t->dtype == SW_DTYPE_BYTES && strcmp(spec->feature_type, "date") == 0) {
        sw_tensor *vectors = date_strings_to_vectors(spec, t, error);
        return vectors ? sw_value_new_tensor(in->name, SW_VALUE_TENSOR, vectors) : NULL;
    }
    int64_t shape[SW_MAX_DIMS];
    int ndim = t->ndim;
    memcpy(shape, t->shape, sizeof shape);
    /* Strings and [B,1] columns of one-dimensional inputs travel as [B]. */
    if (t->dtype == SW_DTYPE_BYTES || (spec->ndim == 1 && ndim == 2))
        ndim = 1;
    sw_value_kind kind = t->dtype == SW_DTYPE_BYTES ? SW_VALUE_STRINGS : SW_VALUE_TENSOR;
    return sw_value_new_tensor(in->name, kind, sw_tensor_share(t, ndim, shape));
}

/* Between stages, tensors the specs do not know are passed on untouched (as
 * Ludwig's modules ignore extra keys); a client talking to the preprocessor
 * most likely misspelled a feature, so it hears about it. */
static gboolean check_unknown_input(const sw_stage *stage, const sw_value *in, GError **error)
{
    if (stage->kind != SW_STAGE_PREPROCESSOR)
        return TRUE;
    GString *names = g_string_new(NULL);
    for (guint i = 0; i < stage->inputs->len; i++) {
        const sw_tensor_spec *s = g_ptr_array_index(stage->inputs, i);
        g_string_append_printf(names, "%s'%s'", i ? ", " : "", s->name);
    }
    INVALID(error, "input '%s' is not an input feature of model %s (expected %s)", in->name,
            stage->model_name, names->str);
    g_string_free(names, TRUE);
    return FALSE;
}

static gboolean check_batch(const sw_value *in, int64_t *batch, const char **first, GError **error)
{
    int64_t b = in->tensor->ndim > 0 ? in->tensor->shape[0] : -1;
    if (b <= 0) {
        INVALID(error, "input '%s': the batch dimension (the first) must be at least 1, got %s", in->name,
                b == 0 ? "an empty batch" : "a scalar");
        return FALSE;
    }
    if (*batch >= 0 && b != *batch) {
        INVALID(error, "input '%s' has %" G_GINT64_FORMAT " rows but input '%s' has %" G_GINT64_FORMAT
                "; all inputs must share the batch size", in->name, b, *first, *batch);
        return FALSE;
    }
    *batch = b;
    *first = in->name;
    return TRUE;
}

GPtrArray *sw_stage_prepare(const sw_stage *stage, GPtrArray *decoded, int64_t *batch_size, GError **error)
{
    GPtrArray *prepared = sw_value_array_new();
    int64_t batch = -1;
    const char *first = NULL;
    for (guint i = 0; i < decoded->len; i++) {
        const sw_value *in = g_ptr_array_index(decoded, i);
        const sw_tensor_spec *spec = sw_spec_find(stage->inputs, in->name);
        if (!check_batch(in, &batch, &first, error))
            goto fail;
        if (spec == NULL) {
            if (!check_unknown_input(stage, in, error))
                goto fail;
            g_ptr_array_add(prepared, sw_value_new_tensor(in->name, in->kind,
                                                          sw_tensor_share(in->tensor, 0, NULL)));
            continue;
        }
        sw_value *converted = check_tensor(spec, in->tensor, error) ? convert_input(spec, in, error) : NULL;
        if (converted == NULL)
            goto fail;
        g_ptr_array_add(prepared, converted);
    }
    for (guint i = 0; i < stage->inputs->len; i++) {
        const sw_tensor_spec *spec = g_ptr_array_index(stage->inputs, i);
        gboolean present = FALSE;
        for (guint j = 0; j < decoded->len && !present; j++)
            present = strcmp(((sw_value *)g_ptr_array_index(decoded, j))->name, spec->name) == 0;
        if (spec->required && !present) {
            char *want = sw_spec_describe(spec);
            INVALID(error, "input '%s' (%s feature) is missing: expected %s", spec->name, spec->feature_type, want);
            g_free(want);
            goto fail;
        }
    }
    if (batch < 0) {
        INVALID(error, "the request has no inputs");
        goto fail;
    }
    *batch_size = batch;
    return prepared;
fail:
    g_ptr_array_unref(prepared);
    return NULL;
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
    GPtrArray *values = sw_torch_module_forward(stage->instances[instance], (sw_value *const *)prepared->pdata,
                                                prepared->len, error);
    if (values == NULL) {
        g_prefix_error(error, "%s: ", stage->model_name);
        return NULL;
    }
    GPtrArray *outputs = sw_oip_output_array_new();
    for (guint i = 0; i < values->len; i++) {
        sw_oip_output *o = sw_oip_encode_value(g_ptr_array_index(values, i), error);
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
