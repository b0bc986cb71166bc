/* The libmicrohttpd daemon of the REST protocol: each connection's request
 * read incrementally (bounded), admitted, routed, and answered; inference
 * runs on this server's workers while its connection is suspended. */
#include "rest_server.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <string.h>
#include <unistd.h>

#include "json_text.h"
#include "metrics_http.h"
#include "proto_json.h"
#include "rest_codec.h"
#include "rest_routes.h"
#include "sw_error.h"
#include "worker_pool.h"

/* Threads polling connections: they only parse and render. */
#define POLLING_THREADS 2

struct sw_rest_server {
    struct MHD_Daemon *daemon;
    gboolean verify_clients; /* mutual TLS: check each request's client certificate */
    sw_oip_service *service;
    sw_auth *auth;
    sw_metrics *metrics;
    sw_worker_pool *workers;
    size_t max_body_bytes;
    int max_in_flight;
    int port;
    GMutex lock;
    GCond idle;
    /* Inference calls admitted and not yet answered on the wire (the count
     * drops when MHD reports the response sent); under lock. */
    int in_flight;
};

typedef enum phase { READING, RUNNING, ANSWERED } phase;

/* One HTTP request on a connection, from its headers to its answer. Owned
 * by the connection (freed when libmicrohttpd says the request completed);
 * while RUNNING the inference's end writes `response`/`code`/`message`
 * then resumes the connection, after which only the polling thread reads
 * them. */
typedef struct rest_request {
    sw_rest_server *server;
    struct MHD_Connection *connection;
    sw_rest_route route;
    phase phase;
    GByteArray *body;
    gboolean too_large;
    gssize header_len; /* Inference-Header-Content-Length; -1 none */
    sw_rest_request request;
    gint64 deadline_us; /* from the request's timeout parameter; 0 none */
    GBytes *response;
    int code;
    char *message;
    gboolean counted; /* holds one of the server's in_flight */
} rest_request;

static void free_bytes(void *bytes)
{
    g_bytes_unref(bytes);
}

/* Queues `body` (taken) with `status`. */
static enum MHD_Result respond(struct MHD_Connection *connection, unsigned status, GBytes *body,
                               const char *content_type, gssize header_len)
{
    gsize len = 0;
    const void *data = g_bytes_get_data(body, &len);
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data, free_bytes, body);
    MHD_add_response_header(r, "Content-Type", content_type);
    if (header_len >= 0) {
        char text[32];
        g_snprintf(text, sizeof text, "%" G_GSSIZE_FORMAT, header_len);
        MHD_add_response_header(r, "Inference-Header-Content-Length", text);
    }
    enum MHD_Result ret = MHD_queue_response(connection, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *connection, unsigned status, char *json)
{
    return respond(connection, status, g_bytes_new_take(json, strlen(json)), "application/json", -1);
}

static enum MHD_Result respond_error(struct MHD_Connection *connection, int code, const char *message)
{
    return respond_json(connection, sw_rest_http_status(code), sw_rest_error_body(message));
}

static enum MHD_Result respond_gerror(struct MHD_Connection *connection, const GError *error)
{
    /* UNIMPLEMENTED from routing: a known URL asked with another method. */
    if (error->code == SW_CODE_UNIMPLEMENTED)
        return respond_json(connection, MHD_HTTP_METHOD_NOT_ALLOWED, sw_rest_error_body(error->message));
    return respond_error(connection, sw_error_code(error), error->message);
}

static enum MHD_Result answer_health(struct MHD_Connection *connection, gboolean ok)
{
    return respond_json(connection, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                        g_strdup(ok ? "{\"live\":true}" : "{\"ready\":false}"));
}

/* Triton's extensions: the model configuration and statistics, the very
 * messages the gRPC calls answer, as JSON. */
static enum MHD_Result answer_extension(rest_request *rq)
{
    sw_oip_service *svc = rq->server->service;
    GError *error = NULL;
    char *json = NULL;
    if (rq->route.kind == SW_REST_MODEL_CONFIG) {
        const Inference__ModelConfigResponse *config =
            sw_oip_service_model_config(svc, rq->route.model, rq->route.version, &error);
        /* Triton's HTTP answer is the ModelConfig itself, not its wrapper. */
        json = config ? sw_proto_json(&config->config->base) : NULL;
    } else {
        Inference__ModelStatisticsResponse *stats =
            sw_oip_service_model_statistics(svc, rq->route.model, rq->route.version, &error);
        json = stats ? sw_proto_json(&stats->base) : NULL;
        sw_oip_service_statistics_free(stats);
    }
    if (json == NULL) {
        enum MHD_Result ret = respond_gerror(rq->connection, error);
        g_error_free(error);
        return ret;
    }
    return respond_json(rq->connection, MHD_HTTP_OK, json);
}

