/* Measurements: latencies and their percentiles, and CPU time of this process
 * and of the servers under test. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "sw_error.h"

bench_step *bench_step_new(int concurrency)
{
    bench_step *step = g_new0(bench_step, 1);
    step->concurrency = concurrency;
    step->latency_us = g_array_sized_new(FALSE, FALSE, sizeof(gint64), 4096);
    step->server_cpu_s = -1.0;
    step->machine_busy_s = -1.0;
    step->machine_steal_s = -1.0;
    step->connections_opened = -1;
    return step;
}

void bench_step_free(bench_step *step)
{
    if (step == NULL)
        return;
    g_array_unref(step->latency_us);
    if (step->server_threads)
        g_ptr_array_unref(step->server_threads);
    g_free(step->first_error);
    g_free(step);
}

void bench_step_add_error(bench_step *step, const char *message)
{
    step->errors++;
    if (step->first_error == NULL)
        step->first_error = g_strdup(message);
}

static gint compare_int64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

void bench_step_finish(bench_step *step)
{
    g_array_sort(step->latency_us, compare_int64);
}

int64_t bench_step_percentile(const bench_step *step, double q)
{
    guint n = step->latency_us->len;
    if (n == 0)
        return 0;
    /* Nearest rank, as perf_analyzer reports: the smallest latency at or
     * below which q% of the requests finished. */
    double rank = ceil(q / 100.0 * n);
    guint i = rank < 1 ? 0 : (guint)rank - 1;
    return g_array_index(step->latency_us, gint64, MIN(i, n - 1));
}

double bench_step_mean_latency(const bench_step *step)
{
    guint n = step->latency_us->len;
    double sum = 0;
    for (guint i = 0; i < n; i++)
        sum += (double)g_array_index(step->latency_us, gint64, i);
    return n ? sum / n : 0.0;
}

int64_t bench_now_us(void)
{
    return g_get_monotonic_time();
}

double bench_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* utime + stime (clock ticks) and the comm of a process or thread from its
 * stat file. Fields are counted after the ')' closing the name, which may
 * itself hold spaces and parentheses. */
static gboolean stat_ticks(const char *path, unsigned long long *ticks, char **comm, GError **error)
{
    gchar *text = NULL;
    if (!g_file_get_contents(path, &text, NULL, error))
        return FALSE;
    const char *lparen = strchr(text, '(');
    const char *rparen = strrchr(text, ')');
    unsigned long long utime = 0, stime = 0;
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt
     * cminflt majflt cmajflt utime(14) stime(15). */
    int n = lparen && rparen > lparen
                ? sscanf(rparen + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime)
                : 0;
    if (n == 2 && comm)
        *comm = g_strndup(lparen + 1, (gsize)(rparen - lparen - 1));
    g_free(text);
    if (n != 2) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "%s: cannot read utime and stime", path);
        return FALSE;
    }
    *ticks = utime + stime;
    return TRUE;
}

static double ticks_to_s(unsigned long long ticks)
{
    static long hz;
    if (hz == 0)
        hz = sysconf(_SC_CLK_TCK);
    return (double)ticks / (double)hz;
}

gboolean bench_pids_cpu_s(const GArray *pids, double *seconds, GError **error)
{
    unsigned long long total = 0;
    for (guint i = 0; pids && i < pids->len; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)g_array_index(pids, pid_t, i));
        unsigned long long ticks = 0;
        if (!stat_ticks(path, &ticks, NULL, error))
            return FALSE;
        total += ticks;
    }
    *seconds = ticks_to_s(total);
    return TRUE;
}

typedef struct thread_ticks {
    int pid;
    char *process;
    char *thread;
    unsigned long long ticks;
    long long slices; /* -1 when schedstat is unavailable */
} thread_ticks;

/* How many times the thread was put on a CPU: each is a wake-up or a
 * preemption, the price of handing a request from thread to thread. */
static long long thread_slices(int pid, const char *tid)
{
    char *path = g_strdup_printf("/proc/%d/task/%s/schedstat", pid, tid);
    gchar *text = NULL;
    unsigned long long run_ns = 0, wait_ns = 0, slices = 0;
    gboolean ok =
        g_file_get_contents(path, &text, NULL, NULL) && sscanf(text, "%llu %llu %llu", &run_ns, &wait_ns, &slices) == 3;
    g_free(text);
    g_free(path);
    return ok ? (long long)slices : -1;
}

struct bench_threads_sample {
    GHashTable *by_tid; /* GINT_TO_POINTER(tid) -> thread_ticks* */
};

static void thread_ticks_free(thread_ticks *t)
{
    g_free(t->process);
    g_free(t->thread);
    g_free(t);
}

static void sample_process(GHashTable *by_tid, pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    gchar *process = NULL;
    if (!g_file_get_contents(path, &process, NULL, NULL))
        return;
    g_strstrip(process);
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    GDir *dir = g_dir_open(path, 0, NULL);
    for (const char *tid; dir && (tid = g_dir_read_name(dir)) != NULL;) {
        char *stat = g_strdup_printf("/proc/%d/task/%s/stat", (int)pid, tid);
        thread_ticks *t = g_new0(thread_ticks, 1);
        if (stat_ticks(stat, &t->ticks, &t->thread, NULL)) {
            t->pid = (int)pid;
            t->process = g_strdup(process);
            t->slices = thread_slices((int)pid, tid);
            g_hash_table_insert(by_tid, GINT_TO_POINTER(atoi(tid)), t);
        } else {
            g_free(t);
        }
        g_free(stat);
    }
    if (dir)
        g_dir_close(dir);
    g_free(process);
}

