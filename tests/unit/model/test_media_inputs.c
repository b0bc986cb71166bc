/* media_inputs.c through sw_stage_prepare: image and audio inputs of a
 * preprocessor become List[Tensor], a passed-through UINT8 Tensor and
 * List[Tuple[Tensor, int]]; their specs come from the training set metadata;
 * bad files and missing sample rates are refused naming the input and row. */
#include <glib.h>
#include <string.h>

#include "fake_torch.h"
#include "stage.h"
#include "sw_error.h"
#include "unit_support.h"

/* 2 x 1 RGB: a red pixel, then a blue one. */
static const uint8_t tiny_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x7b, 0x40, 0xe8, 0xdd, 0x00, 0x00, 0x00,
    0x0f, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0xc0, 0xf0, 0x1f, 0x00, 0x07, 0x00,
    0x01, 0xff, 0x7e, 0x08, 0xb1, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

static void put_le(GByteArray *out, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        uint8_t b = (uint8_t)(v >> (8 * i));
        g_byte_array_append(out, &b, 1);
    }
}

/* A 16-bit mono PCM WAV at `rate` Hz of `n` samples. */
static GByteArray *wav(const int16_t *samples, uint32_t n, uint32_t rate)
{
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, (const guint8 *)"RIFF", 4);
    put_le(out, 36 + 2 * n, 4);
    g_byte_array_append(out, (const guint8 *)"WAVEfmt ", 8);
    put_le(out, 16, 4);
    put_le(out, 1, 2); /* PCM */
    put_le(out, 1, 2); /* mono */
    put_le(out, rate, 4);
    put_le(out, rate * 2, 4);
    put_le(out, 2, 2);
    put_le(out, 16, 2);
    g_byte_array_append(out, (const guint8 *)"data", 4);
    put_le(out, 2 * n, 4);
    for (uint32_t i = 0; i < n; i++)
        put_le(out, (uint16_t)samples[i], 2);
    return out;
}

static const char *config = "{\"input_features\": ["
                            "{\"name\": \"pic\", \"type\": \"image\"},"
                            "{\"name\": \"gray\", \"type\": \"image\", \"preprocessing\": {\"num_channels\": 1}},"
                            "{\"name\": \"clip\", \"type\": \"audio\"}], \"output_features\": []}";
static const char *metadata = "{\"pic\": {\"preprocessing\": {\"height\": 12, \"width\": 10, \"num_channels\": 3},"
                              "\"reshape\": [3, 12, 10]},"
                              "\"gray\": {\"reshape\": [1, 4, 5]},"
                              "\"clip\": {\"feature_dim\": 2, \"max_length\": 7, \"sampling_rate_in_hz\": 8000,"
                              "\"reshape\": [7, 2]}}";

typedef struct fixture {
    char *dir;
    sw_export *export;
    sw_stage *stage;
} fixture;

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_assert_true(g_file_set_contents(path, text, -1, &error));
    g_free(path);
}

static void fixture_setup(fixture *f, sw_stage_kind kind)
{
    f->dir = sw_test_dir_new();
    write_text(f->dir, "model_hyperparameters.json", config);
    write_text(f->dir, "training_set_metadata.json", metadata);
    for (int i = 0; i < 2; i++) {
        char *path = g_build_filename(f->dir, i ? "inference_predictor-cpu.pt" : "inference_preprocessor.pt", NULL);
        g_assert_true(sw_fake_torch_write(path, "op=echo", NULL));
        g_free(path);
    }
    GError *error = NULL;
    f->export = sw_export_load(f->dir, &error);
    g_assert_no_error(error);
    f->stage = sw_stage_new(kind, f->export, "m", NULL, &error);
    g_assert_no_error(error);
}

static void fixture_clear(fixture *f)
{
    sw_stage_free(f->stage);
    sw_export_free(f->export);
    sw_test_dir_remove(f->dir);
}

static sw_value *files(const char *name, const char *const *items, const size_t *lens, size_t n)
{
    return sw_value_new_tensor(name, SW_VALUE_STRINGS, sw_tensor_new_strings(items, lens, n));
}

