/* A stage over the fake torch backend: making and loading it, checking and
 * converting decoded inputs (sw_stage_prepare), and running forward on its
 * instances (sw_stage_run). */
#include <string.h>

#include "fake_torch.h"
#include "output.h"
#include "stage.h"
#include "sw_error.h"
#include "unit_support.h"

/* ---- values as sw_oip_decode_inputs would give them ---- */

static sw_value *numeric(const char *name, sw_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    sw_tensor *t = sw_tensor_new_copy(dtype, ndim, shape, data, (size_t)n * sw_dtype_size(dtype));
    return sw_value_new_tensor(name, SW_VALUE_TENSOR, t);
}

static sw_value *fp32_rows(const char *name, const float *data, int64_t rows)
{
    return numeric(name, SW_DTYPE_FP32, 1, (int64_t[]){rows}, data);
}

/* BYTES viewed with `ndim`/`shape` (0: one dimension of `n`). */
static sw_value *strings_shaped(const char *name, const char *const *s, size_t n, int ndim, const int64_t *shape)
{
    sw_tensor *flat = sw_tensor_new_strings(s, NULL, n);
    sw_tensor *t = ndim ? sw_tensor_share(flat, ndim, shape) : sw_tensor_share(flat, 0, NULL);
    sw_tensor_free(flat);
    return sw_value_new_tensor(name, SW_VALUE_STRINGS, t);
}

static sw_value *strings(const char *name, const char *const *s, size_t n)
{
    return strings_shaped(name, s, n, 0, NULL);
}

static const float ages[3] = {30.0f, 50.5f, 71.0f};
static const int64_t date_rows[2][9] = {{2021, 3, 4, 3, 63, 0, 0, 0, 0}, {2020, 1, 1, 2, 1, 0, 0, 0, 0}};

/* Two rows of every preprocessor input, valid. */
static GPtrArray *preprocessor_inputs(void)
{
    GPtrArray *v = sw_value_array_new();
    g_ptr_array_add(v, fp32_rows("age", ages, 2));
    g_ptr_array_add(v, strings("color", (const char *const[]){"red", "dark green"}, 2));
    g_ptr_array_add(v, strings("review", (const char *const[]){"good movie", "bad"}, 2));
    g_ptr_array_add(v, numeric("when", SW_DTYPE_INT64, 2, (int64_t[]){2, 9}, date_rows));
    return v;
}

/* Two rows of every predictor input (what the preprocessor makes), valid. */
static GPtrArray *predictor_inputs(void)
{
    GPtrArray *v = sw_value_array_new();
    g_ptr_array_add(v, fp32_rows("age", ages, 2));
    g_ptr_array_add(v, numeric("color", SW_DTYPE_INT32, 1, (int64_t[]){2}, (int32_t[]){1, 2}));
    int64_t tokens[12] = {1, 4, 0, 2, 2, 2, 1, 3, 0, 2, 2, 2};
    g_ptr_array_add(v, numeric("review", SW_DTYPE_INT64, 2, (int64_t[]){2, 6}, tokens));
    int32_t dates[18] = {0};
    g_ptr_array_add(v, numeric("when", SW_DTYPE_INT32, 2, (int64_t[]){2, 9}, dates));
    return v;
}

static sw_value *find_value(GPtrArray *values, const char *name)
{
    for (guint i = 0; i < values->len; i++) {
        sw_value *v = g_ptr_array_index(values, i);
        if (strcmp(v->name, name) == 0)
            return v;
    }
    g_error("no value '%s'", name);
    return NULL;
}

static sw_output *find_output(GPtrArray *outputs, const char *name)
{
    for (guint i = 0; i < outputs->len; i++) {
        sw_output *o = g_ptr_array_index(outputs, i);
        if (strcmp(o->name, name) == 0)
            return o;
    }
    g_error("no output '%s'", name);
    return NULL;
}

/* Replaces the value called `name` in `values` with `v`. */
static void replace_value(GPtrArray *values, sw_value *v)
{
    for (guint i = 0; i < values->len; i++) {
        if (strcmp(((sw_value *)g_ptr_array_index(values, i))->name, v->name) == 0) {
            g_ptr_array_remove_index(values, i);
            g_ptr_array_insert(values, (gint)i, v);
            return;
        }
    }
    g_ptr_array_add(values, v);
}

static void remove_value(GPtrArray *values, const char *name)
{
    g_assert_true(g_ptr_array_remove(values, find_value(values, name)));
}

/* ---- stages over exports in temporary folders ---- */

typedef struct fixture {
    char *dir;
    sw_export *export;
} fixture;

static void fixture_support(fixture *f, const char *pre, const char *pred, const char *post)
{
    f->dir = sw_test_dir_new();
    sw_test_write_export(f->dir, pre, pred, post);
    GError *error = NULL;
    f->export = sw_export_load(f->dir, &error);
    g_assert_no_error(error);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    g_free(path);
}

/* An export whose preprocessor (an echo) takes `inputs` (a JSON list). */
static void fixture_custom(fixture *f, const char *inputs, const char *metadata)
{
    f->dir = sw_test_dir_new();
    char *config = g_strdup_printf("{\"input_features\": %s, \"output_features\": []}", inputs);
    write_text(f->dir, "model_hyperparameters.json", config);
    g_free(config);
    write_text(f->dir, "training_set_metadata.json", metadata);
    char *module = g_build_filename(f->dir, "inference_preprocessor.pt", NULL);
    GError *error = NULL;
    g_assert_true(sw_fake_torch_write(module, "op=echo", &error));
    g_free(module);
    f->export = sw_export_load(f->dir, &error);
    g_assert_no_error(error);
}

static void fixture_clear(fixture *f)
{
    sw_export_free(f->export);
    sw_test_dir_remove(f->dir);
}

