/* The OIP service of one stage over a real server on 127.0.0.1: liveness
 * and readiness, model metadata, and ModelInfer from a good request to
 * every way one fails, alone, batched and counted in metrics. */
#include <grpc/grpc.h>
#include <string.h>

#include "clip.h"

#include "channel.h"
#include "fake_torch.h"
#include "harness.h"
#include "metrics.h"
#include "oip_codec.h"
#include "oip_paths.h"
#include "oip_service.h"
#include "sw_error.h"
#include "unit_support.h"

#define WAIT_US (10 * G_USEC_PER_SEC)

/* Calls `path` with `message` and unpacks the answer as `desc`; NULL with
 * the call's error. */
static ProtobufCMessage *call_message(stage_server *s, const char *path, const ProtobufCMessage *message,
                                      const ProtobufCMessageDescriptor *desc, GError **error)
{
    GBytes *request = sw_protobuf_pack(message);
    GBytes *response = stage_server_call(s, path, request, error);
    g_bytes_unref(request);
    if (response == NULL)
        return NULL;
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    g_assert_nonnull(m);
    g_bytes_unref(response);
    return m;
}

/* Serves stage `kind` of model "m" whose modules are `module`. With `load`
 * the module is loaded and the service told so, but it is not yet
 * serving: health and readiness follow set_serving alone. */
static stage_server *serve(sw_stage_kind kind, const char *module, gboolean load, const sw_oip_service_options *options)
{
    server_setup setup = {.kind = kind, .module = module, .not_loaded = !load};
    if (options)
        setup.options = *options;
    return stage_server_start(&setup);
}

/* --- requests --- */

static GPtrArray *without(GPtrArray *inputs, const char *name)
{
    for (guint i = 0; i < inputs->len; i++)
        if (strcmp(((sw_output *)g_ptr_array_index(inputs, i))->name, name) == 0)
            g_ptr_array_remove_index(inputs, i);
    return inputs;
}

/* The outputs of a packed ModelInferResponse, after checking its model and id. */
static GPtrArray *response_outputs(GBytes *response, const char *model, const char *id)
{
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, len, data);
    g_assert_nonnull(resp);
    g_assert_cmpstr(resp->model_name, ==, model);
    g_assert_cmpstr(resp->id, ==, id);
    GError *error = NULL;
    GPtrArray *outputs = sw_oip_decode_outputs(resp, &error);
    g_assert_no_error(error);
    inference__model_infer_response__free_unpacked(resp, NULL);
    return outputs;
}

static GPtrArray *infer_ok(stage_server *s, GBytes *request, const char *model, const char *id)
{
    GError *error = NULL;
    GBytes *response = stage_server_call(s, SW_PATH_MODEL_INFER, request, &error);
    g_assert_no_error(error);
    g_bytes_unref(request);
    GPtrArray *outputs = response_outputs(response, model, id);
    g_bytes_unref(response);
    return outputs;
}

static void infer_fails(stage_server *s, GBytes *request, int code, const char *substring)
{
    GError *error = NULL;
    GBytes *response = stage_server_call(s, SW_PATH_MODEL_INFER, request, &error);
    g_assert_null(response);
    assert_error(error, code, substring);
    g_error_free(error);
    g_bytes_unref(request);
}

/* --- readiness and metadata --- */

static gboolean server_ready(stage_server *s)
{
    Inference__ServerReadyRequest req = INFERENCE__SERVER_READY_REQUEST__INIT;
    GError *error = NULL;
    Inference__ServerReadyResponse *resp = (Inference__ServerReadyResponse *)call_message(
        s, SW_PATH_SERVER_READY, &req.base, &inference__server_ready_response__descriptor, &error);
    g_assert_no_error(error);
    gboolean ready = resp->ready;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ready;
}

/* ModelReady of `name`/`version`: 1 ready, 0 not, -1 failed with `error`. */
static int model_ready(stage_server *s, const char *name, const char *version, GError **error)
{
    Inference__ModelReadyRequest req = INFERENCE__MODEL_READY_REQUEST__INIT;
    req.name = (char *)name;
    req.version = (char *)version;
    Inference__ModelReadyResponse *resp = (Inference__ModelReadyResponse *)call_message(
        s, SW_PATH_MODEL_READY, &req.base, &inference__model_ready_response__descriptor, error);
    if (resp == NULL)
        return -1;
    int ready = resp->ready ? 1 : 0;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ready;
}

