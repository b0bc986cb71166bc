/* The HTTP load generator: a closed loop of `concurrency` slots as in
 * load.c, each an easy handle of one libcurl multi handle with one request
 * in flight, driven by this thread alone. The handles are reused from
 * request to request and step to step, so every slot keeps its keep-alive
 * connection: a step at concurrency N holds N connections, opened during
 * its warm-up. The body is built once; every request sends the same bytes.
 *
 * A request counts when the answer is HTTP 200 and an inference answer
 * (bench_http_answer_check); anything else is an error with its text. */
#include <curl/curl.h>
#include <string.h>

#include "http.h"

struct bench_http {
    char *url;
    GBytes *body;
    struct curl_slist *headers;
    CURLM *multi;
    GPtrArray *slots; /* http_slot*, as many as the largest concurrency so far */
    int64_t rows_per_request;
    GPtrArray *binary_inputs;  /* char*: the body's, why each went as binary data */
    GPtrArray *answer_outputs; /* char*: the first valid answer's output names; NULL until one came */
    /* The phase being run. */
    int active; /* slots still looping */
    gboolean by_count;
    int64_t remaining;
    int64_t end_us;
    long timeout_ms;
    bench_step *step; /* NULL while warming up: nothing is recorded */
};

typedef struct http_slot {
    bench_http *http;
    CURL *easy;
    GByteArray *answer;
    gssize header_len; /* the answer's Inference-Header-Content-Length; -1 none */
    int64_t start_us;
    char curl_error[CURL_ERROR_SIZE];
} http_slot;

static size_t on_data(char *data, size_t size, size_t n, void *user_data)
{
    http_slot *s = user_data;
    g_byte_array_append(s->answer, (const guint8 *)data, (guint)(size * n));
    return size * n;
}

static size_t on_header(char *line, size_t size, size_t n, void *user_data)
{
    static const char name[] = "inference-header-content-length:";
    http_slot *s = user_data;
    size_t len = size * n;
    if (len > sizeof name - 1 && g_ascii_strncasecmp(line, name, sizeof name - 1) == 0)
        s->header_len = (gssize)g_ascii_strtoll(line + sizeof name - 1, NULL, 10);
    return len;
}

static void slot_free(http_slot *s)
{
    curl_easy_cleanup(s->easy);
    g_byte_array_unref(s->answer);
    g_free(s);
}

static http_slot *slot_new(bench_http *http)
{
    http_slot *s = g_new0(http_slot, 1);
    s->http = http;
    s->answer = g_byte_array_new();
    s->easy = curl_easy_init();
    gsize len = 0;
    const void *body = g_bytes_get_data(http->body, &len);
    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, http->url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, http->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    return s;
}

/* "HOST:PORT" or a URL without a path, and the model: the infer URL. */
static char *infer_url(const char *target, const char *model)
{
    gboolean url = g_str_has_prefix(target, "http://") || g_str_has_prefix(target, "https://");
    char *base = g_strdup(target);
    while (*base && base[strlen(base) - 1] == '/')
        base[strlen(base) - 1] = '\0';
    char *escaped = g_uri_escape_string(model, NULL, FALSE);
    char *full = g_strdup_printf("%s%s/v2/models/%s/infer", url ? "" : "http://", base, escaped);
    g_free(escaped);
    g_free(base);
    return full;
}

bench_http *bench_http_new(const char *target, const char *model, const bench_http_body *body, int64_t rows_per_request,
                           GError **error)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "libcurl did not initialize");
        return NULL;
    }
    bench_http *http = g_new0(bench_http, 1);
    http->url = infer_url(target, model);
    http->body = g_bytes_ref(body->bytes);
    http->binary_inputs = g_ptr_array_ref(body->binary_inputs);
    http->rows_per_request = rows_per_request;
    http->slots = g_ptr_array_new_with_free_func((GDestroyNotify)slot_free);
    /* "Expect:" off: curl would otherwise wait a round trip for "100
     * Continue" before sending a body over 1 KiB. */
    http->headers = curl_slist_append(NULL, "Expect:");
    if (body->header_len >= 0) {
        char *line = g_strdup_printf("Inference-Header-Content-Length: %" G_GSSIZE_FORMAT, body->header_len);
        http->headers = curl_slist_append(http->headers, "Content-Type: application/octet-stream");
        http->headers = curl_slist_append(http->headers, line);
        g_free(line);
    } else {
        http->headers = curl_slist_append(http->headers, "Content-Type: application/json");
    }
    http->multi = curl_multi_init();
    /* HTTP/1.1, one request per connection at a time. */
    curl_multi_setopt(http->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    return http;
}

void bench_http_free(bench_http *http)
{
    if (http == NULL)
        return;
    g_ptr_array_unref(http->slots);
    curl_multi_cleanup(http->multi);
    curl_slist_free_all(http->headers);
    g_bytes_unref(http->body);
    g_ptr_array_unref(http->binary_inputs);
    if (http->answer_outputs)
        g_ptr_array_unref(http->answer_outputs);
    g_free(http->url);
    g_free(http);
    curl_global_cleanup();
}

