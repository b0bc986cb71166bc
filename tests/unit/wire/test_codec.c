/* The OIP codec: both content forms in, raw out, and every framing error. */
#include <math.h>
#include <string.h>

#include "oip_codec.h"
#include "sw_error.h"

typedef Inference__ModelInferRequest Request;
typedef Inference__ModelInferRequest__InferInputTensor Input;

/* A request with up to four inputs, built on the stack of the test. */
typedef struct fixture {
    Request req;
    Input inputs[4];
    Input *input_ptrs[4];
    Inference__InferTensorContents contents[4];
    ProtobufCBinaryData raw[4];
    int64_t shapes[4][4];
} fixture;

static void fixture_init(fixture *f, size_t n_inputs)
{
    memset(f, 0, sizeof *f);
    inference__model_infer_request__init(&f->req);
    for (size_t i = 0; i < 4; i++) {
        inference__model_infer_request__infer_input_tensor__init(&f->inputs[i]);
        inference__infer_tensor_contents__init(&f->contents[i]);
        f->inputs[i].shape = f->shapes[i];
        f->input_ptrs[i] = &f->inputs[i];
    }
    f->req.n_inputs = n_inputs;
    f->req.inputs = f->input_ptrs;
}

static void set_input(fixture *f, size_t i, const char *name, const char *dtype, size_t ndim, ...)
{
    f->inputs[i].name = (char *)name;
    f->inputs[i].datatype = (char *)dtype;
    f->inputs[i].n_shape = ndim;
    va_list ap;
    va_start(ap, ndim);
    for (size_t d = 0; d < ndim; d++)
        f->shapes[i][d] = va_arg(ap, int64_t);
    va_end(ap);
}

static void use_raw(fixture *f, size_t i, const void *data, size_t len)
{
    f->req.n_raw_input_contents = f->req.n_inputs;
    f->req.raw_input_contents = f->raw;
    f->raw[i].data = (uint8_t *)data;
    f->raw[i].len = len;
}

static GPtrArray *decode(fixture *f, GError **error)
{
    GBytes *owner = g_bytes_new_static(f, sizeof *f);
    GPtrArray *values = sw_oip_decode_inputs(&f->req, owner, error);
    g_bytes_unref(owner);
    return values;
}

