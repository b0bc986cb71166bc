#include <string.h>

#include "channel.h"
#include "health.pb-c.h"
#include "internal.h"
#include "oip_codec.h"
#include "sw_error.h"

#define MODEL_INFER "/inference.GRPCInferenceService/ModelInfer"

struct stagewise_client {
    sw_channel *channel;
    int64_t timeout_us; /* -1: none */
    char *metadata[3];  /* "authorization", "Bearer ...", NULL */
};

STAGEWISE_API stagewise_client *stagewise_client_new(const stagewise_client_options *options, stagewise_error **error)
{
    sw_channel_options copts = {
        .target = options->target,
        .max_message_bytes = options->max_message_bytes,
        .tls_root_certs = options->tls_root_certs_pem,
        .tls_cert_chain = options->tls_cert_chain_pem,
        .tls_private_key = options->tls_private_key_pem,
    };
    GError *gerror = NULL;
    sw_channel *channel = sw_channel_new(&copts, &gerror);
    if (channel == NULL) {
        stagewise_error_set(error, gerror);
        g_error_free(gerror);
        return NULL;
    }
    stagewise_client *client = g_new0(stagewise_client, 1);
    client->channel = channel;
    client->timeout_us = options->timeout_ms > 0 ? options->timeout_ms * 1000 : -1;
    if (options->auth_token) {
        client->metadata[0] = g_strdup("authorization");
        client->metadata[1] = g_strdup_printf("Bearer %s", options->auth_token);
    }
    return client;
}

STAGEWISE_API void stagewise_client_free(stagewise_client *client)
{
    if (client == NULL)
        return;
    sw_channel_free(client->channel);
    g_free(client->metadata[0]);
    g_free(client->metadata[1]);
    g_free(client);
}

/* A blocking call whose failure becomes a stagewise_error naming `what`. */
static GBytes *call(stagewise_client *client, const char *method, GBytes *request, const char *what,
                    stagewise_error **error)
{
    GError *gerror = NULL;
    GBytes *response = sw_channel_call(client->channel, method, request, client->timeout_us,
                                       (const char *const *)client->metadata, &gerror);
    if (response == NULL) {
        stagewise_error_setf(error, gerror->code, "%s at %s: %s: %s", what, sw_channel_target(client->channel),
                             sw_code_name(gerror->code), gerror->message);
        g_error_free(gerror);
    }
    return response;
}

static GBytes *pack_infer_request(const char *model, GPtrArray *tensors)
{
    Inference__ModelInferRequest *req = sw_oip_request_build(model, "", tensors, NULL);
    GBytes *packed = sw_protobuf_pack(&req->base);
    sw_oip_request_free(req);
    return packed;
}

/* The outputs of a ModelInfer response (new array), or NULL with an error. */
static GPtrArray *unpack_outputs(GBytes *response, GError **error)
{
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, len, data);
    if (resp == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "the reply is not a ModelInferResponse");
        return NULL;
    }
    GPtrArray *outputs = sw_oip_decode_outputs(resp, error);
    inference__model_infer_response__free_unpacked(resp, NULL);
    return outputs;
}

static stagewise_result *result_from_response(GBytes *response, stagewise_error **error)
{
    GError *gerror = NULL;
    GPtrArray *outputs = unpack_outputs(response, &gerror);
    stagewise_result *result = outputs ? stagewise_result_from_outputs(outputs, &gerror) : NULL;
    if (outputs)
        g_ptr_array_unref(outputs);
    if (result == NULL) {
        stagewise_error_set(error, gerror);
        g_error_free(gerror);
    }
    return result;
}

static gboolean check_rows(const stagewise_rows *rows, stagewise_error **error)
{
    if (rows->n_rows == 0 || rows->columns->len == 0) {
        stagewise_error_setf(error, SW_CODE_INVALID_ARGUMENT, "no rows to send");
        return FALSE;
    }
    return TRUE;
}

