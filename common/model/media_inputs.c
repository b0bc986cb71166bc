#include "media_inputs.h"

#include <string.h>

#include "audio_decode.h"
#include "image_decode.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

gboolean sw__is_media_input(const sw_stage *stage, const sw_tensor_spec *spec)
{
    return stage->kind == SW_STAGE_PREPROCESSOR &&
           (strcmp(spec->feature_type, "image") == 0 || strcmp(spec->feature_type, "audio") == 0);
}

gboolean sw_stage_decodes_media(const sw_stage *stage)
{
    for (guint i = 0; i < stage->inputs->len; i++)
        if (sw__is_media_input(stage, g_ptr_array_index(stage->inputs, i)))
            return TRUE;
    return FALSE;
}

static gboolean is_image(const sw_tensor_spec *spec)
{
    return strcmp(spec->feature_type, "image") == 0;
}

/* What a media input accepts, for messages. */
static const char *accepted_forms(const sw_tensor_spec *spec)
{
    return is_image(spec) ? "BYTES with shape [-1] or [-1,1] (image files) or UINT8 with shape [-1,C,H,W]"
                          : "BYTES with shape [-1] or [-1,1] (audio files) or FP32 with shape [-1,T] or [-1,C,T] "
                            "and an integer parameter 'sample_rate'";
}

static sw_value *fail_form(const sw_tensor_spec *spec, const sw_tensor *t, const char *why, GError **error)
{
    char *got = sw_shape_to_string(t->ndim, t->shape);
    INVALID(error, "input '%s' (%s): %s: expected %s, got %s with shape %s", spec->name, spec->feature_type, why,
            accepted_forms(spec), sw_dtype_name(t->dtype), got);
    g_free(got);
    return NULL;
}

static gboolean is_file_column(const sw_tensor *t)
{
    return t->dtype == SW_DTYPE_BYTES && (t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1));
}

/* Prefixes a decoder's error with the input and the row. */
static void name_row(GError **error, const sw_tensor_spec *spec, int64_t row)
{
    g_prefix_error(error, "input '%s' (%s) row %" G_GINT64_FORMAT ": ", spec->name, spec->feature_type, row);
}

static sw_value *decode_images(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    const sw_tensor *t = in->tensor;
    GPtrArray *images = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    for (int64_t r = 0; r < t->shape[0]; r++) {
        size_t len = 0;
        const char *file = sw_tensor_bytes_element(t, (size_t)r, &len);
        sw_tensor *image = sw_image_decode(file, len, spec->image_channels, &stage->image_limits, error);
        if (image == NULL) {
            name_row(error, spec, r);
            g_ptr_array_unref(images);
            return NULL;
        }
        g_ptr_array_add(images, image);
    }
    return sw_value_new_list(in->name, SW_VALUE_TENSOR_LIST, images);
}

static sw_value *image_input(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    const sw_tensor *t = in->tensor;
    if (is_file_column(t))
        return decode_images(stage, spec, in, error);
    if (t->dtype == SW_DTYPE_BYTES)
        return fail_form(spec, t, "files must be one per row", error);
    if (t->dtype != SW_DTYPE_UINT8)
        return fail_form(spec, t, "wrong datatype", error);
    if (t->ndim != 4)
        return fail_form(spec, t, "wrong number of dimensions", error);
    for (int d = 1; d < 4; d++)
        if (t->shape[d] < 1)
            return fail_form(spec, t, "empty images", error);
    int64_t pixels = stage->image_limits.max_pixels;
    if (pixels > 0 && t->shape[2] > pixels / t->shape[3]) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "input '%s' (image): images of %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                    " pixels are larger than this server's limit of %" G_GINT64_FORMAT " pixels (--max-image-pixels)",
                    spec->name, t->shape[3], t->shape[2], pixels);
        return NULL;
    }
    return sw_value_new_tensor(in->name, SW_VALUE_TENSOR, sw_tensor_share(t, 0, NULL));
}

