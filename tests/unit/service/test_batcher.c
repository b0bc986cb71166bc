/* The batcher on its own, over a predictor stage with a fake module: which
 * requests share a forward call, that each gets exactly its own rows back,
 * and how a full queue, unwanted requests, failures and freeing end them. */
#include <string.h>

#include "batcher.h"
#include "fake_torch.h"
#include "output.h"
#include "sw_error.h"
#include "unit_support.h"

#define WAIT_US (10 * G_USEC_PER_SEC)
/* Long enough that a batch never closes by its delay during a test that
 * expects it to close by size (or by sw_batcher_free). */
#define LONG_DELAY_US (30 * G_USEC_PER_SEC)

/* One loaded predictor whose fake module echoes its inputs and adds
 * "rows": the rows of the forward call that served a request. */
typedef struct fixture {
    char *dir;
    sw_export *export;
    sw_stage *stage;
    GMutex lock;
    GCond changed;
    int done;
} fixture;

static void fixture_init(fixture *f, const char *module)
{
    memset(f, 0, sizeof *f);
    f->dir = sw_test_dir_new();
    sw_test_write_export(f->dir, NULL, module, NULL);
    GError *error = NULL;
    f->export = sw_export_load(f->dir, &error);
    g_assert_no_error(error);
    f->stage = sw_stage_new(SW_STAGE_PREDICTOR, f->export, "m", NULL, &error);
    g_assert_no_error(error);
    g_assert_true(sw_stage_load_module(f->stage, 1, &error));
    g_assert_no_error(error);
    g_mutex_init(&f->lock);
    g_cond_init(&f->changed);
}

static void fixture_clear(fixture *f)
{
    sw_stage_free(f->stage);
    sw_export_free(f->export);
    sw_test_dir_remove(f->dir);
    g_mutex_clear(&f->lock);
    g_cond_clear(&f->changed);
}

static int forward_calls(const fixture *f)
{
    return sw_fake_torch_forward_calls(f->stage->instances[0]);
}

/* What one request was answered with, kept for the test thread. */
typedef struct request {
    fixture *f;
    gboolean wanted;
    int calls;       /* times done ran: must end at exactly 1 */
    GPtrArray *outs; /* copies of its outputs, or NULL */
    GError *error;
    sw_batch_timing timing;
    GThread *thread; /* where done ran */
} request;

static sw_output *output_copy(const sw_output *o)
{
    sw_output *c = g_new0(sw_output, 1);
    c->name = g_strdup(o->name);
    c->json = o->json;
    c->tensor = sw_tensor_share(o->tensor, 0, NULL);
    return c;
}

static void on_done(GPtrArray *outputs, const GError *error, const sw_batch_timing *timing, void *user_data)
{
    request *r = user_data;
    fixture *f = r->f;
    g_mutex_lock(&f->lock);
    r->calls++;
    r->timing = *timing;
    r->thread = g_thread_self();
    if (outputs) {
        r->outs = sw_output_array_new();
        for (guint i = 0; i < outputs->len; i++)
            g_ptr_array_add(r->outs, output_copy(g_ptr_array_index(outputs, i)));
    }
    if (error)
        r->error = g_error_copy(error);
    f->done++;
    g_cond_broadcast(&f->changed);
    g_mutex_unlock(&f->lock);
}

static gboolean is_wanted(void *user_data)
{
    return ((request *)user_data)->wanted;
}

static void wait_done(fixture *f, int n)
{
    gint64 until = g_get_monotonic_time() + WAIT_US;
    g_mutex_lock(&f->lock);
    while (f->done < n)
        g_assert_true(g_cond_wait_until(&f->changed, &f->lock, until));
    g_mutex_unlock(&f->lock);
}

static void request_clear(request *r)
{
    if (r->outs)
        g_ptr_array_unref(r->outs);
    g_clear_error(&r->error);
}

static sw_value *fp32_value(const char *name, int ndim, const int64_t *shape, const float *data)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return sw_value_new_tensor(name, SW_VALUE_TENSOR,
                               sw_tensor_new_copy(SW_DTYPE_FP32, ndim, shape, data, sizeof(float) * (size_t)n));
}

