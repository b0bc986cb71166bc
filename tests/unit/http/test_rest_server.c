/* The REST server over a real stage (fake torch) on 127.0.0.1: an answer
 * through the service, the polling threads free while inference runs,
 * --max-concurrent as 429, and a stop that waits for the call in flight,
 * which still gets its answer. */
#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_torch.h"
#include "harness.h"
#include "rest_server.h"

/* One HTTP/1.1 exchange with Connection: close: the whole answer as text. */
static char *http(int port, const char *method, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(fd, >=, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof addr), ==, 0);
    char *request = g_strdup_printf("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                                    method, path, body ? strlen(body) : 0, body ? body : "");
    g_assert_cmpint(write(fd, request, strlen(request)), ==, (ssize_t)strlen(request));
    g_free(request);
    GString *answer = g_string_new(NULL);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        g_string_append_len(answer, buf, n);
    close(fd);
    return g_string_free(answer, FALSE);
}

static const char *const AGE_BODY =
    "{\"id\":\"q\",\"inputs\":[{\"name\":\"age\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[1.5,2]},"
    "{\"name\":\"color\",\"datatype\":\"INT32\",\"shape\":[2],\"data\":[0,1]},"
    "{\"name\":\"review\",\"datatype\":\"INT64\",\"shape\":[2,6],\"data\":[[0,0,0,0,0,0],[0,0,0,0,0,0]]},"
    "{\"name\":\"when\",\"datatype\":\"INT32\",\"shape\":[2,9],\"data\":[[0,0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0,0]]}],"
    "\"outputs\":[{\"name\":\"age\"}]}";

typedef struct fixture {
    stage_server *stage;
    sw_rest_server *rest;
    int port;
} fixture;

static void fixture_start(fixture *f, const char *module, int max_in_flight)
{
    server_setup setup = {.kind = SW_STAGE_PREDICTOR, .module = module, .serving = TRUE};
    f->stage = stage_server_start(&setup);
    sw_rest_options o = {
        .listen = "127.0.0.1:0", .worker_threads = 2, .max_body_bytes = 4096, .max_in_flight = max_in_flight};
    GError *error = NULL;
    f->rest = sw_rest_server_start(f->stage->oip, &o, &error);
    g_assert_no_error(error);
    f->port = sw_rest_server_port(f->rest);
    g_assert_cmpint(f->port, >, 0);
}

static void fixture_stop(fixture *f)
{
    sw_rest_server_stop(f->rest);
    stage_server_stop(f->stage);
}

static void test_infer(void)
{
    fixture f;
    fixture_start(&f, "op=scale\nfactor=2", 0);
    char *answer = http(f.port, "POST", "/v2/models/m_predictor/infer", AGE_BODY);
    g_assert_true(g_str_has_prefix(answer, "HTTP/1.1 200"));
    g_assert_nonnull(strstr(answer, "{\"model_name\":\"m_predictor\",\"model_version\":\"1\",\"id\":\"q\",\"outputs\":"
                                    "[{\"name\":\"age\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[3,4]}]}"));
    g_free(answer);
    answer = http(f.port, "GET", "/v2/models/m_predictor/ready", NULL);
    g_assert_true(g_str_has_prefix(answer, "HTTP/1.1 200"));
    g_free(answer);
    /* Over the 4096-byte body limit. */
    char *big = g_strnfill(5000, ' ');
    answer = http(f.port, "POST", "/v2/models/m_predictor/infer", big);
    g_assert_true(g_str_has_prefix(answer, "HTTP/1.1 413"));
    g_free(answer);
    g_free(big);
    fixture_stop(&f);
}

typedef struct slow_call {
    int port;
    char *answer;
    gint64 ended_us;
    gint done; /* set (atomically) once the answer is in */
} slow_call;

static gpointer call_thread(gpointer data)
{
    slow_call *c = data;
    c->answer = http(c->port, "POST", "/v2/models/m_predictor/infer", AGE_BODY);
    c->ended_us = g_get_monotonic_time();
    g_atomic_int_set(&c->done, 1);
    return NULL;
}

