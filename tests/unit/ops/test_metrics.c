/* Prometheus metrics: what recording does to the rendered text, read back
 * line by line as a scraper would. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "sw_error.h"

/* The value of the sample whose name and labels are exactly `series`
 * (`name{labels}` or `name`); fails the test when it is absent. */
static double sample(const char *text, const char *series)
{
    char **lines = g_strsplit(text, "\n", -1);
    double value = 0;
    gboolean found = FALSE;
    size_t n = strlen(series);
    for (char **l = lines; *l && !found; l++) {
        if (strncmp(*l, series, n) == 0 && (*l)[n] == ' ') {
            char *end = NULL;
            value = g_ascii_strtod(*l + n + 1, &end);
            g_assert_true(end != *l + n + 1 && *end == '\0');
            found = TRUE;
        }
    }
    g_strfreev(lines);
    if (!found)
        g_error("no sample '%s' in:\n%s", series, text);
    return value;
}

static gboolean has_series(const char *text, const char *series)
{
    char *needle = g_strdup_printf("\n%s ", series);
    gboolean found = strstr(text, needle) != NULL;
    g_free(needle);
    return found;
}

static void assert_line(const char *text, const char *line)
{
    char *needle = g_strdup_printf("\n%s\n", line);
    if (strstr(text, needle) == NULL)
        g_error("no line '%s' in:\n%s", line, text);
    g_free(needle);
}

/* The bucket counts of histogram `name` with `labels` ("" for none), in
 * order up to +Inf: they never decrease, and +Inf equals _count. Returns
 * the count. */
static double check_histogram(const char *text, const char *name, const char *labels, const char *const *bounds,
                              const double *want)
{
    double previous = 0;
    for (size_t i = 0; bounds[i]; i++) {
        char *series = g_strdup_printf("%s_bucket{%s%sle=\"%s\"}", name, labels, labels[0] ? "," : "", bounds[i]);
        double v = sample(text, series);
        g_free(series);
        if (want && v != want[i])
            g_error("%s{%s} bucket le=%s is %g, expected %g", name, labels, bounds[i], v, want[i]);
        g_assert_cmpfloat(v, >=, previous);
        previous = v;
    }
    char *braced = labels[0] ? g_strdup_printf("{%s}", labels) : g_strdup("");
    char *count_name = g_strdup_printf("%s_count%s", name, braced);
    double count = sample(text, count_name);
    g_assert_cmpfloat(count, ==, previous);
    g_free(count_name);
    g_free(braced);
    return count;
}

static const char *const latency_bounds[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                             "0.05",   "0.1",     "0.25",   "0.5",   "1",      "10",    "+Inf", NULL};
static const char *const batch_bounds[] = {"1",   "2",   "4",    "8",    "16",    "32",    "64",   "128",
                                           "256", "512", "1024", "4096", "16384", "65536", "+Inf", NULL};