/* One input "x" FP32 [1] holding `v`. */
static GPtrArray *one_row(float v)
{
    GPtrArray *a = sw_value_array_new();
    int64_t shape[1] = {1};
    g_ptr_array_add(a, fp32_value("x", 1, shape, &v));
    return a;
}

/* One input "x" FP32 [rows] holding first, first + 1, ... */
static GPtrArray *rows_of(int rows, float first)
{
    GPtrArray *a = sw_value_array_new();
    int64_t shape[1] = {rows};
    float *v = g_new(float, rows);
    for (int i = 0; i < rows; i++)
        v[i] = first + (float)i;
    g_ptr_array_add(a, fp32_value("x", 1, shape, v));
    g_free(v);
    return a;
}

static void submit(sw_batcher *b, request *r, GPtrArray *prepared, int64_t rows)
{
    GError *error = NULL;
    g_assert_true(sw_batcher_submit(b, prepared, rows, is_wanted, on_done, r, &error));
    g_assert_no_error(error);
}

static void submit_for_caller(sw_batcher *b, request *r, GPtrArray *prepared, int64_t rows)
{
    GError *error = NULL;
    g_assert_true(sw_batcher_submit_for_caller(b, prepared, rows, is_wanted, on_done, r, &error));
    g_assert_no_error(error);
}

static const sw_output *find(const request *r, const char *name)
{
    g_assert_nonnull(r->outs);
    for (guint i = 0; i < r->outs->len; i++) {
        const sw_output *o = g_ptr_array_index(r->outs, i);
        if (strcmp(o->name, name) == 0)
            return o;
    }
    g_error("no output '%s'", name);
    return NULL;
}

/* The rows of the forward call that served `r`, as the module saw them. */
static int64_t batch_rows_of(const request *r)
{
    const sw_output *o = find(r, "rows");
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_INT64);
    g_assert_cmpint(o->tensor->shape[0], >=, 1);
    return ((const int64_t *)sw_tensor_data(o->tensor, NULL))[0];
}

static void assert_x_rows(const request *r, int rows, float first)
{
    g_assert_cmpint(r->calls, ==, 1);
    g_assert_no_error(r->error);
    const sw_output *x = find(r, "x");
    g_assert_cmpint(x->tensor->dtype, ==, SW_DTYPE_FP32);
    g_assert_cmpint(x->tensor->ndim, ==, 1);
    g_assert_cmpint(x->tensor->shape[0], ==, rows);
    const float *v = sw_tensor_data(x->tensor, NULL);
    for (int i = 0; i < rows; i++)
        g_assert_cmpfloat(v[i], ==, first + (float)i);
    g_assert_cmpint(find(r, "rows")->tensor->shape[0], ==, rows);
}

static sw_batcher *batcher_new(fixture *f, int max_batch, int delay_us, int queue, int executors)
{
    sw_batcher_options o = {
        .max_batch_size = max_batch, .max_queue_delay_us = delay_us, .max_queue_size = queue, .executors = executors};
    return sw_batcher_new(f->stage, &o, NULL);
}

