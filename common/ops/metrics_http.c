#include "metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <string.h>

#include "sw_error.h"

struct sw_metrics_http {
    struct MHD_Daemon *daemon;
    sw_metrics *metrics;
    int port;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)state;
    sw_metrics_http *http = cls;
    struct MHD_Response *response;
    unsigned int status;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char text[] = "only GET\n";
        response = MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (strcmp(url, "/metrics") != 0) {
        static const char text[] = "metrics are at /metrics\n";
        response = MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    } else {
        char *body = sw_metrics_render(http->metrics);
        response = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
        g_free(body);
        MHD_add_response_header(response, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        status = MHD_HTTP_OK;
    }
    enum MHD_Result ret = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return ret;
}

gboolean sw_http_parse_listen(const char *listen, const char *flag, struct sockaddr_in *addr, GError **error)
{
    const char *colon = strrchr(listen, ':');
    char *host = colon ? g_strndup(listen, (gsize)(colon - listen)) : NULL;
    char *end = NULL;
    /* Digits only: strtol alone would take "HOST:" as port 0 (any port,
     * which no scraper could find) and skip blanks or a sign. */
    long port = colon && g_ascii_isdigit(colon[1]) ? strtol(colon + 1, &end, 10) : -1;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    gboolean ok = host && end && *end == '\0' && port >= 0 && port <= 65535;
    if (ok && host[0] != '\0' && strcmp(host, "0.0.0.0") != 0) {
        struct addrinfo hints = {.ai_family = AF_INET}, *res = NULL;
        ok = getaddrinfo(host, NULL, &hints, &res) == 0;
        if (ok) {
            addr->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
            freeaddrinfo(res);
        }
    }
    if (!ok)
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s '%s' is not HOST:PORT", flag, listen);
    g_free(host);
    return ok;
}

sw_metrics_http *sw_metrics_http_start(const char *listen, sw_metrics *metrics, GError **error)
{
    struct sockaddr_in addr;
    if (!sw_http_parse_listen(listen, "--metrics-listen", &addr, error))
        return NULL;
    sw_metrics_http *http = g_new0(sw_metrics_http, 1);
    http->metrics = metrics;
    http->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, http,
                                    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
    if (http->daemon == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_UNAVAILABLE, "cannot serve metrics on %s", listen);
        g_free(http);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
    http->port = info ? info->port : ntohs(addr.sin_port);
    return http;
}

int sw_metrics_http_port(const sw_metrics_http *http)
{
    return http->port;
}

void sw_metrics_http_stop(sw_metrics_http *http)
{
    if (http == NULL)
        return;
    MHD_stop_daemon(http->daemon);
    g_free(http);
}