static sw_value *decode_audio_files(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in,
                                    GError **error)
{
    const sw_tensor *t = in->tensor;
    GPtrArray *waves = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    int64_t *rates = g_new0(int64_t, t->shape[0]);
    for (int64_t r = 0; r < t->shape[0]; r++) {
        size_t len = 0;
        const char *file = sw_tensor_bytes_element(t, (size_t)r, &len);
        sw_tensor *wave = sw_audio_decode(file, len, &stage->audio_limits, &rates[r], error);
        if (wave == NULL) {
            name_row(error, spec, r);
            g_ptr_array_unref(waves);
            g_free(rates);
            return NULL;
        }
        g_ptr_array_add(waves, wave);
    }
    return sw_value_new_audio(in->name, waves, rates);
}

/* The sample_rate parameter of a waveform input: a positive integer. */
static gboolean read_sample_rate(const sw_tensor_spec *spec, const sw_value *in, int64_t *rate, GError **error)
{
    GVariant *v = sw_value_parameter(in, "sample_rate");
    if (v == NULL) {
        INVALID(error,
                "input '%s' (audio): FP32 waveforms need the parameter 'sample_rate' on the input (an integer, "
                "in Hz)",
                spec->name);
        return FALSE;
    }
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT64))
        *rate = g_variant_get_int64(v);
    else if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64) && g_variant_get_uint64(v) <= G_MAXINT32)
        *rate = (int64_t)g_variant_get_uint64(v);
    else
        *rate = -1;
    if (*rate < 1 || *rate > G_MAXINT32) {
        char *shown = g_variant_print(v, FALSE);
        INVALID(error, "input '%s' (audio): the parameter 'sample_rate' must be a positive integer (Hz), got %s",
                spec->name, shown);
        g_free(shown);
        return FALSE;
    }
    return TRUE;
}

/* FP32 [B,T] or [B,C,T]: one [C,T] waveform per row (C = 1 for [B,T]),
 * all at the request's sample rate. */
static sw_value *split_waveforms(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    const sw_tensor *t = in->tensor;
    int64_t rate = 0;
    if (t->ndim != 2 && t->ndim != 3)
        return fail_form(spec, t, "wrong number of dimensions", error);
    int64_t channels = t->ndim == 3 ? t->shape[1] : 1, samples = t->shape[t->ndim - 1];
    if (channels < 1 || samples < 1)
        return fail_form(spec, t, "empty waveforms", error);
    if (!read_sample_rate(spec, in, &rate, error))
        return NULL;
    if (!sw_audio_check_samples(channels * samples, &stage->audio_limits, error)) {
        g_prefix_error(error, "input '%s' (audio): ", spec->name);
        return NULL;
    }
    const float *data = sw_tensor_data(t, NULL);
    GPtrArray *waves = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    int64_t *rates = g_new(int64_t, t->shape[0]);
    int64_t shape[2] = {channels, samples};
    size_t row = (size_t)(channels * samples);
    for (int64_t r = 0; r < t->shape[0]; r++) {
        g_ptr_array_add(waves,
                        sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, data + row * (size_t)r, row * sizeof(float)));
        rates[r] = rate;
    }
    return sw_value_new_audio(in->name, waves, rates);
}

static sw_value *audio_input(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    const sw_tensor *t = in->tensor;
    if (is_file_column(t))
        return decode_audio_files(stage, spec, in, error);
    if (t->dtype == SW_DTYPE_BYTES)
        return fail_form(spec, t, "files must be one per row", error);
    if (t->dtype != SW_DTYPE_FP32)
        return fail_form(spec, t, "wrong datatype", error);
    return split_waveforms(stage, spec, in, error);
}

sw_value *sw__media_input(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    return is_image(spec) ? image_input(stage, spec, in, error) : audio_input(stage, spec, in, error);
}