static sw_value *find(GPtrArray *values, const char *name)
{
    for (guint i = 0; i < values->len; i++) {
        sw_value *v = g_ptr_array_index(values, i);
        if (strcmp(v->name, name) == 0)
            return v;
    }
    g_error("no value '%s'", name);
}

static const sw_tensor_spec *spec(GPtrArray *specs, const char *name)
{
    const sw_tensor_spec *s = sw_spec_find(specs, name);
    g_assert_nonnull(s);
    return s;
}

static GPtrArray *good_inputs(void);

static void test_specs_from_metadata(void)
{
    fixture f;
    fixture_setup(&f, SW_STAGE_PREDICTOR);
    const sw_tensor_spec *pic = spec(f.stage->inputs, "pic"), *gray = spec(f.stage->inputs, "gray"),
                         *clip = spec(f.stage->inputs, "clip");
    g_assert_cmpint(pic->ndim, ==, 4);
    g_assert_cmpint(pic->shape[1], ==, 3);
    g_assert_cmpint(pic->shape[2], ==, 12);
    g_assert_cmpint(pic->shape[3], ==, 10);
    g_assert_cmpint(gray->shape[1], ==, 1);
    g_assert_cmpint(gray->shape[2], ==, 4);
    g_assert_cmpint(clip->ndim, ==, 3);
    g_assert_cmpint(clip->shape[1], ==, 7);
    g_assert_cmpint(clip->shape[2], ==, 2);
    fixture_clear(&f);

    fixture_setup(&f, SW_STAGE_PREPROCESSOR);
    pic = spec(f.stage->inputs, "pic");
    /* Files as a [B,1] column decode like [B]. */
    GPtrArray *in = good_inputs();
    sw_value *pics = g_ptr_array_index(in, 0);
    int64_t column[2] = {2, 1};
    sw_tensor *shaped = sw_tensor_share(pics->tensor, 2, column);
    sw_tensor_free(pics->tensor);
    pics->tensor = shaped;
    GError *error = NULL;
    int64_t batch = 0;
    GPtrArray *prepared = sw_stage_prepare(f.stage, in, &batch, &error);
    g_assert_no_error(error);
    g_assert_cmpint(find(prepared, "pic")->kind, ==, SW_VALUE_TENSOR_LIST);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(in);
    g_assert_cmpint(pic->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(pic->image_channels, ==, 3);
    g_assert_cmpint(spec(f.stage->inputs, "gray")->image_channels, ==, 1);
    fixture_clear(&f);
}

/* A feature whose channels no image can be read in is refused at load. */
static void test_impossible_channels(void)
{
    char *dir = sw_test_dir_new();
    write_text(dir, "model_hyperparameters.json",
               "{\"input_features\": [{\"name\": \"pic\", \"type\": \"image\"}], \"output_features\": []}");
    write_text(dir, "training_set_metadata.json", "{\"pic\": {\"reshape\": [7, 4, 4]}}");
    char *path = g_build_filename(dir, "inference_preprocessor.pt", NULL);
    g_assert_true(sw_fake_torch_write(path, "op=echo", NULL));
    g_free(path);
    GError *error = NULL;
    sw_export *e = sw_export_load(dir, &error);
    g_assert_no_error(error);
    g_assert_null(sw_stage_new(SW_STAGE_PREPROCESSOR, e, "m", NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_assert_nonnull(strstr(error->message, "num_channels 7"));
    g_error_free(error);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

static GPtrArray *good_inputs(void)
{
    static const int16_t samples[3] = {16384, -32768, 0};
    GByteArray *clip = wav(samples, 3, 8000);
    const char *images[2] = {(const char *)tiny_png, (const char *)tiny_png};
    size_t image_lens[2] = {sizeof tiny_png, sizeof tiny_png};
    const char *clips[2] = {(const char *)clip->data, (const char *)clip->data};
    size_t clip_lens[2] = {clip->len, clip->len};
    GPtrArray *in = sw_value_array_new();
    g_ptr_array_add(in, files("pic", images, image_lens, 2));
    g_ptr_array_add(in, files("gray", images, image_lens, 2));
    g_ptr_array_add(in, files("clip", clips, clip_lens, 2));
    g_byte_array_unref(clip);
    return in;
}

static void test_files_are_decoded(void)
{
    fixture f;
    fixture_setup(&f, SW_STAGE_PREPROCESSOR);
    GPtrArray *in = good_inputs();
    GError *error = NULL;
    int64_t batch = 0;
    GPtrArray *prepared = sw_stage_prepare(f.stage, in, &batch, &error);
    g_assert_no_error(error);
    g_assert_cmpint(batch, ==, 2);
    sw_value *pic = find(prepared, "pic"), *gray = find(prepared, "gray"), *clip = find(prepared, "clip");
    g_assert_cmpint(pic->kind, ==, SW_VALUE_TENSOR_LIST);
    g_assert_cmpuint(pic->items->len, ==, 2);
    const sw_tensor *image = g_ptr_array_index(pic->items, 1);
    g_assert_cmpint(image->shape[0], ==, 3);
    g_assert_cmpint(image->shape[1], ==, 1);
    g_assert_cmpint(image->shape[2], ==, 2);
    const uint8_t *px = sw_tensor_data(image, NULL);
    static const uint8_t want_rgb[6] = {255, 0, 0, 0, 0, 255}; /* planes R, G, B of red, blue */
    g_assert_cmpmem(px, 6, want_rgb, 6);
    const uint8_t *g = sw_tensor_data(g_ptr_array_index(gray->items, 0), NULL);
    g_assert_cmpuint(g[0], ==, 76); /* PIL's L of pure red */
    g_assert_cmpuint(g[1], ==, 29); /* and of pure blue */
    g_assert_cmpint(clip->kind, ==, SW_VALUE_AUDIO_LIST);
    g_assert_cmpint(clip->sample_rates[1], ==, 8000);
    const sw_tensor *wave = g_ptr_array_index(clip->items, 0);
    g_assert_cmpint(wave->shape[0], ==, 1);
    g_assert_cmpint(wave->shape[1], ==, 3);
    const float *w = sw_tensor_data(wave, NULL);
    g_assert_cmpfloat(w[0], ==, 0.5f);
    g_assert_cmpfloat(w[1], ==, -1.0f);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(in);
    fixture_clear(&f);
}

static void expect_refused(const sw_stage *stage, GPtrArray *in, int code, const char *part1, const char *part2)
{
    GError *error = NULL;
    int64_t batch = 0;
    g_assert_null(sw_stage_prepare(stage, in, &batch, &error));
    g_assert_error(error, SW_ERROR, code);
    if (strstr(error->message, part1) == NULL || strstr(error->message, part2) == NULL)
        g_error("'%s' lacks '%s' or '%s'", error->message, part1, part2);
    g_error_free(error);
    g_ptr_array_unref(in);
}

static void replace(GPtrArray *in, sw_value *v)
{
    for (guint i = 0; i < in->len; i++)
        if (strcmp(((sw_value *)g_ptr_array_index(in, i))->name, v->name) == 0) {
            sw_value_free(in->pdata[i]);
            in->pdata[i] = v;
            return;
        }
    g_ptr_array_add(in, v);
}

static void test_bad_inputs_are_refused(void)
{
    fixture f;
    fixture_setup(&f, SW_STAGE_PREPROCESSOR);
    GPtrArray *in = good_inputs();
    const char *bad[2] = {(const char *)tiny_png, "not a picture"};
    size_t lens[2] = {sizeof tiny_png, 13};
    replace(in, files("gray", bad, lens, 2));
    expect_refused(f.stage, in, SW_CODE_INVALID_ARGUMENT, "input 'gray' (image) row 1", "not an image file");

    in = good_inputs();
    f.stage->image_limits.max_pixels = 1;
    expect_refused(f.stage, in, SW_CODE_RESOURCE_EXHAUSTED, "input 'pic' (image) row 0", "2x1 pixels");
    f.stage->image_limits.max_pixels = 0;

    in = good_inputs();
    f.stage->audio_limits.max_samples = 2;
    expect_refused(f.stage, in, SW_CODE_RESOURCE_EXHAUSTED, "input 'clip' (audio) row 0", "3 samples");
    f.stage->audio_limits.max_samples = 0;

    /* Waveforms without, then with a wrong, sample_rate. */
    in = good_inputs();
    int64_t shape[2] = {2, 4};
    sw_value *waves = sw_value_new_tensor("clip", SW_VALUE_TENSOR,
                                          sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, NULL, 8 * sizeof(float)));
    replace(in, waves);
    expect_refused(f.stage, in, SW_CODE_INVALID_ARGUMENT, "input 'clip'", "'sample_rate'");
    in = good_inputs();
    waves = sw_value_new_tensor("clip", SW_VALUE_TENSOR,
                                sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, NULL, 8 * sizeof(float)));
    waves->parameters = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_variant_unref);
    g_hash_table_insert(waves->parameters, g_strdup("sample_rate"), g_variant_ref_sink(g_variant_new_string("x")));
    replace(in, waves);
    expect_refused(f.stage, in, SW_CODE_INVALID_ARGUMENT, "'sample_rate' must be a positive integer", "'x'");

    /* Images of the wrong datatype or rank. */
    in = good_inputs();
    int64_t flat[2] = {2, 6};
    replace(in, sw_value_new_tensor("pic", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_UINT8, 2, flat, NULL, 12)));
    expect_refused(f.stage, in, SW_CODE_INVALID_ARGUMENT, "input 'pic' (image)", "wrong number of dimensions");
    in = good_inputs();
    static const char *const four[4] = {"a", "b", "c", "d"};
    sw_tensor *flat_files = sw_tensor_new_strings(four, NULL, 4);
    int64_t square[2] = {2, 2};
    replace(in, sw_value_new_tensor("clip", SW_VALUE_STRINGS, sw_tensor_share(flat_files, 2, square)));
    sw_tensor_free(flat_files);
    expect_refused(f.stage, in, SW_CODE_INVALID_ARGUMENT, "input 'clip' (audio)", "files must be one per row");
    fixture_clear(&f);
}

