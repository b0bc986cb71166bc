/* What a run reports: one table row per step on stdout as it finishes, and
 * at the end a JSON document with the same figures, the command line and
 * the machine, so results from different runs and hosts can be compared. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

struct bench_report {
    GPtrArray *argv; /* char* */
    JsonObject *config;
    GPtrArray *steps; /* bench_step* */
    char *started_at;
    gboolean in_process;
};

bench_report *bench_report_new(int argc, char **argv, JsonObject *config)
{
    bench_report *r = g_new0(bench_report, 1);
    r->argv = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; i < argc; i++)
        g_ptr_array_add(r->argv, g_strdup(argv[i]));
    r->config = config;
    r->steps = g_ptr_array_new_with_free_func((GDestroyNotify)bench_step_free);
    GDateTime *now = g_date_time_new_now_utc();
    r->started_at = g_date_time_format_iso8601(now);
    g_date_time_unref(now);
    const char *mode = json_object_get_string_member_with_default(config, "mode", "");
    r->in_process = strcmp(mode, "in-process") == 0;
    return r;
}

void bench_report_free(bench_report *r)
{
    if (r == NULL)
        return;
    g_ptr_array_unref(r->argv);
    json_object_unref(r->config);
    g_ptr_array_unref(r->steps);
    g_free(r->started_at);
    g_free(r);
}

static double per_row_us(double seconds, int64_t rows)
{
    return rows > 0 ? seconds * 1e6 / (double)rows : 0.0;
}

/* The CPU figure a step is judged by: the servers' when they were measured,
 * this process's when it ran the stages itself; negative when neither. */
static double judged_cpu_us_per_row(const bench_report *r, const bench_step *s)
{
    if (s->server_cpu_s >= 0)
        return per_row_us(s->server_cpu_s, s->rows);
    return r->in_process ? per_row_us(s->client_cpu_s, s->rows) : -1.0;
}

/* CPU the machine spent on anything but this process and the servers
 * measured: other tenants, other jobs, unlisted servers. Negative when
 * unknown. */
static double other_cpu_s(const bench_step *s)
{
    if (s->machine_busy_s < 0)
        return -1.0;
    double ours = s->client_cpu_s + (s->server_cpu_s > 0 ? s->server_cpu_s : 0);
    return MAX(s->machine_busy_s - ours, 0.0);
}

void bench_report_print_header(void)
{
    printf("%5s %10s %10s %9s %9s %9s %7s %12s %13s %11s\n", "conc", "req/s", "rows/s", "p50_us", "p90_us", "p99_us",
           "errors", "cpu_us/row", "client_us/row", "other_cores");
}

/* Times the servers' threads were scheduled in: -1 when unknown. */
static int64_t server_switches(const bench_step *s)
{
    if (s->server_threads == NULL)
        return -1;
    int64_t total = 0;
    for (guint i = 0; i < s->server_threads->len; i++) {
        const bench_thread_cpu *t = g_ptr_array_index(s->server_threads, i);
        if (t->switches < 0)
            return -1;
        total += t->switches;
    }
    return total;
}

/* The largest thread groups of the servers, in CPU microseconds per row. */
static void print_threads(const bench_step *s)
{
    if (s->server_threads == NULL || s->rows == 0)
        return;
    GString *line = g_string_new("      server cpu_us/row by thread:");
    for (guint i = 0; i < s->server_threads->len && i < 8; i++) {
        const bench_thread_cpu *t = g_ptr_array_index(s->server_threads, i);
        if (t->cpu_s > 0)
            g_string_append_printf(line, " %s/%s=%.1f", t->process, t->thread, per_row_us(t->cpu_s, s->rows));
    }
    int64_t switches = server_switches(s);
    if (switches >= 0 && s->requests > 0)
        g_string_append_printf(line, "; %.1f thread switches/request", (double)switches / s->requests);
    printf("%s\n", line->str);
    g_string_free(line, TRUE);
}