static void test_live_and_ready_follow_serving(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", FALSE, NULL);
    Inference__ServerLiveRequest live_req = INFERENCE__SERVER_LIVE_REQUEST__INIT;
    GError *error = NULL;
    Inference__ServerLiveResponse *live = (Inference__ServerLiveResponse *)call_message(
        s, SW_PATH_SERVER_LIVE, &live_req.base, &inference__server_live_response__descriptor, &error);
    g_assert_no_error(error);
    g_assert_true(live->live);
    protobuf_c_message_free_unpacked(&live->base, NULL);

    /* Loading: alive, not ready. */
    g_assert_false(server_ready(s));
    g_assert_cmpint(model_ready(s, "m_predictor", "", &error), ==, 0);
    g_assert_no_error(error);
    /* Loaded is not yet serving: the server says when. */
    g_assert_true(sw_stage_load_module(s->stage, 1, &error));
    sw_oip_service_set_loaded(s->oip);
    g_assert_false(server_ready(s));
    sw_oip_service_set_serving(s->oip, TRUE);
    g_assert_true(server_ready(s));
    g_assert_cmpint(model_ready(s, "m_predictor", "", &error), ==, 1);
    g_assert_cmpint(model_ready(s, "m_predictor", "1", &error), ==, 1);
    g_assert_no_error(error);
    /* Draining. */
    sw_oip_service_set_serving(s->oip, FALSE);
    g_assert_false(server_ready(s));
    g_assert_cmpint(model_ready(s, "m_predictor", "", &error), ==, 0);
    g_assert_no_error(error);

    g_assert_cmpint(model_ready(s, "nope", "", &error), ==, -1);
    assert_error(error, SW_CODE_NOT_FOUND, "'nope' is not served here; this server serves 'm_predictor'");
    g_clear_error(&error);
    /* A predictor without a next stage does not serve the pipeline. */
    g_assert_cmpint(model_ready(s, "m", "", &error), ==, -1);
    assert_error(error, SW_CODE_NOT_FOUND, "'m' is not served here");
    g_assert_null(strstr(error->message, " and '"));
    g_clear_error(&error);
    g_assert_cmpint(model_ready(s, "m_predictor", "2", &error), ==, -1);
    assert_error(error, SW_CODE_NOT_FOUND, "no version '2'");
    g_clear_error(&error);
    stage_server_stop(s);
}

static void test_server_metadata(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, NULL);
    Inference__ServerMetadataRequest req = INFERENCE__SERVER_METADATA_REQUEST__INIT;
    GError *error = NULL;
    Inference__ServerMetadataResponse *resp = (Inference__ServerMetadataResponse *)call_message(
        s, SW_PATH_SERVER_METADATA, &req.base, &inference__server_metadata_response__descriptor, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(resp->name, ==, "stagewise");
    g_assert_cmpstr(resp->version, ==, SW_VERSION);
    g_assert_cmpuint(resp->n_extensions, ==, 4);
    g_assert_cmpstr(resp->extensions[2], ==, "model_configuration");
    g_assert_cmpstr(resp->extensions[3], ==, "statistics");
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    stage_server_stop(s);
}

static Inference__ModelMetadataResponse *model_metadata(stage_server *s, const char *name, const char *version,
                                                        GError **error)
{
    Inference__ModelMetadataRequest req = INFERENCE__MODEL_METADATA_REQUEST__INIT;
    req.name = (char *)name;
    req.version = (char *)version;
    return (Inference__ModelMetadataResponse *)call_message(s, SW_PATH_MODEL_METADATA, &req.base,
                                                            &inference__model_metadata_response__descriptor, error);
}

static const char *property(const Inference__ModelMetadataResponse *m, const char *key)
{
    for (size_t i = 0; i < m->n_properties; i++)
        if (strcmp(m->properties[i]->key, key) == 0)
            return m->properties[i]->value;
    return NULL;
}

typedef struct expected_tensor {
    const char *name;
    const char *datatype;
    const char *shape; /* as "[-1,6]" */
} expected_tensor;

static void assert_tensors(Inference__ModelMetadataResponse__TensorMetadata **got, size_t n_got,
                           const expected_tensor *want, size_t n_want)
{
    g_assert_cmpuint(n_got, ==, n_want);
    for (size_t i = 0; i < n_want; i++) {
        g_assert_cmpstr(got[i]->name, ==, want[i].name);
        g_assert_cmpstr(got[i]->datatype, ==, want[i].datatype);
        char *shape = sw_shape_to_string((int)got[i]->n_shape, got[i]->shape);
        g_assert_cmpstr(shape, ==, want[i].shape);
        g_free(shape);
    }
}