static void test_requests_share_one_forward(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    /* The batch closes by size: the long delay never passes. */
    sw_batcher *b = batcher_new(&f, 4, LONG_DELAY_US, 16, 1);
    request r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit(b, &r[i], one_row(10.0f * (float)(i + 1)), 1);
    }
    wait_done(&f, 4);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    g_assert_cmpint(sw_fake_torch_max_rows(f.stage->instances[0]), ==, 4);
    for (int i = 0; i < 4; i++) {
        assert_x_rows(&r[i], 1, 10.0f * (float)(i + 1));
        g_assert_cmpint(batch_rows_of(&r[i]), ==, 4);
        g_assert_cmpint(r[i].timing.formed_us, >, 0);
        g_assert_cmpint(r[i].timing.started_us, >=, r[i].timing.formed_us);
        g_assert_cmpint(r[i].timing.finished_us, >=, r[i].timing.started_us);
        /* One forward call, of every request's rows. */
        g_assert_cmpint(r[i].timing.rows, ==, 4);
        g_assert_cmpuint(r[i].timing.execution, ==, r[0].timing.execution);
    }
    sw_batcher_free(b);
    for (int i = 0; i < 4; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

/* Multi-row requests come back with their own rows, in order, and a
 * request that would overflow the batch waits for the next one. */
static void test_max_batch_size_caps_a_batch(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 3, LONG_DELAY_US, 16, 1);
    request r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit(b, &r[i], one_row((float)i), 1);
    }
    wait_done(&f, 6);
    g_assert_cmpint(forward_calls(&f), ==, 2);
    g_assert_cmpint(sw_fake_torch_max_rows(f.stage->instances[0]), ==, 3);
    for (int i = 0; i < 6; i++) {
        assert_x_rows(&r[i], 1, (float)i);
        g_assert_cmpint(batch_rows_of(&r[i]), ==, 3);
    }
    for (int i = 0; i < 6; i++)
        request_clear(&r[i]);

    /* 2 + 2 rows do not fit in 3, however long they wait together: freeing
     * the batcher runs them as two batches. */
    memset(r, 0, sizeof r);
    f.done = 0;
    r[0] = (request){.f = &f, .wanted = TRUE};
    r[1] = (request){.f = &f, .wanted = TRUE};
    submit(b, &r[0], rows_of(2, 100.0f), 2);
    submit(b, &r[1], rows_of(2, 200.0f), 2);
    sw_batcher_free(b);
    g_assert_cmpint(f.done, ==, 2);
    assert_x_rows(&r[0], 2, 100.0f);
    assert_x_rows(&r[1], 2, 200.0f);
    g_assert_cmpint(batch_rows_of(&r[0]), ==, 2);
    g_assert_cmpint(batch_rows_of(&r[1]), ==, 2);
    g_assert_cmpint(forward_calls(&f), ==, 4);
    request_clear(&r[0]);
    request_clear(&r[1]);
    fixture_clear(&f);
}

/* Concatenating 2-D rows keeps each request's rows whole and in order. */
static void test_multi_row_requests_get_their_own_rows(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 6, LONG_DELAY_US, 16, 1);
    request r[3];
    const int rows[3] = {2, 1, 3};
    int64_t total = 0;
    for (int i = 0; i < 3; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        GPtrArray *a = sw_value_array_new();
        int64_t shape[2] = {rows[i], 2};
        float v[6];
        for (int k = 0; k < rows[i] * 2; k++)
            v[k] = (float)(100 * i + k);
        g_ptr_array_add(a, fp32_value("x", 2, shape, v));
        submit(b, &r[i], a, rows[i]);
        total += rows[i];
    }
    wait_done(&f, 3);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    for (int i = 0; i < 3; i++) {
        g_assert_no_error(r[i].error);
        const sw_output *x = find(&r[i], "x");
        g_assert_cmpint(x->tensor->ndim, ==, 2);
        g_assert_cmpint(x->tensor->shape[0], ==, rows[i]);
        g_assert_cmpint(x->tensor->shape[1], ==, 2);
        const float *v = sw_tensor_data(x->tensor, NULL);
        for (int k = 0; k < rows[i] * 2; k++)
            g_assert_cmpfloat(v[k], ==, (float)(100 * i + k));
        g_assert_cmpint(batch_rows_of(&r[i]), ==, total);
    }
    sw_batcher_free(b);
    for (int i = 0; i < 3; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

static GPtrArray *strings_row(const char *name, const char *const *strings, size_t n)
{
    GPtrArray *a = sw_value_array_new();
    g_ptr_array_add(a, sw_value_new_tensor(name, SW_VALUE_STRINGS, sw_tensor_new_strings(strings, NULL, n)));
    return a;
}

static void assert_strings(const request *r, const char *name, const char *const *expected, size_t n)
{
    g_assert_no_error(r->error);
    const sw_output *o = find(r, name);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(sw_tensor_element_count(o->tensor), ==, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(o->tensor, i, &len);
        g_assert_cmpmem(e, len, expected[i], strlen(expected[i]));
    }
}

/* BYTES rows are concatenated and split by their offsets, and inputs
 * listed in different orders still batch together. */
static void test_strings_and_input_order_batch(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 3, LONG_DELAY_US, 16, 1);
    static const char *const first[] = {"", "hello world"};
    static const char *const second[] = {"x"};
    request r[2] = {{.f = &f, .wanted = TRUE}, {.f = &f, .wanted = TRUE}};
    GPtrArray *a = strings_row("s", first, 2);
    int64_t shape[1] = {2};
    float av[2] = {1, 2};
    g_ptr_array_add(a, fp32_value("a", 1, shape, av));
    submit(b, &r[0], a, 2);
    /* "a" before "s" here, "s" before "a" above. */
    GPtrArray *c = sw_value_array_new();
    shape[0] = 1;
    float cv[1] = {3};
    g_ptr_array_add(c, fp32_value("a", 1, shape, cv));
    GPtrArray *s = strings_row("s", second, 1);
    g_ptr_array_add(c, g_ptr_array_steal_index(s, 0));
    g_ptr_array_unref(s);
    submit(b, &r[1], c, 1);
    wait_done(&f, 2);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    assert_strings(&r[0], "s", first, 2);
    assert_strings(&r[1], "s", second, 1);
    g_assert_cmpint(batch_rows_of(&r[0]), ==, 3);
    const float *v0 = sw_tensor_data(find(&r[0], "a")->tensor, NULL);
    const float *v1 = sw_tensor_data(find(&r[1], "a")->tensor, NULL);
    g_assert_cmpfloat(v0[0], ==, 1);
    g_assert_cmpfloat(v0[1], ==, 2);
    g_assert_cmpfloat(v1[0], ==, 3);
    sw_batcher_free(b);
    request_clear(&r[0]);
    request_clear(&r[1]);
    fixture_clear(&f);
}