void bench_report_add(bench_report *r, bench_step *s)
{
    double secs = s->elapsed_s > 0 ? s->elapsed_s : 1e-9;
    double cpu = judged_cpu_us_per_row(r, s);
    char cpu_text[32] = "-";
    if (cpu >= 0)
        snprintf(cpu_text, sizeof cpu_text, "%.1f", cpu);
    double other = other_cpu_s(s);
    char other_text[32] = "-";
    if (other >= 0)
        snprintf(other_text, sizeof other_text, "%.2f", other / secs);
    printf("%5d %10.1f %10.1f %9" G_GINT64_FORMAT " %9" G_GINT64_FORMAT " %9" G_GINT64_FORMAT " %7" G_GINT64_FORMAT
           " %12s %13.1f %11s\n",
           s->concurrency, s->requests / secs, s->rows / secs, bench_step_percentile(s, 50),
           bench_step_percentile(s, 90), bench_step_percentile(s, 99), s->errors, cpu_text,
           per_row_us(s->client_cpu_s, s->rows), other_text);
    if (s->first_error) {
        /* The first line is enough here (TorchScript traces run long); the
         * JSON keeps all of it. */
        int len = (int)MIN(strcspn(s->first_error, "\n"), 300);
        printf("      first error: %.*s%s\n", len, s->first_error, s->first_error[len] ? " [...]" : "");
    }
    if (s->connections_opened >= 0)
        printf("      connections opened: %" G_GINT64_FORMAT "\n", s->connections_opened);
    print_threads(s);
    fflush(stdout);
    g_ptr_array_add(r->steps, s);
}

gboolean bench_report_had_errors(const bench_report *r)
{
    for (guint i = 0; i < r->steps->len; i++)
        if (((bench_step *)g_ptr_array_index(r->steps, i))->errors > 0)
            return TRUE;
    return FALSE;
}

/* "model name" of the first processor: what the machine is, in words. */
static char *cpu_model(void)
{
    gchar *text = NULL;
    char *model = NULL;
    if (!g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL))
        return g_strdup("unknown");
    gchar **lines = g_strsplit(text, "\n", -1);
    for (gchar **l = lines; *l && !model; l++) {
        if (g_str_has_prefix(*l, "model name") && strchr(*l, ':'))
            model = g_strstrip(g_strdup(strchr(*l, ':') + 1));
    }
    g_strfreev(lines);
    g_free(text);
    return model ? model : g_strdup("unknown");
}

static void add_machine(JsonBuilder *b)
{
    struct utsname u;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char *model = cpu_model();
    json_builder_set_member_name(b, "machine");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "nproc");
    json_builder_add_int_value(b, sysconf(_SC_NPROCESSORS_ONLN));
    json_builder_set_member_name(b, "cpu_model");
    json_builder_add_string_value(b, model);
    json_builder_set_member_name(b, "hostname");
    json_builder_add_string_value(b, host);
    json_builder_set_member_name(b, "kernel");
    json_builder_add_string_value(b, uname(&u) == 0 ? u.release : "unknown");
    json_builder_end_object(b);
    g_free(model);
}

static void add_double(JsonBuilder *b, const char *name, double value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_double_value(b, value);
}

static void add_int(JsonBuilder *b, const char *name, int64_t value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, value);
}

/* A double, or null when negative (not measured). */
static void add_optional(JsonBuilder *b, const char *name, double value)
{
    json_builder_set_member_name(b, name);
    if (value < 0)
        json_builder_add_null_value(b);
    else
        json_builder_add_double_value(b, value);
}

static void add_latency(JsonBuilder *b, const bench_step *s)
{
    json_builder_set_member_name(b, "latency_us");
    json_builder_begin_object(b);
    static const double qs[] = {50, 90, 95, 99};
    static const char *names[] = {"p50", "p90", "p95", "p99"};
    for (size_t i = 0; i < G_N_ELEMENTS(qs); i++)
        add_int(b, names[i], bench_step_percentile(s, qs[i]));
    add_double(b, "mean", bench_step_mean_latency(s));
    add_int(b, "min", s->latency_us->len ? g_array_index(s->latency_us, gint64, 0) : 0);
    add_int(b, "max", s->latency_us->len ? g_array_index(s->latency_us, gint64, s->latency_us->len - 1) : 0);
    json_builder_end_object(b);
}