static JsonArray *string_array(const GPtrArray *strings)
{
    JsonArray *array = json_array_new();
    for (guint i = 0; strings && i < strings->len; i++)
        json_array_add_string_element(array, g_ptr_array_index(strings, i));
    return array;
}

void bench_http_describe(const bench_http *http, JsonObject *config)
{
    json_object_set_array_member(config, "binary_inputs", string_array(http->binary_inputs));
    json_object_set_array_member(config, "answer_outputs", string_array(http->answer_outputs));
}

/* The error of a finished request, or NULL when it was answered well. */
static char *slot_error(http_slot *s, CURLcode result)
{
    if (result != CURLE_OK)
        return g_strdup_printf("curl: %s%s%s", curl_easy_strerror(result), s->curl_error[0] ? ": " : "", s->curl_error);
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        char *text = bench_http_error_text(s->answer->data, s->answer->len);
        char *message = g_strdup_printf("HTTP %ld: %s", status, text);
        g_free(text);
        return message;
    }
    bench_http *http = s->http;
    GPtrArray *names = http->answer_outputs ? NULL : g_ptr_array_new_with_free_func(g_free);
    GError *error = NULL;
    char *message = NULL;
    if (!bench_http_answer_check(s->answer->data, s->answer->len, s->header_len, names, &error)) {
        message = g_strdup_printf("HTTP 200, not an inference answer: %s", error->message);
        g_error_free(error);
    } else if (names) {
        http->answer_outputs = g_ptr_array_ref(names);
    }
    if (names)
        g_ptr_array_unref(names);
    return message;
}

static void slot_record(http_slot *s, CURLcode result)
{
    bench_http *http = s->http;
    int64_t latency = bench_now_us() - s->start_us;
    char *message = slot_error(s, result);
    bench_step *step = http->step;
    if (step && message == NULL) {
        g_array_append_val(step->latency_us, latency);
        step->requests++;
        step->rows += http->rows_per_request;
    } else if (step) {
        bench_step_add_error(step, message);
    }
    long connects = 0;
    if (step && curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        step->connections_opened += connects;
    g_free(message);
}

static gboolean may_start(bench_http *http)
{
    if (http->by_count)
        return http->remaining-- > 0;
    return bench_now_us() < http->end_us;
}

/* Starts the slot's next request, or retires the slot when the phase is over. */
static void slot_start(http_slot *s)
{
    bench_http *http = s->http;
    if (!may_start(http)) {
        http->active--;
        return;
    }
    g_byte_array_set_size(s->answer, 0);
    s->header_len = -1;
    s->curl_error[0] = '\0';
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, http->timeout_ms);
    s->start_us = bench_now_us();
    curl_multi_add_handle(http->multi, s->easy);
}

/* Records every finished request and starts its slot's next one. */
static void collect(bench_http *http)
{
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(http->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        http_slot *s = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
        curl_multi_remove_handle(http->multi, easy);
        slot_record(s, result);
        slot_start(s);
    }
}

/* Runs the loop until the phase's time or request count is spent and every
 * request in flight has been answered. */
static void run_phase(bench_http *http, int concurrency, double seconds, int64_t requests, bench_step *step)
{
    while ((int)http->slots->len < concurrency)
        g_ptr_array_add(http->slots, slot_new(http));
    /* Room in the connection cache for every slot's connection. */
    curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, (long)http->slots->len);
    http->step = step;
    http->by_count = requests > 0;
    http->remaining = requests;
    http->end_us = bench_now_us() + (int64_t)(seconds * 1e6);
    http->active = concurrency;
    for (int i = 0; i < concurrency; i++)
        slot_start(g_ptr_array_index(http->slots, i));
    while (http->active > 0) {
        int running = 0;
        curl_multi_perform(http->multi, &running);
        collect(http);
        if (http->active > 0)
            curl_multi_poll(http->multi, NULL, 0, 100, NULL);
    }
}

/* What a measured phase runs (bench_step_measure's callback). */
typedef struct measured_phase {
    bench_http *http;
    int concurrency;
    const bench_limits *limits;
} measured_phase;

static void run_measured(void *ctx, bench_step *step)
{
    measured_phase *p = ctx;
    step->connections_opened = 0;
    run_phase(p->http, p->concurrency, p->limits->duration_s, p->limits->requests, step);
}

bench_step *bench_http_step(bench_http *http, int concurrency, const bench_limits *limits, const GArray *server_pids)
{
    http->timeout_ms = limits->timeout_ms > 0 ? (long)limits->timeout_ms : 0;
    if (limits->warmup_s > 0)
        run_phase(http, concurrency, limits->warmup_s, 0, NULL);
    measured_phase phase = {http, concurrency, limits};
    return bench_step_measure(concurrency, server_pids, run_measured, &phase);
}