/* The answers that need no body: health, metadata and the extensions. */
static enum MHD_Result answer_get(rest_request *rq)
{
    sw_oip_service *svc = rq->server->service;
    struct MHD_Connection *c = rq->connection;
    GError *error = NULL;
    switch (rq->route.kind) {
    case SW_REST_MODEL_CONFIG:
    case SW_REST_MODEL_STATS:
    case SW_REST_ALL_STATS: return answer_extension(rq);
    case SW_REST_SERVER_LIVE: return answer_health(c, TRUE);
    case SW_REST_SERVER_READY:
        return respond_json(c, sw_oip_service_is_serving(svc) ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            g_strdup_printf("{\"ready\":%s}", sw_oip_service_is_serving(svc) ? "true" : "false"));
    case SW_REST_SERVER_METADATA: {
        Inference__ServerMetadataResponse m;
        sw_oip_service_server_metadata(&m);
        return respond_json(c, MHD_HTTP_OK, sw_rest_server_metadata_json(&m));
    }
    default: break;
    }
    const Inference__ModelMetadataResponse *m =
        sw_oip_service_model_metadata(svc, rq->route.model, rq->route.version, &error);
    if (m == NULL) {
        enum MHD_Result ret = respond_gerror(c, error);
        g_error_free(error);
        return ret;
    }
    if (rq->route.kind == SW_REST_MODEL_METADATA)
        return respond_json(c, MHD_HTTP_OK, sw_rest_model_metadata_json(m));
    gboolean ready = sw_oip_service_is_serving(svc);
    GString *body = g_string_new("{\"name\":");
    sw_json_append_string(body, m->name);
    g_string_append_printf(body, ",\"ready\":%s}", ready ? "true" : "false");
    return respond_json(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, g_string_free(body, FALSE));
}

/* The end of an inference call, on whichever thread ended it. */
static void infer_done(GBytes *response, int code, const char *message, void *user_data)
{
    rest_request *rq = user_data;
    rq->response = response ? g_bytes_ref(response) : NULL;
    rq->code = code;
    rq->message = g_strdup(message);
    rq->phase = ANSWERED;
    /* The count drops once the answer is sent (request_completed), so a
     * stopping server keeps its daemon until then: dropping it here let
     * the stop close the connection before the answer went out. */
    MHD_resume_connection(rq->connection);
}

/* On a worker thread. */
static void run_infer(void *item, void *user_data)
{
    rest_request *rq = item;
    sw_oip_service_infer(user_data, rq->request.packed, rq->deadline_us, infer_done, rq);
}

/* The whole body is read: parse it and start the call, or answer. */
static enum MHD_Result start_infer(rest_request *rq)
{
    sw_rest_server *server = rq->server;
    if (rq->too_large) {
        char *text = g_strdup_printf("the request body is over this server's limit of %zu bytes (--max-message-mb)",
                                     server->max_body_bytes);
        enum MHD_Result ret = respond_json(rq->connection, MHD_HTTP_CONTENT_TOO_LARGE, sw_rest_error_body(text));
        g_free(text);
        return ret;
    }
    GError *error = NULL;
    if (!sw_rest_request_parse(rq->route.model, rq->route.version, rq->body->data, rq->body->len, rq->header_len,
                               &rq->request, &error)) {
        enum MHD_Result ret = respond_gerror(rq->connection, error);
        g_error_free(error);
        return ret;
    }
    g_clear_pointer(&rq->body, g_byte_array_unref); /* the packed request holds its own copy */
    g_mutex_lock(&server->lock);
    gboolean admitted = server->max_in_flight <= 0 || server->in_flight < server->max_in_flight;
    if (admitted)
        server->in_flight++;
    rq->counted = admitted;
    g_mutex_unlock(&server->lock);
    if (!admitted) {
        sw_metrics_record_refused(SW_CODE_RESOURCE_EXHAUSTED, server->metrics);
        return respond_error(rq->connection, SW_CODE_RESOURCE_EXHAUSTED,
                             "too many inference calls in flight on this server (--max-concurrent); try again later");
    }
    /* The timeout runs from when the request was read. */
    if (rq->request.timeout_us > 0)
        rq->deadline_us = g_get_monotonic_time() + rq->request.timeout_us;
    rq->phase = RUNNING;
    MHD_suspend_connection(rq->connection);
    sw_worker_pool_push(server->workers, rq);
    return MHD_YES;
}

