/* Outputs from stage values: the value's kind alone picks the encoding,
 * plain tensors are shared rather than copied, and ragged values become
 * one JSON document per row with exactly the text clients parse. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "output.h"
#include "sw_error.h"

static void count_free(gpointer data)
{
    (*(int *)data)++;
}

/* Row `i` of a BYTES output as a new NUL-terminated string. */
static char *row_text(const sw_output *o, size_t i)
{
    size_t len = 0;
    const char *e = sw_tensor_bytes_element(o->tensor, i, &len);
    return g_strndup(e, len);
}

static void expect_row(const sw_output *o, size_t i, const char *expected)
{
    char *text = row_text(o, i);
    g_assert_cmpstr(text, ==, expected);
    g_free(text);
}

static sw_output *encode(sw_value *value)
{
    GError *error = NULL;
    sw_output *o = sw_output_from_value(value, &error);
    g_assert_no_error(error);
    g_assert_nonnull(o);
    return o;
}

static void test_tensor_is_shared(void)
{
    int freed = 0;
    float *values = g_new(float, 6);
    for (int i = 0; i < 6; i++)
        values[i] = (float)i / 2;
    GBytes *data = g_bytes_new_with_free_func(values, 6 * sizeof(float), count_free, &freed);
    const int64_t shape[] = {3, 2};
    sw_value *v = sw_value_new_tensor("probabilities", SW_VALUE_TENSOR, sw_tensor_new(SW_DTYPE_FP32, 2, shape, data));
    g_bytes_unref(data);
    sw_output *o = encode(v);
    g_assert_cmpstr(o->name, ==, "probabilities");
    g_assert_true(o->name != v->name);
    g_assert_false(o->json);
    g_assert_true(o->tensor != v->tensor);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_FP32);
    g_assert_cmpint(o->tensor->ndim, ==, 2);
    g_assert_cmpint(o->tensor->shape[0], ==, 3);
    g_assert_cmpint(o->tensor->shape[1], ==, 2);
    g_assert_true(sw_tensor_data(o->tensor, NULL) == values);
    /* The output outlives the value it came from. */
    sw_value_free(v);
    g_assert_cmpint(freed, ==, 0);
    g_assert_cmpfloat(sw_tensor_element_as_double(o->tensor, 5), ==, 2.5);
    sw_output_free(o);
    g_assert_cmpint(freed, ==, 1);
    g_free(values);
    sw_output_free(NULL);
}

static void test_strings_are_shared(void)
{
    const char *labels[] = {"cat", "dog"};
    sw_value *v = sw_value_new_tensor("label", SW_VALUE_STRINGS, sw_tensor_new_strings(labels, NULL, 2));
    const void *buffer = sw_tensor_data(v->tensor, NULL);
    sw_output *o = encode(v);
    sw_value_free(v);
    /* List[str] is BYTES [B] of the strings themselves, not JSON. */
    g_assert_false(o->json);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(o->tensor->ndim, ==, 1);
    g_assert_cmpint(o->tensor->shape[0], ==, 2);
    g_assert_true(sw_tensor_data(o->tensor, NULL) == buffer);
    expect_row(o, 0, "cat");
    expect_row(o, 1, "dog");
    sw_output_free(o);
}

static sw_tensor *strings(size_t n, ...)
{
    const char *items[8];
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        items[i] = va_arg(ap, const char *);
    va_end(ap);
    return sw_tensor_new_strings(items, NULL, n);
}

static void test_string_lists_are_json_rows(void)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    g_ptr_array_add(rows, strings(2, "a", "b"));
    g_ptr_array_add(rows, strings(0));
    g_ptr_array_add(rows, strings(1, "x"));
    g_ptr_array_add(rows, strings(3, "back\\slash", "tab\there", "line\nbreak"));
    g_ptr_array_add(rows, strings(2, "caf\xc3\xa9", "\x01"));
    sw_value *v = sw_value_new_list("tokens", SW_VALUE_STRING_LISTS, rows);
    sw_output *o = encode(v);
    sw_value_free(v);
    g_assert_cmpstr(o->name, ==, "tokens");
    g_assert_true(o->json);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(o->tensor->ndim, ==, 1);
    g_assert_cmpint(o->tensor->shape[0], ==, 5);
    expect_row(o, 0, "[\"a\",\"b\"]");
    expect_row(o, 1, "[]");
    expect_row(o, 2, "[\"x\"]");
    expect_row(o, 3, "[\"back\\\\slash\",\"tab\\there\",\"line\\nbreak\"]");
    /* However it escapes them, a JSON reader gets the same strings back. */
    char *text = row_text(o, 4);
    JsonParser *parser = json_parser_new();
    GError *error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    JsonArray *array = json_node_get_array(json_parser_get_root(parser));
    g_assert_cmpuint(json_array_get_length(array), ==, 2);
    g_assert_cmpstr(json_array_get_string_element(array, 0), ==, "caf\xc3\xa9");
    g_assert_cmpstr(json_array_get_string_element(array, 1), ==, "\x01");
    g_assert_null(strchr(text, '\x01'));
    g_object_unref(parser);
    g_free(text);
    sw_output_free(o);
}

static sw_tensor *row_tensor(sw_dtype dtype, int ndim, const int64_t *shape, const void *data, size_t nbytes)
{
    return sw_tensor_new_copy(dtype, ndim, shape, data, nbytes);
}

