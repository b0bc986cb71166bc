/* Tensors and values: datatypes, shapes and their overflow checks, buffer
 * ownership (new, copy, share), BYTES elements, and the text form of
 * elements that every JSON and CLI output goes through. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sw_error.h"
#include "tensor.h"

/* Counts how often a buffer's free function ran, to see who holds it. */
static void count_free(gpointer data)
{
    (*(int *)data)++;
}

static void test_dtype_names_round_trip(void)
{
    static const char *const names[] = {"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                                        "INT32", "INT64", "FP16",   "BF16",   "FP32",   "FP64", "BYTES"};
    static const size_t sizes[] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 2, 4, 8, 0};
    g_assert_cmpint(G_N_ELEMENTS(names), ==, SW_DTYPE_COUNT - 1);
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        sw_dtype d = (sw_dtype)(i + 1);
        g_assert_cmpstr(sw_dtype_name(d), ==, names[i]);
        g_assert_cmpint(sw_dtype_from_name(names[i]), ==, d);
        g_assert_cmpuint(sw_dtype_size(d), ==, sizes[i]);
        g_assert_cmpint(sw_dtype_is_numeric(d), ==, d != SW_DTYPE_BYTES);
    }
    g_assert_cmpstr(sw_dtype_name(SW_DTYPE_INVALID), ==, "INVALID");
    g_assert_cmpstr(sw_dtype_name((sw_dtype)SW_DTYPE_COUNT), ==, "INVALID");
    g_assert_cmpstr(sw_dtype_name((sw_dtype)-1), ==, "INVALID");
    g_assert_cmpuint(sw_dtype_size(SW_DTYPE_INVALID), ==, 0);
    g_assert_cmpuint(sw_dtype_size((sw_dtype)99), ==, 0);
    g_assert_false(sw_dtype_is_numeric(SW_DTYPE_INVALID));
    /* Names are matched exactly: the wire is case-sensitive, and "INVALID"
     * is not a datatype a client may send. */
    g_assert_cmpint(sw_dtype_from_name("fp32"), ==, SW_DTYPE_INVALID);
    g_assert_cmpint(sw_dtype_from_name("FLOAT32"), ==, SW_DTYPE_INVALID);
    g_assert_cmpint(sw_dtype_from_name("INVALID"), ==, SW_DTYPE_INVALID);
    g_assert_cmpint(sw_dtype_from_name(""), ==, SW_DTYPE_INVALID);
    g_assert_cmpint(sw_dtype_from_name(NULL), ==, SW_DTYPE_INVALID);
}