/* Waits until the module has begun `n` forward calls in all (a fixed
 * pause lost that race under the sanitizers). */
static void wait_for_forward_calls(fixture *f, int n)
{
    const sw_torch_module *module = f->stage->stage->instances[0];
    for (int waited_ms = 0; sw_fake_torch_forward_started(module) < n; waited_ms++) {
        g_assert_cmpint(waited_ms, <, 30000);
        g_usleep(1000);
    }
}

static GThread *start_call(fixture *f, slow_call *c)
{
    c->port = f->port;
    return g_thread_new("slow", call_thread, c);
}

/* Starts a call that takes the module's sleep, and waits until it runs. */
static GThread *start_slow(fixture *f, slow_call *c)
{
    int before = sw_fake_torch_forward_started(f->stage->stage->instances[0]);
    GThread *t = start_call(f, c);
    wait_for_forward_calls(f, before + 1);
    return t;
}

static void test_polling_is_free_while_inference_runs(void)
{
    fixture f;
    fixture_start(&f, "op=echo\nsleep_us=2000000", 0);
    /* More calls than polling threads, so that a polling thread running
     * inference would leave none to answer. */
    slow_call c[3] = {{0}};
    GThread *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = start_call(&f, &c[i]);
    /* Both workers busy; the third call waits, its connection suspended. */
    wait_for_forward_calls(&f, 2);
    char *answer = http(f.port, "GET", "/v2/health/live", NULL);
    g_assert_true(g_str_has_prefix(answer, "HTTP/1.1 200"));
    g_free(answer);
    /* Answered while every inference was still running. */
    for (int i = 0; i < 3; i++)
        g_assert_cmpint(g_atomic_int_get(&c[i].done), ==, 0);
    for (int i = 0; i < 3; i++) {
        g_thread_join(t[i]);
        g_assert_true(g_str_has_prefix(c[i].answer, "HTTP/1.1 200"));
        g_free(c[i].answer);
    }
    fixture_stop(&f);
}

static void test_max_in_flight(void)
{
    fixture f;
    fixture_start(&f, "op=echo\nsleep_us=600000", 1);
    slow_call c = {0};
    GThread *t = start_slow(&f, &c);
    char *answer = http(f.port, "POST", "/v2/models/m_predictor/infer", AGE_BODY);
    g_assert_true(g_str_has_prefix(answer, "HTTP/1.1 429"));
    g_assert_nonnull(strstr(answer, "--max-concurrent"));
    g_free(answer);
    g_thread_join(t);
    g_assert_true(g_str_has_prefix(c.answer, "HTTP/1.1 200"));
    g_free(c.answer);
    fixture_stop(&f);
}

static void test_stop_waits_for_the_call_in_flight(void)
{
    fixture f;
    fixture_start(&f, "op=echo\nsleep_us=600000", 0);
    slow_call c = {0};
    GThread *t = start_slow(&f, &c);
    sw_rest_server_stop(f.rest);
    gint64 stopped_us = g_get_monotonic_time();
    g_thread_join(t);
    /* The call ended with its answer, before the stop returned. */
    g_assert_true(g_str_has_prefix(c.answer, "HTTP/1.1 200"));
    /* (The client reads it a moment later: a generous bound, not a timing test.) */
    g_assert_cmpint(c.ended_us, <=, stopped_us + G_USEC_PER_SEC);
    g_free(c.answer);
    stage_server_stop(f.stage);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rest_server/infer", test_infer);
    g_test_add_func("/rest_server/polling_is_free_while_inference_runs", test_polling_is_free_while_inference_runs);
    g_test_add_func("/rest_server/max_in_flight", test_max_in_flight);
    g_test_add_func("/rest_server/stop_waits_for_the_call_in_flight", test_stop_waits_for_the_call_in_flight);
    grpc_init();
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