static sw_stage *loaded_stage(fixture *f, sw_stage_kind kind, int n_instances)
{
    GError *error = NULL;
    sw_stage *stage = sw_stage_new(kind, f->export, "m", NULL, &error);
    g_assert_no_error(error);
    g_assert_true(sw_stage_load_module(stage, n_instances, &error));
    g_assert_no_error(error);
    return stage;
}

static void assert_message_has(const GError *error, const char *part1, const char *part2)
{
    if (strstr(error->message, part1) == NULL || (part2 && strstr(error->message, part2) == NULL))
        g_error("message '%s' lacks '%s' or '%s'", error->message, part1, part2 ? part2 : "");
}

/* sw_stage_prepare refuses `decoded` (freed here) INVALID_ARGUMENT with a
 * message holding `part1` and `part2`. */
static void expect_refused(const sw_stage *stage, GPtrArray *decoded, const char *part1, const char *part2)
{
    GError *error = NULL;
    int64_t batch = -7;
    g_assert_null(sw_stage_prepare(stage, decoded, &batch, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    assert_message_has(error, part1, part2);
    g_assert_cmpint(batch, ==, -7);
    g_error_free(error);
    g_ptr_array_unref(decoded);
}

static GPtrArray *prepare_ok(const sw_stage *stage, GPtrArray *decoded, int64_t want_batch)
{
    GError *error = NULL;
    int64_t batch = -1;
    GPtrArray *prepared = sw_stage_prepare(stage, decoded, &batch, &error);
    g_assert_no_error(error);
    g_assert_nonnull(prepared);
    g_assert_cmpint(batch, ==, want_batch);
    return prepared;
}

/* ---- making and loading ---- */

static void test_new_and_load(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    GError *error = NULL;
    sw_stage *stage = sw_stage_new(SW_STAGE_PREDICTOR, f.export, "m", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(stage->model_name, ==, "m_predictor");
    g_assert_cmpstr(stage->device, ==, "cpu");
    g_assert_cmpstr(stage->module_path, ==, f.export->predictor_path);
    g_assert_cmpint(stage->kind, ==, SW_STAGE_PREDICTOR);
    /* Specs are there before the module, so metadata can be answered. */
    g_assert_cmpuint(stage->inputs->len, ==, 4);
    g_assert_cmpuint(stage->outputs->len, ==, 5);
    g_assert_cmpint(stage->n_instances, ==, 0);
    g_assert_null(stage->instances);

    /* Before the module is loaded, running it is UNAVAILABLE, not a crash. */
    GPtrArray *inputs = predictor_inputs();
    GPtrArray *prepared = prepare_ok(stage, inputs, 2);
    g_ptr_array_unref(inputs);
    g_assert_null(sw_stage_run(stage, prepared, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_UNAVAILABLE);
    g_clear_error(&error);

    g_assert_false(sw_stage_load_module(stage, 0, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INTERNAL);
    g_clear_error(&error);
    g_assert_cmpint(stage->n_instances, ==, 0);

    g_assert_true(sw_stage_load_module(stage, 2, &error));
    g_assert_no_error(error);
    g_assert_cmpint(stage->n_instances, ==, 2);
    g_assert_true(stage->instances[0] != stage->instances[1]);
    /* Loading twice would leak or mix instances. */
    g_assert_false(sw_stage_load_module(stage, 1, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INTERNAL);
    assert_message_has(error, "m_predictor", "again");
    g_clear_error(&error);
    g_assert_cmpint(stage->n_instances, ==, 2);
    g_ptr_array_unref(prepared);
    sw_stage_free(stage);

    /* The other kinds are named after theirs; sw_stage_load does both steps. */
    stage = sw_stage_load(SW_STAGE_PREPROCESSOR, f.export, "shop", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(stage->model_name, ==, "shop_preprocessor");
    g_assert_cmpstr(stage->module_path, ==, f.export->preprocessor_path);
    g_assert_cmpint(stage->n_instances, ==, 1);
    sw_stage_free(stage);
    stage = sw_stage_load(SW_STAGE_POSTPROCESSOR, f.export, "shop", "cpu", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(stage->model_name, ==, "shop_postprocessor");
    g_assert_cmpuint(stage->outputs->len, ==, 3);
    sw_stage_free(stage);
    sw_stage_free(NULL);
    fixture_clear(&f);
}

static void test_load_errors(void)
{
    fixture f;
    fixture_support(&f, NULL, "op=nonsense", NULL);
    GError *error = NULL;
    /* This build has no CUDA: refused up front, not at the first call. */
    g_assert_null(sw_stage_new(SW_STAGE_PREDICTOR, f.export, "m", "cuda", &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    assert_message_has(error, "cuda", NULL);
    g_clear_error(&error);

    g_assert_null(sw_stage_new(SW_STAGE_PREPROCESSOR, f.export, "m", NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    assert_message_has(error, "preprocessor", f.export->preprocessor_path);
    g_clear_error(&error);
    g_assert_null(sw_stage_load(SW_STAGE_POSTPROCESSOR, f.export, "m", NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    assert_message_has(error, "postprocessor", f.export->postprocessor_path);
    g_clear_error(&error);

    /* The file is there but is no module: the stage stays unloaded. */
    sw_stage *stage = sw_stage_new(SW_STAGE_PREDICTOR, f.export, "m", NULL, &error);
    g_assert_no_error(error);
    g_assert_false(sw_stage_load_module(stage, 2, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    assert_message_has(error, f.export->predictor_path, NULL);
    g_clear_error(&error);
    g_assert_cmpint(stage->n_instances, ==, 0);
    g_assert_null(stage->instances);
    sw_stage_free(stage);
    g_assert_null(sw_stage_load(SW_STAGE_PREDICTOR, f.export, "m", NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_clear_error(&error);
    fixture_clear(&f);

    /* No predictor file at all: the message says what file is looked for. */
    fixture_support(&f, "op=echo", NULL, "op=echo");
    g_assert_null(sw_stage_new(SW_STAGE_PREDICTOR, f.export, "m", NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    assert_message_has(error, "predictor", "inference_predictor-<device>.pt");
    g_clear_error(&error);
    fixture_clear(&f);

    /* A feature type the stage cannot describe. */
    fixture_custom(&f, "[{\"name\": \"pic\", \"type\": \"hologram\"}]", "{}");
    g_assert_null(sw_stage_new(SW_STAGE_PREPROCESSOR, f.export, "m", NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    assert_message_has(error, "'hologram'", NULL);
    g_clear_error(&error);
    fixture_clear(&f);
}

/* ---- sw_stage_prepare ---- */

static void test_prepare_ok(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *decoded = preprocessor_inputs();
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    g_assert_cmpuint(prepared->len, ==, 4);
    sw_value *age = find_value(prepared, "age");
    g_assert_cmpint(age->kind, ==, SW_VALUE_TENSOR);
    g_assert_cmpint(age->tensor->dtype, ==, SW_DTYPE_FP32);
    /* Prepared values share the request's buffers rather than copy them. */
    g_assert_true(sw_tensor_data(age->tensor, NULL) == sw_tensor_data(find_value(decoded, "age")->tensor, NULL));
    /* Strings go to TorchScript as List[str]. */
    sw_value *color = find_value(prepared, "color");
    g_assert_cmpint(color->kind, ==, SW_VALUE_STRINGS);
    size_t len = 0;
    const char *e = sw_tensor_bytes_element(color->tensor, 1, &len);
    g_assert_cmpmem(e, len, "dark green", 10);
    sw_value *when = find_value(prepared, "when");
    g_assert_cmpint(when->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(when->tensor->ndim, ==, 2);
    g_ptr_array_unref(prepared);

    /* Numbers may come in another numeric datatype; dates as INT32. */
    replace_value(decoded, numeric("age", SW_DTYPE_INT64, 1, (int64_t[]){2}, (int64_t[]){30, 50}));
    int32_t dates[18] = {0};
    replace_value(decoded, numeric("when", SW_DTYPE_INT32, 2, (int64_t[]){2, 9}, dates));
    prepared = prepare_ok(stage, decoded, 2);
    g_assert_cmpint(find_value(prepared, "age")->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(find_value(prepared, "when")->tensor->dtype, ==, SW_DTYPE_INT32);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    sw_stage_free(stage);
    fixture_clear(&f);
}

/* Triton clients send one column per row as [B,1]: one-dimensional inputs
 * take it and forward sees [B]. */
static void test_prepare_column_inputs(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *decoded = preprocessor_inputs();
    replace_value(decoded, numeric("age", SW_DTYPE_FP32, 2, (int64_t[]){2, 1}, ages));
    replace_value(decoded, strings_shaped("color", (const char *const[]){"red", "blue"}, 2, 2, (int64_t[]){2, 1}));
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    sw_value *age = find_value(prepared, "age");
    g_assert_cmpint(age->tensor->ndim, ==, 1);
    g_assert_cmpint(age->tensor->shape[0], ==, 2);
    g_assert_true(sw_tensor_data(age->tensor, NULL) == sw_tensor_data(find_value(decoded, "age")->tensor, NULL));
    sw_value *color = find_value(prepared, "color");
    g_assert_cmpint(color->kind, ==, SW_VALUE_STRINGS);
    g_assert_cmpint(color->tensor->ndim, ==, 1);
    g_assert_cmpint(color->tensor->shape[0], ==, 2);
    g_ptr_array_unref(prepared);

    /* [1,B] is not a column: it is one row of B. */
    replace_value(decoded, numeric("age", SW_DTYPE_FP32, 2, (int64_t[]){1, 2}, ages));
    expect_refused(stage, decoded, "input 'age'", "wrong number of dimensions");
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_prepare_refuses(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);

    GPtrArray *d = preprocessor_inputs();
    replace_value(d, fp32_rows("color", ages, 2));
    expect_refused(stage, d, "input 'color' (category)",
                   "wrong datatype: expected BYTES with shape [-1], got FP32 with shape [2]");

    d = preprocessor_inputs();
    replace_value(d, strings("age", (const char *const[]){"30", "50"}, 2));
    expect_refused(stage, d, "input 'age' (number)", "wrong datatype");

    d = preprocessor_inputs();
    replace_value(d, numeric("age", SW_DTYPE_FP32, 2, (int64_t[]){2, 3}, (float[6]){0}));
    expect_refused(stage, d, "input 'age'", "wrong number of dimensions");

    d = preprocessor_inputs();
    replace_value(d, numeric("when", SW_DTYPE_INT64, 1, (int64_t[]){2}, (int64_t[]){1, 2}));
    expect_refused(stage, d, "input 'when' (date)", "wrong number of dimensions");

    d = preprocessor_inputs();
    replace_value(d, numeric("when", SW_DTYPE_INT64, 2, (int64_t[]){2, 8}, (int64_t[16]){0}));
    expect_refused(stage, d, "input 'when'", "wrong shape: expected INT32, INT64, BYTES with shape [-1,9]");

    d = preprocessor_inputs();
    replace_value(d, strings("color", (const char *const[]){"red", "green", "blue"}, 3));
    expect_refused(stage, d, "input 'color' has 3 rows but input 'age' has 2", NULL);

    d = preprocessor_inputs();
    replace_value(d, numeric("age", SW_DTYPE_FP32, 1, (int64_t[]){0}, NULL));
    expect_refused(stage, d, "input 'age'", "empty batch");

    d = preprocessor_inputs();
    replace_value(d, numeric("age", SW_DTYPE_FP32, 0, NULL, ages));
    expect_refused(stage, d, "input 'age'", "scalar");

    d = preprocessor_inputs();
    remove_value(d, "review");
    expect_refused(stage, d, "input 'review' (text feature) is missing", "expected BYTES with shape [-1]");

    /* A misspelt feature at the preprocessor: the client hears the names. */
    d = preprocessor_inputs();
    g_ptr_array_add(d, fp32_rows("Age", ages, 2));
    expect_refused(stage, d, "input 'Age' is not an input feature of model m_preprocessor",
                   "(expected 'age', 'color', 'review', 'when')");
    sw_stage_free(stage);

    /* Between stages unknown tensors are passed on untouched. */
    stage = loaded_stage(&f, SW_STAGE_PREDICTOR, 1);
    d = predictor_inputs();
    g_ptr_array_add(d, numeric("extra", SW_DTYPE_INT8, 1, (int64_t[]){2}, (int8_t[]){7, 8}));
    GPtrArray *prepared = prepare_ok(stage, d, 2);
    g_assert_cmpuint(prepared->len, ==, 5);
    sw_value *extra = find_value(prepared, "extra");
    g_assert_cmpint(extra->tensor->dtype, ==, SW_DTYPE_INT8);
    g_assert_true(sw_tensor_data(extra->tensor, NULL) == sw_tensor_data(find_value(d, "extra")->tensor, NULL));
    g_ptr_array_unref(prepared);
    /* ...but their batch size still has to agree. */
    g_ptr_array_add(d, numeric("more", SW_DTYPE_INT8, 1, (int64_t[]){3}, (int8_t[]){7, 8, 9}));
    expect_refused(stage, d, "input 'more' has 3 rows", NULL);

    /* The predictor takes preprocessed tensors, not raw strings. */
    d = predictor_inputs();
    replace_value(d, strings("color", (const char *const[]){"red", "blue"}, 2));
    expect_refused(stage, d, "input 'color' (category)", "expected INT32, INT64");
    d = predictor_inputs();
    replace_value(d, numeric("review", SW_DTYPE_INT64, 2, (int64_t[]){2, 5}, (int64_t[10]){0}));
    expect_refused(stage, d, "input 'review' (text)", "wrong shape");
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_prepare_dates(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *d = preprocessor_inputs();
    replace_value(d, fp32_rows("age", ages, 3));
    replace_value(d, strings("color", (const char *const[]){"a", "b", "c"}, 3));
    replace_value(d, strings("review", (const char *const[]){"a", "b", "c"}, 3));
    /* The feature's format, ISO 8601 besides it, and an unreadable date
     * that becomes the fill value (2020-01-01, a Wednesday). */
    replace_value(d, strings("when", (const char *const[]){"2021-03-04", "2021-03-04T05:06:07Z", "soon"}, 3));
    GPtrArray *prepared = prepare_ok(stage, d, 3);
    sw_value *when = find_value(prepared, "when");
    g_assert_cmpint(when->kind, ==, SW_VALUE_TENSOR);
    g_assert_cmpint(when->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(when->tensor->ndim, ==, 2);
    g_assert_cmpint(when->tensor->shape[0], ==, 3);
    g_assert_cmpint(when->tensor->shape[1], ==, 9);
    size_t nbytes = 0;
    const int64_t *v = sw_tensor_data(when->tensor, &nbytes);
    g_assert_cmpuint(nbytes, ==, 3 * 9 * sizeof(int64_t));
    static const int64_t want[3][9] = {
        {2021, 3, 4, 3, 63, 0, 0, 0, 0}, {2021, 3, 4, 3, 63, 5, 6, 7, 18367}, {2020, 1, 1, 2, 1, 0, 0, 0, 0}};
    g_assert_cmpmem(v, nbytes, want, sizeof want);
    g_ptr_array_unref(prepared);

    /* Strings as a column [B,1] are read the same. */
    replace_value(
        d, strings_shaped("when", (const char *const[]){"", "2022-02-02", "2021-03-04"}, 3, 2, (int64_t[]){3, 1}));
    prepared = prepare_ok(stage, d, 3);
    v = sw_tensor_data(find_value(prepared, "when")->tensor, &nbytes);
    g_assert_cmpmem(v, 9 * sizeof(int64_t), want[2], sizeof want[2]);
    g_assert_cmpint(v[9], ==, 2022);
    g_assert_cmpint(v[10], ==, 2);
    g_assert_cmpint(v[13], ==, 33);
    g_ptr_array_unref(prepared);

    replace_value(d,
                  strings_shaped("when", (const char *const[]){"a", "b", "c", "d", "e", "f"}, 6, 2, (int64_t[]){3, 2}));
    expect_refused(stage, d, "input 'when'", "strings must have shape [-1] or [-1,1]");
    sw_stage_free(stage);
    fixture_clear(&f);

    /* Without a fill value an unreadable date is the client's error. */
    fixture_custom(&f,
                   "[{\"name\": \"d\", \"type\": \"date\", \"preprocessing\": {\"datetime_format\": \"%d.%m.%Y\"}},"
                   " {\"name\": \"iso\", \"type\": \"date\"}]",
                   "{}");
    stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    d = sw_value_array_new();
    g_ptr_array_add(d, strings("d", (const char *const[]){"04.03.2021", "2021-03-04"}, 2));
    g_ptr_array_add(d, strings("iso", (const char *const[]){"2021-03-04", "20210304"}, 2));
    prepared = prepare_ok(stage, d, 2);
    v = sw_tensor_data(find_value(prepared, "d")->tensor, NULL);
    g_assert_cmpmem(v, 9 * sizeof(int64_t), want[0], sizeof want[0]);
    g_assert_cmpmem(v + 9, 9 * sizeof(int64_t), want[0], sizeof want[0]);
    g_ptr_array_unref(prepared);
    replace_value(d, strings("d", (const char *const[]){"04.03.2021", "yesterday"}, 2));
    expect_refused(stage, d, "input 'd' row 1: cannot read date 'yesterday' with format '%d.%m.%Y' or as ISO 8601",
                   "no fill value");
    d = sw_value_array_new();
    g_ptr_array_add(d, strings("d", (const char *const[]){"04.03.2021"}, 1));
    g_ptr_array_add(d, strings("iso", (const char *const[]){""}, 1));
    expect_refused(stage, d, "input 'iso' row 0: cannot read date ''", "no fill value");
    sw_stage_free(stage);
    fixture_clear(&f);
}

/* Inputs whose tensor is numeric but may come as one string per row. */
static void test_prepare_string_forms(void)
{
    fixture f;
    fixture_custom(&f, "[{\"name\": \"flag\", \"type\": \"binary\"}, {\"name\": \"v\", \"type\": \"vector\"}]",
                   "{\"v\": {\"vector_size\": 3}}");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *d = sw_value_array_new();
    g_ptr_array_add(d, strings("flag", (const char *const[]){"yes", "no"}, 2));
    g_ptr_array_add(d, numeric("v", SW_DTYPE_FP32, 2, (int64_t[]){2, 3}, (float[6]){0}));
    GPtrArray *prepared = prepare_ok(stage, d, 2);
    g_assert_cmpint(find_value(prepared, "flag")->kind, ==, SW_VALUE_STRINGS);
    g_ptr_array_unref(prepared);

    replace_value(d, strings("v", (const char *const[]){"1 2 3", "4 5 6"}, 2));
    replace_value(d, numeric("flag", SW_DTYPE_BOOL, 1, (int64_t[]){2}, (uint8_t[]){1, 0}));
    prepared = prepare_ok(stage, d, 2);
    g_assert_cmpint(find_value(prepared, "v")->kind, ==, SW_VALUE_STRINGS);
    g_assert_cmpint(find_value(prepared, "flag")->kind, ==, SW_VALUE_TENSOR);
    g_ptr_array_unref(prepared);

    replace_value(d, numeric("v", SW_DTYPE_FP32, 2, (int64_t[]){2, 4}, (float[8]){0}));
    expect_refused(stage, d, "input 'v' (vector)",
                   "wrong shape: expected FP16, BF16, FP32, FP64, BYTES with shape [-1,3]");
    /* Vectors as strings: one string per row, [B] or [B,1]. */
    d = sw_value_array_new();
    g_ptr_array_add(d, strings("flag", (const char *const[]){"yes", "no"}, 2));
    g_ptr_array_add(d, strings_shaped("v", (const char *const[]){"1 2 3", "4 5 6"}, 2, 2, (int64_t[]){2, 1}));
    prepared = prepare_ok(stage, d, 2);
    g_assert_cmpint(find_value(prepared, "v")->tensor->ndim, ==, 1);
    g_ptr_array_unref(prepared);
    replace_value(d, strings_shaped("v", (const char *const[]){"1", "2", "3", "4"}, 4, 2, (int64_t[]){2, 2}));
    expect_refused(stage, d, "input 'v' (vector)", "strings must have shape [-1] or [-1,1]");
    /* Binary strings are the feature's own form: [B] like any string input. */
    d = sw_value_array_new();
    g_ptr_array_add(d, strings_shaped("flag", (const char *const[]){"a", "b", "c", "d"}, 4, 2, (int64_t[]){2, 2}));
    g_ptr_array_add(d, numeric("v", SW_DTYPE_FP32, 2, (int64_t[]){2, 3}, (float[6]){0}));
    expect_refused(stage, d, "input 'flag' (binary)", "wrong number of dimensions");
    d = sw_value_array_new();
    g_ptr_array_add(d, strings("flag", (const char *const[]){"yes", "no"}, 2));
    g_ptr_array_add(d, numeric("v", SW_DTYPE_INT32, 2, (int64_t[]){2, 3}, (int32_t[6]){0}));
    expect_refused(stage, d, "input 'v'", "wrong datatype");
    sw_stage_free(stage);
    fixture_clear(&f);

    /* A model without inputs still needs a request with some. */
    fixture_custom(&f, "[]", "{}");
    stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    expect_refused(stage, sw_value_array_new(), "the request has no inputs", NULL);
    sw_stage_free(stage);
    fixture_clear(&f);
}

/* Timeseries tensors become List[Tensor] of float32 rows; h3 indexes sent
 * as UINT64 or decimal strings become INT64, and anything else is refused
 * naming the input and row. */
/* A preprocessor with a timeseries input of length 3 and an h3 input, and
 * two rows of them: FP32 series and UINT64 cells. */
static sw_stage *ts_h3_stage(fixture *f)
{
    fixture_custom(f, "[{\"name\": \"ts\", \"type\": \"timeseries\"}, {\"name\": \"cell\", \"type\": \"h3\"}]",
                   "{\"ts\": {\"max_timeseries_length\": 3}}");
    return loaded_stage(f, SW_STAGE_PREPROCESSOR, 1);
}

static const float series[6] = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.5f};
static const uint64_t big_cell = 617700169958293503u; /* past 2^53 */

static GPtrArray *ts_h3_inputs(void)
{
    GPtrArray *d = sw_value_array_new();
    g_ptr_array_add(d, numeric("ts", SW_DTYPE_FP32, 2, (int64_t[]){2, 3}, series));
    g_ptr_array_add(d,
                    numeric("cell", SW_DTYPE_UINT64, 1, (int64_t[]){2}, (uint64_t[]){big_cell, 0x7fffffffffffffffu}));
    return d;
}

/* Timeseries tensors become List[Tensor] rows; h3 in every form becomes INT64. */
static void test_prepare_timeseries_and_h3_forms(void)
{
    fixture f;
    sw_stage *stage = ts_h3_stage(&f);
    GPtrArray *d = ts_h3_inputs();
    GPtrArray *prepared = prepare_ok(stage, d, 2);
    sw_value *ts = find_value(prepared, "ts");
    g_assert_cmpint(ts->kind, ==, SW_VALUE_TENSOR_LIST);
    g_assert_cmpuint(ts->items->len, ==, 2);
    for (guint r = 0; r < 2; r++) {
        const sw_tensor *row = g_ptr_array_index(ts->items, r);
        g_assert_cmpint(row->dtype, ==, SW_DTYPE_FP32);
        g_assert_cmpint(row->ndim, ==, 1);
        g_assert_cmpint(row->shape[0], ==, 3);
        size_t nbytes = 0;
        const void *v = sw_tensor_data(row, &nbytes);
        g_assert_cmpmem(v, nbytes, series + 3 * r, 3 * sizeof(float));
    }
    sw_value *cell = find_value(prepared, "cell");
    g_assert_cmpint(cell->kind, ==, SW_VALUE_TENSOR);
    g_assert_cmpint(cell->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(cell->tensor->ndim, ==, 1);
    const int64_t *cells = sw_tensor_data(cell->tensor, NULL);
    g_assert_cmpint(cells[0], ==, (int64_t)big_cell);
    g_assert_cmpint(cells[1], ==, G_MAXINT64);
    g_ptr_array_unref(prepared);

    /* FP64 rows are converted to float32; decimal strings ([B] or [B,1]) read exactly. */
    static const double wide[6] = {0.1, 2.0, -3.0, 1e10, 5.0, 0.0};
    replace_value(d, numeric("ts", SW_DTYPE_FP64, 2, (int64_t[]){2, 3}, wide));
    replace_value(d, strings_shaped("cell", (const char *const[]){"617700169958293503", "0"}, 2, 2, (int64_t[]){2, 1}));
    prepared = prepare_ok(stage, d, 2);
    ts = find_value(prepared, "ts");
    g_assert_cmpint(ts->kind, ==, SW_VALUE_TENSOR_LIST);
    const sw_tensor *row1 = g_ptr_array_index(ts->items, 1);
    g_assert_cmpint(row1->dtype, ==, SW_DTYPE_FP32);
    const float *f1 = sw_tensor_data(row1, NULL);
    g_assert_cmpfloat(f1[0], ==, 1e10f);
    g_assert_cmpfloat(f1[2], ==, 0.0f);
    const float *f0 = sw_tensor_data(g_ptr_array_index(ts->items, 0), NULL);
    g_assert_cmpfloat(f0[0], ==, 0.1f);
    cells = sw_tensor_data(find_value(prepared, "cell")->tensor, NULL);
    g_assert_cmpint(cells[0], ==, (int64_t)big_cell);
    g_assert_cmpint(cells[1], ==, 0);
    g_ptr_array_unref(prepared);

    /* Text timeseries stay strings for the module to tokenize; INT64 h3 as it is. */
    replace_value(d, strings("ts", (const char *const[]){"1 2 3", "4 5"}, 2));
    replace_value(d, numeric("cell", SW_DTYPE_INT64, 1, (int64_t[]){2}, (int64_t[]){5, 6}));
    prepared = prepare_ok(stage, d, 2);
    g_assert_cmpint(find_value(prepared, "ts")->kind, ==, SW_VALUE_STRINGS);
    g_assert_cmpint(find_value(prepared, "cell")->tensor->dtype, ==, SW_DTYPE_INT64);
    g_ptr_array_unref(prepared);

    g_ptr_array_unref(d);
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_prepare_timeseries_text(void)
{
    fixture f;
    sw_stage *stage = ts_h3_stage(&f);
    GPtrArray *d = ts_h3_inputs();
    /* Timeseries text: the tokens the module reads must be numbers; "nan"
     * (missing) and tokens past max_timeseries_length are the module's. */
    replace_value(d, strings("ts", (const char *const[]){"nan", " 1\t-2e3  inf 4 junk "}, 2));
    GPtrArray *prepared = prepare_ok(stage, d, 2);
    g_assert_cmpint(find_value(prepared, "ts")->kind, ==, SW_VALUE_STRINGS);
    g_ptr_array_unref(prepared);
    static const char *const bad_series[][2] = {
        {"1 x 2", "'x'"}, {"1 2,5", "'2,5'"}, {"1e999", "'1e999'"}, {"0.5 3.", NULL}, {"", NULL}};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_series); i++) {
        replace_value(d, strings("ts", (const char *const[]){"1 2 3", bad_series[i][0]}, 2));
        if (bad_series[i][1] == NULL) { /* readable: "3." and an empty series */
            g_ptr_array_unref(prepare_ok(stage, d, 2));
            continue;
        }
        g_ptr_array_ref(d);
        expect_refused(stage, d, "input 'ts' row 1: cannot read", bad_series[i][1]);
    }
    g_ptr_array_unref(d);
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_prepare_timeseries_and_h3_refused(void)
{
    fixture f;
    sw_stage *stage = ts_h3_stage(&f);
    GPtrArray *d = ts_h3_inputs();
    /* Refused: bad h3 text, indexes past 2^63, wrong timeseries length or datatype. */
    static const char *const bad_cells[] = {"12x", "-5", " 7", "", "nan", "18446744073709551616", "1e5"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cells); i++) {
        replace_value(d, strings("cell", (const char *const[]){"1", bad_cells[i]}, 2));
        GPtrArray *copy = g_ptr_array_ref(d);
        expect_refused(stage, copy, "input 'cell' row 1: cannot read", "as an h3 index: expected a decimal integer");
    }
    replace_value(d, strings("cell", (const char *const[]){"9223372036854775808", "1"}, 2));
    g_ptr_array_ref(d);
    expect_refused(stage, d, "input 'cell' row 0: 9223372036854775808 is not an h3 index", "below 2^63");
    replace_value(d, numeric("cell", SW_DTYPE_UINT64, 1, (int64_t[]){2}, (uint64_t[]){1, G_MAXUINT64}));
    g_ptr_array_ref(d);
    expect_refused(stage, d, "input 'cell' row 1: 18446744073709551615 is not an h3 index", "below 2^63");
    replace_value(d, numeric("cell", SW_DTYPE_INT64, 1, (int64_t[]){2}, (int64_t[]){5, 6}));
    replace_value(d, numeric("ts", SW_DTYPE_FP32, 2, (int64_t[]){2, 2}, series));
    g_ptr_array_ref(d);
    expect_refused(stage, d, "input 'ts' (timeseries)", "wrong shape: expected FP32, FP64, BYTES with shape [-1,3]");
    replace_value(d, numeric("ts", SW_DTYPE_INT32, 2, (int64_t[]){2, 3}, (int32_t[6]){0}));
    g_ptr_array_ref(d);
    expect_refused(stage, d, "input 'ts' (timeseries)", "wrong datatype");
    replace_value(d, numeric("ts", SW_DTYPE_FP32, 1, (int64_t[]){2}, series));
    expect_refused(stage, d, "input 'ts' (timeseries)", "wrong number of dimensions");
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_prepare_timeseries_any_length(void)
{
    fixture f;
    /* Without max_timeseries_length any length goes, but not an empty row;
     * text for another tokenizer than space is the module's to read. */
    fixture_custom(&f, "[{\"name\": \"ts\", \"type\": \"timeseries\", \"preprocessing\": {\"tokenizer\": \"comma\"}}]",
                   "{}");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *d = sw_value_array_new();
    g_ptr_array_add(d, numeric("ts", SW_DTYPE_FP32, 2, (int64_t[]){1, 5}, series));
    GPtrArray *prepared = prepare_ok(stage, d, 1);
    g_assert_cmpint(((sw_tensor *)g_ptr_array_index(find_value(prepared, "ts")->items, 0))->shape[0], ==, 5);
    g_ptr_array_unref(prepared);
    replace_value(d, strings("ts", (const char *const[]){"1,2,3"}, 1));
    g_ptr_array_unref(prepare_ok(stage, d, 1));
    replace_value(d, numeric("ts", SW_DTYPE_FP32, 2, (int64_t[]){2, 0}, NULL));
    expect_refused(stage, d, "input 'ts' (timeseries): a row needs at least one value", "[2,0]");
    sw_stage_free(stage);
    fixture_clear(&f);
}

/* ---- sw_stage_run ---- */

static void test_run_echo_shares(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *decoded = preprocessor_inputs();
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    GError *error = NULL;
    GPtrArray *outputs = sw_stage_run(stage, prepared, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(outputs->len, ==, 4);
    sw_output *age = find_output(outputs, "age");
    g_assert_false(age->json);
    g_assert_cmpint(age->tensor->dtype, ==, SW_DTYPE_FP32);
    /* Nothing was copied on the way from the request to the reply. */
    g_assert_true(sw_tensor_data(age->tensor, NULL) == sw_tensor_data(find_value(decoded, "age")->tensor, NULL));
    g_assert_true(sw_tensor_data(find_output(outputs, "color")->tensor, NULL) ==
                  sw_tensor_data(find_value(decoded, "color")->tensor, NULL));
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[0]), ==, 1);
    g_assert_cmpint(sw_fake_torch_max_rows(stage->instances[0]), ==, 2);
    /* The outputs outlive the request and what was prepared from it. */
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    const float *a = sw_tensor_data(age->tensor, NULL);
    g_assert_cmpfloat(a[1], ==, 50.5f);
    g_ptr_array_unref(outputs);
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_run_scale_and_fail(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=scale\nfactor=2", "op=fail\nerror=ValueError: bad row");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREDICTOR, 1);
    GPtrArray *decoded = predictor_inputs();
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    GError *error = NULL;
    GPtrArray *outputs = sw_stage_run(stage, prepared, &error);
    g_assert_no_error(error);
    const float *age = sw_tensor_data(find_output(outputs, "age")->tensor, NULL);
    g_assert_cmpfloat(age[0], ==, 60.0f);
    g_assert_cmpfloat(age[1], ==, 101.0f);
    /* Integer tensors are not scaled. */
    const int32_t *color = sw_tensor_data(find_output(outputs, "color")->tensor, NULL);
    g_assert_cmpint(color[1], ==, 2);
    g_ptr_array_unref(outputs);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    sw_stage_free(stage);

    /* A module's own error reaches the client, prefixed by the model. */
    stage = loaded_stage(&f, SW_STAGE_POSTPROCESSOR, 1);
    decoded = sw_value_array_new();
    g_ptr_array_add(decoded, numeric("label::predictions", SW_DTYPE_INT64, 1, (int64_t[]){1}, (int64_t[]){2}));
    g_ptr_array_add(decoded, numeric("label::probabilities", SW_DTYPE_FP32, 2, (int64_t[]){1, 3}, (float[3]){0}));
    g_ptr_array_add(decoded, fp32_rows("score::predictions", ages, 1));
    prepared = prepare_ok(stage, decoded, 1);
    g_assert_null(sw_stage_run(stage, prepared, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_cmpstr(error->message, ==, "m_postprocessor: forward failed: ValueError: bad row");
    g_clear_error(&error);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_run_ragged_output(void)
{
    fixture f;
    fixture_support(&f, "op=echo\ntokens_output=review::tokens\nrows_output=rows", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREPROCESSOR, 1);
    GPtrArray *decoded = preprocessor_inputs();
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    GError *error = NULL;
    GPtrArray *outputs = sw_stage_run(stage, prepared, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(outputs->len, ==, 6);
    /* List[List[str]]: one JSON array per row, marked as JSON. */
    sw_output *tokens = find_output(outputs, "review::tokens");
    g_assert_true(tokens->json);
    g_assert_cmpint(tokens->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(tokens->tensor->ndim, ==, 1);
    g_assert_cmpint(tokens->tensor->shape[0], ==, 2);
    size_t len = 0;
    const char *row = sw_tensor_bytes_element(tokens->tensor, 0, &len);
    /* The first strings input is color: "red", "dark green". */
    g_assert_cmpmem(row, len, "[\"red\"]", 7);
    row = sw_tensor_bytes_element(tokens->tensor, 1, &len);
    g_assert_cmpmem(row, len, "[\"dark\",\"green\"]", 16);
    /* Plain tensors and List[str] are not JSON. */
    g_assert_false(find_output(outputs, "color")->json);
    sw_output *rows = find_output(outputs, "rows");
    g_assert_false(rows->json);
    g_assert_cmpint(((const int64_t *)sw_tensor_data(rows->tensor, NULL))[1], ==, 2);
    g_ptr_array_unref(outputs);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    sw_stage_free(stage);
    fixture_clear(&f);
}

static void test_run_instances(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREDICTOR, 3);
    GPtrArray *decoded = predictor_inputs();
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    GError *error = NULL;
    /* Four calls over three instances: each in turn, then the first again. */
    for (int i = 0; i < 4; i++) {
        GPtrArray *outputs = sw_stage_run(stage, prepared, &error);
        g_assert_no_error(error);
        g_ptr_array_unref(outputs);
    }
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[0]), ==, 2);
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[1]), ==, 1);
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[2]), ==, 1);

    GPtrArray *outputs = sw_stage_run_instance(stage, 2, prepared, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(outputs->len, ==, 4);
    g_ptr_array_unref(outputs);
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[2]), ==, 2);
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[0]), ==, 2);

    static const int out_of_range[] = {-1, 3, 100};
    for (size_t i = 0; i < G_N_ELEMENTS(out_of_range); i++) {
        g_assert_null(sw_stage_run_instance(stage, out_of_range[i], prepared, &error));
        g_assert_error(error, SW_ERROR, SW_CODE_UNAVAILABLE);
        assert_message_has(error, "m_predictor", "of 3");
        g_clear_error(&error);
    }
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[0]) +
                        sw_fake_torch_forward_calls(stage->instances[1]) +
                        sw_fake_torch_forward_calls(stage->instances[2]),
                    ==, 5);

    /* Input buffers are writable and of the size asked, for any instance. */
    for (int i = -1; i <= 3; i++) {
        GBytes *buf = sw_stage_new_input_buffer(stage, i, 64);
        gsize size = 0;
        g_assert_nonnull(g_bytes_get_data(buf, &size));
        g_assert_cmpuint(size, ==, 64);
        g_bytes_unref(buf);
    }
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    sw_stage_free(stage);
    fixture_clear(&f);
}

/* Runs from several threads at once share the instances without a lock. */
typedef struct run_job {
    sw_stage *stage;
    GPtrArray *prepared;
    int runs;
} run_job;

static gpointer run_many(gpointer data)
{
    run_job *job = data;
    for (int i = 0; i < job->runs; i++) {
        GError *error = NULL;
        GPtrArray *outputs = sw_stage_run(job->stage, job->prepared, &error);
        g_assert_no_error(error);
        g_ptr_array_unref(outputs);
    }
    return NULL;
}

static void test_run_concurrently(void)
{
    fixture f;
    fixture_support(&f, "op=echo", "op=echo", "op=echo");
    sw_stage *stage = loaded_stage(&f, SW_STAGE_PREDICTOR, 2);
    GPtrArray *decoded = predictor_inputs();
    GPtrArray *prepared = prepare_ok(stage, decoded, 2);
    run_job job = {.stage = stage, .prepared = prepared, .runs = 50};
    GThread *threads[4];
    for (int i = 0; i < 4; i++)
        threads[i] = g_thread_new("run", run_many, &job);
    for (int i = 0; i < 4; i++)
        g_thread_join(threads[i]);
    /* Strict turns: the 200 calls split evenly. */
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[0]), ==, 100);
    g_assert_cmpint(sw_fake_torch_forward_calls(stage->instances[1]), ==, 100);
    g_ptr_array_unref(prepared);
    g_ptr_array_unref(decoded);
    sw_stage_free(stage);
    fixture_clear(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/stage/new-and-load", test_new_and_load);
    g_test_add_func("/stage/load-errors", test_load_errors);
    g_test_add_func("/stage/prepare-ok", test_prepare_ok);
    g_test_add_func("/stage/prepare-column-inputs", test_prepare_column_inputs);
    g_test_add_func("/stage/prepare-refuses", test_prepare_refuses);
    g_test_add_func("/stage/prepare-dates", test_prepare_dates);
    g_test_add_func("/stage/prepare-string-forms", test_prepare_string_forms);
    g_test_add_func("/stage/prepare-timeseries-and-h3-forms", test_prepare_timeseries_and_h3_forms);
    g_test_add_func("/stage/prepare-timeseries-text", test_prepare_timeseries_text);
    g_test_add_func("/stage/prepare-timeseries-and-h3-refused", test_prepare_timeseries_and_h3_refused);
    g_test_add_func("/stage/prepare-timeseries-any-length", test_prepare_timeseries_any_length);
    g_test_add_func("/stage/run-echo-shares", test_run_echo_shares);
    g_test_add_func("/stage/run-scale-and-fail", test_run_scale_and_fail);
    g_test_add_func("/stage/run-ragged-output", test_run_ragged_output);
    g_test_add_func("/stage/run-instances", test_run_instances);
    g_test_add_func("/stage/run-concurrently", test_run_concurrently);
    return g_test_run();
}