static void expect_count_error(int ndim, const int64_t *shape, const char *substring)
{
    GError *error = NULL;
    int64_t count = -12345;
    g_assert_false(sw_shape_element_count(ndim, shape, "input 'x'", &count, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    if (!g_str_has_prefix(error->message, "input 'x': ") || strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks the name or '%s'", error->message, substring);
    g_error_free(error);
}

static void test_shape_element_count(void)
{
    GError *error = NULL;
    int64_t count = 0;
    const int64_t s234[] = {2, 3, 4};
    g_assert_true(sw_shape_element_count(3, s234, "x", &count, &error));
    g_assert_no_error(error);
    g_assert_cmpint(count, ==, 24);

    g_assert_true(sw_shape_element_count(0, NULL, "x", &count, &error));
    g_assert_cmpint(count, ==, 1); /* a scalar */

    /* A zero dimension makes any other dimension harmless. */
    const int64_t empty[] = {INT64_MAX, 0, INT64_MAX};
    g_assert_true(sw_shape_element_count(3, empty, "x", &count, &error));
    g_assert_cmpint(count, ==, 0);

    const int64_t biggest[] = {INT64_MAX, 1};
    g_assert_true(sw_shape_element_count(2, biggest, "x", &count, &error));
    g_assert_cmpint(count, ==, INT64_MAX);
    const int64_t two62[] = {INT64_C(1) << 31, INT64_C(1) << 31};
    g_assert_true(sw_shape_element_count(2, two62, "x", &count, &error));
    g_assert_cmpint(count, ==, INT64_C(1) << 62);

    const int64_t two64[] = {INT64_C(1) << 32, INT64_C(1) << 32};
    expect_count_error(2, two64, "too many elements");
    const int64_t wraps_positive[] = {3, INT64_C(1) << 62}; /* wraps to a plausible 2^62 */
    expect_count_error(2, wraps_positive, "too many elements");
    const int64_t eight_dims[] = {256, 256, 256, 256, 256, 256, 256, 256}; /* 2^64 */
    expect_count_error(8, eight_dims, "too many elements");
    const int64_t negative[] = {2, -1};
    expect_count_error(2, negative, "dimension 1 is negative (-1)");
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_count_error(9, nine, "9 dimensions, at most 8");
    expect_count_error(-1, nine, "dimensions");
}

static void test_new_adds_its_own_reference(void)
{
    int freed = 0;
    float *values = g_new(float, 6);
    for (int i = 0; i < 6; i++)
        values[i] = (float)i;
    GBytes *data = g_bytes_new_with_free_func(values, 6 * sizeof(float), count_free, &freed);
    const int64_t shape[] = {2, 3};
    sw_tensor *t = sw_tensor_new(SW_DTYPE_FP32, 2, shape, data);
    g_bytes_unref(data);
    g_assert_cmpint(freed, ==, 0);
    size_t nbytes = 0;
    g_assert_true(sw_tensor_data(t, &nbytes) == values);
    g_assert_cmpuint(nbytes, ==, 24);
    g_assert_cmpint(t->ndim, ==, 2);
    g_assert_cmpint(t->shape[0], ==, 2);
    g_assert_cmpint(t->shape[1], ==, 3);
    g_assert_null(t->offsets);
    g_assert_cmpint(sw_tensor_element_count(t), ==, 6);
    g_assert_cmpint(sw_tensor_batch_size(t), ==, 2);
    sw_tensor_free(t);
    g_assert_cmpint(freed, ==, 1);
    g_free(values);
    sw_tensor_free(NULL);
}

static void test_new_copy(void)
{
    int32_t src[3] = {7, -8, 9};
    const int64_t shape[] = {3};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_INT32, 1, shape, src, sizeof src);
    src[0] = 100; /* the tensor holds its own copy */
    const int32_t *d = sw_tensor_data(t, NULL);
    g_assert_true((const void *)d != (const void *)src);
    g_assert_cmpint(d[0], ==, 7);
    g_assert_cmpint(d[1], ==, -8);
    sw_tensor_free(t);

    const int64_t s22[] = {2, 2};
    t = sw_tensor_new_copy(SW_DTYPE_FP64, 2, s22, NULL, 4 * sizeof(double));
    const double *z = sw_tensor_data(t, NULL);
    for (int i = 0; i < 4; i++)
        g_assert_cmpfloat(z[i], ==, 0.0);
    sw_tensor_free(t);

    const int64_t none[] = {0, 5};
    t = sw_tensor_new_copy(SW_DTYPE_INT64, 2, none, NULL, 0);
    size_t nbytes = 99;
    sw_tensor_data(t, &nbytes);
    g_assert_cmpuint(nbytes, ==, 0);
    g_assert_cmpint(sw_tensor_element_count(t), ==, 0);
    g_assert_cmpint(sw_tensor_batch_size(t), ==, 0);
    sw_tensor_free(t);

    /* A scalar: one element, and a batch of one. */
    const double pi = 3.25;
    t = sw_tensor_new_copy(SW_DTYPE_FP64, 0, NULL, &pi, sizeof pi);
    g_assert_cmpint(sw_tensor_element_count(t), ==, 1);
    g_assert_cmpint(sw_tensor_batch_size(t), ==, 1);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, 3.25);
    sw_tensor_free(t);
}

static void test_bytes_elements(void)
{
    /* Payloads back to back: "ab", "", "c\0d" (a NUL inside is data). */
    static const char payload[] = {'a', 'b', 'c', '\0', 'd'};
    int freed = 0;
    GBytes *bytes = g_bytes_new_with_free_func(payload, sizeof payload, count_free, &freed);
    size_t *offsets = g_new(size_t, 4);
    offsets[0] = 0, offsets[1] = 2, offsets[2] = 2, offsets[3] = 5;
    const int64_t shape[] = {3, 1};
    sw_tensor *t = sw_tensor_new_bytes(2, shape, bytes, offsets);
    g_bytes_unref(bytes);
    g_assert_cmpint(freed, ==, 0);
    g_assert_cmpint(t->dtype, ==, SW_DTYPE_BYTES);
    g_assert_true(t->offsets == offsets);
    size_t len = 99;
    const char *e = sw_tensor_bytes_element(t, 0, &len);
    g_assert_cmpmem(e, len, "ab", 2);
    e = sw_tensor_bytes_element(t, 1, &len);
    g_assert_cmpuint(len, ==, 0);
    e = sw_tensor_bytes_element(t, 2, &len);
    g_assert_cmpmem(e, len, "c\0d", 3);
    g_assert_true(isnan(sw_tensor_element_as_double(t, 0)));
    sw_tensor_free(t);
    g_assert_cmpint(freed, ==, 1);

    /* No buffer at all: elements are still readable empty strings. */
    GBytes *nothing = g_bytes_new(NULL, 0);
    size_t *zeros = g_new0(size_t, 3);
    const int64_t two[] = {2};
    t = sw_tensor_new_bytes(1, two, nothing, zeros);
    g_bytes_unref(nothing);
    e = sw_tensor_bytes_element(t, 1, &len);
    g_assert_nonnull(e);
    g_assert_cmpuint(len, ==, 0);
    sw_tensor_free(t);
}

static void test_new_strings(void)
{
    const char *words[] = {"alpha", "", "caf\xc3\xa9"};
    sw_tensor *t = sw_tensor_new_strings(words, NULL, 3);
    g_assert_cmpint(t->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(t->ndim, ==, 1);
    g_assert_cmpint(t->shape[0], ==, 3);
    size_t len = 0;
    for (size_t i = 0; i < 3; i++) {
        const char *e = sw_tensor_bytes_element(t, i, &len);
        g_assert_cmpmem(e, len, words[i], strlen(words[i]));
    }
    size_t total = 0;
    sw_tensor_data(t, &total);
    g_assert_cmpuint(total, ==, 5 + 0 + 5);
    sw_tensor_free(t);

    /* Explicit lengths: only that many bytes, NULs included. */
    const char *raw[] = {"xyz", "a\0b"};
    const size_t lens[] = {2, 3};
    t = sw_tensor_new_strings(raw, lens, 2);
    const char *e = sw_tensor_bytes_element(t, 0, &len);
    g_assert_cmpmem(e, len, "xy", 2);
    e = sw_tensor_bytes_element(t, 1, &len);
    g_assert_cmpmem(e, len, "a\0b", 3);
    sw_tensor_free(t);

    t = sw_tensor_new_strings(NULL, NULL, 0);
    g_assert_cmpint(t->shape[0], ==, 0);
    g_assert_cmpint(sw_tensor_element_count(t), ==, 0);
    sw_tensor_free(t);
}

static void test_share(void)
{
    int freed = 0;
    int64_t *values = g_new(int64_t, 6);
    for (int i = 0; i < 6; i++)
        values[i] = i * 10;
    GBytes *data = g_bytes_new_with_free_func(values, 6 * sizeof(int64_t), count_free, &freed);
    const int64_t shape[] = {2, 3};
    sw_tensor *t = sw_tensor_new(SW_DTYPE_INT64, 2, shape, data);
    g_bytes_unref(data);

    sw_tensor *same = sw_tensor_share(t, 0, NULL);
    g_assert_cmpint(same->ndim, ==, 2);
    g_assert_cmpint(same->shape[1], ==, 3);
    const int64_t flat[] = {6};
    sw_tensor *view = sw_tensor_share(t, 1, flat);
    g_assert_cmpint(view->ndim, ==, 1);
    g_assert_cmpint(view->shape[0], ==, 6);
    g_assert_cmpint(view->dtype, ==, SW_DTYPE_INT64);
    g_assert_true(sw_tensor_data(view, NULL) == values);
    g_assert_true(sw_tensor_data(same, NULL) == values);
    /* The original's shape is untouched by the view. */
    g_assert_cmpint(t->ndim, ==, 2);

    sw_tensor_free(t);
    sw_tensor_free(same);
    g_assert_cmpint(freed, ==, 0);
    g_assert_cmpint(sw_tensor_element_as_double(view, 5), ==, 50);
    sw_tensor_free(view);
    g_assert_cmpint(freed, ==, 1);
    g_free(values);

    /* BYTES: the buffer is shared, the offsets are the view's own. */
    const char *words[] = {"a", "bc", "def", "g"};
    sw_tensor *s = sw_tensor_new_strings(words, NULL, 4);
    const int64_t s22[] = {2, 2};
    sw_tensor *sv = sw_tensor_share(s, 2, s22);
    g_assert_true(sw_tensor_data(sv, NULL) == sw_tensor_data(s, NULL));
    g_assert_true(sv->offsets != s->offsets);
    g_assert_cmpmem(sv->offsets, 5 * sizeof(size_t), s->offsets, 5 * sizeof(size_t));
    sw_tensor_free(s);
    size_t len = 0;
    const char *e = sw_tensor_bytes_element(sv, 2, &len);
    g_assert_cmpmem(e, len, "def", 3);
    g_assert_cmpint(sw_tensor_batch_size(sv), ==, 2);
    sw_tensor_free(sv);
}

static void test_element_as_double(void)
{
    const int64_t one[] = {1};
    const int64_t two[] = {2};
    const uint8_t b[2] = {0, 1};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_BOOL, 1, two, b, sizeof b);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 1), ==, 1.0);
    sw_tensor_free(t);
    const int8_t i8 = -128;
    t = sw_tensor_new_copy(SW_DTYPE_INT8, 1, one, &i8, 1);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, -128.0);
    sw_tensor_free(t);
    const uint16_t u16 = 65535;
    t = sw_tensor_new_copy(SW_DTYPE_UINT16, 1, one, &u16, 2);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, 65535.0);
    sw_tensor_free(t);
    const int16_t i16 = -32768;
    t = sw_tensor_new_copy(SW_DTYPE_INT16, 1, one, &i16, 2);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, -32768.0);
    sw_tensor_free(t);
    const uint32_t u32 = UINT32_MAX;
    t = sw_tensor_new_copy(SW_DTYPE_UINT32, 1, one, &u32, 4);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, 4294967295.0);
    sw_tensor_free(t);
    const int32_t i32 = INT32_MIN;
    t = sw_tensor_new_copy(SW_DTYPE_INT32, 1, one, &i32, 4);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, -2147483648.0);
    sw_tensor_free(t);
    const uint64_t u64 = UINT64_C(1) << 63;
    t = sw_tensor_new_copy(SW_DTYPE_UINT64, 1, one, &u64, 8);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 0), ==, 9223372036854775808.0);
    sw_tensor_free(t);
    const float f[2] = {0.5f, -2.25f};
    t = sw_tensor_new_copy(SW_DTYPE_FP32, 1, two, f, sizeof f);
    g_assert_cmpfloat(sw_tensor_element_as_double(t, 1), ==, -2.25);
    sw_tensor_free(t);
    /* Half floats are not decoded: NaN says so, rather than a wrong number. */
    const uint16_t half = 0x3c00; /* 1.0 */
    t = sw_tensor_new_copy(SW_DTYPE_FP16, 1, one, &half, 2);
    g_assert_true(isnan(sw_tensor_element_as_double(t, 0)));
    sw_tensor_free(t);
    t = sw_tensor_new_copy(SW_DTYPE_BF16, 1, one, &half, 2);
    g_assert_true(isnan(sw_tensor_element_as_double(t, 0)));
    sw_tensor_free(t);
}