static void test_waveforms_take_the_sample_rate(void)
{
    fixture f;
    fixture_setup(&f, SW_STAGE_PREPROCESSOR);
    GPtrArray *in = good_inputs();
    int64_t shape[3] = {2, 2, 3};
    float data[12];
    for (int i = 0; i < 12; i++)
        data[i] = (float)i;
    sw_value *waves =
        sw_value_new_tensor("clip", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_FP32, 3, shape, data, sizeof data));
    waves->parameters = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_variant_unref);
    g_hash_table_insert(waves->parameters, g_strdup("sample_rate"), g_variant_ref_sink(g_variant_new_int64(22050)));
    replace(in, waves);
    int64_t ushape[4] = {2, 3, 2, 2};
    replace(in, sw_value_new_tensor("pic", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_UINT8, 4, ushape, NULL, 24)));
    GError *error = NULL;
    int64_t batch = 0;
    GPtrArray *prepared = sw_stage_prepare(f.stage, in, &batch, &error);
    g_assert_no_error(error);
    sw_value *clip = find(prepared, "clip");
    g_assert_cmpint(clip->kind, ==, SW_VALUE_AUDIO_LIST);
    g_assert_cmpint(clip->sample_rates[0], ==, 22050);
    const sw_tensor *row1 = g_ptr_array_index(clip->items, 1);
    g_assert_cmpint(row1->shape[0], ==, 2);
    g_assert_cmpint(row1->shape[1], ==, 3);
    g_assert_cmpfloat(((const float *)sw_tensor_data(row1, NULL))[0], ==, 6.0f);
    g_assert_cmpint(find(prepared, "pic")->kind, ==, SW_VALUE_TENSOR);
    /* The fake backend takes audio lists and echoes them with their rates. */
    g_assert_true(sw_stage_load_module(f.stage, 1, &error));
    GPtrArray *outputs = sw_stage_run(f.stage, prepared, &error);
    g_assert_no_error(error);
    g_assert_nonnull(outputs);
    g_ptr_array_unref(outputs);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(in);
    fixture_clear(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/media-inputs/specs-from-metadata", test_specs_from_metadata);
    g_test_add_func("/media-inputs/impossible-channels", test_impossible_channels);
    g_test_add_func("/media-inputs/files-are-decoded", test_files_are_decoded);
    g_test_add_func("/media-inputs/bad-inputs-are-refused", test_bad_inputs_are_refused);
    g_test_add_func("/media-inputs/waveforms-take-the-sample-rate", test_waveforms_take_the_sample_rate);
    return g_test_run();
}
