/* The REST body <-> OIP translation: JSON data (flat and nested, BYTES,
 * BOOL, numbers by datatype), Triton's binary tensor extension both ways,
 * and malformed bodies refused with messages that say what is wrong. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "inference.pb-c.h"
#include "oip_codec.h"
#include "rest_codec.h"
#include "sw_error.h"

/* Parses `json` (all JSON) and unpacks the packed request. */
static Inference__ModelInferRequest *parse_ok(const char *body, size_t len, gssize header_len, sw_rest_request *r)
{
    GError *error = NULL;
    gboolean ok = sw_rest_request_parse("m", "", (const guint8 *)body, len, header_len, r, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
    gsize n = 0;
    const guint8 *data = g_bytes_get_data(r->packed, &n);
    Inference__ModelInferRequest *req = inference__model_infer_request__unpack(NULL, n, data);
    g_assert_nonnull(req);
    g_assert_cmpstr(req->model_name, ==, "m");
    return req;
}

static Inference__ModelInferRequest *parse_json(const char *json, sw_rest_request *r)
{
    return parse_ok(json, strlen(json), -1, r);
}

/* Expects `json` refused INVALID_ARGUMENT with `fragment` in the message. */
static void expect_refused(const char *body, size_t len, gssize header_len, const char *fragment)
{
    sw_rest_request r;
    GError *error = NULL;
    g_assert_false(sw_rest_request_parse("m", "", (const guint8 *)body, len, header_len, &r, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    if (strstr(error->message, fragment) == NULL)
        g_error("'%s' does not contain '%s'", error->message, fragment);
    g_error_free(error);
    sw_rest_request_clear(&r);
}

static void expect_json_refused(const char *json, const char *fragment)
{
    expect_refused(json, strlen(json), -1, fragment);
}

static void assert_raw(const ProtobufCBinaryData *raw, const void *expected, size_t len)
{
    g_assert_cmpuint(raw->len, ==, len);
    g_assert_cmpmem(raw->data, raw->len, expected, len);
}

static void test_flat_and_nested(void)
{
    sw_rest_request r;
    Inference__ModelInferRequest *req = parse_json(
        "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[[1,2.5],[3,-4]]},"
        "{\"name\":\"y\",\"shape\":[2,2],\"datatype\":\"INT64\",\"data\":[1,2,3,-4]},"
        "{\"name\":\"z\",\"shape\":[3],\"datatype\":\"INT8\",\"data\":[-128,0,127]}]}",
        &r);
    g_assert_cmpstr(req->id, ==, "r1");
    g_assert_cmpint(r.timeout_us, ==, 0);
    g_assert_cmpuint(req->n_inputs, ==, 3);
    g_assert_cmpuint(req->n_raw_input_contents, ==, 3);
    g_assert_cmpstr(req->inputs[0]->datatype, ==, "FP32");
    g_assert_cmpuint(req->inputs[0]->n_shape, ==, 2);
    const float x[] = {1, 2.5f, 3, -4};
    assert_raw(&req->raw_input_contents[0], x, sizeof x);
    const int64_t y[] = {1, 2, 3, -4};
    assert_raw(&req->raw_input_contents[1], y, sizeof y);
    const int8_t z[] = {-128, 0, 127};
    assert_raw(&req->raw_input_contents[2], z, sizeof z);
    g_assert_nonnull(r.binary_outputs);
    g_assert_null(r.binary_outputs[0]);
    inference__model_infer_request__free_unpacked(req, NULL);
    sw_rest_request_clear(&r);
}

static void test_bytes_and_bool(void)
{
    sw_rest_request r;
    Inference__ModelInferRequest *req =
        parse_json("{\"inputs\":[{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"ab\",\"c\"],"
                   "\"parameters\":{\"content_type\":\"str\"}},"
                   "{\"name\":\"b\",\"shape\":[1,2],\"datatype\":\"BOOL\",\"data\":[[true,false]]}],"
                   "\"outputs\":[{\"name\":\"o1\",\"parameters\":{\"binary_data\":true}},{\"name\":\"o2\"}],"
                   "\"parameters\":{\"timeout\":250000}}",
                   &r);
    static const guint8 framed[] = {2, 0, 0, 0, 'a', 'b', 1, 0, 0, 0, 'c'};
    assert_raw(&req->raw_input_contents[0], framed, sizeof framed);
    g_assert_cmpuint(req->inputs[0]->n_parameters, ==, 1);
    g_assert_cmpstr(req->inputs[0]->parameters[0]->key, ==, "content_type");
    g_assert_cmpstr(req->inputs[0]->parameters[0]->value->string_param, ==, "str");
    static const guint8 bools[] = {1, 0};
    assert_raw(&req->raw_input_contents[1], bools, sizeof bools);
    g_assert_cmpuint(req->n_outputs, ==, 2);
    g_assert_cmpstr(req->outputs[1]->name, ==, "o2");
    g_assert_cmpstr(r.binary_outputs[0], ==, "o1");
    g_assert_cmpint(r.timeout_us, ==, 250000);
    g_assert_null(r.binary_outputs[1]);
    inference__model_infer_request__free_unpacked(req, NULL);
    sw_rest_request_clear(&r);
}

static void test_binary_input(void)
{
    const char *header =
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\","
        "\"parameters\":{\"binary_data_size\":8}},"
        "{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":6}}]}";
    const float x[] = {0.5f, -1};
    static const guint8 s[] = {2, 0, 0, 0, 'h', 'i'};
    GByteArray *body = g_byte_array_new();
    g_byte_array_append(body, (const guint8 *)header, (guint)strlen(header));
    g_byte_array_append(body, (const guint8 *)x, sizeof x);
    g_byte_array_append(body, s, sizeof s);
    sw_rest_request r;
    Inference__ModelInferRequest *req = parse_ok((const char *)body->data, body->len, (gssize)strlen(header), &r);
    assert_raw(&req->raw_input_contents[0], x, sizeof x);
    assert_raw(&req->raw_input_contents[1], s, sizeof s);
    /* binary_data_size is the extension's, not passed on as a parameter. */
    g_assert_cmpuint(req->inputs[0]->n_parameters, ==, 0);
    inference__model_infer_request__free_unpacked(req, NULL);
    sw_rest_request_clear(&r);
    /* Sizes that disagree with the body. */
    expect_refused((const char *)body->data, body->len - 1, (gssize)strlen(header), "runs past the end of the body");
    g_byte_array_append(body, (const guint8 *)"!", 1);
    expect_refused((const char *)body->data, body->len, (gssize)strlen(header), "add up to 14");
    expect_refused((const char *)body->data, body->len, (gssize)body->len + 1, "Inference-Header-Content-Length");
    g_byte_array_unref(body);
}