static void test_model_metadata_of_the_stage(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, NULL);
    GError *error = NULL;
    Inference__ModelMetadataResponse *m = model_metadata(s, "m_predictor", "", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(m->name, ==, "m_predictor");
    g_assert_cmpstr(m->platform, ==, "ludwig_torchscript");
    g_assert_cmpuint(m->n_versions, ==, 1);
    g_assert_cmpstr(m->versions[0], ==, "1");
    static const expected_tensor inputs[] = {{"age", "FP32", "[-1]"},
                                             {"color", "INT32", "[-1]"},
                                             {"review", "INT64", "[-1,6]"},
                                             {"when", "INT32", "[-1,9]"}};
    assert_tensors(m->inputs, m->n_inputs, inputs, G_N_ELEMENTS(inputs));
    static const expected_tensor outputs[] = {{"label::predictions", "INT64", "[-1]"},
                                              {"label::probabilities", "FP32", "[-1,3]"},
                                              {"label::logits", "FP32", "[-1,3]"},
                                              {"score::predictions", "FP32", "[-1]"},
                                              {"score::logits", "FP32", "[-1]"}};
    assert_tensors(m->outputs, m->n_outputs, outputs, G_N_ELEMENTS(outputs));
    g_assert_cmpstr(property(m, "stage"), ==, "predictor");
    g_assert_cmpstr(property(m, "device"), ==, "cpu");
    g_assert_cmpstr(property(m, "ludwig_model"), ==, "m");
    g_assert_null(property(m, "next"));
    /* No output of the predictor is ragged, and only the preprocessor
     * describes data columns. */
    for (size_t i = 0; i < m->n_properties; i++) {
        g_assert_false(g_str_has_prefix(m->properties[i]->key, "content_type:"));
        g_assert_false(g_str_has_prefix(m->properties[i]->key, "column:"));
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);

    m = model_metadata(s, "m_predictor", "1", &error);
    g_assert_no_error(error);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    g_assert_null(model_metadata(s, "m_predictor", "7", &error));
    assert_error(error, SW_CODE_NOT_FOUND, "no version '7'; its only version is '1'");
    g_clear_error(&error);
    g_assert_null(model_metadata(s, "m_preprocessor", "", &error));
    assert_error(error, SW_CODE_NOT_FOUND,
                 "model 'm_preprocessor' is not served here; this server serves 'm_predictor'");
    g_clear_error(&error);
    stage_server_stop(s);
}

/* An export whose outputs include a text feature, whose predictions the
 * postprocessor answers as JSON rows. */
static const char *const text_output_config = "{\"input_features\": [{\"name\": \"age\", \"type\": \"number\"}],"
                                              "\"output_features\": [{\"name\": \"label\", \"type\": \"category\"},"
                                              "{\"name\": \"summary\", \"type\": \"text\"}]}";
static const char *const text_output_metadata =
    "{\"age\": {}, \"label\": {\"idx2str\": [\"a\", \"b\", \"c\"]},"
    "\"summary\": {\"idx2str\": [\"<EOS>\", \"<SOS>\", \"<PAD>\", \"<UNK>\", \"ok\"], \"max_sequence_length\": 4}}";

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_assert_true(g_file_set_contents(path, text, -1, &error));
    g_assert_no_error(error);
    g_free(path);
}

static const sw_method *infer_method(const sw_method *methods, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (g_strcmp0(methods[i].path, SW_PATH_MODEL_INFER) == 0)
            return &methods[i];
    g_assert_not_reached();
}

/* How ModelInfer is dispatched: small calls inline only while the server is
 * idle by default, at any load with inline_when_busy, and never run inline
 * by the handler itself with batching (the batcher decides). */
static void test_inline_when_busy(void)
{
    char *dir = sw_test_dir_new();
    sw_test_write_export(dir, NULL, "op=echo", NULL);
    GError *error = NULL;
    sw_export *export = sw_export_load(dir, &error);
    g_assert_no_error(error);
    const struct {
        sw_oip_service_options options;
        gboolean inline_when_idle;
    } cases[] = {
        {{.inline_max_rows = 16}, TRUE},
        {{.inline_max_rows = 16, .inline_when_busy = TRUE}, FALSE},
        {{.inline_max_rows = 16, .inline_when_busy = TRUE, .batching = {.max_batch_size = 8, .max_queue_size = 64}},
         FALSE},
    };
    for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
        sw_stage *stage = sw_stage_new(SW_STAGE_PREDICTOR, export, "t", NULL, &error);
        g_assert_no_error(error);
        sw_oip_service *oip = sw_oip_service_new(stage, export, "t", NULL, &cases[k].options, &error);
        g_assert_no_error(error);
        sw_method methods[SW_OIP_SERVICE_MAX_METHODS];
        const sw_method *m = infer_method(methods, sw_oip_service_methods(oip, methods));
        g_assert_cmpuint(m->inline_max_bytes, >, 0);
        g_assert_cmpint(m->inline_when_idle, ==, cases[k].inline_when_idle);
        sw_oip_service_free(oip);
        sw_stage_free(stage);
    }
    sw_export_free(export);
    sw_test_dir_remove(dir);
}

/* The postprocessor serves the pipeline model too, and marks ragged
 * outputs as JSON. */