/* Element 0 of a one-element tensor as text, after a prefix that must stay. */
static char *element_text(sw_dtype dtype, const void *value, gboolean json)
{
    const int64_t one[] = {1};
    sw_tensor *t = sw_tensor_new_copy(dtype, 1, one, value, sw_dtype_size(dtype));
    GString *out = g_string_new("v=");
    sw_tensor_append_element(out, t, 0, json);
    sw_tensor_free(t);
    g_assert_true(g_str_has_prefix(out->str, "v="));
    char *text = g_strdup(out->str + 2);
    g_string_free(out, TRUE);
    return text;
}

static void expect_f32(float v, const char *expected)
{
    char *text = element_text(SW_DTYPE_FP32, &v, TRUE);
    g_assert_cmpstr(text, ==, expected);
    /* Shortest, yet it reads back as the very same float. */
    g_assert_true((float)g_ascii_strtod(text, NULL) == v);
    g_free(text);
}

static void expect_f64(double v, const char *expected)
{
    char *text = element_text(SW_DTYPE_FP64, &v, TRUE);
    g_assert_cmpstr(text, ==, expected);
    g_assert_true(g_ascii_strtod(text, NULL) == v);
    g_free(text);
}

static void test_append_floats_shortest(void)
{
    expect_f32(0.1f, "0.1");
    expect_f32(1.5f, "1.5");
    expect_f32(2.0f, "2");
    expect_f32(1.0f / 3.0f, "0.33333334");
    expect_f32(16777216.0f, "16777216");
    expect_f32(123456.7f, "123456.7");
    expect_f32(3.4028235e38f, "3.4028235e+38");
    expect_f32(1e-7f, "1e-07");
    expect_f32(-0.25f, "-0.25");
    /* Six digits are enough here, while seven would show float noise. */
    expect_f32(0.000976565f, "0.000976565");

    expect_f64(0.1, "0.1");
    expect_f64(0.1 + 0.2, "0.30000000000000004");
    expect_f64(1.0 / 3.0, "0.3333333333333333");
    expect_f64(2.0, "2");
    /* Fifteen digits are enough here; sixteen give 0.07000000000000001. */
    expect_f64(0.07, "0.07");
    expect_f64(0.009, "0.009");
    expect_f64(1e300, "1e+300");
    expect_f64(123456789012345.6, "123456789012345.6");
    /* A double that happens to hold a float's value prints all its digits:
     * its own precision decides, not FP32's. */
    expect_f64((double)0.1f, "0.10000000149011612");

    /* Only non-finite values depend on `json`. */
    double d = 2.5;
    char *text = element_text(SW_DTYPE_FP64, &d, FALSE);
    g_assert_cmpstr(text, ==, "2.5");
    g_free(text);
}