static void test_malformed(void)
{
    expect_json_refused("{\"inputs\": [", "not valid JSON");
    expect_json_refused("[1,2]", "must be a JSON object");
    expect_json_refused("{}", "no \"inputs\" array");
    expect_json_refused("{\"inputs\": 3}", "'inputs' must be an array");
    expect_json_refused("{\"id\": 3, \"inputs\": []}", "'id' must be a string");
    expect_json_refused("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                        "inputs[0] needs \"name\"");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FLOAT\",\"data\":[1]}]}",
                        "input 'x': datatype 'FLOAT' is not an OIP datatype");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
                        "input 'x': data has 3 elements; shape [2,2] needs 4");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,\"a\"]}]}",
                        "input 'x': element 1 of data is not a number");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[1.5]}]}",
                        "not an integer");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"UINT8\",\"data\":[256]}]}",
                        "256, is out of range for UINT8");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[1]}]}",
                        "is not a string");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BOOL\",\"data\":[1]}]}",
                        "is not true or false");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP16\",\"data\":[1]}]}",
                        "send it as binary data");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[-1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                        "non-negative integers");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}",
                        "neither \"data\" nor a binary_data_size");
    expect_json_refused("{\"inputs\":[],\"outputs\":[{\"nom\":\"y\"}]}", "outputs[0] must be an object");
    expect_json_refused("{\"inputs\":[],\"parameters\":{\"timeout\":\"soon\"}}", "'timeout' must be a non-negative");
    /* json-glib reads a backslash and octal digits, which JSON has no escape
     * for, into a byte that is not UTF-8: in a name, a key or data alike. */
    expect_json_refused("{\"inputs\":[{\"name\":\"x\\333\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                        "a string that is not UTF-8");
    expect_json_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"\\377\"]}]}",
                        "a string that is not UTF-8");
    expect_json_refused("{\"inputs\":[],\"parameters\":{\"k\\377\":1}}", "a string that is not UTF-8");
    /* Client text is clipped in messages. */
    GString *long_name = g_string_new("{\"inputs\":[{\"name\":\"");
    for (int i = 0; i < 100000; i++)
        g_string_append_c(long_name, 'n');
    g_string_append(long_name, "\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[\"a\"]}]}");
    sw_rest_request r;
    GError *error = NULL;
    g_assert_false(sw_rest_request_parse("m", "", (const guint8 *)long_name->str, long_name->len, -1, &r, &error));
    g_assert_nonnull(strstr(error->message, "(cut)"));
    g_assert_cmpuint(strlen(error->message), <, 1000);
    g_error_free(error);
    sw_rest_request_clear(&r);
    g_string_free(long_name, TRUE);
}