static void test_model_metadata_of_ragged_outputs(void)
{
    char *dir = sw_test_dir_new();
    sw_test_write_export(dir, NULL, NULL, "op=echo");
    write_text(dir, "model_hyperparameters.json", text_output_config);
    write_text(dir, "training_set_metadata.json", text_output_metadata);
    GError *error = NULL;
    sw_export *export = sw_export_load(dir, &error);
    g_assert_no_error(error);
    sw_stage *stage = sw_stage_new(SW_STAGE_POSTPROCESSOR, export, "t", NULL, &error);
    g_assert_no_error(error);
    sw_oip_service_options options = {0};
    sw_oip_service *oip = sw_oip_service_new(stage, export, "t", NULL, &options, &error);
    g_assert_no_error(error);
    sw_method methods[SW_OIP_SERVICE_MAX_METHODS];
    size_t n = sw_oip_service_methods(oip, methods);
    sw_server_options so = {.listen = "127.0.0.1:0", .worker_threads = 1, .max_message_bytes = 4 * 1024 * 1024};
    sw_server *server = sw_server_new(&so, methods, n, &error);
    g_assert_no_error(error);
    sw_server_start(server);
    stage_server s = {.server = server, .oip = oip};
    char *target = g_strdup_printf("127.0.0.1:%d", sw_server_port(server));
    sw_channel_options co = {.target = target};
    s.client = sw_channel_new(&co, &error);
    g_assert_no_error(error);

    static const char *const models[] = {"t_postprocessor", "t"};
    for (size_t k = 0; k < G_N_ELEMENTS(models); k++) {
        Inference__ModelMetadataResponse *m = model_metadata(&s, models[k], "", &error);
        g_assert_no_error(error);
        g_assert_cmpstr(m->name, ==, models[k]);
        g_assert_cmpstr(property(m, "stage"), ==, k == 0 ? "postprocessor" : "pipeline");
        g_assert_cmpstr(property(m, "ludwig_model"), ==, "t");
        g_assert_cmpstr(property(m, "content_type:summary::predictions"), ==, "json");
        g_assert_null(property(m, "content_type:label::predictions"));
        g_assert_null(property(m, "next")); /* the last stage answers itself */
        const expected_tensor outputs[] = {{"label::predictions", "BYTES", "[-1]"},
                                           {"label::probabilities", "FP32", "[-1,3]"},
                                           {"summary::predictions", "BYTES", "[-1]"},
                                           {"summary::probabilities", "FP32", "[-1,4]"},
                                           {"summary::probability", "FP32", "[-1]"}};
        assert_tensors(m->outputs, m->n_outputs, outputs, G_N_ELEMENTS(outputs));
        /* Both take what the postprocessor takes. */
        g_assert_cmpuint(m->n_inputs, ==, 6);
        g_assert_cmpstr(m->inputs[0]->name, ==, "label::predictions");
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    g_assert_null(model_metadata(&s, "x", "", &error));
    assert_error(error, SW_CODE_NOT_FOUND, "this server serves 't_postprocessor' and 't'");
    g_clear_error(&error);

    sw_oip_service_set_serving(oip, FALSE);
    sw_oip_service_end_watches(oip);
    sw_channel_free(s.client);
    g_assert_false(sw_server_shutdown(server, 5000));
    sw_server_free(server);
    sw_oip_service_free(oip);
    sw_stage_free(stage);
    sw_export_free(export);
    g_free(target);
    sw_test_dir_remove(dir);
}

/* --- ModelInfer --- */

static void test_infer_waits_for_the_module(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", FALSE, NULL);
    infer_fails(s, infer_request("m_predictor", NULL, "a", predictor_inputs(1, 1), NULL), SW_CODE_UNAVAILABLE,
                "model 'm_predictor' is still loading");
    /* Even the wrong model is answered as not found first. */
    infer_fails(s, infer_request("zzz", NULL, "a", predictor_inputs(1, 1), NULL), SW_CODE_NOT_FOUND,
                "'zzz' is not served here");
    GError *error = NULL;
    g_assert_true(sw_stage_load_module(s->stage, 1, &error));
    g_assert_no_error(error);
    sw_oip_service_set_loaded(s->oip);
    GPtrArray *outputs =
        infer_ok(s, infer_request("m_predictor", NULL, "b", predictor_inputs(1, 1), NULL), "m_predictor", "b");
    g_assert_cmpuint(outputs->len, ==, 4);
    g_ptr_array_unref(outputs);
    stage_server_stop(s);
}

static void test_infer_runs_the_stage(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=scale\nfactor=2", TRUE, NULL);
    GPtrArray *outputs =
        infer_ok(s, infer_request("m_predictor", "1", "req-7", predictor_inputs(3, 10), NULL), "m_predictor", "req-7");
    /* Every output, in the module's order. */
    g_assert_cmpuint(outputs->len, ==, 4);
    g_assert_cmpstr(((sw_output *)g_ptr_array_index(outputs, 0))->name, ==, "age");
    const sw_output *age = output_named(outputs, "age");
    g_assert_cmpint(age->tensor->dtype, ==, SW_DTYPE_FP32);
    g_assert_cmpint(age->tensor->ndim, ==, 1);
    g_assert_cmpint(age->tensor->shape[0], ==, 3);
    const float *a = sw_tensor_data(age->tensor, NULL);
    g_assert_cmpfloat(a[0], ==, 20);
    g_assert_cmpfloat(a[1], ==, 22);
    g_assert_cmpfloat(a[2], ==, 24);
    /* Integers are not scaled. */
    const sw_output *when = output_named(outputs, "when");
    g_assert_cmpint(when->tensor->dtype, ==, SW_DTYPE_INT32);
    g_assert_cmpint(when->tensor->shape[1], ==, 9);
    g_assert_cmpint(((const int32_t *)sw_tensor_data(when->tensor, NULL))[9], ==, 2021);
    g_assert_cmpint(sw_fake_torch_forward_calls(s->stage->instances[0]), ==, 1);
    g_ptr_array_unref(outputs);
    stage_server_stop(s);
}

static void test_requested_outputs_select_and_order(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, NULL);
    static const char *const wanted[] = {"when", "age", NULL};
    GPtrArray *outputs =
        infer_ok(s, infer_request("m_predictor", NULL, "x", predictor_inputs(2, 5), wanted), "m_predictor", "x");
    g_assert_cmpuint(outputs->len, ==, 2);
    g_assert_cmpstr(((sw_output *)g_ptr_array_index(outputs, 0))->name, ==, "when");
    const sw_output *age = g_ptr_array_index(outputs, 1);
    g_assert_cmpstr(age->name, ==, "age");
    g_assert_cmpfloat(((const float *)sw_tensor_data(age->tensor, NULL))[1], ==, 6);
    g_ptr_array_unref(outputs);

    static const char *const unknown[] = {"age", "label::predictions", NULL};
    infer_fails(s, infer_request("m_predictor", NULL, "x", predictor_inputs(1, 5), unknown), SW_CODE_INVALID_ARGUMENT,
                "requested output 'label::predictions' is not an output of model m_predictor (outputs: 'age', "
                "'color', 'review', 'when')");
    stage_server_stop(s);
}