/* Rows that cannot be concatenated never share a forward call. */
static void test_incompatible_requests_run_apart(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    /* Nothing is due before the batcher is freed, which then runs every
     * request, batch by batch, in as few batches as they allow. */
    sw_batcher *b = batcher_new(&f, 16, LONG_DELAY_US, 16, 1);
    enum { N = 6 };
    request r[N];
    for (int i = 0; i < N; i++)
        r[i] = (request){.f = &f, .wanted = TRUE};
    int64_t one[1] = {1};
    float v = 1;
    double d = 2;
    submit(b, &r[0], one_row(1.0f), 1);
    GPtrArray *fp64 = sw_value_array_new();
    g_ptr_array_add(fp64,
                    sw_value_new_tensor("x", SW_VALUE_TENSOR, sw_tensor_new_copy(SW_DTYPE_FP64, 1, one, &d, sizeof d)));
    submit(b, &r[1], fp64, 1); /* another datatype */
    GPtrArray *wide = sw_value_array_new();
    int64_t one_by_two[2] = {1, 2};
    float two[2] = {3, 4};
    g_ptr_array_add(wide, fp32_value("x", 2, one_by_two, two));
    submit(b, &r[2], wide, 1); /* another number of dimensions */
    GPtrArray *renamed = sw_value_array_new();
    g_ptr_array_add(renamed, fp32_value("y", 1, one, &v));
    submit(b, &r[3], renamed, 1); /* another input */
    GPtrArray *wider = sw_value_array_new();
    int64_t one_by_one[2] = {1, 1};
    g_ptr_array_add(wider, fp32_value("x", 2, one_by_one, &v));
    submit(b, &r[4], wider, 1); /* another row shape than r[2] */
    submit(b, &r[5], one_row(6.0f), 1);
    sw_batcher_free(b);
    g_assert_cmpint(f.done, ==, N);
    /* r[0] and r[5] together, every other one alone. */
    g_assert_cmpint(forward_calls(&f), ==, 5);
    assert_x_rows(&r[0], 1, 1.0f);
    assert_x_rows(&r[5], 1, 6.0f);
    g_assert_cmpint(batch_rows_of(&r[0]), ==, 2);
    g_assert_cmpint(batch_rows_of(&r[5]), ==, 2);
    for (int i = 1; i <= 4; i++) {
        g_assert_no_error(r[i].error);
        g_assert_cmpint(batch_rows_of(&r[i]), ==, 1);
    }
    g_assert_cmpint(find(&r[1], "x")->tensor->dtype, ==, SW_DTYPE_FP64);
    g_assert_cmpint(find(&r[2], "x")->tensor->shape[1], ==, 2);
    g_assert_cmpint(find(&r[4], "x")->tensor->shape[1], ==, 1);
    for (int i = 0; i < N; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

static void test_full_queue_refuses(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    /* Nothing is due: requests stay queued until the batcher is freed. */
    sw_batcher *b = batcher_new(&f, 10, LONG_DELAY_US, 2, 1);
    request r[3];
    for (int i = 0; i < 3; i++)
        r[i] = (request){.f = &f, .wanted = TRUE};
    submit(b, &r[0], one_row(1.0f), 1);
    submit(b, &r[1], one_row(2.0f), 1);
    GPtrArray *refused = one_row(3.0f);
    GError *error = NULL;
    g_assert_false(sw_batcher_submit(b, refused, 1, is_wanted, on_done, &r[2], &error));
    g_assert_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED);
    g_assert_nonnull(strstr(error->message, "queue is full"));
    g_clear_error(&error);
    /* The caller still owns what was refused. */
    g_assert_cmpint(refused->len, ==, 1);
    g_ptr_array_unref(refused);
    g_assert_cmpint(forward_calls(&f), ==, 0);

    /* Freeing runs the queued requests rather than dropping them. */
    sw_batcher_free(b);
    g_assert_cmpint(f.done, ==, 2);
    g_assert_cmpint(r[2].calls, ==, 0);
    assert_x_rows(&r[0], 1, 1.0f);
    assert_x_rows(&r[1], 1, 2.0f);
    g_assert_cmpint(batch_rows_of(&r[0]), ==, 2);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    for (int i = 0; i < 3; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

static void test_unwanted_requests_do_not_run(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 2, 2000, 16, 1);
    request gone = {.f = &f, .wanted = FALSE};
    request kept = {.f = &f, .wanted = TRUE};
    submit(b, &gone, one_row(1.0f), 1);
    submit(b, &kept, one_row(2.0f), 1);
    wait_done(&f, 2);
    g_assert_cmpint(gone.calls, ==, 1);
    g_assert_null(gone.outs);
    g_assert_error(gone.error, SW_ERROR, SW_CODE_DEADLINE_EXCEEDED);
    g_assert_cmpint(gone.timing.started_us, ==, 0);
    g_assert_cmpint(gone.timing.finished_us, ==, 0);
    /* The one still wanted ran, without the other's row. */
    assert_x_rows(&kept, 1, 2.0f);
    g_assert_cmpint(batch_rows_of(&kept), ==, 1);
    g_assert_cmpint(forward_calls(&f), ==, 1);

    /* Alone, an unwanted request is answered without any forward call,
     * long before its delay would have passed. */
    sw_batcher_free(b);
    b = batcher_new(&f, 4, LONG_DELAY_US, 16, 1);
    request alone = {.f = &f, .wanted = FALSE};
    submit(b, &alone, one_row(3.0f), 1);
    wait_done(&f, 3);
    g_assert_error(alone.error, SW_ERROR, SW_CODE_DEADLINE_EXCEEDED);
    g_assert_null(alone.outs);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    sw_batcher_free(b);
    g_assert_cmpint(alone.calls, ==, 1);
    request_clear(&gone);
    request_clear(&kept);
    request_clear(&alone);
    fixture_clear(&f);
}

/* One client's rows that the module refuses fail that client's call
 * alone: the batch runs again request by request. */
static void test_bad_request_fails_alone(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrefuse_negative=true");
    sw_batcher *b = batcher_new(&f, 3, LONG_DELAY_US, 16, 1);
    request r[3];
    const float values[3] = {1.0f, -1.0f, 2.0f};
    for (int i = 0; i < 3; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit(b, &r[i], one_row(values[i]), 1);
    }
    wait_done(&f, 3);
    g_assert_cmpint(forward_calls(&f), ==, 4);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(r[i].calls, ==, 1);
        if (values[i] < 0) {
            g_assert_null(r[i].outs);
            g_assert_error(r[i].error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
            /* Counted in its own rows, not the batch's. */
            g_assert_nonnull(strstr(r[i].error->message, "element 0 is negative"));
        } else {
            g_assert_no_error(r[i].error);
            g_assert_nonnull(r[i].outs);
        }
    }
    sw_batcher_free(b);
    for (int i = 0; i < 3; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

static void test_forward_failure_reaches_every_request(void)
{
    fixture f;
    fixture_init(&f, "op=fail\nerror=boom");
    sw_batcher *b = batcher_new(&f, 3, LONG_DELAY_US, 16, 1);
    request r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit(b, &r[i], one_row((float)i), 1);
    }
    wait_done(&f, 3);
    /* The batch, then each request alone, each failing on its own. */
    g_assert_cmpint(forward_calls(&f), ==, 4);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(r[i].calls, ==, 1);
        g_assert_null(r[i].outs);
        g_assert_error(r[i].error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
        g_assert_nonnull(strstr(r[i].error->message, "forward failed: boom"));
        g_assert_nonnull(strstr(r[i].error->message, "m_predictor"));
        /* It ran, so it has a time. */
        g_assert_cmpint(r[i].timing.started_us, >, 0);
    }
    sw_batcher_free(b);
    for (int i = 0; i < 3; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

/* Several executors drain the queue concurrently and every request is
 * answered exactly once. */
static void test_many_requests_each_answered_once(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 8, 2000, 256, 3);
    enum { N = 200 };
    request *r = g_new0(request, N);
    for (int i = 0; i < N; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit(b, &r[i], one_row((float)i), 1);
    }
    wait_done(&f, N);
    sw_batcher_free(b);
    g_assert_cmpint(f.done, ==, N);
    for (int i = 0; i < N; i++) {
        assert_x_rows(&r[i], 1, (float)i);
        g_assert_cmpint(batch_rows_of(&r[i]), <=, 8);
        request_clear(&r[i]);
    }
    g_assert_cmpint(forward_calls(&f), <, N);
    g_assert_cmpint(sw_fake_torch_max_rows(f.stage->instances[0]), <=, 8);
    g_free(r);
    fixture_clear(&f);
}

/* Requests left for the caller run when it asks, on its thread, whatever
 * the queue delay (the long one here keeps the executor off them), in
 * batches of what waits; requests for the executors stay theirs. */
static void test_caller_runs_what_it_queued(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 4, LONG_DELAY_US, 16, 1);
    g_assert_false(sw_batcher_has_ready_for_caller(b));
    sw_batcher_run_ready(b);
    g_assert_cmpint(forward_calls(&f), ==, 0);
    request r[7];
    for (int i = 0; i < 6; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit_for_caller(b, &r[i], one_row((float)i), 1);
    }
    r[6] = (request){.f = &f, .wanted = TRUE};
    submit(b, &r[6], one_row(6.0f), 1);
    g_assert_true(sw_batcher_has_ready_for_caller(b));
    sw_batcher_run_ready(b);
    /* Answered before it returned, in one forward call of max_batch_size. */
    g_assert_cmpint(f.done, ==, 4);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    g_assert_true(sw_batcher_has_ready_for_caller(b));
    sw_batcher_run_ready(b);
    g_assert_cmpint(f.done, ==, 6);
    g_assert_cmpint(forward_calls(&f), ==, 2);
    g_assert_false(sw_batcher_has_ready_for_caller(b));
    for (int i = 0; i < 6; i++) {
        assert_x_rows(&r[i], 1, (float)i);
        g_assert_cmpint(batch_rows_of(&r[i]), ==, i < 4 ? 4 : 2);
        g_assert_true(r[i].thread == g_thread_self());
    }
    /* The executor's request is not the caller's to run. */
    g_assert_cmpint(r[6].calls, ==, 0);
    sw_batcher_free(b);
    assert_x_rows(&r[6], 1, 6.0f);
    g_assert_true(r[6].thread != g_thread_self());
    for (int i = 0; i < 7; i++)
        request_clear(&r[i]);
    fixture_clear(&f);
}

/* However large max_batch_size, the caller runs at most
 * SW_BATCHER_CALLER_MAX_ROWS rows at once; an unwanted request it finds is
 * answered without running. */
static void test_caller_batches_are_bounded(void)
{
    enum { N = SW_BATCHER_CALLER_MAX_ROWS + 6 };
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 1000, LONG_DELAY_US, 1000, 1);
    request *r = g_new0(request, N + 1);
    for (int i = 0; i < N; i++) {
        r[i] = (request){.f = &f, .wanted = TRUE};
        submit_for_caller(b, &r[i], one_row((float)i), 1);
    }
    r[N] = (request){.f = &f, .wanted = FALSE};
    submit_for_caller(b, &r[N], one_row(-1.0f), 1);
    sw_batcher_run_ready(b);
    g_assert_cmpint(forward_calls(&f), ==, 1);
    g_assert_cmpint(sw_fake_torch_max_rows(f.stage->instances[0]), ==, SW_BATCHER_CALLER_MAX_ROWS);
    /* The unwanted one is answered by the first look. */
    g_assert_cmpint(f.done, ==, SW_BATCHER_CALLER_MAX_ROWS + 1);
    g_assert_error(r[N].error, SW_ERROR, SW_CODE_DEADLINE_EXCEEDED);
    sw_batcher_run_ready(b);
    g_assert_false(sw_batcher_has_ready_for_caller(b));
    g_assert_cmpint(f.done, ==, N + 1);
    for (int i = 0; i < N; i++) {
        assert_x_rows(&r[i], 1, (float)i);
        g_assert_cmpint(batch_rows_of(&r[i]), ==, i < SW_BATCHER_CALLER_MAX_ROWS ? SW_BATCHER_CALLER_MAX_ROWS : 6);
    }
    sw_batcher_free(b);
    for (int i = 0; i <= N; i++)
        request_clear(&r[i]);
    g_free(r);
    fixture_clear(&f);
}

/* What the caller never ran when the batcher ends still runs. */
static void test_caller_requests_run_at_the_end(void)
{
    fixture f;
    fixture_init(&f, "op=echo\nrows_output=rows");
    sw_batcher *b = batcher_new(&f, 4, LONG_DELAY_US, 16, 1);
    request r = {.f = &f, .wanted = TRUE};
    submit_for_caller(b, &r, one_row(5.0f), 1);
    sw_batcher_free(b);
    assert_x_rows(&r, 1, 5.0f);
    request_clear(&r);
    fixture_clear(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/batcher/requests-share-one-forward", test_requests_share_one_forward);
    g_test_add_func("/batcher/max-batch-size-caps-a-batch", test_max_batch_size_caps_a_batch);
    g_test_add_func("/batcher/multi-row-requests-get-their-own-rows", test_multi_row_requests_get_their_own_rows);
    g_test_add_func("/batcher/strings-and-input-order-batch", test_strings_and_input_order_batch);
    g_test_add_func("/batcher/incompatible-requests-run-apart", test_incompatible_requests_run_apart);
    g_test_add_func("/batcher/full-queue-refuses", test_full_queue_refuses);
    g_test_add_func("/batcher/unwanted-requests-do-not-run", test_unwanted_requests_do_not_run);
    g_test_add_func("/batcher/bad-request-fails-alone", test_bad_request_fails_alone);
    g_test_add_func("/batcher/forward-failure-reaches-every-request", test_forward_failure_reaches_every_request);
    g_test_add_func("/batcher/many-requests-each-answered-once", test_many_requests_each_answered_once);
    g_test_add_func("/batcher/caller-runs-what-it-queued", test_caller_runs_what_it_queued);
    g_test_add_func("/batcher/caller-batches-are-bounded", test_caller_batches_are_bounded);
    g_test_add_func("/batcher/caller-requests-run-at-the-end", test_caller_requests_run_at_the_end);
    return g_test_run();
}