static void test_append_non_finite(void)
{
    static const struct {
        float value;
        const char *plain;
    } cases[] = {{NAN, "NaN"}, {INFINITY, "Infinity"}, {-INFINITY, "-Infinity"}};
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        float f = cases[i].value;
        double d = cases[i].value;
        char *text = element_text(SW_DTYPE_FP32, &f, FALSE);
        g_assert_cmpstr(text, ==, cases[i].plain);
        g_free(text);
        text = element_text(SW_DTYPE_FP64, &d, FALSE);
        g_assert_cmpstr(text, ==, cases[i].plain);
        g_free(text);
        /* JSON has no such numbers. */
        text = element_text(SW_DTYPE_FP32, &f, TRUE);
        g_assert_cmpstr(text, ==, "null");
        g_free(text);
        text = element_text(SW_DTYPE_FP64, &d, TRUE);
        g_assert_cmpstr(text, ==, "null");
        g_free(text);
    }
}

static void test_append_integers_and_bools(void)
{
    static const struct {
        sw_dtype dtype;
        union {
            int64_t i64;
            uint64_t u64;
            int32_t i32;
            uint32_t u32;
            int16_t i16;
            uint16_t u16;
            int8_t i8;
            uint8_t u8;
        } v;
        const char *expected;
    } cases[] = {
        {SW_DTYPE_INT64, {.i64 = INT64_MAX}, "9223372036854775807"},
        {SW_DTYPE_INT64, {.i64 = INT64_MIN}, "-9223372036854775808"},
        /* Beyond 2^53: printed from the integer, not through a double. */
        {SW_DTYPE_INT64, {.i64 = INT64_C(9007199254740993)}, "9007199254740993"},
        {SW_DTYPE_UINT64, {.u64 = UINT64_MAX}, "18446744073709551615"},
        {SW_DTYPE_INT32, {.i32 = INT32_MIN}, "-2147483648"},
        {SW_DTYPE_UINT32, {.u32 = UINT32_MAX}, "4294967295"},
        {SW_DTYPE_INT16, {.i16 = -32768}, "-32768"},
        {SW_DTYPE_UINT16, {.u16 = 65535}, "65535"},
        {SW_DTYPE_INT8, {.i8 = -128}, "-128"},
        {SW_DTYPE_UINT8, {.u8 = 255}, "255"},
        {SW_DTYPE_INT32, {.i32 = 0}, "0"},
        {SW_DTYPE_BOOL, {.u8 = 1}, "true"},
        {SW_DTYPE_BOOL, {.u8 = 0}, "false"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        for (int json = 0; json <= 1; json++) {
            char *text = element_text(cases[i].dtype, &cases[i].v, json);
            g_assert_cmpstr(text, ==, cases[i].expected);
            g_free(text);
        }
    }

    /* Elements are indexed row-major over the whole buffer. */
    const int16_t m[6] = {1, 2, 3, 4, 5, -6};
    const int64_t shape[] = {2, 3};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_INT16, 2, shape, m, sizeof m);
    GString *out = g_string_new(NULL);
    for (int64_t i = 0; i < 6; i++) {
        if (i)
            g_string_append_c(out, ' ');
        sw_tensor_append_element(out, t, i, TRUE);
    }
    g_assert_cmpstr(out->str, ==, "1 2 3 4 5 -6");
    g_string_free(out, TRUE);
    sw_tensor_free(t);
}

