/* Tests of the libtorch shim against the modules make_shim_modules.py writes.
 *
 * The module directory comes from SW_TEST_MODULES_DIR, or from the first
 * non-option argument: test_torch_shim [gtest options] [MODULES_DIR]. */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sw_error.h"
#include "tensor.h"
#include "torch_shim.h"

static const char *modules_dir;

/* ---- helpers ---- */

static sw_torch_module *load_module(const char *file_name)
{
    char *path = g_build_filename(modules_dir, file_name, NULL);
    GError *error = NULL;
    sw_torch_module *module = sw_torch_module_load(path, "cpu", &error);
    g_assert_no_error(error);
    g_assert_nonnull(module);
    g_free(path);
    return module;
}

static sw_value *tensor_value(const char *name, sw_dtype dtype, int ndim, const int64_t *shape, const void *data,
                              size_t nbytes)
{
    return sw_value_new_tensor(name, SW_VALUE_TENSOR, sw_tensor_new_copy(dtype, ndim, shape, data, nbytes));
}

static sw_value *vector_value(const char *name, sw_dtype dtype, int64_t n, const void *data)
{
    int64_t shape[1] = {n};
    return tensor_value(name, dtype, 1, shape, data, (size_t)n * sw_dtype_size(dtype));
}

static sw_value *strings_value(const char *name, const char *const *strings, size_t n)
{
    return sw_value_new_tensor(name, SW_VALUE_STRINGS, sw_tensor_new_strings(strings, NULL, n));
}

static GPtrArray *forward(sw_torch_module *module, GPtrArray *inputs, GError **error)
{
    return sw_torch_module_forward(module, (sw_value *const *)inputs->pdata, inputs->len, error);
}

static GPtrArray *forward_ok(sw_torch_module *module, GPtrArray *inputs)
{
    GError *error = NULL;
    GPtrArray *outputs = forward(module, inputs, &error);
    g_assert_no_error(error);
    g_assert_nonnull(outputs);
    return outputs;
}

/* Asserts forward fails with `code` and a message containing `needle`. */
static void forward_fails(sw_torch_module *module, GPtrArray *inputs, sw_code code, const char *needle)
{
    GError *error = NULL;
    GPtrArray *outputs = forward(module, inputs, &error);
    g_assert_null(outputs);
    g_assert_error(error, SW_ERROR, (gint)code);
    g_test_message("%s", error->message);
    if (strstr(error->message, needle) == NULL)
        g_error("expected \"%s\" in: %s", needle, error->message);
    g_error_free(error);
}

static const sw_value *output(const GPtrArray *outputs, guint index, const char *name, sw_value_kind kind)
{
    g_assert_cmpuint(index, <, outputs->len);
    const sw_value *v = outputs->pdata[index];
    g_assert_cmpstr(v->name, ==, name);
    g_assert_cmpint(v->kind, ==, kind);
    return v;
}

static void assert_shape(const sw_tensor *t, sw_dtype dtype, int ndim, const int64_t *shape)
{
    g_assert_cmpint(t->dtype, ==, dtype);
    g_assert_cmpint(t->ndim, ==, ndim);
    for (int i = 0; i < ndim; i++)
        g_assert_cmpint(t->shape[i], ==, shape[i]);
}

static void assert_data(const sw_tensor *t, const void *expected, size_t nbytes)
{
    size_t size = 0;
    const void *data = sw_tensor_data(t, &size);
    g_assert_cmpmem(data, size, expected, nbytes);
}

/* `expected` is a NULL-terminated list. */
static void assert_strings(const sw_tensor *t, const char *const *expected)
{
    guint n = g_strv_length((char **)expected);
    int64_t shape[1] = {n};
    assert_shape(t, SW_DTYPE_BYTES, 1, shape);
    for (guint i = 0; i < n; i++) {
        size_t len = 0;
        const char *s = sw_tensor_bytes_element(t, i, &len);
        g_assert_cmpmem(s, len, expected[i], strlen(expected[i]));
    }
}

/* ---- loading and devices ---- */

static void test_load_missing_file(void)
{
    GError *error = NULL;
    sw_torch_module *module = sw_torch_module_load("/nonexistent/model.pt", NULL, &error);
    g_assert_null(module);
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_test_message("%s", error->message);
    g_assert_nonnull(strstr(error->message, "/nonexistent/model.pt"));
    g_error_free(error);
}