STAGEWISE_API stagewise_result *stagewise_predict(stagewise_client *client, const char *model,
                                                  const stagewise_rows *rows, stagewise_error **error)
{
    if (!check_rows(rows, error))
        return NULL;
    GBytes *request = pack_infer_request(model, rows->columns);
    GBytes *response = call(client, MODEL_INFER, request, model, error);
    g_bytes_unref(request);
    if (response == NULL)
        return NULL;
    stagewise_result *result = result_from_response(response, error);
    g_bytes_unref(response);
    return result;
}

STAGEWISE_API stagewise_result *stagewise_predict_staged(stagewise_client *preprocessor, stagewise_client *predictor,
                                                         stagewise_client *postprocessor, const char *model,
                                                         const stagewise_rows *rows, stagewise_error **error)
{
    if (!check_rows(rows, error))
        return NULL;
    static const char *const stages[] = {"preprocessor", "predictor", "postprocessor"};
    stagewise_client *clients[] = {preprocessor, predictor, postprocessor};
    GPtrArray *tensors = g_ptr_array_ref(rows->columns);
    GBytes *response = NULL;
    for (int s = 0; s < 3 && tensors; s++) {
        char *name = g_strdup_printf("%s_%s", model, stages[s]);
        GBytes *request = pack_infer_request(name, tensors);
        g_ptr_array_unref(tensors);
        tensors = NULL;
        response = call(clients[s], MODEL_INFER, request, name, error);
        g_bytes_unref(request);
        g_free(name);
        if (response == NULL || s == 2)
            break;
        GError *gerror = NULL;
        tensors = unpack_outputs(response, &gerror);
        g_bytes_unref(response);
        response = NULL;
        if (tensors == NULL) {
            stagewise_error_set(error, gerror);
            g_error_free(gerror);
        }
    }
    if (response == NULL)
        return NULL;
    stagewise_result *result = result_from_response(response, error);
    g_bytes_unref(response);
    return result;
}

typedef struct async_call {
    stagewise_done done;
    void *user_data;
    char *model;
    const char *target;
} async_call;

static void async_finished(GBytes *response, const GError *gerror, void *user_data)
{
    async_call *a = user_data;
    stagewise_error *error = NULL;
    stagewise_result *result = NULL;
    if (response)
        result = result_from_response(response, &error);
    else
        stagewise_error_setf(&error, gerror->code, "%s at %s: %s: %s", a->model, a->target, sw_code_name(gerror->code),
                             gerror->message);
    a->done(result, error, a->user_data);
    g_free(a->model);
    g_free(a);
}

STAGEWISE_API void stagewise_predict_async(stagewise_client *client, const char *model, const stagewise_rows *rows,
                                           stagewise_done done, void *user_data)
{
    stagewise_error *error = NULL;
    if (!check_rows(rows, &error)) {
        done(NULL, error, user_data);
        return;
    }
    async_call *a = g_new0(async_call, 1);
    a->done = done;
    a->user_data = user_data;
    a->model = g_strdup(model);
    a->target = sw_channel_target(client->channel);
    GBytes *request = pack_infer_request(model, rows->columns);
    sw_channel_call_async(client->channel, MODEL_INFER, request, client->timeout_us,
                          (const char *const *)client->metadata, async_finished, a);
    g_bytes_unref(request);
}

STAGEWISE_API int stagewise_health_check(stagewise_client *client, const char *service, stagewise_error **error)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)(service ? service : "");
    GBytes *request = sw_protobuf_pack(&req.base);
    GBytes *response = call(client, "/grpc.health.v1.Health/Check", request, "health", error);
    g_bytes_unref(request);
    if (response == NULL)
        return -1;
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Grpc__Health__V1__HealthCheckResponse *resp = grpc__health__v1__health_check_response__unpack(NULL, len, data);
    g_bytes_unref(response);
    if (resp == NULL) {
        stagewise_error_setf(error, SW_CODE_INTERNAL, "the reply is not a HealthCheckResponse");
        return -1;
    }
    int serving = resp->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    return serving;
}

GBytes *stagewise_client_call(stagewise_client *client, const char *method, GBytes *request, const char *what,
                              stagewise_error **error)
{
    return call(client, method, request, what, error);
}
