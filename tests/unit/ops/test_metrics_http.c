/* GET /metrics over a real socket on 127.0.0.1: what a Prometheus scraper
 * sees, the answers to other paths and methods, and listen errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "metrics_http.h"
#include "sw_error.h"

typedef struct http_reply {
    int status;
    char *headers; /* status line and headers */
    char *body;
} http_reply;

static void http_reply_clear(http_reply *r)
{
    g_free(r->headers);
    g_free(r->body);
}

/* Sends `method` `path` to 127.0.0.1:`port` and reads the whole reply (the
 * server closes the connection, as asked). */
static http_reply http_request(int port, const char *method, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(fd, >=, 0);
    /* A server that never answers fails the test instead of hanging it. */
    struct timeval timeout = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof addr), ==, 0);
    char *request = g_strdup_printf(
        "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", method, path);
    size_t len = strlen(request);
    g_assert_cmpint(send(fd, request, len, 0), ==, (ssize_t)len);
    g_free(request);
    GString *in = g_string_new(NULL);
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        g_string_append_len(in, buf, n);
    g_assert_cmpint(n, ==, 0); /* closed, not timed out */
    close(fd);

    http_reply r = {0};
    const char *split = strstr(in->str, "\r\n\r\n");
    g_assert_nonnull(split);
    r.headers = g_strndup(in->str, (gsize)(split - in->str));
    r.body = g_strdup(split + 4);
    g_assert_true(g_str_has_prefix(r.headers, "HTTP/1.1 "));
    r.status = atoi(r.headers + strlen("HTTP/1.1 "));
    g_string_free(in, TRUE);
    return r;
}

static sw_metrics_http *start(sw_metrics *m)
{
    GError *error = NULL;
    sw_metrics_http *http = sw_metrics_http_start("127.0.0.1:0", m, &error);
    g_assert_no_error(error);
    g_assert_nonnull(http);
    return http;
}

static void test_get_metrics(void)
{
    sw_metrics *m = sw_metrics_new((const char *const[]){"shop_predictor", NULL});
    sw_metrics_record_request(m, "shop_predictor", SW_CODE_OK, 3, 10, 20, 30);
    sw_metrics_http *http = start(m);
    /* Port 0 picks a free port and the server says which. */
    int port = sw_metrics_http_port(http);
    g_assert_cmpint(port, >, 0);
    g_assert_cmpint(port, <, 65536);

    http_reply r = http_request(port, "GET", "/metrics");
    g_assert_cmpint(r.status, ==, 200);
    g_assert_nonnull(strstr(r.headers, "text/plain; version=0.0.4"));
    g_assert_nonnull(strstr(r.body, "# TYPE stagewise_inference_requests_total counter\n"));
    g_assert_nonnull(strstr(r.body, "\nstagewise_inference_requests_total{model=\"shop_predictor\",code=\"OK\"} 1\n"));
    g_assert_nonnull(strstr(r.body, "\nstagewise_inference_count{model=\"shop_predictor\"} 3\n"));
    /* The body is the rendered text, whole (the process metrics aside, which
     * change between two renderings). */
    char *rendered = sw_metrics_render(m);
    const char *cut = strstr(rendered, "# HELP process_");
    g_assert_nonnull(cut);
    g_assert_cmpint(strncmp(r.body, rendered, (size_t)(cut - rendered)), ==, 0);
    g_assert_true(g_str_has_suffix(r.body, "\n"));
    g_free(rendered);
    http_reply_clear(&r);

    /* Each scrape renders afresh. */
    sw_metrics_record_request(m, "shop_predictor", SW_CODE_OK, 2, 10, 20, 30);
    sw_metrics_in_flight_add(m, 5);
    r = http_request(port, "GET", "/metrics");
    g_assert_cmpint(r.status, ==, 200);
    g_assert_nonnull(strstr(r.body, "\nstagewise_inference_requests_total{model=\"shop_predictor\",code=\"OK\"} 2\n"));
    g_assert_nonnull(strstr(r.body, "\nstagewise_inference_in_flight 5\n"));
    http_reply_clear(&r);

    /* HEAD: the headers without the body. */
    r = http_request(port, "HEAD", "/metrics");
    g_assert_cmpint(r.status, ==, 200);
    g_assert_cmpstr(r.body, ==, "");
    http_reply_clear(&r);

    sw_metrics_http_stop(http);
    /* Stopped means closed: nothing listens on the port any more. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof addr), !=, 0);
    close(fd);
    sw_metrics_http_stop(NULL);
    sw_metrics_free(m);
}

static void test_other_paths_and_methods(void)
{
    sw_metrics *m = sw_metrics_new(NULL);
    sw_metrics_http *http = start(m);
    int port = sw_metrics_http_port(http);
    static const char *const paths[] = {"/", "/metric", "/metrics/", "/health"};
    for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
        http_reply r = http_request(port, "GET", paths[i]);
        g_assert_cmpint(r.status, ==, 404);
        g_assert_cmpstr(r.body, ==, "metrics are at /metrics\n");
        http_reply_clear(&r);
    }
    http_reply r = http_request(port, "POST", "/metrics");
    g_assert_cmpint(r.status, ==, 405);
    g_assert_null(strstr(r.body, "stagewise_"));
    http_reply_clear(&r);
    r = http_request(port, "DELETE", "/metrics");
    g_assert_cmpint(r.status, ==, 405);
    http_reply_clear(&r);
    sw_metrics_http_stop(http);
    sw_metrics_free(m);
}

static void test_listen_errors(void)
{
    sw_metrics *m = sw_metrics_new(NULL);
    static const char *const bad[] = {
        "9100",         "127.0.0.1",       "127.0.0.1:",    "127.0.0.1:http", "127.0.0.1:65536",
        "127.0.0.1:-1", "127.0.0.1:91 00", "127.0.0.1: 80", "127.0.0.1:+80"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GError *error = NULL;
        sw_metrics_http *http = sw_metrics_http_start(bad[i], m, &error);
        if (http != NULL)
            g_error("'%s' was taken for HOST:PORT (port %d)", bad[i], sw_metrics_http_port(http));
        g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
        if (strstr(error->message, bad[i]) == NULL)
            g_error("message '%s' does not name '%s'", error->message, bad[i]);
        g_error_free(error);
    }
    /* A port already taken. */
    sw_metrics_http *http = start(m);
    char *taken = g_strdup_printf("127.0.0.1:%d", sw_metrics_http_port(http));
    GError *error = NULL;
    g_assert_null(sw_metrics_http_start(taken, m, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_UNAVAILABLE);
    g_assert_nonnull(strstr(error->message, taken));
    g_error_free(error);
    g_free(taken);
    sw_metrics_http_stop(http);
    sw_metrics_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/metrics-http/get-metrics", test_get_metrics);
    g_test_add_func("/metrics-http/other-paths-and-methods", test_other_paths_and_methods);
    g_test_add_func("/metrics-http/listen-errors", test_listen_errors);
    return g_test_run();
}
