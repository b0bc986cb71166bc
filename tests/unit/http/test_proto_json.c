/* protobuf-c messages as JSON: field names, zeros printed, enums by name,
 * 64-bit numbers, maps as objects, unset messages left out; read back with
 * json-glib. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "inference.pb-c.h"
#include "proto_json.h"

static JsonObject *parse(const char *text, JsonParser *parser)
{
    GError *error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    return json_node_get_object(json_parser_get_root(parser));
}

static void test_model_config(void)
{
    Inference__ModelConfig c = INFERENCE__MODEL_CONFIG__INIT;
    c.name = "m\"1";
    c.platform = "pytorch_libtorch";
    c.max_batch_size = 16;
    Inference__ModelInput in = INFERENCE__MODEL_INPUT__INIT;
    in.name = "x";
    in.data_type = INFERENCE__DATA_TYPE__TYPE_FP32;
    int64_t dims[] = {G_GINT64_CONSTANT(5000000000), -1};
    in.dims = dims;
    in.n_dims = 2;
    Inference__ModelInput *inputs[] = {&in};
    c.input = inputs;
    c.n_input = 1;
    Inference__ModelParameter p = INFERENCE__MODEL_PARAMETER__INIT;
    p.string_value = "number";
    Inference__ModelConfig__ParametersEntry e = INFERENCE__MODEL_CONFIG__PARAMETERS_ENTRY__INIT;
    e.key = "type:x";
    e.value = &p;
    Inference__ModelConfig__ParametersEntry *entries[] = {&e};
    c.parameters = entries;
    c.n_parameters = 1;
    char *text = sw_proto_json(&c.base);
    JsonParser *parser = json_parser_new();
    JsonObject *o = parse(text, parser);
    g_assert_cmpstr(json_object_get_string_member(o, "name"), ==, "m\"1");
    g_assert_cmpint(json_object_get_int_member(o, "max_batch_size"), ==, 16);
    g_assert_cmpstr(json_object_get_string_member(o, "backend"), ==, ""); /* empty, still printed */
    g_assert_false(json_object_has_member(o, "dynamic_batching"));        /* unset message: left out */
    g_assert_cmpuint(json_array_get_length(json_object_get_array_member(o, "output")), ==, 0);
    JsonObject *x = json_array_get_object_element(json_object_get_array_member(o, "input"), 0);
    g_assert_cmpstr(json_object_get_string_member(x, "data_type"), ==, "TYPE_FP32");
    g_assert_false(json_object_get_boolean_member(x, "optional"));
    JsonArray *d = json_object_get_array_member(x, "dims");
    g_assert_cmpint(json_array_get_int_element(d, 0), ==, G_GINT64_CONSTANT(5000000000));
    g_assert_cmpint(json_array_get_int_element(d, 1), ==, -1);
    JsonObject *params = json_object_get_object_member(o, "parameters");
    JsonObject *type = json_object_get_object_member(params, "type:x");
    g_assert_cmpstr(json_object_get_string_member(type, "string_value"), ==, "number");
    g_object_unref(parser);
    g_free(text);
}

static void test_statistics(void)
{
    Inference__StatisticDuration d = INFERENCE__STATISTIC_DURATION__INIT;
    d.count = 3;
    d.ns = G_GUINT64_CONSTANT(18446744073709551615);
    Inference__InferBatchStatistics b = INFERENCE__INFER_BATCH_STATISTICS__INIT;
    b.batch_size = 7;
    b.compute_infer = &d;
    Inference__InferBatchStatistics *batches[] = {&b};
    Inference__ModelStatistics s = INFERENCE__MODEL_STATISTICS__INIT;
    s.name = "m";
    s.version = "1";
    s.batch_stats = batches;
    s.n_batch_stats = 1;
    Inference__ModelStatistics *list[] = {&s};
    Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
    r.model_stats = list;
    r.n_model_stats = 1;
    char *text = sw_proto_json(&r.base);
    g_assert_nonnull(strstr(text, "\"ns\":18446744073709551615"));
    JsonParser *parser = json_parser_new();
    JsonObject *o = parse(text, parser);
    JsonObject *m = json_array_get_object_element(json_object_get_array_member(o, "model_stats"), 0);
    g_assert_cmpstr(json_object_get_string_member(m, "version"), ==, "1");
    g_assert_cmpint(json_object_get_int_member(m, "last_inference"), ==, 0);
    g_assert_false(json_object_has_member(m, "inference_stats"));
    JsonObject *batch = json_array_get_object_element(json_object_get_array_member(m, "batch_stats"), 0);
    g_assert_cmpint(json_object_get_int_member(batch, "batch_size"), ==, 7);
    JsonObject *infer = json_object_get_object_member(batch, "compute_infer");
    g_assert_cmpint(json_object_get_int_member(infer, "count"), ==, 3);
    g_object_unref(parser);
    g_free(text);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/proto_json/model_config", test_model_config);
    g_test_add_func("/proto_json/statistics", test_statistics);
    return g_test_run();
}