/* A reply over the message limit is refused with the sizes, by the
 * service, rather than by gRPC failing to send it. */
static void test_reply_over_the_limit(void)
{
    sw_oip_service_options options = {.max_reply_bytes = 64};
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, &options);
    infer_fails(s, infer_request("m_predictor", NULL, "x", predictor_inputs(4, 1), NULL), SW_CODE_RESOURCE_EXHAUSTED,
                "bytes; this server sends at most 64 per message");
    stage_server_stop(s);
}

static void test_bad_requests_are_invalid(void)
{
    sw_oip_service_options options = {.max_rows = 2};
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, &options);

    /* age as INT32 instead of a float. */
    GPtrArray *inputs = without(predictor_inputs(1, 1), "age");
    int32_t bad_age = 3;
    int64_t one[1] = {1};
    add_tensor(inputs, "age", SW_DTYPE_INT32, 1, one, &bad_age);
    infer_fails(s, infer_request("m_predictor", NULL, "x", inputs, NULL), SW_CODE_INVALID_ARGUMENT,
                "input 'age' (number): wrong datatype");

    infer_fails(s, infer_request("m_predictor", NULL, "x", without(predictor_inputs(1, 1), "review"), NULL),
                SW_CODE_INVALID_ARGUMENT, "input 'review' (text feature) is missing");

    /* review with 5 tokens instead of 6. */
    inputs = without(predictor_inputs(1, 1), "review");
    int64_t short_review[5] = {0};
    int64_t review_shape[2] = {1, 5};
    add_tensor(inputs, "review", SW_DTYPE_INT64, 2, review_shape, short_review);
    infer_fails(s, infer_request("m_predictor", NULL, "x", inputs, NULL), SW_CODE_INVALID_ARGUMENT,
                "input 'review' (text): wrong shape");

    infer_fails(s, infer_request("m_predictor", NULL, "x", predictor_inputs(3, 1), NULL), SW_CODE_INVALID_ARGUMENT,
                "the request has 3 rows; this server takes at most 2 per request");
    /* Refused from the declared shape, before its contents are looked at:
     * 5 million rows declared over the bytes of one. */
    inputs = without(predictor_inputs(1, 1), "age");
    float one_age = 40;
    int64_t many[1] = {5000000};
    add_tensor(inputs, "age", SW_DTYPE_FP32, 1, one, &one_age);
    sw_output *age = g_ptr_array_index(inputs, inputs->len - 1);
    age->tensor->shape[0] = many[0];
    infer_fails(s, infer_request("m_predictor", NULL, "x", inputs, NULL), SW_CODE_INVALID_ARGUMENT,
                "the request has 5000000 rows; this server takes at most 2 per request");
    /* At the limit is fine. */
    GPtrArray *outputs =
        infer_ok(s, infer_request("m_predictor", NULL, "y", predictor_inputs(2, 1), NULL), "m_predictor", "y");
    g_ptr_array_unref(outputs);

    /* Not a protobuf message at all. */
    static const guint8 garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    GBytes *request = g_bytes_new_static(garbage, sizeof garbage);
    infer_fails(s, request, SW_CODE_INVALID_ARGUMENT, NULL);
    request = g_bytes_new_static(garbage, sizeof garbage);
    GError *error = NULL;
    g_assert_null(stage_server_call(s, SW_PATH_MODEL_METADATA, request, &error));
    assert_error(error, SW_CODE_INVALID_ARGUMENT, "not a valid");
    g_clear_error(&error);
    g_assert_null(stage_server_call(s, SW_PATH_MODEL_READY, request, &error));
    assert_error(error, SW_CODE_INVALID_ARGUMENT, "not a valid");
    g_clear_error(&error);
    g_bytes_unref(request);

    /* None of them reached the module but the good one. */
    g_assert_cmpint(sw_fake_torch_forward_calls(s->stage->instances[0]), ==, 1);
    stage_server_stop(s);
}