static enum MHD_Result answer_infer(rest_request *rq)
{
    if (rq->response == NULL)
        return respond_error(rq->connection, rq->code, rq->message ? rq->message : "failed");
    sw_rest_reply reply;
    GError *error = NULL;
    if (!sw_rest_response_render(rq->response, &rq->request, &reply, &error)) {
        enum MHD_Result ret = respond_gerror(rq->connection, error);
        g_error_free(error);
        return ret;
    }
    return respond(rq->connection, MHD_HTTP_OK, reply.body,
                   reply.header_len >= 0 ? "application/octet-stream" : "application/json", reply.header_len);
}

/* Mutual TLS. With a trust list libmicrohttpd asks for a client
 * certificate but neither requires nor verifies it, so each request is
 * checked here against the CA (gnutls verifies the chain, validity dates
 * and signatures). Per request rather than per connection: a verification
 * costs a signature check, small beside any inference. */
static gboolean check_client_certificate(rest_request *rq, enum MHD_Result *ret)
{
    sw_rest_server *server = rq->server;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(rq->connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = info ? (gnutls_session_t)info->tls_session : NULL;
    unsigned n = 0;
    if (session == NULL || gnutls_certificate_get_peers(session, &n) == NULL || n == 0) {
        sw_metrics_record_refused(SW_CODE_UNAUTHENTICATED, server->metrics);
        *ret = respond_error(rq->connection, SW_CODE_UNAUTHENTICATED,
                             "this server requires a TLS client certificate signed by its --tls-client-ca");
        return FALSE;
    }
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers2(session, &status);
    if (rc == GNUTLS_E_SUCCESS && status == 0)
        return TRUE;
    gnutls_datum_t why = {NULL, 0};
    if (rc != GNUTLS_E_SUCCESS ||
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) != GNUTLS_E_SUCCESS)
        why.data = NULL;
    char *text = g_strdup_printf("the TLS client certificate is not accepted: %s",
                                 why.data ? (const char *)why.data : gnutls_strerror(rc));
    gnutls_free(why.data);
    sw_metrics_record_refused(SW_CODE_PERMISSION_DENIED, server->metrics);
    *ret = respond_error(rq->connection, SW_CODE_PERMISSION_DENIED, text);
    g_free(text);
    return FALSE;
}

/* The checks made on the headers alone: client certificate, route, token,
 * declared sizes. */
