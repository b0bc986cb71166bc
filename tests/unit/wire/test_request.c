/* Requests as the client and the stage hops send them: built over tensors,
 * packed as parts without copying, read back by the server's zero-copy
 * unpacker into the same values; plus the input decoding that
 * test_codec.c leaves out (typed contents of every width, names, dimension
 * limits) and the lifetime of what decoded tensors borrow. */
#include <string.h>

#include "oip_codec.h"
#include "sw_error.h"

typedef Inference__ModelInferRequest Request;
typedef Inference__ModelInferRequest__InferInputTensor Input;

static void count_free(gpointer data)
{
    (*(int *)data)++;
}

static sw_output *make_output(const char *name, sw_tensor *tensor)
{
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup(name);
    o->tensor = tensor;
    return o;
}

static GBytes *join(GPtrArray *parts)
{
    GByteArray *joined = g_byte_array_new();
    for (guint i = 0; i < parts->len; i++) {
        gsize n = 0;
        const guint8 *d = g_bytes_get_data(g_ptr_array_index(parts, i), &n);
        g_byte_array_append(joined, d, (guint)n);
    }
    return g_byte_array_free_to_bytes(joined);
}

static gboolean parts_share(GPtrArray *parts, const void *buffer)
{
    for (guint i = 0; i < parts->len; i++)
        if (g_bytes_get_data(g_ptr_array_index(parts, i), NULL) == buffer)
            return TRUE;
    return FALSE;
}

/* A large FP32 tensor (a length that needs a 3-byte varint), strings, an
 * empty tensor and a scalar, as the next stage's inputs. */
static GPtrArray *sample_inputs(void)
{
    GPtrArray *inputs = sw_output_array_new();
    enum { N = 5000 };
    float *big = g_new(float, N);
    for (int i = 0; i < N; i++)
        big[i] = (float)i * 0.25f;
    const int64_t s[] = {N / 2, 2};
    g_ptr_array_add(inputs, make_output("features", sw_tensor_new_copy(SW_DTYPE_FP32, 2, s, big, N * sizeof(float))));
    g_free(big);
    const char *words[] = {"red", "", "caf\xc3\xa9"};
    g_ptr_array_add(inputs, make_output("color", sw_tensor_new_strings(words, NULL, 3)));
    const int64_t s0[] = {0};
    g_ptr_array_add(inputs, make_output("none", sw_tensor_new_copy(SW_DTYPE_INT32, 1, s0, NULL, 0)));
    const int64_t v = -7;
    g_ptr_array_add(inputs, make_output("scalar", sw_tensor_new_copy(SW_DTYPE_INT64, 0, NULL, &v, sizeof v)));
    return inputs;
}

static void expect_same_values(GPtrArray *sent, GPtrArray *values)
{
    g_assert_cmpuint(values->len, ==, sent->len);
    for (guint i = 0; i < sent->len; i++) {
        const sw_output *o = g_ptr_array_index(sent, i);
        const sw_value *v = g_ptr_array_index(values, i);
        g_assert_cmpstr(v->name, ==, o->name);
        g_assert_cmpint(v->kind, ==, o->tensor->dtype == SW_DTYPE_BYTES ? SW_VALUE_STRINGS : SW_VALUE_TENSOR);
        g_assert_cmpint(v->tensor->dtype, ==, o->tensor->dtype);
        g_assert_cmpint(v->tensor->ndim, ==, o->tensor->ndim);
        for (int d = 0; d < o->tensor->ndim; d++)
            g_assert_cmpint(v->tensor->shape[d], ==, o->tensor->shape[d]);
        size_t na = 0, nb = 0;
        const void *a = sw_tensor_data(o->tensor, &na);
        const void *b = sw_tensor_data(v->tensor, &nb);
        g_assert_cmpmem(b, nb, a, na);
        if (o->tensor->dtype == SW_DTYPE_BYTES) {
            size_t n = (size_t)sw_tensor_element_count(o->tensor) + 1;
            g_assert_cmpmem(v->tensor->offsets, n * sizeof(size_t), o->tensor->offsets, n * sizeof(size_t));
        }
    }
}