/* A packed response over three outputs: FP32 [2,2], BYTES [2] (json
 * content type), BOOL [2]. */
static GBytes *make_response(void)
{
    GPtrArray *outputs = sw_output_array_new();
    const float f[] = {0.1f, 2, -3.5f, 4};
    const int64_t fshape[] = {2, 2};
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup("probs");
    o->tensor = sw_tensor_new_copy(SW_DTYPE_FP32, 2, fshape, f, sizeof f);
    g_ptr_array_add(outputs, o);
    const char *strings[] = {"[\"a\"]", "caf\xc3\xa9"};
    const size_t lens[] = {5, 5};
    o = g_new0(sw_output, 1);
    o->name = g_strdup("tags");
    o->tensor = sw_tensor_new_strings(strings, lens, 2);
    o->json = TRUE;
    g_ptr_array_add(outputs, o);
    const guint8 b[] = {1, 0};
    const int64_t bshape[] = {2};
    o = g_new0(sw_output, 1);
    o->name = g_strdup("flags");
    o->tensor = sw_tensor_new_copy(SW_DTYPE_BOOL, 1, bshape, b, sizeof b);
    g_ptr_array_add(outputs, o);
    Inference__ModelInferResponse *resp = sw_oip_response_build("m", "id1", outputs);
    GBytes *packed = sw_protobuf_pack(&resp->base);
    sw_oip_response_free(resp);
    g_ptr_array_unref(outputs);
    return packed;
}

static JsonObject *output_named(JsonObject *root, const char *name)
{
    JsonArray *outs = json_object_get_array_member(root, "outputs");
    for (guint i = 0; i < json_array_get_length(outs); i++) {
        JsonObject *o = json_array_get_object_element(outs, i);
        if (strcmp(json_object_get_string_member(o, "name"), name) == 0)
            return o;
    }
    g_error("no output %s", name);
    return NULL;
}

static void test_render_json(void)
{
    GBytes *packed = make_response();
    sw_rest_request r = {0};
    sw_rest_reply reply;
    GError *error = NULL;
    g_assert_true(sw_rest_response_render(packed, &r, &reply, &error));
    g_assert_no_error(error);
    g_assert_cmpint(reply.header_len, ==, -1);
    JsonParser *parser = json_parser_new();
    gsize len = 0;
    const char *text = g_bytes_get_data(reply.body, &len);
    g_assert_true(json_parser_load_from_data(parser, text, (gssize)len, NULL));
    JsonObject *root = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpstr(json_object_get_string_member(root, "model_name"), ==, "m");
    g_assert_cmpstr(json_object_get_string_member(root, "model_version"), ==, "1");
    g_assert_cmpstr(json_object_get_string_member(root, "id"), ==, "id1");
    JsonObject *probs = output_named(root, "probs");
    g_assert_cmpstr(json_object_get_string_member(probs, "datatype"), ==, "FP32");
    JsonArray *shape = json_object_get_array_member(probs, "shape");
    g_assert_cmpint(json_array_get_int_element(shape, 0), ==, 2);
    JsonArray *data = json_object_get_array_member(probs, "data");
    g_assert_cmpuint(json_array_get_length(data), ==, 4);
    /* Printed so that it reads back as the same float. */
    g_assert_cmpfloat((float)json_array_get_double_element(data, 0), ==, 0.1f);
    g_assert_cmpfloat(json_array_get_double_element(data, 2), ==, -3.5);
    JsonObject *tags = output_named(root, "tags");
    g_assert_cmpstr(json_array_get_string_element(json_object_get_array_member(tags, "data"), 0), ==, "[\"a\"]");
    g_assert_cmpstr(json_array_get_string_element(json_object_get_array_member(tags, "data"), 1), ==, "caf\xc3\xa9");
    g_assert_cmpstr(json_object_get_string_member(json_object_get_object_member(tags, "parameters"), "content_type"),
                    ==, "json");
    JsonArray *flags = json_object_get_array_member(output_named(root, "flags"), "data");
    g_assert_true(json_array_get_boolean_element(flags, 0));
    g_assert_false(json_array_get_boolean_element(flags, 1));
    g_object_unref(parser);
    g_bytes_unref(reply.body);
    g_bytes_unref(packed);
}