/* The servers' CPU by process and thread name: where the time went. */
static void add_threads(JsonBuilder *b, const bench_step *s)
{
    if (s->server_threads == NULL)
        return;
    json_builder_set_member_name(b, "server_threads");
    json_builder_begin_array(b);
    for (guint i = 0; i < s->server_threads->len; i++) {
        const bench_thread_cpu *t = g_ptr_array_index(s->server_threads, i);
        json_builder_begin_object(b);
        add_int(b, "pid", t->pid);
        json_builder_set_member_name(b, "process");
        json_builder_add_string_value(b, t->process);
        json_builder_set_member_name(b, "thread");
        json_builder_add_string_value(b, t->thread);
        add_double(b, "cpu_s", t->cpu_s);
        add_double(b, "cpu_us_per_row", per_row_us(t->cpu_s, s->rows));
        add_int(b, "switches", t->switches);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}

static void add_step(JsonBuilder *b, const bench_report *r, const bench_step *s)
{
    double secs = s->elapsed_s > 0 ? s->elapsed_s : 1e-9;
    json_builder_begin_object(b);
    add_int(b, "concurrency", s->concurrency);
    add_int(b, "requests", s->requests);
    add_int(b, "rows", s->rows);
    add_int(b, "errors", s->errors);
    json_builder_set_member_name(b, "first_error");
    if (s->first_error)
        json_builder_add_string_value(b, s->first_error);
    else
        json_builder_add_null_value(b);
    add_double(b, "elapsed_s", s->elapsed_s);
    add_double(b, "requests_per_s", s->requests / secs);
    add_double(b, "rows_per_s", s->rows / secs);
    add_latency(b, s);
    add_double(b, "client_cpu_s", s->client_cpu_s);
    add_double(b, "client_cpu_us_per_row", per_row_us(s->client_cpu_s, s->rows));
    add_optional(b, "server_cpu_s", s->server_cpu_s);
    add_optional(b, "server_cpu_us_per_row", s->server_cpu_s < 0 ? -1 : per_row_us(s->server_cpu_s, s->rows));
    add_optional(b, "cpu_us_per_row", judged_cpu_us_per_row(r, s));
    add_optional(b, "machine_busy_s", s->machine_busy_s);
    add_optional(b, "machine_steal_s", s->machine_steal_s);
    add_optional(b, "other_cpu_s", other_cpu_s(s));
    add_threads(b, s);
    int64_t switches = server_switches(s);
    add_optional(b, "server_switches_per_request",
                 switches < 0 || s->requests == 0 ? -1 : (double)switches / s->requests);
    json_builder_set_member_name(b, "connections_opened");
    if (s->connections_opened < 0)
        json_builder_add_null_value(b);
    else
        json_builder_add_int_value(b, s->connections_opened);
    json_builder_end_object(b);
}

static JsonNode *report_to_json(const bench_report *r)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "tool");
    json_builder_add_string_value(b, "stagewise-bench " SW_VERSION);
    json_builder_set_member_name(b, "started_at");
    json_builder_add_string_value(b, r->started_at);
    json_builder_set_member_name(b, "command_line");
    json_builder_begin_array(b);
    for (guint i = 0; i < r->argv->len; i++)
        json_builder_add_string_value(b, g_ptr_array_index(r->argv, i));
    json_builder_end_array(b);
    add_machine(b);
    json_builder_set_member_name(b, "config");
    JsonNode *config = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(config, r->config);
    json_builder_add_value(b, config);
    json_builder_set_member_name(b, "steps");
    json_builder_begin_array(b);
    for (guint i = 0; i < r->steps->len; i++)
        add_step(b, r, g_ptr_array_index(r->steps, i));
    json_builder_end_array(b);
    json_builder_end_object(b);
    JsonNode *root = json_builder_get_root(b);
    g_object_unref(b);
    return root;
}

gboolean bench_report_write(const bench_report *r, const char *path, GError **error)
{
    JsonNode *root = report_to_json(r);
    JsonGenerator *gen = json_generator_new();
    json_generator_set_pretty(gen, TRUE);
    json_generator_set_root(gen, root);
    gboolean ok = json_generator_to_file(gen, path, error);
    g_object_unref(gen);
    json_node_unref(root);
    return ok;
}