/* A client's 20 KB names come back clipped: every status stays far below
 * gRPC's 8 KiB header limit, so the client hears the real status rather
 * than RESOURCE_EXHAUSTED, and is told the name was cut. */
static void test_long_client_names_are_clipped(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, NULL);
    char *long_name = g_strnfill(20000, 'n');
    struct {
        GBytes *request;
        int code;
    } cases[3];
    cases[0].request = infer_request(long_name, NULL, "x", predictor_inputs(1, 1), NULL);
    cases[0].code = SW_CODE_NOT_FOUND;
    cases[1].request = infer_request("m_predictor", long_name, "x", predictor_inputs(1, 1), NULL);
    cases[1].code = SW_CODE_NOT_FOUND;
    const char *const wanted[] = {long_name, NULL};
    cases[2].request = infer_request("m_predictor", NULL, "x", predictor_inputs(1, 1), wanted);
    cases[2].code = SW_CODE_INVALID_ARGUMENT;
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *error = NULL;
        g_assert_null(stage_server_call(s, SW_PATH_MODEL_INFER, cases[i].request, &error));
        assert_error(error, cases[i].code, SW_CLIP_MARK);
        g_assert_cmpuint(strlen(error->message), <, 1024);
        g_error_free(error);
        g_bytes_unref(cases[i].request);
    }
    g_free(long_name);
    stage_server_stop(s);
}

static void test_module_failure_is_invalid(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=fail\nerror=ValueError: bad row", TRUE, NULL);
    infer_fails(s, infer_request("m_predictor", NULL, "x", predictor_inputs(1, 1), NULL), SW_CODE_INVALID_ARGUMENT,
                "m_predictor: forward failed: ValueError: bad row");
    stage_server_stop(s);
}

/* A predictor without a next stage answers only for itself. */
static void test_pipeline_model_needs_a_next_stage(void)
{
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, NULL);
    infer_fails(s, infer_request("m", NULL, "x", predictor_inputs(1, 1), NULL), SW_CODE_NOT_FOUND,
                "model 'm' is not served here; this server serves 'm_predictor'");
    infer_fails(s, infer_request("m_predictor", "3", "x", predictor_inputs(1, 1), NULL), SW_CODE_NOT_FOUND,
                "no version '3'");
    stage_server_stop(s);
}

/* --- batching --- */

typedef struct async_result {
    GMutex *lock;
    GCond *cond;
    int *done;
    GBytes *response;
    GError *error;
} async_result;

static void async_done(GBytes *response, const GError *error, void *user_data)
{
    async_result *r = user_data;
    g_mutex_lock(r->lock);
    r->response = response ? g_bytes_ref(response) : NULL;
    r->error = error ? g_error_copy(error) : NULL;
    (*r->done)++;
    g_cond_broadcast(r->cond);
    g_mutex_unlock(r->lock);
}

/* Starts `n` one-row calls at once, row i with age 100 * i and id "r<i>",
 * and waits for all of them. */