bench_threads_sample *bench_threads_sample_take(const GArray *pids)
{
    bench_threads_sample *sample = g_new0(bench_threads_sample, 1);
    sample->by_tid = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)thread_ticks_free);
    for (guint i = 0; pids && i < pids->len; i++)
        sample_process(sample->by_tid, g_array_index(pids, pid_t, i));
    return sample;
}

void bench_threads_sample_free(bench_threads_sample *sample)
{
    if (sample == NULL)
        return;
    g_hash_table_unref(sample->by_tid);
    g_free(sample);
}

static void thread_cpu_free(bench_thread_cpu *t)
{
    g_free(t->process);
    g_free(t->thread);
    g_free(t);
}

static gint by_cpu_desc(gconstpointer a, gconstpointer b)
{
    const bench_thread_cpu *x = *(bench_thread_cpu *const *)a, *y = *(bench_thread_cpu *const *)b;
    return x->cpu_s < y->cpu_s ? 1 : x->cpu_s > y->cpu_s ? -1 : 0;
}

GPtrArray *bench_threads_cpu_between(const bench_threads_sample *before, const bench_threads_sample *after)
{
    /* Threads of a pool share a name: their sum says what the pool costs. */
    GHashTable *groups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GPtrArray *result = g_ptr_array_new_with_free_func((GDestroyNotify)thread_cpu_free);
    GHashTableIter it;
    gpointer tid, value;
    g_hash_table_iter_init(&it, after->by_tid);
    while (g_hash_table_iter_next(&it, &tid, &value)) {
        const thread_ticks *now = value;
        const thread_ticks *then = g_hash_table_lookup(before->by_tid, tid);
        unsigned long long delta = then && then->ticks <= now->ticks ? now->ticks - then->ticks : now->ticks;
        char *key = g_strdup_printf("%d/%s", now->pid, now->thread);
        bench_thread_cpu *group = g_hash_table_lookup(groups, key);
        if (group == NULL) {
            group = g_new0(bench_thread_cpu, 1);
            group->pid = now->pid;
            group->process = g_strdup(now->process);
            group->thread = g_strdup(now->thread);
            group->switches = 0;
            g_ptr_array_add(result, group);
            g_hash_table_insert(groups, key, group);
        } else {
            g_free(key);
        }
        group->cpu_s += ticks_to_s(delta);
        long long slices = now->slices < 0 ? -1 : then && then->slices >= 0 ? now->slices - then->slices : now->slices;
        group->switches = slices < 0 || group->switches < 0 ? -1 : group->switches + slices;
    }
    g_hash_table_unref(groups);
    g_ptr_array_sort(result, by_cpu_desc);
    return result;
}

gboolean bench_machine_cpu_s(double *busy, double *steal)
{
    gchar *text = NULL;
    if (!g_file_get_contents("/proc/stat", &text, NULL, NULL))
        return FALSE;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, stolen = 0;
    int n = sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq,
                   &softirq, &stolen);
    g_free(text);
    if (n < 8)
        return FALSE;
    *busy = ticks_to_s(user + nice + sys + irq + softirq);
    *steal = ticks_to_s(stolen);
    return TRUE;
}

void bench_step_set_machine(bench_step *step, double busy, double steal)
{
    double busy_now = 0, steal_now = 0;
    if (busy < 0 || !bench_machine_cpu_s(&busy_now, &steal_now))
        return;
    step->machine_busy_s = busy_now - busy;
    step->machine_steal_s = steal_now - steal;
}

bench_step *bench_step_measure(int concurrency, const GArray *server_pids, bench_run_fn run, void *ctx)
{
    bench_step *step = bench_step_new(concurrency);
    GError *error = NULL;
    double server_before = 0, server_after = 0;
    gboolean servers = server_pids && server_pids->len > 0 && bench_pids_cpu_s(server_pids, &server_before, &error);
    bench_threads_sample *threads_before = servers ? bench_threads_sample_take(server_pids) : NULL;
    double busy = -1, steal = -1;
    if (!bench_machine_cpu_s(&busy, &steal))
        busy = -1;
    double client_before = bench_self_cpu_s();
    int64_t start = bench_now_us();
    run(ctx, step);
    step->elapsed_s = (double)(bench_now_us() - start) / 1e6;
    step->client_cpu_s = bench_self_cpu_s() - client_before;
    bench_step_set_machine(step, busy, steal);
    if (servers && bench_pids_cpu_s(server_pids, &server_after, &error)) {
        step->server_cpu_s = server_after - server_before;
        bench_threads_sample *threads_after = bench_threads_sample_take(server_pids);
        step->server_threads = bench_threads_cpu_between(threads_before, threads_after);
        bench_threads_sample_free(threads_after);
    }
    bench_threads_sample_free(threads_before);
    if (error) {
        bench_step_add_error(step, error->message);
        g_error_free(error);
    }
    bench_step_finish(step);
    return step;
}