static void test_request_parts_round_trip(void)
{
    GPtrArray *inputs = sample_inputs();
    /* What the client asked for travels on to the next stage untouched. */
    Inference__ModelInferRequest__InferRequestedOutputTensor wanted =
        INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
    wanted.name = "label::predictions";
    Inference__ModelInferRequest__InferRequestedOutputTensor *wanted_ptrs[] = {&wanted};
    Inference__InferParameter priority = INFERENCE__INFER_PARAMETER__INIT;
    priority.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    priority.int64_param = 3;
    Inference__ModelInferRequest__ParametersEntry entry = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
    entry.key = "priority";
    entry.value = &priority;
    Inference__ModelInferRequest__ParametersEntry *entry_ptrs[] = {&entry};
    Request original = INFERENCE__MODEL_INFER_REQUEST__INIT;
    original.n_outputs = 1;
    original.outputs = wanted_ptrs;
    original.n_parameters = 1;
    original.parameters = entry_ptrs;

    Request *req = sw_oip_request_build("predictor", "req-9", inputs, &original);
    g_assert_true(req->outputs == original.outputs);
    g_assert_true(req->parameters == original.parameters);
    GPtrArray *parts = sw_oip_request_pack_parts(req);
    /* Numeric contents go out as the tensors' own buffers. */
    g_assert_true(parts_share(parts, sw_tensor_data(((sw_output *)g_ptr_array_index(inputs, 0))->tensor, NULL)));
    GBytes *joined = join(parts);
    /* Packing in parts leaves the message as it was: a plain pack of it
     * is the same bytes. */
    GBytes *plain = sw_protobuf_pack(&req->base);
    g_assert_cmpuint(req->n_raw_input_contents, ==, 4);
    g_assert_true(g_bytes_equal(plain, joined));
    g_ptr_array_unref(parts);
    sw_oip_request_free(req);

    GBytes *owner = NULL;
    GError *error = NULL;
    Request *back = sw_oip_unpack_infer_request(joined, &owner, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(back->model_name, ==, "predictor");
    g_assert_cmpstr(back->id, ==, "req-9");
    g_assert_cmpuint(back->n_outputs, ==, 1);
    g_assert_cmpstr(back->outputs[0]->name, ==, "label::predictions");
    g_assert_cmpuint(back->n_parameters, ==, 1);
    g_assert_cmpstr(back->parameters[0]->key, ==, "priority");
    g_assert_cmpint(back->parameters[0]->value->int64_param, ==, 3);
    g_assert_cmpuint(back->n_raw_input_contents, ==, 4);
    GPtrArray *values = sw_oip_decode_inputs(back, owner, &error);
    g_assert_no_error(error);
    g_bytes_unref(owner);
    expect_same_values(inputs, values);
    g_ptr_array_unref(values);

    /* The same request packed in one piece reads back the same. */
    owner = NULL;
    back = sw_oip_unpack_infer_request(plain, &owner, &error);
    g_assert_no_error(error);
    values = sw_oip_decode_inputs(back, owner, &error);
    g_assert_no_error(error);
    g_bytes_unref(owner);
    expect_same_values(inputs, values);
    g_ptr_array_unref(values);

    g_bytes_unref(plain);
    g_bytes_unref(joined);
    g_ptr_array_unref(inputs);
}

static void test_request_without_pass_through(void)
{
    GPtrArray *inputs = sw_output_array_new();
    const char *w[] = {"x"};
    g_ptr_array_add(inputs, make_output("s", sw_tensor_new_strings(w, NULL, 1)));
    Request *req = sw_oip_request_build("m", NULL, inputs, NULL);
    g_assert_cmpstr(req->id, ==, "");
    g_assert_cmpuint(req->n_outputs, ==, 0);
    g_assert_cmpuint(req->n_parameters, ==, 0);
    g_assert_cmpuint(req->n_inputs, ==, 1);
    g_assert_cmpstr(req->inputs[0]->name, ==, "s");
    g_assert_cmpstr(req->inputs[0]->datatype, ==, "BYTES");
    g_assert_cmpuint(req->inputs[0]->n_shape, ==, 1);
    g_assert_cmpint(req->inputs[0]->shape[0], ==, 1);
    static const uint8_t framed[] = {1, 0, 0, 0, 'x'};
    g_assert_cmpmem(req->raw_input_contents[0].data, req->raw_input_contents[0].len, framed, sizeof framed);
    sw_oip_request_free(req);
    sw_oip_request_free(NULL);

    /* No inputs at all still makes a valid message. */
    GPtrArray *none = sw_output_array_new();
    req = sw_oip_request_build("m", "i", none, NULL);
    GPtrArray *parts = sw_oip_request_pack_parts(req);
    g_assert_cmpuint(parts->len, ==, 1);
    GBytes *joined = join(parts);
    GBytes *owner = NULL;
    GError *error = NULL;
    Request *back = sw_oip_unpack_infer_request(joined, &owner, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(back->model_name, ==, "m");
    g_assert_cmpuint(back->n_inputs, ==, 0);
    g_bytes_unref(owner);
    g_bytes_unref(joined);
    g_ptr_array_unref(parts);
    sw_oip_request_free(req);
    g_ptr_array_unref(none);
    g_ptr_array_unref(inputs);
}

/* A message of at most SW_PACK_COPY_MAX_BYTES goes as one buffer, copied,
 * holding the same bytes as a plain pack. */
static void test_small_message_is_one_part(void)
{
    GPtrArray *inputs = sw_output_array_new();
    const float f[4] = {1, 2, 3, 4};
    const int64_t s4[] = {4};
    g_ptr_array_add(inputs, make_output("x", sw_tensor_new_copy(SW_DTYPE_FP32, 1, s4, f, sizeof f)));
    const char *words[] = {"a", "bc"};
    g_ptr_array_add(inputs, make_output("w", sw_tensor_new_strings(words, NULL, 2)));
    Request *req = sw_oip_request_build("m", "small", inputs, NULL);
    GPtrArray *parts = sw_oip_request_pack_parts(req);
    g_assert_cmpuint(parts->len, ==, 1);
    g_assert_false(parts_share(parts, sw_tensor_data(((sw_output *)g_ptr_array_index(inputs, 0))->tensor, NULL)));
    GBytes *plain = sw_protobuf_pack(&req->base);
    g_assert_true(g_bytes_equal(plain, g_ptr_array_index(parts, 0)));
    g_bytes_unref(plain);
    g_ptr_array_unref(parts);
    sw_oip_request_free(req);
    g_ptr_array_unref(inputs);
}

static void test_response_parts_keep_json_and_order(void)
{
    GPtrArray *outputs = sw_output_array_new();
    const char *rows[] = {"[1,2]", "[]"};
    sw_output *j = make_output("rows", sw_tensor_new_strings(rows, NULL, 2));
    j->json = TRUE;
    g_ptr_array_add(outputs, j);
    const double d[3] = {1.5, -2, 0};
    const int64_t s3[] = {3};
    g_ptr_array_add(outputs, make_output("score", sw_tensor_new_copy(SW_DTYPE_FP64, 1, s3, d, sizeof d)));
    Inference__ModelInferResponse *resp = sw_oip_response_build("post", NULL, outputs);
    g_assert_cmpstr(resp->id, ==, "");
    g_assert_cmpuint(resp->outputs[1]->n_parameters, ==, 0);
    GPtrArray *parts = sw_oip_response_pack_parts(resp);
    GBytes *joined = join(parts);
    g_ptr_array_unref(parts);
    sw_oip_response_free(resp);
    sw_oip_response_free(NULL);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(joined, &len);
    Inference__ModelInferResponse *back = inference__model_infer_response__unpack(NULL, len, data);
    g_assert_nonnull(back);
    g_assert_cmpstr(back->model_name, ==, "post");
    GError *error = NULL;
    GPtrArray *decoded = sw_oip_decode_outputs(back, &error);
    g_assert_no_error(error);
    inference__model_infer_response__free_unpacked(back, NULL);
    g_bytes_unref(joined);
    g_assert_cmpuint(decoded->len, ==, 2);
    const sw_output *r0 = g_ptr_array_index(decoded, 0);
    const sw_output *r1 = g_ptr_array_index(decoded, 1);
    g_assert_cmpstr(r0->name, ==, "rows");
    g_assert_true(r0->json);
    size_t n = 0;
    const char *e = sw_tensor_bytes_element(r0->tensor, 0, &n);
    g_assert_cmpmem(e, n, "[1,2]", 5);
    g_assert_cmpstr(r1->name, ==, "score");
    g_assert_false(r1->json);
    g_assert_cmpfloat(sw_tensor_element_as_double(r1->tensor, 1), ==, -2.0);
    g_ptr_array_unref(decoded);
    g_ptr_array_unref(outputs);
}

/* A request with one typed input, built on the stack. */
typedef struct typed {
    Request req;
    Input input;
    Input *input_ptr;
    Inference__InferTensorContents contents;
    int64_t shape[SW_MAX_DIMS + 1];
} typed;

static void typed_init(typed *t, const char *dtype, size_t ndim, ...)
{
    memset(t, 0, sizeof *t);
    inference__model_infer_request__init(&t->req);
    inference__model_infer_request__infer_input_tensor__init(&t->input);
    inference__infer_tensor_contents__init(&t->contents);
    t->input.name = "x";
    t->input.datatype = (char *)dtype;
    t->input.n_shape = ndim;
    t->input.shape = t->shape;
    t->input.contents = &t->contents;
    va_list ap;
    va_start(ap, ndim);
    for (size_t d = 0; d < ndim; d++)
        t->shape[d] = va_arg(ap, int64_t);
    va_end(ap);
    t->input_ptr = &t->input;
    t->req.n_inputs = 1;
    t->req.inputs = &t->input_ptr;
}

static sw_tensor *decode_one(typed *t)
{
    GBytes *owner = g_bytes_new_static(t, sizeof *t);
    GError *error = NULL;
    GPtrArray *values = sw_oip_decode_inputs(&t->req, owner, &error);
    g_assert_no_error(error);
    g_bytes_unref(owner);
    sw_value *v = g_ptr_array_steal_index(values, 0);
    g_ptr_array_unref(values);
    sw_tensor *tensor = v->tensor;
    v->tensor = NULL;
    sw_value_free(v);
    return tensor;
}

static void expect_invalid(typed *t, const char *substring)
{
    GBytes *owner = g_bytes_new_static(t, sizeof *t);
    GError *error = NULL;
    g_assert_null(sw_oip_decode_inputs(&t->req, owner, &error));
    g_bytes_unref(owner);
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    if (strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
    g_error_free(error);
}

static void test_typed_widths(void)
{
    typed t;
    uint32_t u[3] = {0, 255, 7};
    typed_init(&t, "UINT8", 1, (int64_t)3);
    t.contents.n_uint_contents = 3;
    t.contents.uint_contents = u;
    sw_tensor *x = decode_one(&t);
    g_assert_cmpuint(((const uint8_t *)sw_tensor_data(x, NULL))[1], ==, 255);
    sw_tensor_free(x);
    u[1] = 256;
    expect_invalid(&t, "input 'x': value 256 at element 1 does not fit UINT8");

    u[1] = 65535;
    t.input.datatype = "UINT16";
    x = decode_one(&t);
    g_assert_cmpuint(((const uint16_t *)sw_tensor_data(x, NULL))[1], ==, 65535);
    sw_tensor_free(x);
    u[2] = 65536;
    expect_invalid(&t, "value 65536 at element 2 does not fit UINT16");

    /* UINT32 takes the whole field, even values above INT32_MAX. */
    u[2] = UINT32_MAX;
    t.input.datatype = "UINT32";
    x = decode_one(&t);
    g_assert_cmpuint(((const uint32_t *)sw_tensor_data(x, NULL))[2], ==, UINT32_MAX);
    sw_tensor_free(x);

    int32_t i[2] = {-128, 127};
    typed_init(&t, "INT8", 1, (int64_t)2);
    t.contents.n_int_contents = 2;
    t.contents.int_contents = i;
    x = decode_one(&t);
    g_assert_cmpint(((const int8_t *)sw_tensor_data(x, NULL))[0], ==, -128);
    sw_tensor_free(x);
    i[0] = -129;
    expect_invalid(&t, "value -129 at element 0 does not fit INT8");
    i[0] = -32768;
    t.input.datatype = "INT16";
    x = decode_one(&t);
    g_assert_cmpint(((const int16_t *)sw_tensor_data(x, NULL))[0], ==, -32768);
    sw_tensor_free(x);
    i[1] = 32768;
    expect_invalid(&t, "does not fit INT16");
    i[0] = INT32_MIN;
    t.input.datatype = "INT32";
    x = decode_one(&t);
    g_assert_cmpint(((const int32_t *)sw_tensor_data(x, NULL))[0], ==, INT32_MIN);
    g_assert_cmpint(((const int32_t *)sw_tensor_data(x, NULL))[1], ==, 32768);
    sw_tensor_free(x);

    uint64_t u64[1] = {UINT64_MAX};
    typed_init(&t, "UINT64", 2, (int64_t)1, (int64_t)1);
    t.contents.n_uint64_contents = 1;
    t.contents.uint64_contents = u64;
    x = decode_one(&t);
    g_assert_cmpint(x->ndim, ==, 2);
    g_assert_cmpuint(((const uint64_t *)sw_tensor_data(x, NULL))[0], ==, UINT64_MAX);
    sw_tensor_free(x);

    double f64[2] = {0.1, -1e300};
    typed_init(&t, "FP64", 1, (int64_t)2);
    t.contents.n_fp64_contents = 2;
    t.contents.fp64_contents = f64;
    x = decode_one(&t);
    g_assert_cmpfloat(((const double *)sw_tensor_data(x, NULL))[1], ==, -1e300);
    sw_tensor_free(x);
    /* FP32 values do not travel in fp64_contents. */
    t.input.datatype = "FP32";
    expect_invalid(&t, "travels in fp32_contents, but contents hold 2 values in other fields");

    /* A scalar is one value. */
    float f32[1] = {2.5f};
    typed_init(&t, "FP32", 0);
    t.contents.n_fp32_contents = 1;
    t.contents.fp32_contents = f32;
    x = decode_one(&t);
    g_assert_cmpint(x->ndim, ==, 0);
    g_assert_cmpfloat(sw_tensor_element_as_double(x, 0), ==, 2.5);
    sw_tensor_free(x);
}

static void test_typed_edge_cases(void)
{
    /* No contents at all: right for an empty tensor, wrong otherwise. */
    typed t;
    typed_init(&t, "FP32", 2, (int64_t)0, (int64_t)4);
    t.input.contents = NULL;
    sw_tensor *x = decode_one(&t);
    g_assert_cmpint(sw_tensor_element_count(x), ==, 0);
    g_assert_cmpint(x->shape[1], ==, 4);
    sw_tensor_free(x);
    typed_init(&t, "FP32", 1, (int64_t)2);
    t.input.contents = NULL;
    expect_invalid(&t, "shape [2] needs 2 values in fp32_contents, got 0");

    typed_init(&t, "BYTES", 1, (int64_t)0);
    x = decode_one(&t);
    g_assert_cmpint(x->dtype, ==, SW_DTYPE_BYTES);
    g_assert_cmpint(sw_tensor_element_count(x), ==, 0);
    sw_tensor_free(x);

    typed_init(&t, "BF16", 1, (int64_t)1);
    expect_invalid(&t, "BF16 travels only in raw_input_contents");

    /* BYTES values with stray numbers beside them. */
    ProtobufCBinaryData s[1] = {{1, (uint8_t *)"a"}};
    int64_t stray[1] = {5};
    typed_init(&t, "BYTES", 1, (int64_t)1);
    t.contents.n_bytes_contents = 1;
    t.contents.bytes_contents = s;
    t.contents.n_int64_contents = 1;
    t.contents.int64_contents = stray;
    expect_invalid(&t, "BYTES travels in bytes_contents, but contents hold 1 values in other fields");

    protobuf_c_boolean b[3] = {1, 0, 1};
    typed_init(&t, "BOOL", 1, (int64_t)2);
    t.contents.n_bool_contents = 3;
    t.contents.bool_contents = b;
    expect_invalid(&t, "shape [2] needs 2 values in bool_contents, got 3");

    typed_init(&t, "FP32", 1, (int64_t)1);
    t.input.name = "";
    expect_invalid(&t, "input 0 has no name");
    t.input.name = NULL;
    expect_invalid(&t, "input 0 has no name");

    typed_init(&t, "FP32", SW_MAX_DIMS + 1, (int64_t)1, (int64_t)1, (int64_t)1, (int64_t)1, (int64_t)1, (int64_t)1,
               (int64_t)1, (int64_t)1, (int64_t)1);
    expect_invalid(&t, "input 'x': 9 dimensions, at most 8");

    typed_init(&t, "FP32", 2, INT64_C(1) << 40, INT64_C(1) << 40);
    expect_invalid(&t, "input 'x': shape has too many elements");
}

static void test_raw_bytes_any_shape(void)
{
    static const uint8_t framed[] = {1, 0, 0, 0, 'a', 0, 0, 0, 0, 2, 0, 0, 0, 'b', 'c', 1, 0, 0, 0, 'd'};
    typed t;
    typed_init(&t, "BYTES", 2, (int64_t)2, (int64_t)2);
    t.input.contents = NULL;
    ProtobufCBinaryData raw = {sizeof framed, (uint8_t *)framed};
    t.req.n_raw_input_contents = 1;
    t.req.raw_input_contents = &raw;
    GBytes *owner = g_bytes_new_static(&t, sizeof t);
    GError *error = NULL;
    GPtrArray *values = sw_oip_decode_inputs(&t.req, owner, &error);
    g_assert_no_error(error);
    g_bytes_unref(owner);
    const sw_value *v = g_ptr_array_index(values, 0);
    g_assert_cmpint(v->kind, ==, SW_VALUE_STRINGS);
    g_assert_cmpint(v->tensor->ndim, ==, 2);
    g_assert_cmpint(v->tensor->shape[1], ==, 2);
    static const char *const expected[] = {"a", "", "bc", "d"};
    for (size_t i = 0; i < 4; i++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(v->tensor, i, &len);
        g_assert_cmpmem(e, len, expected[i], strlen(expected[i]));
    }
    g_ptr_array_unref(values);
    raw.len--;
    owner = g_bytes_new_static(&t, sizeof t);
    g_assert_null(sw_oip_decode_inputs(&t.req, owner, &error));
    g_bytes_unref(owner);
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_true(g_str_has_prefix(error->message, "input 'x': BYTES framing truncated at element 3"));
    g_clear_error(&error);

    /* Zero elements in zero bytes. */
    GBytes *empty = g_bytes_new(NULL, 0);
    const int64_t s0[] = {0};
    sw_tensor *x = sw_oip_parse_raw_bytes(empty, 1, s0, "input 'e'", &error);
    g_assert_no_error(error);
    g_assert_cmpint(sw_tensor_element_count(x), ==, 0);
    sw_tensor_free(x);
    /* A huge shape over a few bytes fails before anything is allocated. */
    const int64_t absurd[] = {INT64_C(1) << 40};
    g_assert_null(sw_oip_parse_raw_bytes(empty, 1, absurd, "input 'e'", &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_true(g_str_has_prefix(error->message, "input 'e': BYTES framing truncated"));
    g_clear_error(&error);
    g_bytes_unref(empty);
}

/* Decoded raw tensors keep the request alive, and let it go when freed;
 * a failed decode lets it go at once. */
static void test_decoded_tensors_hold_the_owner(void)
{
    float data[2] = {1, 2};
    typed t;
    typed_init(&t, "FP32", 1, (int64_t)2);
    t.input.contents = NULL;
    ProtobufCBinaryData raw = {sizeof data, (uint8_t *)data};
    t.req.n_raw_input_contents = 1;
    t.req.raw_input_contents = &raw;
    int freed = 0;
    GBytes *owner = g_bytes_new_with_free_func(&t, sizeof t, count_free, &freed);
    GError *error = NULL;
    GPtrArray *values = sw_oip_decode_inputs(&t.req, owner, &error);
    g_assert_no_error(error);
    g_bytes_unref(owner);
    g_assert_cmpint(freed, ==, 0);
    g_ptr_array_unref(values);
    g_assert_cmpint(freed, ==, 1);

    freed = 0;
    raw.len = 7;
    owner = g_bytes_new_with_free_func(&t, sizeof t, count_free, &freed);
    g_assert_null(sw_oip_decode_inputs(&t.req, owner, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_true(strstr(error->message, "input 'x': FP32 shape [2] needs 8 bytes of raw contents, got 7") != NULL);
    g_clear_error(&error);
    g_bytes_unref(owner);
    g_assert_cmpint(freed, ==, 1);
}

static void test_unpack_refuses_garbage(void)
{
    static const struct {
        const char *what;
        const uint8_t bytes[8];
        size_t len;
    } cases[] = {
        {"a raw entry longer than the message", {0x3a, 0x05, 'a'}, 3},
        {"a varint that never ends", {0x08, 0xff, 0xff}, 3},
        {"wire type 7", {0x0f, 0x00}, 2},
        {"a fixed64 cut short", {0x09, 1, 2, 3}, 4},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GBytes *bad = g_bytes_new(cases[i].bytes, cases[i].len);
        GBytes *owner = NULL;
        GError *error = NULL;
        if (sw_oip_unpack_infer_request(bad, &owner, &error) != NULL)
            g_error("accepted %s", cases[i].what);
        g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
        g_assert_null(owner);
        g_clear_error(&error);
        g_bytes_unref(bad);
    }
    /* An empty message is a valid, empty request. */
    GBytes *empty = g_bytes_new(NULL, 0);
    GBytes *owner = NULL;
    GError *error = NULL;
    Request *req = sw_oip_unpack_infer_request(empty, &owner, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(req->n_inputs, ==, 0);
    g_assert_cmpuint(req->n_raw_input_contents, ==, 0);
    g_bytes_unref(owner);
    g_bytes_unref(empty);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/request/parts-round-trip", test_request_parts_round_trip);
    g_test_add_func("/request/small-message-is-one-part", test_small_message_is_one_part);
    g_test_add_func("/request/without-pass-through", test_request_without_pass_through);
    g_test_add_func("/request/response-parts-keep-json-and-order", test_response_parts_keep_json_and_order);
    g_test_add_func("/request/typed-widths", test_typed_widths);
    g_test_add_func("/request/typed-edge-cases", test_typed_edge_cases);
    g_test_add_func("/request/raw-bytes-any-shape", test_raw_bytes_any_shape);
    g_test_add_func("/request/decoded-tensors-hold-the-owner", test_decoded_tensors_hold_the_owner);
    g_test_add_func("/request/unpack-refuses-garbage", test_unpack_refuses_garbage);
    return g_test_run();
}