static void call_all_at_once(stage_server *s, async_result *results, int n)
{
    GMutex lock;
    GCond cond;
    g_mutex_init(&lock);
    g_cond_init(&cond);
    int done = 0;
    for (int i = 0; i < n; i++) {
        results[i] = (async_result){.lock = &lock, .cond = &cond, .done = &done};
        char id[16];
        g_snprintf(id, sizeof id, "r%d", i);
        GBytes *request = infer_request("m_predictor", NULL, id, predictor_inputs(1, (float)(100 * i)), NULL);
        sw_channel_call_async(s->client, SW_PATH_MODEL_INFER, request, CALL_TIMEOUT_US, NULL, async_done, &results[i]);
        g_bytes_unref(request);
    }
    gint64 until = g_get_monotonic_time() + WAIT_US;
    g_mutex_lock(&lock);
    while (done < n)
        g_assert_true(g_cond_wait_until(&cond, &lock, until));
    g_mutex_unlock(&lock);
    g_mutex_clear(&lock);
    g_cond_clear(&cond);
}

/* Row i of call_all_at_once came back to call i. */
static GPtrArray *own_answer(const async_result *r, int i)
{
    char id[16];
    g_snprintf(id, sizeof id, "r%d", i);
    GPtrArray *outputs = response_outputs(r->response, "m_predictor", id);
    const sw_output *age = output_named(outputs, "age");
    g_assert_cmpint(age->tensor->shape[0], ==, 1);
    g_assert_cmpfloat(((const float *)sw_tensor_data(age->tensor, NULL))[0], ==, (float)(100 * i));
    return outputs;
}

static void test_concurrent_calls_are_batched(void)
{
    sw_metrics *metrics = sw_metrics_new((const char *const[]){"m_predictor", NULL});
    /* Forward is slow, so calls arriving while it runs queue up for the next batch. */
    sw_oip_service_options options = {
        .batching = {.max_batch_size = 8, .max_queue_delay_us = 2000, .max_queue_size = 64, .executors = 1},
        .metrics = metrics,
    };
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo\nrows_output=rows\nsleep_us=20000", TRUE, &options);
    enum { N = 12 };
    async_result results[N];
    call_all_at_once(s, results, N);

    int64_t rows_seen = 0;
    for (int i = 0; i < N; i++) {
        g_assert_no_error(results[i].error);
        GPtrArray *outputs = own_answer(&results[i], i);
        const sw_output *rows = output_named(outputs, "rows");
        g_assert_cmpint(rows->tensor->shape[0], ==, 1);
        int64_t batch = ((const int64_t *)sw_tensor_data(rows->tensor, NULL))[0];
        g_assert_cmpint(batch, >=, 1);
        g_assert_cmpint(batch, <=, 8);
        rows_seen = MAX(rows_seen, batch);
        g_ptr_array_unref(outputs);
        g_bytes_unref(results[i].response);
    }
    int forwards = sw_fake_torch_forward_calls(s->stage->instances[0]);
    g_test_message("%d calls ran as %d forward calls, the largest of %" G_GINT64_FORMAT " rows", N, forwards,
                   rows_seen);
    g_assert_cmpint(forwards, <, N);
    g_assert_cmpint(rows_seen, >, 1);
    g_assert_cmpint(sw_fake_torch_max_rows(s->stage->instances[0]), ==, rows_seen);

    char *text = sw_metrics_render(metrics);
    char *line = g_strdup_printf("stagewise_inference_requests_total{model=\"m_predictor\",code=\"OK\"} %d\n", N);
    g_assert_nonnull(strstr(text, line));
    g_free(line);
    line = g_strdup_printf("stagewise_inference_exec_count %d\n", forwards);
    g_assert_nonnull(strstr(text, line));
    g_free(line);
    g_assert_nonnull(strstr(text, "stagewise_inference_in_flight 0\n"));
    g_free(text);

    stage_server_stop(s);
    sw_metrics_free(metrics);
}

/* With one request running and one waiting, the queue is full: more calls
 * are refused at once instead of waiting without bound. */
static void test_full_batch_queue_refuses_calls(void)
{
    sw_oip_service_options options = {
        .batching = {.max_batch_size = 1, .max_queue_delay_us = 0, .max_queue_size = 1, .executors = 1}};
    /* Forward is slow enough that every call arrives while the first runs. */
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo\nsleep_us=300000", TRUE, &options);
    enum { N = 4 };
    async_result results[N];
    call_all_at_once(s, results, N);
    int refused = 0;
    for (int i = 0; i < N; i++) {
        if (results[i].error) {
            assert_error(results[i].error, SW_CODE_RESOURCE_EXHAUSTED, "the batch queue is full (1 requests waiting)");
            g_error_free(results[i].error);
            refused++;
            continue;
        }
        g_ptr_array_unref(own_answer(&results[i], i));
        g_bytes_unref(results[i].response);
    }
    g_assert_cmpint(refused, >=, N - 2);
    g_assert_cmpint(sw_fake_torch_forward_calls(s->stage->instances[0]), ==, N - refused);
    stage_server_stop(s);
}