static void test_load_not_torchscript(void)
{
    char *path = NULL;
    int fd = g_file_open_tmp("shim-XXXXXX.pt", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(g_file_set_contents(path, "not a zip archive", -1, NULL));
    g_close(fd, NULL);
    GError *error = NULL;
    g_assert_null(sw_torch_module_load(path, "cpu", &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_test_message("%s", error->message);
    g_assert_nonnull(strstr(error->message, path));
    g_error_free(error);
    g_unlink(path);
    g_free(path);
}

static void test_load_rejects_non_dict_argument(void)
{
    char *path = g_build_filename(modules_dir, "tensor_argument.pt", NULL);
    GError *error = NULL;
    g_assert_null(sw_torch_module_load(path, "cpu", &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_test_message("%s", error->message);
    g_assert_nonnull(strstr(error->message, "Dict(str"));
    g_error_free(error);
    g_free(path);
}

static void test_load_on_unusable_device(void)
{
    char *path = g_build_filename(modules_dir, "predictor.pt", NULL);
    GError *error = NULL;
    g_assert_null(sw_torch_module_load(path, "cuda:999", &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_test_message("%s", error->message);
    g_error_free(error);
    g_free(path);
}

static void device_fails(const char *device, const char *needle)
{
    GError *error = NULL;
    g_assert_false(sw_torch_device_check(device, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_test_message("%s", error->message);
    if (strstr(error->message, needle) == NULL)
        g_error("expected \"%s\" in: %s", needle, error->message);
    g_error_free(error);
}

static void test_device_check(void)
{
    GError *error = NULL;
    g_assert_true(sw_torch_device_check("cpu", &error));
    g_assert_no_error(error);
    device_fails("bogus", "bogus");
    device_fails("mps", "not supported");
    device_fails("cuda:999", "CUDA");
    /* Debian's libtorch is CPU-only; a CUDA build with a GPU may accept it. */
    if (!sw_torch_device_check("cuda", NULL))
        device_fails("cuda", "CUDA");
}

static void test_schema(void)
{
    sw_torch_module *module = load_module("preprocessor.pt");
    char *schema = sw_torch_module_schema(module);
    g_assert_nonnull(strstr(schema, "forward("));
    g_assert_nonnull(strstr(schema, "Dict(str, Union("));
    g_assert_nonnull(strstr(schema, "-> Dict(str, Tensor)"));
    g_free(schema);
    sw_torch_module_free(module);
}

/* ---- the preprocessor: Dict(str, Union(...)) inputs ---- */

static GPtrArray *preprocessor_inputs(float num0, uint8_t pixel0)
{
    static const char *const text[] = {"a", "abc", ""};
    float num[2] = {num0, -2.0f};
    uint8_t image0[4] = {pixel0, 4, 6, 8};
    uint8_t image1[4] = {10, 12, 14, 255};
    int64_t image_shape[3] = {1, 2, 2};
    GPtrArray *images = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    g_ptr_array_add(images, sw_tensor_new_copy(SW_DTYPE_UINT8, 3, image_shape, image0, 4));
    g_ptr_array_add(images, sw_tensor_new_copy(SW_DTYPE_UINT8, 3, image_shape, image1, 4));

    GPtrArray *inputs = sw_value_array_new();
    g_ptr_array_add(inputs, strings_value("text", text, 3));
    g_ptr_array_add(inputs, vector_value("num", SW_DTYPE_FP32, 2, num));
    g_ptr_array_add(inputs, sw_value_new_list("images", SW_VALUE_TENSOR_LIST, images));
    return inputs;
}

/* Returns whether the outputs are those of preprocessor_inputs(num0, pixel0);
 * not asserting, so that worker threads can count failures. */
static gboolean preprocessor_outputs_match(const GPtrArray *outputs, float num0, uint8_t pixel0)
{
    static const int64_t lengths[3] = {1, 3, 0};
    float num[2] = {num0 * 2, -4.0f};
    float images[8] = {pixel0 / 2.0f, 2, 3, 4, 5, 6, 7, 127.5f};
    if (outputs->len != 3)
        return FALSE;
    const char *names[3] = {"text", "num", "images"};
    const void *data[3] = {lengths, num, images};
    size_t sizes[3] = {sizeof lengths, sizeof num, sizeof images};
    for (guint i = 0; i < 3; i++) {
        const sw_value *v = outputs->pdata[i];
        size_t nbytes = 0;
        const void *got = v->kind == SW_VALUE_TENSOR ? sw_tensor_data(v->tensor, &nbytes) : NULL;
        if (strcmp(v->name, names[i]) != 0 || got == NULL || nbytes != sizes[i] || memcmp(got, data[i], nbytes) != 0)
            return FALSE;
    }
    return TRUE;
}

static void test_preprocessor_inputs(void)
{
    sw_torch_module *module = load_module("preprocessor.pt");
    GPtrArray *inputs = preprocessor_inputs(1.5f, 2);
    /* Keys the module does not use are ignored, as Ludwig's are. */
    int32_t unused = 7;
    g_ptr_array_add(inputs, vector_value("unused", SW_DTYPE_INT32, 1, &unused));
    GPtrArray *outputs = forward_ok(module, inputs);
    g_ptr_array_unref(inputs);

    int64_t text_shape[1] = {3}, num_shape[1] = {2}, image_shape[4] = {2, 1, 2, 2};
    assert_shape(output(outputs, 0, "text", SW_VALUE_TENSOR)->tensor, SW_DTYPE_INT64, 1, text_shape);
    assert_shape(output(outputs, 1, "num", SW_VALUE_TENSOR)->tensor, SW_DTYPE_FP32, 1, num_shape);
    assert_shape(output(outputs, 2, "images", SW_VALUE_TENSOR)->tensor, SW_DTYPE_FP32, 4, image_shape);
    g_assert_true(preprocessor_outputs_match(outputs, 1.5f, 2));
    g_ptr_array_unref(outputs);
    sw_torch_module_free(module);
}

/* SW_VALUE_AUDIO_LIST reaches forward as List[Tuple[Tensor, int]]: each
 * waveform with its own sample rate. */
static void test_preprocessor_audio(void)
{
    sw_torch_module *module = load_module("preprocessor.pt");
    GPtrArray *inputs = preprocessor_inputs(1.5f, 2);
    float mono[3] = {1, 2, 3}, stereo[4] = {0.5f, 0.5f, 1, 1};
    int64_t mono_shape[2] = {1, 3}, stereo_shape[2] = {2, 2};
    GPtrArray *waves = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    g_ptr_array_add(waves, sw_tensor_new_copy(SW_DTYPE_FP32, 2, mono_shape, mono, sizeof mono));
    g_ptr_array_add(waves, sw_tensor_new_copy(SW_DTYPE_FP32, 2, stereo_shape, stereo, sizeof stereo));
    int64_t *rates = g_new(int64_t, 2);
    rates[0] = 10;
    rates[1] = 100;
    g_ptr_array_add(inputs, sw_value_new_audio("audio", waves, rates));
    GPtrArray *outputs = forward_ok(module, inputs);
    g_ptr_array_unref(inputs);
    const sw_tensor *audio = output(outputs, 3, "audio", SW_VALUE_TENSOR)->tensor;
    int64_t audio_shape[1] = {2};
    assert_shape(audio, SW_DTYPE_FP32, 1, audio_shape);
    const float *got = sw_tensor_data(audio, NULL);
    g_assert_cmpfloat(got[0], ==, 60.0f);
    g_assert_cmpfloat(got[1], ==, 300.0f);
    g_ptr_array_unref(outputs);
    sw_torch_module_free(module);
}

static void test_preprocessor_missing_key(void)
{
    sw_torch_module *module = load_module("preprocessor.pt");
    GPtrArray *inputs = preprocessor_inputs(1.0f, 2);
    g_ptr_array_remove_index(inputs, 0); /* "text" */
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "text");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

static void test_preprocessor_wrong_kind(void)
{
    sw_torch_module *module = load_module("preprocessor.pt");
    GPtrArray *inputs = preprocessor_inputs(1.0f, 2);
    /* A tensor where the module wants strings: the module's own error. */
    int64_t not_text[1] = {1};
    g_ptr_array_remove_index(inputs, 0);
    g_ptr_array_add(inputs, vector_value("text", SW_DTYPE_INT64, 1, not_text));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "text must be a list of strings");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

/* ---- the predictor: Dict(str, Tensor) in and out ---- */

static GPtrArray *one_input(sw_value *value)
{
    GPtrArray *inputs = sw_value_array_new();
    g_ptr_array_add(inputs, value);
    return inputs;
}

static void test_predictor_alias_outlives_input(void)
{
    sw_torch_module *module = load_module("predictor.pt");
    int64_t x[4] = {1, 2, 3, 40};
    int64_t shape[2] = {2, 2};
    GPtrArray *inputs = one_input(tensor_value("x", SW_DTYPE_INT64, 2, shape, x, sizeof x));
    const void *input_data = sw_tensor_data(((sw_value *)inputs->pdata[0])->tensor, NULL);
    GPtrArray *outputs = forward_ok(module, inputs);

    const sw_value *same = output(outputs, 0, "x::same", SW_VALUE_TENSOR);
    /* Zero copy both ways: the output is the input's own buffer. */
    g_assert_true(sw_tensor_data(same->tensor, NULL) == input_data);
    g_ptr_array_unref(inputs);

    assert_shape(same->tensor, SW_DTYPE_INT64, 2, shape);
    assert_data(same->tensor, x, sizeof x);
    double doubled[4] = {2, 4, 6, 80};
    const sw_value *computed = output(outputs, 1, "x::double", SW_VALUE_TENSOR);
    assert_shape(computed->tensor, SW_DTYPE_FP64, 2, shape);
    assert_data(computed->tensor, doubled, sizeof doubled);
    g_ptr_array_unref(outputs);
    sw_torch_module_free(module);
}

static void test_predictor_raise(void)
{
    sw_torch_module *module = load_module("predictor.pt");
    float x[3] = {1, -1, 2};
    GPtrArray *inputs = one_input(vector_value("x", SW_DTYPE_FP32, 3, x));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "bad value in x");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

static void test_predictor_rejects_strings(void)
{
    static const char *const x[] = {"a", "b"};
    sw_torch_module *module = load_module("predictor.pt");
    GPtrArray *inputs = one_input(strings_value("x", x, 2));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "input 'x'");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

static void test_predictor_rejects_bad_inputs(void)
{
    static const char *const strings[] = {"a"};
    sw_torch_module *module = load_module("predictor.pt");
    GPtrArray *inputs = one_input(sw_value_new_tensor("x", SW_VALUE_TENSOR, sw_tensor_new_strings(strings, NULL, 1)));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "BYTES");
    g_ptr_array_unref(inputs);

    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    g_ptr_array_add(rows, sw_tensor_new_strings(strings, NULL, 1));
    inputs = one_input(sw_value_new_list("x", SW_VALUE_STRING_LISTS, rows));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "input 'x'");
    g_ptr_array_unref(inputs);

    GPtrArray *tensors = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    int32_t one = 1;
    int64_t shape[1] = {1};
    g_ptr_array_add(tensors, sw_tensor_new_copy(SW_DTYPE_INT32, 1, shape, &one, sizeof one));
    inputs = one_input(sw_value_new_list("x", SW_VALUE_TENSOR_LIST, tensors));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "input 'x'");
    g_ptr_array_unref(inputs);

    inputs = one_input(vector_value("x", SW_DTYPE_INT32, 1, &one));
    g_ptr_array_add(inputs, vector_value("x", SW_DTYPE_INT32, 1, &one));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "twice");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

/* Sends `x` and checks x::same (dtype `same_dtype`, bytes `same`) and x::double. */
static void check_predictor(sw_dtype dtype, const void *x, sw_dtype same_dtype, const void *same, const double *doubled,
                            int64_t n)
{
    sw_torch_module *module = load_module("predictor.pt");
    GPtrArray *inputs = one_input(vector_value("x", dtype, n, x));
    GPtrArray *outputs = forward_ok(module, inputs);
    g_ptr_array_unref(inputs);
    int64_t shape[1] = {n};
    const sw_tensor *t = output(outputs, 0, "x::same", SW_VALUE_TENSOR)->tensor;
    assert_shape(t, same_dtype, 1, shape);
    assert_data(t, same, (size_t)n * sw_dtype_size(same_dtype));
    t = output(outputs, 1, "x::double", SW_VALUE_TENSOR)->tensor;
    assert_shape(t, SW_DTYPE_FP64, 1, shape);
    assert_data(t, doubled, (size_t)n * sizeof(double));
    g_ptr_array_unref(outputs);
    sw_torch_module_free(module);
}

static void test_predictor_half_precision(void)
{
    /* 1.0, 2.5, 65504 (largest FP16) */
    uint16_t fp16[3] = {0x3C00, 0x4100, 0x7BFF};
    double fp16_doubled[3] = {2.0, 5.0, 131008.0};
    check_predictor(SW_DTYPE_FP16, fp16, SW_DTYPE_FP16, fp16, fp16_doubled, 3);
    /* 1.0, 2.5, 2^100 */
    uint16_t bf16[3] = {0x3F80, 0x4020, 0x7180};
    double bf16_doubled[3] = {2.0, 5.0, ldexp(1.0, 101)};
    check_predictor(SW_DTYPE_BF16, bf16, SW_DTYPE_BF16, bf16, bf16_doubled, 3);
}

static void test_predictor_unsigned_and_bool(void)
{
    uint16_t u16[2] = {65535, 1};
    int32_t u16_as_i32[2] = {65535, 1};
    double u16_doubled[2] = {131070, 2};
    check_predictor(SW_DTYPE_UINT16, u16, SW_DTYPE_INT32, u16_as_i32, u16_doubled, 2);

    uint32_t u32[1] = {4294967295u};
    int64_t u32_as_i64[1] = {4294967295};
    double u32_doubled[1] = {8589934590.0};
    check_predictor(SW_DTYPE_UINT32, u32, SW_DTYPE_INT64, u32_as_i64, u32_doubled, 1);

    uint64_t u64[1] = {UINT64_C(1) << 62};
    double u64_doubled[1] = {ldexp(1.0, 63)};
    check_predictor(SW_DTYPE_UINT64, u64, SW_DTYPE_INT64, u64, u64_doubled, 1);

    /* Any nonzero byte is true. */
    uint8_t flags[3] = {0, 2, 1};
    uint8_t normalised[3] = {0, 1, 1};
    double flags_doubled[3] = {0, 2, 2};
    check_predictor(SW_DTYPE_BOOL, flags, SW_DTYPE_BOOL, normalised, flags_doubled, 3);
}

static void test_predictor_uint64_out_of_range(void)
{
    sw_torch_module *module = load_module("predictor.pt");
    uint64_t x[2] = {1, UINT64_C(1) << 63};
    GPtrArray *inputs = one_input(vector_value("x", SW_DTYPE_UINT64, 2, x));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "element 1");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

static void test_predictor_misaligned_input(void)
{
    sw_torch_module *module = load_module("predictor.pt");
    int32_t x[2] = {5, 6};
    char buffer[1 + sizeof x];
    memcpy(buffer + 1, x, sizeof x);
    GBytes *all = g_bytes_new(buffer, sizeof buffer);
    GBytes *slice = g_bytes_new_from_bytes(all, 1, sizeof x);
    int64_t shape[1] = {2};
    GPtrArray *inputs =
        one_input(sw_value_new_tensor("x", SW_VALUE_TENSOR, sw_tensor_new(SW_DTYPE_INT32, 1, shape, slice)));
    GPtrArray *outputs = forward_ok(module, inputs);
    const sw_tensor *same = output(outputs, 0, "x::same", SW_VALUE_TENSOR)->tensor;
    /* Copied, not shared: the buffer was not 4-byte aligned. */
    g_assert_true(sw_tensor_data(same, NULL) != g_bytes_get_data(slice, NULL));
    assert_data(same, x, sizeof x);
    g_ptr_array_unref(outputs);
    g_ptr_array_unref(inputs);
    g_bytes_unref(slice);
    g_bytes_unref(all);
    sw_torch_module_free(module);
}

/* ---- the postprocessor: Dict(str, Any) outputs ---- */

static void assert_float_row(const sw_tensor *t, const float *expected, int64_t n)
{
    int64_t shape[1] = {n};
    assert_shape(t, SW_DTYPE_FP32, 1, shape);
    assert_data(t, expected, (size_t)n * sizeof(float));
}

static void check_ragged_outputs(const GPtrArray *outputs)
{
    static const char *const row0[] = {"zero", "one", NULL};
    static const char *const row1[] = {NULL};
    static const char *const row2[] = {"zero", "one", "two", NULL};
    const GPtrArray *rows = output(outputs, 2, "s::predictions", SW_VALUE_STRING_LISTS)->items;
    g_assert_cmpuint(rows->len, ==, 3);
    assert_strings(rows->pdata[0], row0);
    assert_strings(rows->pdata[1], row1);
    assert_strings(rows->pdata[2], row2);

    static const float probs0[] = {0, 0.25f}, probs2[] = {0, 0.25f, 0.5f};
    const GPtrArray *probs = output(outputs, 3, "s::probabilities", SW_VALUE_TENSOR_LIST)->items;
    g_assert_cmpuint(probs->len, ==, 3);
    assert_float_row(probs->pdata[0], probs0, 2);
    assert_float_row(probs->pdata[1], NULL, 0);
    assert_float_row(probs->pdata[2], probs2, 3);
}

static void check_tensor_outputs(const GPtrArray *outputs)
{
    static const float halves[] = {1.0f, 0, 1.5f};
    assert_float_row(output(outputs, 0, "n::predictions", SW_VALUE_TENSOR)->tensor, halves, 3);

    static const uint8_t flags[] = {1, 0, 1};
    int64_t flags_shape[1] = {3};
    const sw_tensor *t = output(outputs, 4, "b::predictions", SW_VALUE_TENSOR)->tensor;
    assert_shape(t, SW_DTYPE_BOOL, 1, flags_shape);
    assert_data(t, flags, sizeof flags);

    static const int64_t total = 5;
    t = output(outputs, 5, "total", SW_VALUE_TENSOR)->tensor;
    assert_shape(t, SW_DTYPE_INT64, 0, NULL);
    assert_data(t, &total, sizeof total);

    /* Made non-contiguous by .t(): must come back row-major. */
    static const int64_t pairs[] = {2, 20, 0, 0, 3, 30};
    int64_t pairs_shape[2] = {3, 2};
    t = output(outputs, 6, "pair::transposed", SW_VALUE_TENSOR)->tensor;
    assert_shape(t, SW_DTYPE_INT64, 2, pairs_shape);
    assert_data(t, pairs, sizeof pairs);
}

static void test_postprocessor_outputs(void)
{
    static const char *const names[] = {"two", "zero", "three", NULL};
    static const char *const none[] = {NULL};
    sw_torch_module *module = load_module("postprocessor.pt");
    int64_t x[3] = {2, 0, 3};
    GPtrArray *inputs = one_input(vector_value("x", SW_DTYPE_INT64, 3, x));
    GPtrArray *outputs = forward_ok(module, inputs);
    g_ptr_array_unref(inputs);

    g_assert_cmpuint(outputs->len, ==, 10);
    check_tensor_outputs(outputs);
    assert_strings(output(outputs, 1, "c::predictions", SW_VALUE_STRINGS)->tensor, names);
    check_ragged_outputs(outputs);
    /* Empty lists: the element type is only in the static type. */
    assert_strings(output(outputs, 7, "e::strings", SW_VALUE_STRINGS)->tensor, none);
    g_assert_cmpuint(output(outputs, 8, "e::rows", SW_VALUE_STRING_LISTS)->items->len, ==, 0);
    g_assert_cmpuint(output(outputs, 9, "e::tensors", SW_VALUE_TENSOR_LIST)->items->len, ==, 0);
    g_ptr_array_unref(outputs);
    sw_torch_module_free(module);
}

/* An error raised by an operator rather than by `raise`. */
static void test_postprocessor_operator_error(void)
{
    sw_torch_module *module = load_module("postprocessor.pt");
    int64_t x[1] = {7};
    GPtrArray *inputs = one_input(vector_value("x", SW_DTYPE_INT64, 1, x));
    forward_fails(module, inputs, SW_CODE_INVALID_ARGUMENT, "out of range");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

static void test_unsupported_outputs(void)
{
    sw_torch_module *module = load_module("bad_output.pt");
    float x[1] = {1};
    GPtrArray *inputs = one_input(vector_value("x", SW_DTYPE_FP32, 1, x));
    forward_fails(module, inputs, SW_CODE_INTERNAL, "output 'cplx'");
    forward_fails(module, inputs, SW_CODE_INTERNAL, "ComplexFloat");
    g_ptr_array_add(inputs, vector_value("int", SW_DTYPE_FP32, 1, x));
    forward_fails(module, inputs, SW_CODE_INTERNAL, "output 'count'");
    forward_fails(module, inputs, SW_CODE_INTERNAL, "int");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);

    module = load_module("not_a_dict.pt");
    inputs = one_input(vector_value("x", SW_DTYPE_FP32, 1, x));
    forward_fails(module, inputs, SW_CODE_INTERNAL, "not a dict");
    g_ptr_array_unref(inputs);
    sw_torch_module_free(module);
}

/* ---- concurrency ---- */

enum { N_THREADS = 4, N_CALLS = 200 };

typedef struct {
    sw_torch_module *module;
    int thread;
    gint *failures;
} worker_args;

static gpointer worker(gpointer data)
{
    worker_args *args = data;
    for (int i = 0; i < N_CALLS; i++) {
        float num0 = (float)(args->thread * 1000 + i);
        uint8_t pixel0 = (uint8_t)(2 * ((args->thread * 7 + i) % 100));
        GPtrArray *inputs = preprocessor_inputs(num0, pixel0);
        GPtrArray *outputs = forward(args->module, inputs, NULL);
        if (outputs == NULL || !preprocessor_outputs_match(outputs, num0, pixel0))
            g_atomic_int_inc(args->failures);
        if (outputs)
            g_ptr_array_unref(outputs);
        g_ptr_array_unref(inputs);
    }
    return NULL;
}

static void test_concurrent_forward(void)
{
    sw_torch_module *module = load_module("preprocessor.pt");
    gint failures = 0;
    worker_args args[N_THREADS];
    GThread *threads[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (worker_args){module, t, &failures};
        threads[t] = g_thread_new("forward", worker, &args[t]);
    }
    for (int t = 0; t < N_THREADS; t++)
        g_thread_join(threads[t]);
    g_assert_cmpint(failures, ==, 0);
    sw_torch_module_free(module);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    modules_dir = g_getenv("SW_TEST_MODULES_DIR");
    if (argc > 1)
        modules_dir = argv[1];
    if (modules_dir == NULL) {
        g_printerr("usage: %s [MODULES_DIR] (or set SW_TEST_MODULES_DIR); make the modules "
                   "with tests/unit/make_shim_modules.py\n",
                   argv[0]);
        return 1;
    }
    /* Process-wide, and only honoured before the first forward. */
    sw_torch_set_num_threads(2);

    g_test_add_func("/torch_shim/load/missing_file", test_load_missing_file);
    g_test_add_func("/torch_shim/load/not_torchscript", test_load_not_torchscript);
    g_test_add_func("/torch_shim/load/non_dict_argument", test_load_rejects_non_dict_argument);
    g_test_add_func("/torch_shim/load/unusable_device", test_load_on_unusable_device);
    g_test_add_func("/torch_shim/device_check", test_device_check);
    g_test_add_func("/torch_shim/schema", test_schema);
    g_test_add_func("/torch_shim/preprocessor/inputs", test_preprocessor_inputs);
    g_test_add_func("/torch_shim/preprocessor/audio", test_preprocessor_audio);
    g_test_add_func("/torch_shim/preprocessor/missing_key", test_preprocessor_missing_key);
    g_test_add_func("/torch_shim/preprocessor/wrong_kind", test_preprocessor_wrong_kind);
    g_test_add_func("/torch_shim/predictor/alias_outlives_input", test_predictor_alias_outlives_input);
    g_test_add_func("/torch_shim/predictor/raise", test_predictor_raise);
    g_test_add_func("/torch_shim/predictor/rejects_strings", test_predictor_rejects_strings);
    g_test_add_func("/torch_shim/predictor/rejects_bad_inputs", test_predictor_rejects_bad_inputs);
    g_test_add_func("/torch_shim/predictor/half_precision", test_predictor_half_precision);
    g_test_add_func("/torch_shim/predictor/unsigned_and_bool", test_predictor_unsigned_and_bool);
    g_test_add_func("/torch_shim/predictor/uint64_out_of_range", test_predictor_uint64_out_of_range);
    g_test_add_func("/torch_shim/predictor/misaligned_input", test_predictor_misaligned_input);
    g_test_add_func("/torch_shim/postprocessor/outputs", test_postprocessor_outputs);
    g_test_add_func("/torch_shim/postprocessor/operator_error", test_postprocessor_operator_error);
    g_test_add_func("/torch_shim/unsupported_outputs", test_unsupported_outputs);
    g_test_add_func("/torch_shim/concurrent_forward", test_concurrent_forward);
    return g_test_run();
}