static void expect_invalid(fixture *f, const char *substring)
{
    GError *error = NULL;
    g_assert_null(decode(f, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    if (strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
    g_error_free(error);
}

static void test_raw_numeric_is_not_copied(void)
{
    fixture f;
    fixture_init(&f, 1);
    float data[6] = {1, 2, 3, 4, 5, 6};
    set_input(&f, 0, "x", "FP32", 2, (int64_t)2, (int64_t)3);
    use_raw(&f, 0, data, sizeof data);
    GError *error = NULL;
    GPtrArray *values = decode(&f, &error);
    g_assert_no_error(error);
    sw_value *v = g_ptr_array_index(values, 0);
    g_assert_cmpstr(v->name, ==, "x");
    g_assert_cmpint(v->kind, ==, SW_VALUE_TENSOR);
    g_assert_cmpint(v->tensor->dtype, ==, SW_DTYPE_FP32);
    g_assert_cmpint(v->tensor->shape[1], ==, 3);
    g_assert_true(sw_tensor_data(v->tensor, NULL) == (const void *)data);
    g_ptr_array_unref(values);
}

/* An input's own parameters reach its value by name, typed; a string that
 * is not UTF-8 (GVariant strings must be) is dropped, not stored. */
static void test_input_parameters(void)
{
    fixture f;
    fixture_init(&f, 2);
    float data[2] = {0.5f, -0.5f};
    set_input(&f, 0, "wave", "FP32", 2, (int64_t)1, (int64_t)2);
    set_input(&f, 1, "plain", "FP32", 1, (int64_t)1);
    use_raw(&f, 0, data, sizeof data);
    use_raw(&f, 1, data, sizeof(float));
    Inference__InferParameter values[3];
    Inference__ModelInferRequest__InferInputTensor__ParametersEntry entries[3];
    Inference__ModelInferRequest__InferInputTensor__ParametersEntry *entry_ptrs[3];
    const char *keys[3] = {"sample_rate", "unit", "bad"};
    for (int i = 0; i < 3; i++) {
        inference__infer_parameter__init(&values[i]);
        inference__model_infer_request__infer_input_tensor__parameters_entry__init(&entries[i]);
        entries[i].key = (char *)keys[i];
        entries[i].value = &values[i];
        entry_ptrs[i] = &entries[i];
    }
    values[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    values[0].int64_param = 16000;
    values[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    values[1].string_param = "Hz";
    values[2].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    values[2].string_param = "\xff\xfe";
    f.inputs[0].n_parameters = 3;
    f.inputs[0].parameters = entry_ptrs;
    GError *error = NULL;
    GPtrArray *decoded = decode(&f, &error);
    g_assert_no_error(error);
    const sw_value *wave = g_ptr_array_index(decoded, 0), *plain = g_ptr_array_index(decoded, 1);
    GVariant *rate = sw_value_parameter(wave, "sample_rate");
    g_assert_nonnull(rate);
    g_assert_true(g_variant_is_of_type(rate, G_VARIANT_TYPE_INT64));
    g_assert_cmpint(g_variant_get_int64(rate), ==, 16000);
    g_assert_cmpstr(g_variant_get_string(sw_value_parameter(wave, "unit"), NULL), ==, "Hz");
    g_assert_null(sw_value_parameter(wave, "bad"));
    g_assert_null(sw_value_parameter(plain, "sample_rate"));
    g_ptr_array_unref(decoded);
}

static void test_typed_each_datatype(void)
{
    fixture f;
    fixture_init(&f, 4);
    int32_t ints[3] = {-5, 0, 100};
    int64_t longs[2] = {INT64_MAX, -1};
    protobuf_c_boolean bools[2] = {1, 0};
    ProtobufCBinaryData strs[2] = {{2, (uint8_t *)"ab"}, {0, (uint8_t *)""}};
    set_input(&f, 0, "i8", "INT8", 1, (int64_t)3);
    f.inputs[0].contents = &f.contents[0];
    f.contents[0].n_int_contents = 3;
    f.contents[0].int_contents = ints;
    set_input(&f, 1, "i64", "INT64", 1, (int64_t)2);
    f.inputs[1].contents = &f.contents[1];
    f.contents[1].n_int64_contents = 2;
    f.contents[1].int64_contents = longs;
    set_input(&f, 2, "b", "BOOL", 1, (int64_t)2);
    f.inputs[2].contents = &f.contents[2];
    f.contents[2].n_bool_contents = 2;
    f.contents[2].bool_contents = bools;
    set_input(&f, 3, "s", "BYTES", 2, (int64_t)2, (int64_t)1);
    f.inputs[3].contents = &f.contents[3];
    f.contents[3].n_bytes_contents = 2;
    f.contents[3].bytes_contents = strs;
    GError *error = NULL;
    GPtrArray *values = decode(&f, &error);
    g_assert_no_error(error);
    const int8_t *i8 = sw_tensor_data(((sw_value *)g_ptr_array_index(values, 0))->tensor, NULL);
    g_assert_cmpint(i8[0], ==, -5);
    g_assert_cmpint(i8[2], ==, 100);
    const int64_t *i64 = sw_tensor_data(((sw_value *)g_ptr_array_index(values, 1))->tensor, NULL);
    g_assert_cmpint(i64[0], ==, INT64_MAX);
    const uint8_t *b = sw_tensor_data(((sw_value *)g_ptr_array_index(values, 2))->tensor, NULL);
    g_assert_cmpint(b[0], ==, 1);
    g_assert_cmpint(b[1], ==, 0);
    sw_value *s = g_ptr_array_index(values, 3);
    g_assert_cmpint(s->kind, ==, SW_VALUE_STRINGS);
    size_t len = 0;
    const char *e0 = sw_tensor_bytes_element(s->tensor, 0, &len);
    g_assert_cmpmem(e0, len, "ab", 2);
    sw_tensor_bytes_element(s->tensor, 1, &len);
    g_assert_cmpuint(len, ==, 0);
    g_ptr_array_unref(values);

    ints[0] = 300; /* does not fit INT8 */
    expect_invalid(&f, "does not fit INT8");
}

static void test_raw_bytes_framing(void)
{
    static const uint8_t good[] = {2, 0, 0, 0, 'a', 'b', 1, 0, 0, 0, 'c'};
    fixture f;
    fixture_init(&f, 1);
    set_input(&f, 0, "s", "BYTES", 1, (int64_t)2);
    use_raw(&f, 0, good, sizeof good);
    GError *error = NULL;
    GPtrArray *values = decode(&f, &error);
    g_assert_no_error(error);
    sw_value *s = g_ptr_array_index(values, 0);
    size_t len = 0;
    const char *e1 = sw_tensor_bytes_element(s->tensor, 1, &len);
    g_assert_cmpmem(e1, len, "c", 1);
    /* Round trip: the raw form of the decoded tensor is the input. */
    GBytes *raw = sw_oip_raw_contents(s->tensor);
    g_assert_cmpmem(g_bytes_get_data(raw, NULL), g_bytes_get_size(raw), good, sizeof good);
    g_bytes_unref(raw);
    g_ptr_array_unref(values);

    use_raw(&f, 0, good, sizeof good - 1);
    expect_invalid(&f, "truncated");
    use_raw(&f, 0, good, 8); /* the second prefix cut in half */
    expect_invalid(&f, "truncated");
    static const uint8_t overlong[] = {2, 0, 0, 0, 'a', 'b', 1, 0, 0, 0, 'c', 'x'};
    use_raw(&f, 0, overlong, sizeof overlong);
    expect_invalid(&f, "overlong");
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0x7f, 'a'};
    set_input(&f, 0, "s", "BYTES", 1, (int64_t)1);
    use_raw(&f, 0, huge, sizeof huge);
    expect_invalid(&f, "truncated");
}

static void test_errors_name_the_input(void)
{
    fixture f;
    float data[4] = {0};
    fixture_init(&f, 1);
    set_input(&f, 0, "age", "FLOAT32", 1, (int64_t)4);
    use_raw(&f, 0, data, sizeof data);
    expect_invalid(&f, "unknown datatype 'FLOAT32'");

    set_input(&f, 0, "age", "FP32", 1, (int64_t)5);
    expect_invalid(&f, "needs 20 bytes");

    set_input(&f, 0, "age", "FP32", 1, (int64_t)-1);
    expect_invalid(&f, "negative");

    fixture_init(&f, 2);
    set_input(&f, 0, "a", "FP32", 1, (int64_t)4);
    set_input(&f, 1, "b", "FP32", 1, (int64_t)4);
    use_raw(&f, 0, data, sizeof data);
    use_raw(&f, 1, data, sizeof data);
    float typed[4] = {0};
    f.inputs[1].contents = &f.contents[1];
    f.contents[1].n_fp32_contents = 4;
    f.contents[1].fp32_contents = typed;
    expect_invalid(&f, "input 'b': has typed contents");

    fixture_init(&f, 2);
    set_input(&f, 0, "a", "FP32", 1, (int64_t)4);
    set_input(&f, 1, "b", "FP32", 1, (int64_t)4);
    f.req.n_raw_input_contents = 1;
    f.req.raw_input_contents = f.raw;
    expect_invalid(&f, "1 entries for 2 inputs");

    fixture_init(&f, 1);
    set_input(&f, 0, "h", "FP16", 1, (int64_t)1);
    expect_invalid(&f, "only in raw_input_contents");

    fixture_init(&f, 1);
    set_input(&f, 0, "v", "FP32", 1, (int64_t)3);
    f.inputs[0].contents = &f.contents[0];
    f.contents[0].n_fp32_contents = 2;
    f.contents[0].fp32_contents = typed;
    expect_invalid(&f, "needs 3 values in fp32_contents, got 2");
    int32_t wrong[3] = {1, 2, 3};
    f.contents[0].n_fp32_contents = 0;
    f.contents[0].n_int_contents = 3;
    f.contents[0].int_contents = wrong;
    expect_invalid(&f, "other fields");

    fixture_init(&f, 2);
    set_input(&f, 0, "dup", "FP32", 1, (int64_t)1);
    set_input(&f, 1, "dup", "FP32", 1, (int64_t)1);
    use_raw(&f, 0, data, 4);
    use_raw(&f, 1, data, 4);
    expect_invalid(&f, "more than once");
}

/* Edges of shapes: zero elements in typed contents (the typed field is then
 * absent), and a shape whose byte size does not fit 64 bits. */
static void test_shape_edges(void)
{
    fixture f;
    fixture_init(&f, 1);
    set_input(&f, 0, "empty", "FP32", 2, (int64_t)1, (int64_t)0);
    f.inputs[0].contents = &f.contents[0];
    GError *error = NULL;
    GPtrArray *values = decode(&f, &error);
    g_assert_no_error(error);
    const sw_value *v = g_ptr_array_index(values, 0);
    g_assert_cmpint(sw_tensor_element_count(v->tensor), ==, 0);
    g_ptr_array_unref(values);

    fixture_init(&f, 1);
    set_input(&f, 0, "huge", "FP64", 2, (int64_t)1 << 61, (int64_t)2);
    static const double one = 1;
    use_raw(&f, 0, &one, sizeof one);
    /* 2^62 doubles are 2^65 bytes: the message must not wrap to "0 bytes". */
    expect_invalid(&f, "needs 36893488147419103232 bytes of raw contents, got 8");
}

static sw_tensor *ragged_row(const char *a, const char *b)
{
    const char *items[2] = {a, b};
    return sw_tensor_new_strings(items, NULL, b ? 2 : (a ? 1 : 0));
}

static void test_ragged_outputs_become_json_rows(void)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    g_ptr_array_add(rows, ragged_row("books", "say \"hi\""));
    g_ptr_array_add(rows, ragged_row(NULL, NULL));
    g_ptr_array_add(rows, ragged_row("caf\xc3\xa9", NULL));
    sw_value *v = sw_value_new_list("interests::predictions", SW_VALUE_STRING_LISTS, rows);
    GError *error = NULL;
    sw_output *o = sw_output_from_value(v, &error);
    g_assert_no_error(error);
    g_assert_true(o->json);
    g_assert_cmpint(o->tensor->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(o->tensor->shape[0], ==, 3);
    size_t len = 0;
    const char *r0 = sw_tensor_bytes_element(o->tensor, 0, &len);
    g_assert_cmpmem(r0, len, "[\"books\",\"say \\\"hi\\\"\"]", strlen("[\"books\",\"say \\\"hi\\\"\"]"));
    const char *r1 = sw_tensor_bytes_element(o->tensor, 1, &len);
    g_assert_cmpmem(r1, len, "[]", 2);
    sw_output_free(o);
    sw_value_free(v);

    GPtrArray *tensors = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    float m[4] = {0.5f, 1.0f, NAN, 2.0f};
    int64_t shape[2] = {2, 2};
    g_ptr_array_add(tensors, sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, m, sizeof m));
    v = sw_value_new_list("p", SW_VALUE_TENSOR_LIST, tensors);
    o = sw_output_from_value(v, &error);
    g_assert_no_error(error);
    const char *t0 = sw_tensor_bytes_element(o->tensor, 0, &len);
    g_assert_cmpmem(t0, len, "[[0.5,1],[null,2]]", strlen("[[0.5,1],[null,2]]"));
    sw_output_free(o);
    sw_value_free(v);
}

static void test_response_round_trip(void)
{
    GPtrArray *outputs = sw_output_array_new();
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup("labels");
    const char *items[2] = {"x", "yz"};
    o->tensor = sw_tensor_new_strings(items, NULL, 2);
    o->json = TRUE;
    g_ptr_array_add(outputs, o);
    Inference__ModelInferResponse *resp = sw_oip_response_build("m", "req-1", outputs);
    size_t size = protobuf_c_message_get_packed_size(&resp->base);
    uint8_t *buf = g_malloc(size);
    protobuf_c_message_pack(&resp->base, buf);
    sw_oip_response_free(resp);
    g_ptr_array_unref(outputs);

    Inference__ModelInferResponse *back = inference__model_infer_response__unpack(NULL, size, buf);
    g_assert_nonnull(back);
    g_assert_cmpstr(back->id, ==, "req-1");
    g_assert_cmpuint(back->n_outputs, ==, 1);
    g_assert_cmpstr(back->outputs[0]->datatype, ==, "BYTES");
    g_assert_cmpuint(back->outputs[0]->n_parameters, ==, 1);
    g_assert_cmpstr(back->outputs[0]->parameters[0]->key, ==, "content_type");
    g_assert_cmpstr(back->outputs[0]->parameters[0]->value->string_param, ==, "json");
    static const uint8_t framed[] = {1, 0, 0, 0, 'x', 2, 0, 0, 0, 'y', 'z'};
    g_assert_cmpmem(back->raw_output_contents[0].data, back->raw_output_contents[0].len, framed, sizeof framed);
    inference__model_infer_response__free_unpacked(back, NULL);
    g_free(buf);
}

/* The parts, sent back to back, are the same message a plain pack makes. */
static void test_pack_parts_reads_back(void)
{
    GPtrArray *outputs = sw_output_array_new();
    /* Larger than SW_PACK_COPY_MAX_BYTES, so it is not copied. */
    static float big[6000];
    G_STATIC_ASSERT(sizeof big > SW_PACK_COPY_MAX_BYTES);
    for (int i = 0; i < 6000; i++)
        big[i] = (float)i * 0.5f;
    int64_t shape[2] = {2000, 3};
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup("p");
    o->tensor = sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, big, sizeof big);
    g_ptr_array_add(outputs, o);
    sw_output *e = g_new0(sw_output, 1);
    e->name = g_strdup("empty");
    int64_t zero[1] = {0};
    e->tensor = sw_tensor_new_copy(SW_DTYPE_INT64, 1, zero, NULL, 0);
    g_ptr_array_add(outputs, e);
    Inference__ModelInferResponse *resp = sw_oip_response_build("m", "id-7", outputs);
    GPtrArray *parts = sw_oip_response_pack_parts(resp);
    /* The big tensor travels as its own buffer, not a copy. */
    gboolean shared = FALSE;
    for (guint i = 0; i < parts->len; i++)
        shared |= g_bytes_get_data(g_ptr_array_index(parts, i), NULL) == sw_tensor_data(o->tensor, NULL);
    g_assert_true(shared);
    GByteArray *joined = g_byte_array_new();
    for (guint i = 0; i < parts->len; i++) {
        gsize n = 0;
        const guint8 *d = g_bytes_get_data(g_ptr_array_index(parts, i), &n);
        g_byte_array_append(joined, d, (guint)n);
    }
    Inference__ModelInferResponse *back = inference__model_infer_response__unpack(NULL, joined->len, joined->data);
    g_assert_nonnull(back);
    g_assert_cmpstr(back->id, ==, "id-7");
    g_assert_cmpuint(back->n_raw_output_contents, ==, 2);
    g_assert_cmpmem(back->raw_output_contents[0].data, back->raw_output_contents[0].len, big, sizeof big);
    g_assert_cmpuint(back->raw_output_contents[1].len, ==, 0);
    inference__model_infer_response__free_unpacked(back, NULL);
    g_byte_array_unref(joined);
    g_ptr_array_unref(parts);
    sw_oip_response_free(resp);
    g_ptr_array_unref(outputs);
}

/* Raw contents of an unpacked request point into the message itself. */
static void test_unpack_keeps_raw_in_place(void)
{
    GPtrArray *inputs = sw_output_array_new();
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup("x");
    double v[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    o->tensor = sw_tensor_new_copy(SW_DTYPE_FP64, 1, shape, v, sizeof v);
    g_ptr_array_add(inputs, o);
    Inference__ModelInferRequest *req = sw_oip_request_build("m", "r", inputs, NULL);
    GBytes *packed = sw_protobuf_pack(&req->base);
    sw_oip_request_free(req);
    GBytes *owner = NULL;
    GError *error = NULL;
    Inference__ModelInferRequest *back = sw_oip_unpack_infer_request(packed, &owner, &error);
    g_assert_no_error(error);
    gsize len = 0;
    const uint8_t *base = g_bytes_get_data(packed, &len);
    g_assert_cmpuint(back->n_raw_input_contents, ==, 1);
    g_assert_true(back->raw_input_contents[0].data > base && back->raw_input_contents[0].data < base + len);
    GPtrArray *values = sw_oip_decode_inputs(back, owner, &error);
    g_assert_no_error(error);
    g_bytes_unref(owner);
    g_bytes_unref(packed);
    /* The decoded tensor keeps the message alive by itself. */
    const guint8 *d = sw_tensor_data(((sw_value *)g_ptr_array_index(values, 0))->tensor, NULL);
    /* In place means wherever the field sits in the message: not aligned. */
    double fourth;
    memcpy(&fourth, d + 3 * sizeof fourth, sizeof fourth);
    g_assert_cmpfloat(fourth, ==, 4.0);
    g_ptr_array_unref(values);
    g_ptr_array_unref(inputs);

    static const uint8_t garbage[] = {0x3a, 0xff, 0xff, 0x01};
    GBytes *bad = g_bytes_new_static(garbage, sizeof garbage);
    g_assert_null(sw_oip_unpack_infer_request(bad, &owner, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_bytes_unref(bad);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/codec/raw-numeric-not-copied", test_raw_numeric_is_not_copied);
    g_test_add_func("/codec/typed-each-datatype", test_typed_each_datatype);
    g_test_add_func("/codec/input-parameters", test_input_parameters);
    g_test_add_func("/codec/raw-bytes-framing", test_raw_bytes_framing);
    g_test_add_func("/codec/errors-name-the-input", test_errors_name_the_input);
    g_test_add_func("/codec/shape-edges", test_shape_edges);
    g_test_add_func("/codec/ragged-json-rows", test_ragged_outputs_become_json_rows);
    g_test_add_func("/codec/response-round-trip", test_response_round_trip);
    g_test_add_func("/codec/pack-parts-read-back", test_pack_parts_reads_back);
    g_test_add_func("/codec/unpack-keeps-raw-in-place", test_unpack_keeps_raw_in_place);
    return g_test_run();
}
