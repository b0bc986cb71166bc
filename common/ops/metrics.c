#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sw_error.h"

#define N_BUCKETS 14

/* Latency buckets in seconds: 100 µs to 10 s. */
static const double latency_buckets[N_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                  0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   10.0};
/* Batch size buckets in rows. */
static const double batch_buckets[N_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536};

typedef struct histogram {
    const double *bounds;
    guint64 counts[N_BUCKETS + 1]; /* the last one is +Inf */
    double sum;
    guint64 count;
} histogram;

typedef struct model_metrics {
    char *name;
    guint64 requests[SW_CODE_COUNT]; /* by gRPC code */
    guint64 rows;
    histogram total, queue, compute;
} model_metrics;

typedef struct downstream_metrics {
    char *target;
    guint64 calls[SW_CODE_COUNT];
    histogram latency;
} downstream_metrics;

struct sw_metrics {
    GMutex lock;
    GPtrArray *models; /* model_metrics*, the last is "other" */
    GPtrArray *downstream;
    guint64 executions;
    guint64 refused[SW_CODE_COUNT];
    histogram batch_rows;
    gint in_flight;
};

static void histogram_init(histogram *h, const double *bounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
}

static void histogram_observe(histogram *h, double v)
{
    int i = 0;
    while (i < N_BUCKETS && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

static model_metrics *model_new(const char *name)
{
    model_metrics *m = g_new0(model_metrics, 1);
    m->name = g_strdup(name);
    histogram_init(&m->total, latency_buckets);
    histogram_init(&m->queue, latency_buckets);
    histogram_init(&m->compute, latency_buckets);
    return m;
}

static void model_free(model_metrics *m)
{
    g_free(m->name);
    g_free(m);
}

static void downstream_free(downstream_metrics *d)
{
    g_free(d->target);
    g_free(d);
}

sw_metrics *sw_metrics_new(const char *const *models)
{
    sw_metrics *m = g_new0(sw_metrics, 1);
    g_mutex_init(&m->lock);
    m->models = g_ptr_array_new_with_free_func((GDestroyNotify)model_free);
    for (size_t i = 0; models && models[i]; i++)
        g_ptr_array_add(m->models, model_new(models[i]));
    g_ptr_array_add(m->models, model_new("other"));
    m->downstream = g_ptr_array_new_with_free_func((GDestroyNotify)downstream_free);
    histogram_init(&m->batch_rows, batch_buckets);
    return m;
}

void sw_metrics_free(sw_metrics *m)
{
    if (m == NULL)
        return;
    g_ptr_array_unref(m->models);
    g_ptr_array_unref(m->downstream);
    g_mutex_clear(&m->lock);
    g_free(m);
}

static model_metrics *find_model(sw_metrics *m, const char *name)
{
    for (guint i = 0; i + 1 < m->models->len; i++) {
        model_metrics *mm = g_ptr_array_index(m->models, i);
        if (name && strcmp(mm->name, name) == 0)
            return mm;
    }
    return g_ptr_array_index(m->models, m->models->len - 1);
}

void sw_metrics_record_request(sw_metrics *m, const char *model, int code, int64_t rows, int64_t queue_us,
                               int64_t compute_us, int64_t total_us)
{
    if (m == NULL)
        return;
    g_mutex_lock(&m->lock);
    model_metrics *mm = find_model(m, model);
    mm->requests[code >= 0 && code < SW_CODE_COUNT ? code : SW_CODE_UNKNOWN]++;
    if (code == SW_CODE_OK) {
        mm->rows += (guint64)rows;
        histogram_observe(&mm->queue, (double)queue_us / 1e6);
        histogram_observe(&mm->compute, (double)compute_us / 1e6);
    }
    histogram_observe(&mm->total, (double)total_us / 1e6);
    g_mutex_unlock(&m->lock);
}

void sw_metrics_record_execution(sw_metrics *m, int64_t rows)
{
    if (m == NULL)
        return;
    g_mutex_lock(&m->lock);
    m->executions++;
    histogram_observe(&m->batch_rows, (double)rows);
    g_mutex_unlock(&m->lock);
}

void sw_metrics_record_refused(int code, void *data)
{
    sw_metrics *m = data;
    if (m == NULL)
        return;
    g_mutex_lock(&m->lock);
    m->refused[code >= 0 && code < SW_CODE_COUNT ? code : SW_CODE_UNKNOWN]++;
    g_mutex_unlock(&m->lock);
}

void sw_metrics_in_flight_add(sw_metrics *m, int delta)
{
    if (m)
        g_atomic_int_add(&m->in_flight, delta);
}

void sw_metrics_record_downstream(sw_metrics *m, const char *target, int code, int64_t latency_us)
{
    if (m == NULL)
        return;
    g_mutex_lock(&m->lock);
    downstream_metrics *d = NULL;
    for (guint i = 0; i < m->downstream->len && !d; i++)
        if (strcmp(((downstream_metrics *)g_ptr_array_index(m->downstream, i))->target, target) == 0)
            d = g_ptr_array_index(m->downstream, i);
    if (d == NULL) {
        d = g_new0(downstream_metrics, 1);
        d->target = g_strdup(target);
        histogram_init(&d->latency, latency_buckets);
        g_ptr_array_add(m->downstream, d);
    }
    d->calls[code >= 0 && code < SW_CODE_COUNT ? code : SW_CODE_UNKNOWN]++;
    histogram_observe(&d->latency, (double)latency_us / 1e6);
    g_mutex_unlock(&m->lock);
}

static void render_histogram(GString *out, const char *name, const char *labels, const histogram *h)
{
    guint64 cumulative = 0;
    for (int i = 0; i <= N_BUCKETS; i++) {
        cumulative += h->counts[i];
        if (i < N_BUCKETS)
            g_string_append_printf(out, "%s_bucket{%s%sle=\"%g\"} %" G_GUINT64_FORMAT "\n", name, labels,
                                   labels[0] ? "," : "", h->bounds[i], cumulative);
        else
            g_string_append_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" G_GUINT64_FORMAT "\n", name, labels,
                                   labels[0] ? "," : "", cumulative);
    }
    char *braced = labels[0] ? g_strdup_printf("{%s}", labels) : g_strdup("");
    g_string_append_printf(out, "%s_sum%s %.9g\n%s_count%s %" G_GUINT64_FORMAT "\n", name, braced, h->sum, name, braced,
                           h->count);
    g_free(braced);
}

static void render_models(GString *out, sw_metrics *m)
{
    g_string_append(out,
                    "# HELP stagewise_inference_requests_total Inference calls answered, by model and gRPC status.\n"
                    "# TYPE stagewise_inference_requests_total counter\n");
    for (guint i = 0; i < m->models->len; i++) {
        model_metrics *mm = g_ptr_array_index(m->models, i);
        for (int c = 0; c < SW_CODE_COUNT; c++)
            if (mm->requests[c] || c == SW_CODE_OK)
                g_string_append_printf(
                    out, "stagewise_inference_requests_total{model=\"%s\",code=\"%s\"} %" G_GUINT64_FORMAT "\n",
                    mm->name, sw_code_name(c), mm->requests[c]);
    }
    g_string_append(out,
                    "# HELP stagewise_inference_count Rows inferred by successful calls (Triton: nv_inference_count).\n"
                    "# TYPE stagewise_inference_count counter\n");
    for (guint i = 0; i < m->models->len; i++) {
        model_metrics *mm = g_ptr_array_index(m->models, i);
        g_string_append_printf(out, "stagewise_inference_count{model=\"%s\"} %" G_GUINT64_FORMAT "\n", mm->name,
                               mm->rows);
    }
    static const char *const names[3] = {"request", "queue", "compute"};
    static const char *const help[3] = {"from arrival to answer", "waiting for a worker or a batch", "in forward"};
    for (int k = 0; k < 3; k++) {
        g_string_append_printf(out,
                               "# HELP stagewise_inference_%s_duration_seconds Time %s.\n"
                               "# TYPE stagewise_inference_%s_duration_seconds histogram\n",
                               names[k], help[k], names[k]);
        for (guint i = 0; i < m->models->len; i++) {
            model_metrics *mm = g_ptr_array_index(m->models, i);
            char *labels = g_strdup_printf("model=\"%s\"", mm->name);
            char *metric = g_strdup_printf("stagewise_inference_%s_duration_seconds", names[k]);
            render_histogram(out, metric, labels, k == 0 ? &mm->total : k == 1 ? &mm->queue : &mm->compute);
            g_free(metric);
            g_free(labels);
        }
    }
}

static void render_downstream(GString *out, sw_metrics *m)
{
    g_string_append(out,
                    "# HELP stagewise_downstream_requests_total Calls to the next stage, by target and gRPC status.\n"
                    "# TYPE stagewise_downstream_requests_total counter\n");
    for (guint i = 0; i < m->downstream->len; i++) {
        downstream_metrics *d = g_ptr_array_index(m->downstream, i);
        for (int c = 0; c < SW_CODE_COUNT; c++)
            if (d->calls[c])
                g_string_append_printf(
                    out, "stagewise_downstream_requests_total{target=\"%s\",code=\"%s\"} %" G_GUINT64_FORMAT "\n",
                    d->target, sw_code_name(c), d->calls[c]);
    }
    g_string_append(out, "# HELP stagewise_downstream_duration_seconds Latency of calls to the next stage.\n"
                         "# TYPE stagewise_downstream_duration_seconds histogram\n");
    for (guint i = 0; i < m->downstream->len; i++) {
        downstream_metrics *d = g_ptr_array_index(m->downstream, i);
        char *labels = g_strdup_printf("target=\"%s\"", d->target);
        render_histogram(out, "stagewise_downstream_duration_seconds", labels, &d->latency);
        g_free(labels);
    }
}

static void render_process(GString *out)
{
    long rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size = 0;
        if (fscanf(f, "%ld %ld", &size, &rss_pages) != 2)
            rss_pages = 0;
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    g_string_append_printf(out,
                           "# HELP process_resident_memory_bytes Resident memory.\n"
                           "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n"
                           "# HELP process_cpu_seconds_total CPU time of all threads.\n"
                           "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n",
                           rss_pages * sysconf(_SC_PAGESIZE), cpu);
}

char *sw_metrics_render(sw_metrics *m)
{
    GString *out = g_string_new(NULL);
    g_mutex_lock(&m->lock);
    render_models(out, m);
    g_string_append_printf(
        out,
        "# HELP stagewise_inference_exec_count Forward calls (a batch counts once; Triton: nv_inference_exec_count).\n"
        "# TYPE stagewise_inference_exec_count counter\nstagewise_inference_exec_count %" G_GUINT64_FORMAT "\n",
        m->executions);
    g_string_append(out, "# HELP stagewise_inference_batch_rows Rows per forward call.\n"
                         "# TYPE stagewise_inference_batch_rows histogram\n");
    render_histogram(out, "stagewise_inference_batch_rows", "", &m->batch_rows);
    g_string_append(out, "# HELP stagewise_inference_refused_total Calls refused before reaching a model "
                         "(authentication, concurrency limit), by gRPC status.\n"
                         "# TYPE stagewise_inference_refused_total counter\n");
    for (int c = 0; c < SW_CODE_COUNT; c++)
        if (m->refused[c] || c == SW_CODE_RESOURCE_EXHAUSTED)
            g_string_append_printf(out, "stagewise_inference_refused_total{code=\"%s\"} %" G_GUINT64_FORMAT "\n",
                                   sw_code_name(c), m->refused[c]);
    render_downstream(out, m);
    g_mutex_unlock(&m->lock);
    g_string_append_printf(out,
                           "# HELP stagewise_inference_in_flight Inference calls accepted and not yet answered.\n"
                           "# TYPE stagewise_inference_in_flight gauge\nstagewise_inference_in_flight %d\n",
                           g_atomic_int_get(&m->in_flight));
    render_process(out);
    return g_string_free(out, FALSE);
}
