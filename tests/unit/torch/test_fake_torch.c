/* The fake torch backend against torch_shim.h's contract, since every test
 * of the layers above trusts it: load failures are FAILED_PRECONDITION,
 * only the CPU exists, forward answers by the module file's op and its
 * extra outputs, module exceptions are INVALID_ARGUMENT, and the counters
 * see every call, from any thread. */
#include <math.h>
#include <string.h>

#include "fake_torch.h"
#include "sw_error.h"
#include "unit_support.h"

static char *dir;

/* A module file named `name` with `body` as its [module] group, loaded. */
static sw_torch_module *load(const char *name, const char *body)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_assert_true(sw_fake_torch_write(path, body, &error));
    g_assert_no_error(error);
    sw_torch_module *m = sw_torch_module_load(path, "cpu", &error);
    g_assert_no_error(error);
    g_assert_nonnull(m);
    g_free(path);
    return m;
}

static void expect_load_error(const char *path, const char *device, const char *substring)
{
    GError *error = NULL;
    g_assert_null(sw_torch_module_load(path, device, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    if (strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
    g_error_free(error);
}

static void test_load_errors(void)
{
    char *missing = g_build_filename(dir, "missing.pt", NULL);
    expect_load_error(missing, "cpu", missing);
    expect_load_error(missing, NULL, "cannot load TorchScript module");
    g_free(missing);

    char *path = g_build_filename(dir, "bad_op.pt", NULL);
    GError *error = NULL;
    g_assert_true(sw_fake_torch_write(path, "op=relu", &error));
    expect_load_error(path, "cpu", "op must be echo, scale or fail");
    g_assert_true(sw_fake_torch_write(path, "factor=2", &error));
    expect_load_error(path, "cpu", "op must be echo, scale or fail");
    /* Not a key file at all. */
    g_assert_true(g_file_set_contents(path, "\x01\x02 not a module", -1, &error));
    expect_load_error(path, "cpu", path);
    /* A good file on a device this build lacks. */
    g_assert_true(sw_fake_torch_write(path, "op=echo", &error));
    g_assert_no_error(error);
    expect_load_error(path, "cuda", "cuda");
    sw_torch_module *m = sw_torch_module_load(path, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(m);
    sw_torch_module_free(m);
    g_free(path);
    sw_torch_module_free(NULL);
}

static void test_device_check(void)
{
    GError *error = NULL;
    g_assert_true(sw_torch_device_check("cpu", &error));
    g_assert_no_error(error);
    static const char *const refused[] = {"cuda", "cuda:1", "mps", ""};
    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_assert_false(sw_torch_device_check(refused[i], &error));
        g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
        g_assert_true(strstr(error->message, "CUDA") != NULL);
        g_clear_error(&error);
    }
    g_assert_false(sw_torch_device_check(NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_clear_error(&error);
    /* A caller that does not want the reason may pass no error. */
    g_assert_false(sw_torch_device_check("cuda", NULL));
}

/* Inputs of every kind: FP32 [3,2], INT64 [3], strings [3], FP64 [3],
 * List[List[str]] and List[Tensor] of three rows. */
static GPtrArray *sample_inputs(void)
{
    GPtrArray *inputs = sw_value_array_new();
    const float f[6] = {1, -2, 0.5f, 4, 5, 6};
    const int64_t s32[] = {3, 2};
    g_ptr_array_add(
        inputs, sw_value_new_tensor("f32", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_FP32, 2, s32, f, sizeof f)));
    const int64_t ids[3] = {10, 20, 30};
    const int64_t s3[] = {3};
    g_ptr_array_add(inputs,
                    sw_value_new_tensor("ids", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_INT64, 1, s3, ids, 24)));
    const char *text[] = {"the cat sat", "hello", ""};
    g_ptr_array_add(inputs, sw_value_new_tensor("review", SW_VALUE_STRINGS, sw_tensor_new_strings(text, NULL, 3)));
    const double d[3] = {0.25, -1, 1e10};
    g_ptr_array_add(inputs,
                    sw_value_new_tensor("f64", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_FP64, 1, s3, d, sizeof d)));
    GPtrArray *lists = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    const char *row[] = {"a", "b"};
    for (size_t i = 0; i < 3; i++)
        g_ptr_array_add(lists, sw_tensor_new_strings(row, NULL, i));
    g_ptr_array_add(inputs, sw_value_new_list("lists", SW_VALUE_STRING_LISTS, lists));
    GPtrArray *tensors = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    for (size_t i = 0; i < 3; i++) {
        const int64_t n[] = {(int64_t)i};
        g_ptr_array_add(tensors, sw_tensor_new_copy(SW_DTYPE_FP32, 1, n, f, i * sizeof(float)));
    }
    g_ptr_array_add(inputs, sw_value_new_list("tensors", SW_VALUE_TENSOR_LIST, tensors));
    return inputs;
}

static GPtrArray *forward(sw_torch_module *m, GPtrArray *inputs)
{
    GError *error = NULL;
    GPtrArray *out = sw_torch_module_forward(m, (sw_value *const *)inputs->pdata, inputs->len, &error);
    g_assert_no_error(error);
    g_assert_nonnull(out);
    return out;
}

static void test_echo_shares_inputs(void)
{
    sw_torch_module *m = load("echo.pt", "op=echo");
    GPtrArray *inputs = sample_inputs();
    GPtrArray *out = forward(m, inputs);
    g_assert_cmpuint(out->len, ==, inputs->len);
    for (guint i = 0; i < inputs->len; i++) {
        const sw_value *in = g_ptr_array_index(inputs, i);
        const sw_value *o = g_ptr_array_index(out, i);
        g_assert_cmpstr(o->name, ==, in->name);
        g_assert_cmpint(o->kind, ==, in->kind);
        if (in->tensor) {
            /* Outputs may alias inputs, as libtorch's may. */
            g_assert_true(o->tensor != in->tensor);
            g_assert_true(sw_tensor_data(o->tensor, NULL) == sw_tensor_data(in->tensor, NULL));
            g_assert_cmpint(o->tensor->ndim, ==, in->tensor->ndim);
            g_assert_cmpint(o->tensor->shape[0], ==, in->tensor->shape[0]);
        } else {
            g_assert_cmpuint(o->items->len, ==, in->items->len);
            for (guint k = 0; k < in->items->len; k++) {
                const sw_tensor *a = g_ptr_array_index(in->items, k);
                const sw_tensor *b = g_ptr_array_index(o->items, k);
                g_assert_cmpint(sw_tensor_element_count(b), ==, sw_tensor_element_count(a));
                g_assert_true(sw_tensor_data(a, NULL) == sw_tensor_data(b, NULL));
            }
        }
    }
    /* Inputs are borrowed: the outputs live on without them. */
    g_ptr_array_unref(inputs);
    const sw_value *f = g_ptr_array_index(out, 0);
    g_assert_cmpfloat(sw_tensor_element_as_double(f->tensor, 1), ==, -2.0);
    g_ptr_array_unref(out);

    char *schema = sw_torch_module_schema(m);
    g_assert_true(g_str_has_prefix(schema, "forward("));
    g_free(schema);
    sw_torch_module_free(m);
}

static void test_scale(void)
{
    sw_torch_module *m = load("scale.pt", "op=scale\nfactor=2.5");
    GPtrArray *inputs = sample_inputs();
    GPtrArray *out = forward(m, inputs);
    const sw_value *in_f32 = g_ptr_array_index(inputs, 0);
    const sw_value *f32 = g_ptr_array_index(out, 0);
    const float *fo = sw_tensor_data(f32->tensor, NULL);
    const float *fi = sw_tensor_data(in_f32->tensor, NULL);
    g_assert_true(fo != fi); /* a new buffer: the input is not changed */
    g_assert_cmpfloat(fi[1], ==, -2.0f);
    g_assert_cmpfloat(fo[0], ==, 2.5f);
    g_assert_cmpfloat(fo[1], ==, -5.0f);
    g_assert_cmpfloat(fo[2], ==, 1.25f);
    g_assert_cmpint(f32->tensor->dtype, ==, SW_DTYPE_FP32);
    g_assert_cmpint(f32->tensor->shape[1], ==, 2);
    const double *d = sw_tensor_data(((sw_value *)g_ptr_array_index(out, 3))->tensor, NULL);
    g_assert_cmpfloat(d[0], ==, 0.625);
    g_assert_cmpfloat(d[2], ==, 2.5e10);
    /* Integers and strings are passed through as they are. */
    const sw_value *ids = g_ptr_array_index(out, 1);
    g_assert_true(sw_tensor_data(ids->tensor, NULL) ==
                  sw_tensor_data(((sw_value *)g_ptr_array_index(inputs, 1))->tensor, NULL));
    g_assert_cmpfloat(sw_tensor_element_as_double(ids->tensor, 2), ==, 30.0);
    const sw_value *review = g_ptr_array_index(out, 2);
    size_t len = 0;
    const char *e = sw_tensor_bytes_element(review->tensor, 0, &len);
    g_assert_cmpmem(e, len, "the cat sat", 11);
    g_ptr_array_unref(out);
    g_ptr_array_unref(inputs);
    sw_torch_module_free(m);

    /* Without a factor, scale changes nothing. */
    m = load("scale1.pt", "op=scale");
    inputs = sample_inputs();
    out = forward(m, inputs);
    fo = sw_tensor_data(((sw_value *)g_ptr_array_index(out, 0))->tensor, NULL);
    g_assert_cmpfloat(fo[1], ==, -2.0f);
    g_ptr_array_unref(out);
    g_ptr_array_unref(inputs);
    sw_torch_module_free(m);
}

static void test_fail(void)
{
    sw_torch_module *m = load("fail.pt", "op=fail");
    GPtrArray *inputs = sample_inputs();
    GError *error = NULL;
    g_assert_null(sw_torch_module_forward(m, (sw_value *const *)inputs->pdata, inputs->len, &error));
    /* A TorchScript exception raised by the module: the caller's input. */
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_true(g_str_has_prefix(error->message, "forward failed: "));
    g_clear_error(&error);
    sw_torch_module_free(m);

    m = load("fail_msg.pt", "op=fail\nerror=ValueError: age must be a number");
    g_assert_null(sw_torch_module_forward(m, (sw_value *const *)inputs->pdata, inputs->len, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_cmpstr(error->message, ==, "forward failed: ValueError: age must be a number");
    g_clear_error(&error);
    sw_torch_module_free(m);
    g_ptr_array_unref(inputs);
}

static const sw_value *find(GPtrArray *values, const char *name)
{
    for (guint i = 0; i < values->len; i++) {
        const sw_value *v = g_ptr_array_index(values, i);
        if (strcmp(v->name, name) == 0)
            return v;
    }
    return NULL;
}

static void test_rows_and_tokens_outputs(void)
{
    sw_torch_module *m = load("extra.pt", "op=echo\nrows_output=batch\ntokens_output=tokens");
    GPtrArray *inputs = sample_inputs();
    GPtrArray *out = forward(m, inputs);
    /* Every input, then the extra outputs. */
    g_assert_cmpuint(out->len, ==, inputs->len + 2);
    const sw_value *batch = find(out, "batch");
    g_assert_nonnull(batch);
    g_assert_cmpint(batch->kind, ==, SW_VALUE_TENSOR);
    g_assert_cmpint(batch->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(batch->tensor->ndim, ==, 1);
    g_assert_cmpint(batch->tensor->shape[0], ==, 3);
    const int64_t *b = sw_tensor_data(batch->tensor, NULL);
    for (int i = 0; i < 3; i++)
        g_assert_cmpint(b[i], ==, 3);

    const sw_value *tokens = find(out, "tokens");
    g_assert_nonnull(tokens);
    g_assert_cmpint(tokens->kind, ==, SW_VALUE_STRING_LISTS);
    g_assert_cmpuint(tokens->items->len, ==, 3);
    const sw_tensor *t0 = g_ptr_array_index(tokens->items, 0);
    g_assert_cmpint(sw_tensor_element_count(t0), ==, 3);
    static const char *const words[] = {"the", "cat", "sat"};
    for (size_t i = 0; i < 3; i++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(t0, i, &len);
        g_assert_cmpmem(e, len, words[i], strlen(words[i]));
    }
    const sw_tensor *t1 = g_ptr_array_index(tokens->items, 1);
    g_assert_cmpint(sw_tensor_element_count(t1), ==, 1);
    const sw_tensor *t2 = g_ptr_array_index(tokens->items, 2);
    g_assert_cmpint(sw_tensor_element_count(t2), ==, 0); /* "" has no words */
    g_ptr_array_unref(out);

    /* No strings among the inputs: no tokens output. */
    GPtrArray *numbers = sw_value_array_new();
    const float f[5] = {0};
    const int64_t s5[] = {5};
    g_ptr_array_add(numbers,
                    sw_value_new_tensor("x", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_FP32, 1, s5, f, sizeof f)));
    out = forward(m, numbers);
    g_assert_null(find(out, "tokens"));
    batch = find(out, "batch");
    g_assert_cmpint(batch->tensor->shape[0], ==, 5);
    g_assert_cmpint(((const int64_t *)sw_tensor_data(batch->tensor, NULL))[4], ==, 5);
    g_ptr_array_unref(out);
    g_ptr_array_unref(numbers);

    /* No inputs at all: a batch of nothing. */
    GError *error = NULL;
    out = sw_torch_module_forward(m, NULL, 0, &error);
    g_assert_no_error(error);
    batch = find(out, "batch");
    g_assert_nonnull(batch);
    g_assert_cmpint(batch->tensor->shape[0], ==, 0);
    g_ptr_array_unref(out);
    g_ptr_array_unref(inputs);
    sw_torch_module_free(m);
}

/* Inputs of `rows` rows. */
static GPtrArray *batch_of(int64_t rows)
{
    GPtrArray *inputs = sw_value_array_new();
    const int64_t s[] = {rows};
    g_ptr_array_add(inputs, sw_value_new_tensor("x", SW_VALUE_TENSOR,
                                                sw_tensor_new_copy(SW_DTYPE_INT32, 1, s, NULL, (size_t)rows * 4)));
    return inputs;
}

static void test_counters(void)
{
    sw_torch_module *m = load("count.pt", "op=echo");
    g_assert_cmpint(sw_fake_torch_forward_calls(m), ==, 0);
    g_assert_cmpint(sw_fake_torch_max_rows(m), ==, 0);
    static const int64_t batches[] = {2, 7, 3};
    for (size_t i = 0; i < G_N_ELEMENTS(batches); i++) {
        GPtrArray *inputs = batch_of(batches[i]);
        g_ptr_array_unref(forward(m, inputs));
        g_ptr_array_unref(inputs);
    }
    g_assert_cmpint(sw_fake_torch_forward_calls(m), ==, 3);
    g_assert_cmpint(sw_fake_torch_max_rows(m), ==, 7);
    /* Counters belong to the module, not the file. */
    sw_torch_module *other = load("count.pt", "op=echo");
    g_assert_cmpint(sw_fake_torch_forward_calls(other), ==, 0);
    sw_torch_module_free(other);
    sw_torch_module_free(m);
}

typedef struct caller {
    sw_torch_module *module;
    int64_t rows;
} caller;

enum { THREADS = 8, CALLS = 50 };

static gpointer call_many(gpointer data)
{
    caller *c = data;
    GPtrArray *inputs = batch_of(c->rows);
    for (int i = 0; i < CALLS; i++) {
        GError *error = NULL;
        GPtrArray *out = sw_torch_module_forward(c->module, (sw_value *const *)inputs->pdata, inputs->len, &error);
        g_assert_no_error(error);
        g_ptr_array_unref(out);
    }
    g_ptr_array_unref(inputs);
    return NULL;
}

/* forward is called from many threads at once (torch_shim.h): no call is
 * lost from the counts. */
static void test_concurrent_forward(void)
{
    sw_torch_module *m = load("threads.pt", "op=echo");
    caller callers[THREADS];
    GThread *threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        callers[i] = (caller){m, i + 1};
        threads[i] = g_thread_new("forward", call_many, &callers[i]);
    }
    for (int i = 0; i < THREADS; i++)
        g_thread_join(threads[i]);
    g_assert_cmpint(sw_fake_torch_forward_calls(m), ==, THREADS * CALLS);
    g_assert_cmpint(sw_fake_torch_max_rows(m), ==, THREADS);
    sw_torch_module_free(m);
}

static void test_sleep_schema_and_host_buffer(void)
{
    sw_torch_module *m =
        load("slow.pt", "op=echo\nsleep_us=20000\nschema=forward(Dict(str, Tensor) x) -> Dict(str, Tensor)");
    GPtrArray *inputs = batch_of(1);
    gint64 start = g_get_monotonic_time();
    g_ptr_array_unref(forward(m, inputs));
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 20000);
    g_ptr_array_unref(inputs);
    char *schema = sw_torch_module_schema(m);
    g_assert_cmpstr(schema, ==, "forward(Dict(str, Tensor) x) -> Dict(str, Tensor)");
    g_free(schema);

    GBytes *buffer = sw_torch_module_new_host_buffer(m, 64);
    g_assert_cmpuint(g_bytes_get_size(buffer), ==, 64);
    memset((void *)g_bytes_get_data(buffer, NULL), 0xab, 64); /* writable until shared */
    g_bytes_unref(buffer);
    buffer = sw_torch_module_new_host_buffer(m, 0);
    g_assert_cmpuint(g_bytes_get_size(buffer), ==, 0);
    g_bytes_unref(buffer);
    sw_torch_set_num_threads(2); /* accepted, and nothing to see */
    sw_torch_module_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    dir = sw_test_dir_new();
    g_test_add_func("/fake-torch/load-errors", test_load_errors);
    g_test_add_func("/fake-torch/device-check", test_device_check);
    g_test_add_func("/fake-torch/echo-shares-inputs", test_echo_shares_inputs);
    g_test_add_func("/fake-torch/scale", test_scale);
    g_test_add_func("/fake-torch/fail", test_fail);
    g_test_add_func("/fake-torch/rows-and-tokens-outputs", test_rows_and_tokens_outputs);
    g_test_add_func("/fake-torch/counters", test_counters);
    g_test_add_func("/fake-torch/concurrent-forward", test_concurrent_forward);
    g_test_add_func("/fake-torch/sleep-schema-and-host-buffer", test_sleep_schema_and_host_buffer);
    int status = g_test_run();
    sw_test_dir_remove(dir);
    return status;
}