static void test_render_binary(void)
{
    GBytes *packed = make_response();
    char *binary[] = {"tags", "probs", NULL};
    sw_rest_request r = {.binary_outputs = binary};
    sw_rest_reply reply;
    GError *error = NULL;
    g_assert_true(sw_rest_response_render(packed, &r, &reply, &error));
    g_assert_cmpint(reply.header_len, >, 0);
    gsize len = 0;
    const guint8 *body = g_bytes_get_data(reply.body, &len);
    JsonParser *parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, (const char *)body, reply.header_len, NULL));
    JsonObject *root = json_node_get_object(json_parser_get_root(parser));
    JsonObject *probs = output_named(root, "probs");
    g_assert_false(json_object_has_member(probs, "data"));
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(probs, "parameters"), "binary_data_size"),
                    ==, 16);
    JsonObject *tags = output_named(root, "tags");
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(tags, "parameters"), "binary_data_size"),
                    ==, 18);
    g_assert_true(json_object_has_member(output_named(root, "flags"), "data"));
    /* In the order of the outputs: probs, then tags. */
    g_assert_cmpuint(len, ==, (gsize)reply.header_len + 16 + 18);
    const float f[] = {0.1f, 2, -3.5f, 4};
    g_assert_cmpmem(body + reply.header_len, 16, f, sizeof f);
    static const guint8 framed[] = {5, 0, 0, 0, '[', '"', 'a', '"', ']', 5, 0, 0, 0, 'c', 'a', 'f', 0xc3, 0xa9};
    g_assert_cmpmem(body + reply.header_len + 16, 18, framed, sizeof framed);
    g_object_unref(parser);
    g_bytes_unref(reply.body);
    g_bytes_unref(packed);
}

static void test_render_refuses_non_utf8(void)
{
    GPtrArray *outputs = sw_output_array_new();
    const char *strings[] = {"\xff\xfe"};
    const size_t lens[] = {2};
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup("raw");
    o->tensor = sw_tensor_new_strings(strings, lens, 1);
    g_ptr_array_add(outputs, o);
    Inference__ModelInferResponse *resp = sw_oip_response_build("m", "", outputs);
    GBytes *packed = sw_protobuf_pack(&resp->base);
    sw_oip_response_free(resp);
    g_ptr_array_unref(outputs);
    sw_rest_request r = {0};
    sw_rest_reply reply;
    GError *error = NULL;
    g_assert_false(sw_rest_response_render(packed, &r, &reply, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    g_assert_nonnull(strstr(error->message, "ask for it as binary data"));
    g_error_free(error);
    /* As binary data it goes through. */
    r.all_binary = TRUE;
    g_assert_true(sw_rest_response_render(packed, &r, &reply, &error));
    g_assert_cmpint(reply.header_len, >, 0);
    g_bytes_unref(reply.body);
    g_bytes_unref(packed);
}

static void test_error_body(void)
{
    char *body = sw_rest_error_body("bad \"x\"\n");
    g_assert_cmpstr(body, ==, "{\"error\":\"bad \\\"x\\\"\\n\"}");
    g_free(body);
    /* A message echoing raw bytes from a URL path is still a JSON document. */
    body = sw_rest_error_body("no model named 'm\xff\xfe'");
    g_assert_cmpstr(body, ==, "{\"error\":\"no model named 'm\\ufffd\\ufffd'\"}");
    g_assert_true(g_utf8_validate(body, -1, NULL));
    g_free(body);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rest_codec/flat_and_nested", test_flat_and_nested);
    g_test_add_func("/rest_codec/bytes_and_bool", test_bytes_and_bool);
    g_test_add_func("/rest_codec/binary_input", test_binary_input);
    g_test_add_func("/rest_codec/malformed", test_malformed);
    g_test_add_func("/rest_codec/render_json", test_render_json);
    g_test_add_func("/rest_codec/render_binary", test_render_binary);
    g_test_add_func("/rest_codec/render_refuses_non_utf8", test_render_refuses_non_utf8);
    g_test_add_func("/rest_codec/error_body", test_error_body);
    return g_test_run();
}