static void test_requests(void)
{
    sw_metrics *m = sw_metrics_new((const char *const[]){"shop_predictor", "shop", NULL});
    /* 300 µs, 2 ms, and exactly on the 100 µs bound (buckets are "<="). */
    sw_metrics_record_request(m, "shop_predictor", SW_CODE_OK, 3, 50, 200, 300);
    sw_metrics_record_request(m, "shop_predictor", SW_CODE_OK, 2, 1000, 900, 2000);
    sw_metrics_record_request(m, "shop_predictor", SW_CODE_INVALID_ARGUMENT, 4, 0, 0, 100);
    sw_metrics_record_request(m, "shop", SW_CODE_OK, 1, 0, 20000000, 20000000);
    /* Any other name, or none, is one "other" series: clients cannot make
     * the server grow label values. */
    sw_metrics_record_request(m, "typo", SW_CODE_NOT_FOUND, 1, 0, 0, 10);
    sw_metrics_record_request(m, NULL, SW_CODE_NOT_FOUND, 1, 0, 0, 10);
    sw_metrics_record_request(m, "shop_predictor", 99, 1, 0, 0, 10); /* not a gRPC code */
    char *text = sw_metrics_render(m);

    assert_line(text, "# TYPE stagewise_inference_requests_total counter");
    g_assert_cmpfloat(sample(text, "stagewise_inference_requests_total{model=\"shop_predictor\",code=\"OK\"}"), ==, 2);
    g_assert_cmpfloat(
        sample(text, "stagewise_inference_requests_total{model=\"shop_predictor\",code=\"INVALID_ARGUMENT\"}"), ==, 1);
    g_assert_cmpfloat(sample(text, "stagewise_inference_requests_total{model=\"shop_predictor\",code=\"UNKNOWN\"}"), ==,
                      1);
    g_assert_cmpfloat(sample(text, "stagewise_inference_requests_total{model=\"shop\",code=\"OK\"}"), ==, 1);
    g_assert_cmpfloat(sample(text, "stagewise_inference_requests_total{model=\"other\",code=\"NOT_FOUND\"}"), ==, 2);
    /* OK is always there, so a rate() has a series from the start; codes
     * never seen are not. */
    g_assert_cmpfloat(sample(text, "stagewise_inference_requests_total{model=\"other\",code=\"OK\"}"), ==, 0);
    g_assert_false(has_series(text, "stagewise_inference_requests_total{model=\"shop\",code=\"NOT_FOUND\"}"));
    g_assert_false(has_series(text, "stagewise_inference_requests_total{model=\"typo\",code=\"NOT_FOUND\"}"));

    /* Rows count only for successful calls. */
    assert_line(text, "# TYPE stagewise_inference_count counter");
    g_assert_cmpfloat(sample(text, "stagewise_inference_count{model=\"shop_predictor\"}"), ==, 5);
    g_assert_cmpfloat(sample(text, "stagewise_inference_count{model=\"shop\"}"), ==, 1);
    g_assert_cmpfloat(sample(text, "stagewise_inference_count{model=\"other\"}"), ==, 0);

    assert_line(text, "# TYPE stagewise_inference_request_duration_seconds histogram");
    static const double request_want[] = {2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};
    g_assert_cmpfloat(check_histogram(text, "stagewise_inference_request_duration_seconds", "model=\"shop_predictor\"",
                                      latency_bounds, request_want),
                      ==, 4);
    g_assert_cmpfloat_with_epsilon(
        sample(text, "stagewise_inference_request_duration_seconds_sum{model=\"shop_predictor\"}"), 0.00241, 1e-12);
    /* 20 s is past the last bound: only +Inf holds it. */
    static const double slow_want[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    check_histogram(text, "stagewise_inference_compute_duration_seconds", "model=\"shop\"", latency_bounds, slow_want);
    g_assert_cmpfloat(sample(text, "stagewise_inference_compute_duration_seconds_sum{model=\"shop\"}"), ==, 20);
    /* Queue and compute times are of successful calls only. */
    static const double queue_want[] = {1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    check_histogram(text, "stagewise_inference_queue_duration_seconds", "model=\"shop_predictor\"", latency_bounds,
                    queue_want);
    g_assert_cmpfloat_with_epsilon(
        sample(text, "stagewise_inference_queue_duration_seconds_sum{model=\"shop_predictor\"}"), 0.00105, 1e-12);
    g_assert_cmpfloat(check_histogram(text, "stagewise_inference_compute_duration_seconds", "model=\"shop_predictor\"",
                                      latency_bounds, NULL),
                      ==, 2);
    g_assert_cmpfloat(
        check_histogram(text, "stagewise_inference_request_duration_seconds", "model=\"other\"", latency_bounds, NULL),
        ==, 2);
    g_assert_cmpfloat(
        check_histogram(text, "stagewise_inference_queue_duration_seconds", "model=\"other\"", latency_bounds, NULL),
        ==, 0);
    g_free(text);
    sw_metrics_free(m);
}

static void test_executions_refused_in_flight(void)
{
    sw_metrics *m = sw_metrics_new(NULL);
    char *text = sw_metrics_render(m);
    /* Before anything happens every series already reads zero. */
    g_assert_cmpfloat(sample(text, "stagewise_inference_exec_count"), ==, 0);
    g_assert_cmpfloat(sample(text, "stagewise_inference_refused_total{code=\"RESOURCE_EXHAUSTED\"}"), ==, 0);
    g_assert_cmpfloat(sample(text, "stagewise_inference_in_flight"), ==, 0);
    g_assert_cmpfloat(check_histogram(text, "stagewise_inference_batch_rows", "", batch_bounds, NULL), ==, 0);
    g_assert_false(has_series(text, "stagewise_inference_refused_total{code=\"UNAUTHENTICATED\"}"));
    g_free(text);

    sw_metrics_record_execution(m, 1);
    sw_metrics_record_execution(m, 4);
    sw_metrics_record_execution(m, 5);
    sw_metrics_record_execution(m, 100);
    sw_metrics_record_execution(m, 100000);
    sw_metrics_record_refused(SW_CODE_UNAUTHENTICATED, m);
    sw_metrics_record_refused(SW_CODE_UNAUTHENTICATED, m);
    sw_metrics_record_refused(SW_CODE_RESOURCE_EXHAUSTED, m);
    sw_metrics_in_flight_add(m, 3);
    sw_metrics_in_flight_add(m, -1);
    text = sw_metrics_render(m);
    assert_line(text, "# TYPE stagewise_inference_exec_count counter");
    g_assert_cmpfloat(sample(text, "stagewise_inference_exec_count"), ==, 5);
    assert_line(text, "# TYPE stagewise_inference_batch_rows histogram");
    static const double batch_want[] = {1, 1, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5};
    check_histogram(text, "stagewise_inference_batch_rows", "", batch_bounds, batch_want);
    g_assert_cmpfloat(sample(text, "stagewise_inference_batch_rows_sum"), ==, 100110);
    g_assert_cmpfloat(sample(text, "stagewise_inference_refused_total{code=\"UNAUTHENTICATED\"}"), ==, 2);
    g_assert_cmpfloat(sample(text, "stagewise_inference_refused_total{code=\"RESOURCE_EXHAUSTED\"}"), ==, 1);
    assert_line(text, "# TYPE stagewise_inference_in_flight gauge");
    g_assert_cmpfloat(sample(text, "stagewise_inference_in_flight"), ==, 2);
    /* The process metrics a Prometheus client library would export. */
    g_assert_cmpfloat(sample(text, "process_resident_memory_bytes"), >, 0);
    g_assert_cmpfloat(sample(text, "process_cpu_seconds_total"), >=, 0);
    /* No model was named: only "other" is there. */
    g_assert_cmpfloat(sample(text, "stagewise_inference_count{model=\"other\"}"), ==, 0);
    g_free(text);
    sw_metrics_free(m);

    /* Recording into no metrics is allowed (metrics off). */
    sw_metrics_record_request(NULL, "x", 0, 1, 1, 1, 1);
    sw_metrics_record_execution(NULL, 1);
    sw_metrics_record_refused(SW_CODE_UNAUTHENTICATED, NULL);
    sw_metrics_in_flight_add(NULL, 1);
    sw_metrics_record_downstream(NULL, "t", 0, 1);
    sw_metrics_free(NULL);
}

static void test_downstream(void)
{
    sw_metrics *m = sw_metrics_new((const char *const[]){"m", NULL});
    char *text = sw_metrics_render(m);
    assert_line(text, "# TYPE stagewise_downstream_requests_total counter");
    assert_line(text, "# TYPE stagewise_downstream_duration_seconds histogram");
    g_assert_null(strstr(text, "stagewise_downstream_requests_total{"));
    g_free(text);

    sw_metrics_record_downstream(m, "10.0.0.1:8002", SW_CODE_OK, 400);
    sw_metrics_record_downstream(m, "10.0.0.1:8002", SW_CODE_OK, 3000);
    sw_metrics_record_downstream(m, "10.0.0.1:8002", SW_CODE_UNAVAILABLE, 50);
    sw_metrics_record_downstream(m, "unix:/run/post.sock", SW_CODE_DEADLINE_EXCEEDED, 5000000);
    text = sw_metrics_render(m);
    g_assert_cmpfloat(sample(text, "stagewise_downstream_requests_total{target=\"10.0.0.1:8002\",code=\"OK\"}"), ==, 2);
    g_assert_cmpfloat(
        sample(text, "stagewise_downstream_requests_total{target=\"10.0.0.1:8002\",code=\"UNAVAILABLE\"}"), ==, 1);
    g_assert_cmpfloat(
        sample(text, "stagewise_downstream_requests_total{target=\"unix:/run/post.sock\",code=\"DEADLINE_EXCEEDED\"}"),
        ==, 1);
    g_assert_false(has_series(text, "stagewise_downstream_requests_total{target=\"unix:/run/post.sock\",code=\"OK\"}"));
    static const double want[] = {1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    check_histogram(text, "stagewise_downstream_duration_seconds", "target=\"10.0.0.1:8002\"", latency_bounds, want);
    g_assert_cmpfloat_with_epsilon(sample(text, "stagewise_downstream_duration_seconds_sum{target=\"10.0.0.1:8002\"}"),
                                   0.00345, 1e-12);
    g_assert_cmpfloat(check_histogram(text, "stagewise_downstream_duration_seconds", "target=\"unix:/run/post.sock\"",
                                      latency_bounds, NULL),
                      ==, 1);
    g_free(text);
    sw_metrics_free(m);
}

/* Recording from many threads loses nothing. */
static gpointer record_many(gpointer data)
{
    sw_metrics *m = data;
    for (int i = 0; i < 1000; i++) {
        sw_metrics_in_flight_add(m, 1);
        sw_metrics_record_request(m, "m", SW_CODE_OK, 2, 10, 10, 20);
        sw_metrics_record_execution(m, 2);
        sw_metrics_record_downstream(m, "next:1", SW_CODE_OK, 100);
        sw_metrics_in_flight_add(m, -1);
    }
    return NULL;
}

static void test_concurrent_recording(void)
{
    sw_metrics *m = sw_metrics_new((const char *const[]){"m", NULL});
    GThread *threads[4];
    for (int i = 0; i < 4; i++)
        threads[i] = g_thread_new("record", record_many, m);
    for (int i = 0; i < 4; i++)
        g_thread_join(threads[i]);
    char *text = sw_metrics_render(m);
    g_assert_cmpfloat(sample(text, "stagewise_inference_requests_total{model=\"m\",code=\"OK\"}"), ==, 4000);
    g_assert_cmpfloat(sample(text, "stagewise_inference_count{model=\"m\"}"), ==, 8000);
    g_assert_cmpfloat(sample(text, "stagewise_inference_exec_count"), ==, 4000);
    g_assert_cmpfloat(sample(text, "stagewise_downstream_requests_total{target=\"next:1\",code=\"OK\"}"), ==, 4000);
    g_assert_cmpfloat(sample(text, "stagewise_inference_in_flight"), ==, 0);
    g_free(text);
    sw_metrics_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/metrics/requests", test_requests);
    g_test_add_func("/metrics/executions-refused-in-flight", test_executions_refused_in_flight);
    g_test_add_func("/metrics/downstream", test_downstream);
    g_test_add_func("/metrics/concurrent-recording", test_concurrent_recording);
    return g_test_run();
}