static void test_tensor_lists_are_json_rows(void)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    const float f[2] = {1.5f, 2.0f};
    const int64_t s2[] = {2};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_FP32, 1, s2, f, sizeof f));
    const int64_t m[4] = {1, 2, 3, -4};
    const int64_t s22[] = {2, 2};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_INT64, 2, s22, m, sizeof m));
    const int32_t c[4] = {1, 2, 3, 4};
    const int64_t s221[] = {2, 2, 1};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_INT32, 3, s221, c, sizeof c));
    const int64_t s0[] = {0};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_FP32, 1, s0, NULL, 0));
    const int64_t s20[] = {2, 0};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_FP64, 2, s20, NULL, 0));
    const double scalar = 0.1;
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_FP64, 0, NULL, &scalar, sizeof scalar));
    const uint8_t b[3] = {1, 0, 1};
    const int64_t s3[] = {3};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_BOOL, 1, s3, b, sizeof b));
    const double odd[3] = {INFINITY, NAN, -0.5};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_FP64, 1, s3, odd, sizeof odd));
    const int64_t s23[] = {2, 3};
    const uint8_t u[6] = {1, 2, 3, 4, 5, 255};
    g_ptr_array_add(rows, row_tensor(SW_DTYPE_UINT8, 2, s23, u, sizeof u));
    sw_value *v = sw_value_new_list("embeddings", SW_VALUE_TENSOR_LIST, rows);
    sw_output *o = encode(v);
    sw_value_free(v);
    g_assert_true(o->json);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(o->tensor->shape[0], ==, 9);
    expect_row(o, 0, "[1.5,2]");
    expect_row(o, 1, "[[1,2],[3,-4]]");
    expect_row(o, 2, "[[[1],[2]],[[3],[4]]]");
    expect_row(o, 3, "[]");
    expect_row(o, 4, "[[],[]]");
    /* Every row is an array, a 0-d one too. */
    expect_row(o, 5, "[0.1]");
    expect_row(o, 6, "[true,false,true]");
    expect_row(o, 7, "[null,null,-0.5]");
    expect_row(o, 8, "[[1,2,3],[4,5,255]]");
    sw_output_free(o);
}

static void test_empty_list(void)
{
    sw_value *v =
        sw_value_new_list("none", SW_VALUE_TENSOR_LIST, g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free));
    sw_output *o = encode(v);
    sw_value_free(v);
    g_assert_true(o->json);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(o->tensor->ndim, ==, 1);
    g_assert_cmpint(o->tensor->shape[0], ==, 0);
    sw_output_free(o);
}

static void test_half_float_rows_are_refused(void)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    const float f[1] = {1};
    const int64_t s1[] = {1};
    g_ptr_array_add(rows, sw_tensor_new_copy(SW_DTYPE_FP32, 1, s1, f, sizeof f));
    const uint16_t h[1] = {0x3c00};
    g_ptr_array_add(rows, sw_tensor_new_copy(SW_DTYPE_FP16, 1, s1, h, sizeof h));
    sw_value *v = sw_value_new_list("hidden", SW_VALUE_TENSOR_LIST, rows);
    GError *error = NULL;
    g_assert_null(sw_output_from_value(v, &error));
    /* A stage producing what cannot be written is the server's failure,
     * and the message says which output and row. */
    g_assert_error(error, SW_ERROR, SW_CODE_INTERNAL);
    g_assert_true(strstr(error->message, "output 'hidden' row 1") != NULL);
    g_assert_true(strstr(error->message, "FP16") != NULL);
    g_clear_error(&error);
    sw_value_free(v);

    rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    g_ptr_array_add(rows, sw_tensor_new_copy(SW_DTYPE_BF16, 1, s1, h, sizeof h));
    v = sw_value_new_list("b", SW_VALUE_TENSOR_LIST, rows);
    g_assert_null(sw_output_from_value(v, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INTERNAL);
    g_assert_true(strstr(error->message, "BF16") != NULL);
    g_clear_error(&error);
    sw_value_free(v);
}

static void test_output_array_frees_outputs(void)
{
    GPtrArray *outputs = sw_output_array_new();
    const char *labels[] = {"x"};
    sw_value *v = sw_value_new_tensor("s", SW_VALUE_STRINGS, sw_tensor_new_strings(labels, NULL, 1));
    g_ptr_array_add(outputs, encode(v));
    g_ptr_array_add(outputs, encode(v));
    sw_value_free(v);
    g_assert_cmpuint(outputs->len, ==, 2);
    g_ptr_array_unref(outputs); /* ASan reports anything left behind */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/output/tensor-is-shared", test_tensor_is_shared);
    g_test_add_func("/output/strings-are-shared", test_strings_are_shared);
    g_test_add_func("/output/string-lists-are-json-rows", test_string_lists_are_json_rows);
    g_test_add_func("/output/tensor-lists-are-json-rows", test_tensor_lists_are_json_rows);
    g_test_add_func("/output/empty-list", test_empty_list);
    g_test_add_func("/output/half-float-rows-are-refused", test_half_float_rows_are_refused);
    g_test_add_func("/output/output-array-frees-outputs", test_output_array_frees_outputs);
    return g_test_run();
}