static void test_shape_to_string(void)
{
    const int64_t s[] = {2, 3, -1};
    char *text = sw_shape_to_string(2, s);
    g_assert_cmpstr(text, ==, "[2,3]");
    g_free(text);
    text = sw_shape_to_string(3, s);
    g_assert_cmpstr(text, ==, "[2,3,-1]");
    g_free(text);
    text = sw_shape_to_string(0, NULL);
    g_assert_cmpstr(text, ==, "[]");
    g_free(text);
    const int64_t big[] = {INT64_MAX};
    text = sw_shape_to_string(1, big);
    g_assert_cmpstr(text, ==, "[9223372036854775807]");
    g_free(text);
}

static void test_values(void)
{
    char name[] = "scores";
    const int64_t shape[] = {4, 2};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, NULL, 8 * sizeof(float));
    sw_value *v = sw_value_new_tensor(name, SW_VALUE_TENSOR, t);
    name[0] = 'X'; /* the value holds its own copy of the name */
    g_assert_cmpstr(v->name, ==, "scores");
    g_assert_true(v->tensor == t);
    g_assert_null(v->items);
    g_assert_cmpint(sw_value_batch_size(v), ==, 4);
    sw_value_free(v);

    const char *words[] = {"a", "b", "c"};
    v = sw_value_new_tensor("s", SW_VALUE_STRINGS, sw_tensor_new_strings(words, NULL, 3));
    g_assert_cmpint(v->kind, ==, SW_VALUE_STRINGS);
    g_assert_cmpint(sw_value_batch_size(v), ==, 3);

    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    for (int i = 0; i < 5; i++)
        g_ptr_array_add(rows, sw_tensor_new_strings(words, NULL, (size_t)i % 3));
    sw_value *list = sw_value_new_list("tokens", SW_VALUE_STRING_LISTS, rows);
    g_assert_true(list->items == rows);
    g_assert_null(list->tensor);
    /* Rows are the items, not the first dimension of any of them. */
    g_assert_cmpint(sw_value_batch_size(list), ==, 5);

    GPtrArray *empty = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    sw_value *none = sw_value_new_list("none", SW_VALUE_TENSOR_LIST, empty);
    g_assert_cmpint(sw_value_batch_size(none), ==, 0);

    /* The array owns its values and everything they hold (ASan sees leaks). */
    GPtrArray *values = sw_value_array_new();
    g_ptr_array_add(values, v);
    g_ptr_array_add(values, list);
    g_ptr_array_add(values, none);
    g_ptr_array_unref(values);
    sw_value_free(NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/tensor/dtype-names-round-trip", test_dtype_names_round_trip);
    g_test_add_func("/tensor/shape-element-count", test_shape_element_count);
    g_test_add_func("/tensor/new-adds-its-own-reference", test_new_adds_its_own_reference);
    g_test_add_func("/tensor/new-copy", test_new_copy);
    g_test_add_func("/tensor/bytes-elements", test_bytes_elements);
    g_test_add_func("/tensor/new-strings", test_new_strings);
    g_test_add_func("/tensor/share", test_share);
    g_test_add_func("/tensor/element-as-double", test_element_as_double);
    g_test_add_func("/tensor/append-floats-shortest", test_append_floats_shortest);
    g_test_add_func("/tensor/append-non-finite", test_append_non_finite);
    g_test_add_func("/tensor/append-integers-and-bools", test_append_integers_and_bools);
    g_test_add_func("/tensor/shape-to-string", test_shape_to_string);
    g_test_add_func("/tensor/values", test_values);
    return g_test_run();
}
