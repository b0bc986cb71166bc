/* REST URLs to routes (and the 404/405 refusals), the status map, and the
 * metadata JSON. */
#include <string.h>

#include "rest_routes.h"
#include "sw_error.h"

static void expect_route(const char *method, const char *path, sw_rest_route_kind kind, const char *model,
                         const char *version)
{
    sw_rest_route route;
    GError *error = NULL;
    g_assert_true(sw_rest_route_parse(method, path, &route, &error));
    g_assert_no_error(error);
    g_assert_cmpint(route.kind, ==, kind);
    g_assert_cmpstr(route.model, ==, model);
    g_assert_cmpstr(route.version, ==, version);
    sw_rest_route_clear(&route);
}

static void expect_refused(const char *method, const char *path, int code)
{
    sw_rest_route route;
    GError *error = NULL;
    g_assert_false(sw_rest_route_parse(method, path, &route, &error));
    g_assert_error(error, SW_ERROR, code);
    g_error_free(error);
    sw_rest_route_clear(&route);
}

static void test_routes(void)
{
    expect_route("GET", "/v2", SW_REST_SERVER_METADATA, NULL, NULL);
    expect_route("GET", "/v2/", SW_REST_SERVER_METADATA, NULL, NULL);
    expect_route("GET", "/v2/health/live", SW_REST_SERVER_LIVE, NULL, NULL);
    expect_route("HEAD", "/v2/health/ready", SW_REST_SERVER_READY, NULL, NULL);
    expect_route("GET", "/v2/models/m", SW_REST_MODEL_METADATA, "m", "");
    expect_route("GET", "/v2/models/m/versions/1", SW_REST_MODEL_METADATA, "m", "1");
    expect_route("GET", "/v2/models/m/ready", SW_REST_MODEL_READY, "m", "");
    expect_route("GET", "/v2/models/m/versions/2/ready", SW_REST_MODEL_READY, "m", "2");
    expect_route("POST", "/v2/models/m/infer", SW_REST_MODEL_INFER, "m", "");
    expect_route("POST", "/v2/models/m/versions/1/infer", SW_REST_MODEL_INFER, "m", "1");
    expect_route("GET", "/v2/models/m/config", SW_REST_MODEL_CONFIG, "m", "");
    expect_route("GET", "/v2/models/m/versions/1/config", SW_REST_MODEL_CONFIG, "m", "1");
    expect_route("GET", "/v2/models/m/stats", SW_REST_MODEL_STATS, "m", "");
    expect_route("GET", "/v2/models/m/versions/1/stats", SW_REST_MODEL_STATS, "m", "1");
    expect_route("GET", "/v2/models/stats", SW_REST_ALL_STATS, "", "");
    expect_route("GET", "/v2/models/stats/", SW_REST_ALL_STATS, "", "");
    expect_route("GET", "/v2/models/stats/versions/1", SW_REST_MODEL_METADATA, "stats", "1");
    expect_refused("POST", "/v2/models/m/config", SW_CODE_UNIMPLEMENTED);
    expect_refused("POST", "/v2/models/stats", SW_CODE_UNIMPLEMENTED);
    expect_refused("GET", "/v2/models/m/stats/x", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/v1/models/m", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/v2/models", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/v2/models//ready", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/v2/models/m/predict", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/v2/models/m/versions/1/infer/x", SW_CODE_NOT_FOUND);
    expect_refused("GET", "/v2/models/m/infer", SW_CODE_UNIMPLEMENTED);
    expect_refused("POST", "/v2/health/live", SW_CODE_UNIMPLEMENTED);
    sw_rest_route route = {.kind = SW_REST_SERVER_LIVE};
    g_assert_true(sw_rest_route_is_open(&route));
    route.kind = SW_REST_MODEL_METADATA;
    g_assert_false(sw_rest_route_is_open(&route));
}

static void test_status_map(void)
{
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_OK), ==, 200);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_INVALID_ARGUMENT), ==, 400);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_NOT_FOUND), ==, 404);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_UNAVAILABLE), ==, 503);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_RESOURCE_EXHAUSTED), ==, 429);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_UNAUTHENTICATED), ==, 401);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_PERMISSION_DENIED), ==, 403);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_DEADLINE_EXCEEDED), ==, 504);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_UNIMPLEMENTED), ==, 501);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_INTERNAL), ==, 500);
    g_assert_cmpuint(sw_rest_http_status(SW_CODE_FAILED_PRECONDITION), ==, 500);
}

static void test_metadata_json(void)
{
    Inference__ModelMetadataResponse m = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    char *versions[] = {"1"};
    int64_t shape[] = {-1, 3};
    Inference__ModelMetadataResponse__TensorMetadata t = INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
    t.name = "x";
    t.datatype = "FP32";
    t.n_shape = 2;
    t.shape = shape;
    Inference__ModelMetadataResponse__TensorMetadata *tensors[] = {&t};
    m.name = "m";
    m.n_versions = 1;
    m.versions = versions;
    m.platform = "p";
    m.n_inputs = 1;
    m.inputs = tensors;
    char *json = sw_rest_model_metadata_json(&m);
    g_assert_cmpstr(json, ==,
                    "{\"name\":\"m\",\"versions\":[\"1\"],\"platform\":\"p\",\"inputs\":[{\"name\":\"x\",\"datatype\":"
                    "\"FP32\",\"shape\":[-1,3]}],\"outputs\":[],\"properties\":{}}");
    g_free(json);
    Inference__ServerMetadataResponse s = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    s.name = "stagewise";
    s.version = "0.1";
    json = sw_rest_server_metadata_json(&s);
    g_assert_cmpstr(json, ==, "{\"name\":\"stagewise\",\"version\":\"0.1\",\"extensions\":[]}");
    g_free(json);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rest_routes/routes", test_routes);
    g_test_add_func("/rest_routes/status_map", test_status_map);
    g_test_add_func("/rest_routes/metadata_json", test_metadata_json);
    return g_test_run();
}