/* A batched call that fails validation is answered alone and never joins a batch. */
static void test_batched_bad_request_is_invalid(void)
{
    sw_oip_service_options options = {
        .batching = {.max_batch_size = 4, .max_queue_delay_us = 2000, .max_queue_size = 4, .executors = 1}};
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, &options);
    infer_fails(s, infer_request("m_predictor", NULL, "x", without(predictor_inputs(1, 1), "age"), NULL),
                SW_CODE_INVALID_ARGUMENT, "input 'age' (number feature) is missing");
    g_assert_cmpint(sw_fake_torch_forward_calls(s->stage->instances[0]), ==, 0);
    GPtrArray *outputs =
        infer_ok(s, infer_request("m_predictor", NULL, "y", predictor_inputs(2, 7), NULL), "m_predictor", "y");
    g_assert_cmpfloat(((const float *)sw_tensor_data(output_named(outputs, "age")->tensor, NULL))[1], ==, 8);
    g_ptr_array_unref(outputs);
    stage_server_stop(s);
}

static void test_metrics_count_each_answer(void)
{
    sw_metrics *metrics = sw_metrics_new((const char *const[]){"m_predictor", NULL});
    sw_oip_service_options options = {.metrics = metrics};
    stage_server *s = serve(SW_STAGE_PREDICTOR, "op=echo", TRUE, &options);
    GPtrArray *outputs =
        infer_ok(s, infer_request("m_predictor", NULL, "a", predictor_inputs(3, 1), NULL), "m_predictor", "a");
    g_ptr_array_unref(outputs);
    infer_fails(s, infer_request("m_predictor", NULL, "b", without(predictor_inputs(1, 1), "age"), NULL),
                SW_CODE_INVALID_ARGUMENT, NULL);
    infer_fails(s, infer_request("elsewhere", NULL, "c", predictor_inputs(1, 1), NULL), SW_CODE_NOT_FOUND, NULL);
    /* Answers are recorded before they are sent, so they are all here now. */
    char *text = sw_metrics_render(metrics);
    g_assert_nonnull(strstr(text, "stagewise_inference_requests_total{model=\"m_predictor\",code=\"OK\"} 1\n"));
    g_assert_nonnull(
        strstr(text, "stagewise_inference_requests_total{model=\"m_predictor\",code=\"INVALID_ARGUMENT\"} 1\n"));
    g_assert_nonnull(strstr(text, "stagewise_inference_requests_total{model=\"other\",code=\"NOT_FOUND\"} 1\n"));
    g_assert_nonnull(strstr(text, "stagewise_inference_count{model=\"m_predictor\"} 3\n"));
    g_assert_nonnull(strstr(text, "stagewise_inference_exec_count 1\n"));
    g_assert_nonnull(strstr(text, "stagewise_inference_in_flight 0\n"));
    g_free(text);
    stage_server_stop(s);
    sw_metrics_free(metrics);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/service/live-and-ready-follow-serving", test_live_and_ready_follow_serving);
    g_test_add_func("/service/server-metadata", test_server_metadata);
    g_test_add_func("/service/model-metadata-of-the-stage", test_model_metadata_of_the_stage);
    g_test_add_func("/service/model-metadata-of-ragged-outputs", test_model_metadata_of_ragged_outputs);
    g_test_add_func("/service/inline-when-busy", test_inline_when_busy);
    g_test_add_func("/service/infer-waits-for-the-module", test_infer_waits_for_the_module);
    g_test_add_func("/service/infer-runs-the-stage", test_infer_runs_the_stage);
    g_test_add_func("/service/requested-outputs-select-and-order", test_requested_outputs_select_and_order);
    g_test_add_func("/service/bad-requests-are-invalid", test_bad_requests_are_invalid);
    g_test_add_func("/service/reply-over-the-limit", test_reply_over_the_limit);
    g_test_add_func("/service/module-failure-is-invalid", test_module_failure_is_invalid);
    g_test_add_func("/service/long-client-names-are-clipped", test_long_client_names_are_clipped);
    g_test_add_func("/service/pipeline-model-needs-a-next-stage", test_pipeline_model_needs_a_next_stage);
    g_test_add_func("/service/concurrent-calls-are-batched", test_concurrent_calls_are_batched);
    g_test_add_func("/service/full-batch-queue-refuses-calls", test_full_batch_queue_refuses_calls);
    g_test_add_func("/service/batched-bad-request-is-invalid", test_batched_bad_request_is_invalid);
    g_test_add_func("/service/metrics-count-each-answer", test_metrics_count_each_answer);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