static gboolean check_headers(rest_request *rq, const char *method, const char *url, enum MHD_Result *ret)
{
    GError *error = NULL;
    if (rq->server->verify_clients && !check_client_certificate(rq, ret))
        return FALSE;
    if (!sw_rest_route_parse(method, url, &rq->route, &error)) {
        *ret = respond_gerror(rq->connection, error);
        g_error_free(error);
        return FALSE;
    }
    sw_rest_server *server = rq->server;
    if (server->auth && !sw_rest_route_is_open(&rq->route) &&
        !sw_auth_check(server->auth,
                       MHD_lookup_connection_value(rq->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION))) {
        sw_metrics_record_refused(SW_CODE_UNAUTHENTICATED, server->metrics);
        *ret = respond_error(rq->connection, SW_CODE_UNAUTHENTICATED,
                             "this server requires an 'Authorization: Bearer <token>' header with the right token");
        return FALSE;
    }
    const char *length = MHD_lookup_connection_value(rq->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && server->max_body_bytes > 0 && g_ascii_strtoull(length, NULL, 10) > server->max_body_bytes) {
        char *text = g_strdup_printf("the request body is over this server's limit of %zu bytes (--max-message-mb)",
                                     server->max_body_bytes);
        *ret = respond_json(rq->connection, MHD_HTTP_CONTENT_TOO_LARGE, sw_rest_error_body(text));
        g_free(text);
        return FALSE;
    }
    const char *header =
        MHD_lookup_connection_value(rq->connection, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    rq->header_len = -1;
    if (header) {
        char *end = NULL;
        guint64 n = g_ascii_strtoull(header, &end, 10);
        if (!g_ascii_isdigit(header[0]) || *end != '\0' || n > G_MAXSSIZE) {
            *ret = respond_error(rq->connection, SW_CODE_INVALID_ARGUMENT,
                                 "Inference-Header-Content-Length must be a number of bytes");
            return FALSE;
        }
        rq->header_len = (gssize)n;
    }
    return TRUE;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
    (void)version;
    rest_request *rq = *state;
    if (rq == NULL) {
        rq = g_new0(rest_request, 1);
        rq->server = cls;
        rq->connection = connection;
        rq->body = g_byte_array_new();
        *state = rq;
        enum MHD_Result ret = MHD_YES;
        if (!check_headers(rq, method, url, &ret))
            return ret;
        return rq->route.kind == SW_REST_MODEL_INFER ? MHD_YES : answer_get(rq);
    }
    if (*upload_data_size > 0) {
        size_t max = rq->server->max_body_bytes;
        if (!rq->too_large && max > 0 && rq->body->len + *upload_data_size > max) {
            rq->too_large = TRUE;
            g_byte_array_set_size(rq->body, 0);
        }
        if (!rq->too_large)
            g_byte_array_append(rq->body, (const guint8 *)upload_data, (guint)*upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->phase == READING)
        return start_infer(rq);
    return rq->phase == ANSWERED ? answer_infer(rq) : MHD_YES;
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **state,
                              enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)connection, (void)code;
    rest_request *rq = *state;
    if (rq == NULL)
        return;
    if (rq->counted) {
        sw_rest_server *server = rq->server;
        g_mutex_lock(&server->lock);
        if (--server->in_flight == 0)
            g_cond_broadcast(&server->idle);
        g_mutex_unlock(&server->lock);
    }
    sw_rest_route_clear(&rq->route);
    if (rq->body)
        g_byte_array_unref(rq->body);
    sw_rest_request_clear(&rq->request);
    if (rq->response)
        g_bytes_unref(rq->response);
    g_free(rq->message);
    g_free(rq);
    *state = NULL;
}

sw_rest_server *sw_rest_server_start(sw_oip_service *service, const sw_rest_options *o, GError **error)
{
    struct sockaddr_in addr;
    if (!sw_http_parse_listen(o->listen, "--http-listen", &addr, error))
        return NULL;
    sw_rest_server *server = g_new0(sw_rest_server, 1);
    server->service = service;
    server->auth = o->auth;
    server->metrics = o->metrics;
    server->max_body_bytes = o->max_body_bytes;
    server->max_in_flight = o->max_in_flight;
    g_mutex_init(&server->lock);
    g_cond_init(&server->idle);
    server->workers = sw_worker_pool_new("sw-rest", MAX(o->worker_threads, 1), run_infer, service);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (o->tls_cert_pem ? MHD_USE_TLS : 0);
    server->verify_clients = o->tls_cert_pem && o->tls_client_ca_pem;
    /* Options past the TLS pair are ignored when there is none (END), and
     * past the key when no client CA is given. */
    server->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, server, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)POLLING_THREADS, MHD_OPTION_NOTIFY_COMPLETED, request_completed, server,
        MHD_OPTION_CONNECTION_TIMEOUT, 120u, o->tls_cert_pem ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
        o->tls_cert_pem, MHD_OPTION_HTTPS_MEM_KEY, o->tls_key_pem,
        server->verify_clients ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, o->tls_client_ca_pem, MHD_OPTION_END);
    if (server->daemon == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_UNAVAILABLE, "cannot serve REST on %s%s", o->listen,
                    o->tls_cert_pem ? " (or the TLS certificate, key or client CA were refused)" : "");
        sw_worker_pool_free(server->workers);
        g_mutex_clear(&server->lock);
        g_cond_clear(&server->idle);
        g_free(server);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    server->port = info ? info->port : ntohs(addr.sin_port);
    return server;
}

int sw_rest_server_port(const sw_rest_server *server)
{
    return server->port;
}

void sw_rest_server_stop(sw_rest_server *server)
{
    if (server == NULL)
        return;
    MHD_socket listener = MHD_quiesce_daemon(server->daemon);
    g_mutex_lock(&server->lock);
    while (server->in_flight > 0)
        g_cond_wait(&server->idle, &server->lock);
    g_mutex_unlock(&server->lock);
    MHD_stop_daemon(server->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    sw_worker_pool_free(server->workers);
    g_mutex_clear(&server->lock);
    g_cond_clear(&server->idle);
    g_free(server);
}
