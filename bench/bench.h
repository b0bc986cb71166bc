/* stagewise-bench: a load generator for Open Inference Protocol servers in
 * the spirit of Triton's perf_analyzer, plus the in-process floor that every
 * served figure is compared with.
 *
 * The pieces: rows.c builds the inputs (synthetic rows from an export, or a
 * replayed request), load.c drives gRPC servers with a fixed number of
 * asynchronous calls in flight (http_load.c, declared in http.h, does the
 * same over HTTP/1.1), inprocess.c runs the same stages without
 * gRPC, stats.c measures (latency percentiles, CPU of this process and of
 * the servers), report.c prints and writes JSON, main.c ties them together. */
#ifndef SW_BENCH_H
#define SW_BENCH_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdint.h>
#include <sys/types.h>

#include "export.h"
#include "feature_spec.h"

G_BEGIN_DECLS

/* ---- inputs ------------------------------------------------------------ */

/* What one request carries: named tensors (sw_output, the form
 * sw_oip_request_build takes) and the model they are for. */
typedef struct bench_input {
    char *model;         /* model name the request is sent to */
    GPtrArray *tensors;  /* sw_output* */
    int64_t rows;        /* batch size: rows per request */
    sw_stage_kind first; /* the stage these tensors feed */
    gboolean pipeline;   /* TRUE: the model is the whole pipeline */
} bench_input;

void bench_input_free(bench_input *input);

/* Raw preprocessor inputs for `rows` synthetic rows of `export`, shaped as
 * the tests send them: BYTES [B] for string features, FP32 [B] for numbers,
 * FP32 [B,D] for vectors, dates as BYTES strings (`date_vectors` FALSE) or
 * INT64 [B,9]. Values come from the training set metadata (vocabularies,
 * means) so the preprocessor sees realistic tokens. */
bench_input *bench_rows_from_export(const sw_export *export, const char *model, int64_t rows, gboolean date_vectors,
                                    guint32 seed, GError **error);

/* Raw preprocessor inputs taken from a CSV file with a header (or a JSON
 * lines file, by its ".jsonl" suffix), its columns matched to `export`'s
 * input features as the CLI matches them: numbers as FP32 [B] (an empty
 * cell is missing: NaN), vectors as FP32 [B,D] from space-separated
 * numbers, every other feature as the cell's text in BYTES [B]. Requests of
 * `rows` rows take the file's rows from the first, starting over when the
 * file has fewer. NULL with an error naming the file, row and column. */
bench_input *bench_rows_from_file(const sw_export *export, const char *path, const char *model, int64_t rows,
                                  GError **error);

/* A serialized ModelInferRequest replayed as is; `model` (NULL: the one in
 * the file) overrides its model name. The stage it feeds is read from the
 * name's "_preprocessor"/"_predictor"/"_postprocessor" suffix; any other
 * name is taken as a whole pipeline. */
bench_input *bench_rows_from_request_file(const char *path, const char *model, GError **error);

/* The packed ModelInferRequest carrying `input`. */
GBytes *bench_input_pack(const bench_input *input);

/* ---- measurement ------------------------------------------------------- */

/* What one step of the sweep measured. */
typedef struct bench_step {
    int concurrency;
    int64_t requests; /* completed OK */
    int64_t rows;     /* rows in the completed requests */
    int64_t errors;
    char *first_error; /* NULL when none */
    double elapsed_s;
    GArray *latency_us;        /* gint64, one per OK request; sorted by bench_step_finish */
    double client_cpu_s;       /* this process, all threads */
    double server_cpu_s;       /* sum over --server-pids; < 0 when not measured */
    GPtrArray *server_threads; /* bench_thread_cpu*: where the servers' CPU went */
    /* The whole machine over the step (/proc/stat), so a run on a shared
     * host shows how much else was running; < 0 when unreadable. */
    double machine_busy_s;
    double machine_steal_s;
    int64_t connections_opened; /* HTTP mode: connections the step opened; < 0 not counted */
} bench_step;

/* CPU of the threads of one server process that share a name (gRPC's
 * pollers and executors, the worker pool, ...) over a step. */
typedef struct bench_thread_cpu {
    int pid;
    char *process; /* the process's comm ("stagewise-predi") */
    char *thread;  /* the threads' comm ("pool-stagewise-", "sw-poll") */
    double cpu_s;
    int64_t switches; /* times scheduled onto a CPU (schedstat); -1 unknown */
} bench_thread_cpu;

bench_step *bench_step_new(int concurrency);
void bench_step_free(bench_step *step);
/* Records an error, keeping the first message. Not thread-safe: callers hold
 * their own lock. */
void bench_step_add_error(bench_step *step, const char *message);
/* Sorts the latencies for percentiles. */
void bench_step_finish(bench_step *step);
/* Nearest-rank percentile `q` (0..100) of the sorted latencies; 0 when empty. */
int64_t bench_step_percentile(const bench_step *step, double q);
double bench_step_mean_latency(const bench_step *step);

/* Monotonic microseconds. */
int64_t bench_now_us(void);
/* CPU seconds (user + system, all threads) of this process. */
double bench_self_cpu_s(void);
/* CPU seconds the whole machine has been busy (all CPUs, any process) and
 * seconds stolen by the hypervisor, since boot; FALSE when /proc/stat is
 * unreadable. */
gboolean bench_machine_cpu_s(double *busy, double *steal);
/* Records the machine's busy and stolen CPU since the `busy`/`steal`
 * snapshot into `step`. */
void bench_step_set_machine(bench_step *step, double busy, double steal);

/* Runs `run(ctx, step)` once and measures it into a new step at
 * `concurrency`: elapsed time, this process's CPU, the machine's and that
 * of `server_pids` (by thread); the step is finished (latencies sorted). */
typedef void (*bench_run_fn)(void *ctx, bench_step *step);
bench_step *bench_step_measure(int concurrency, const GArray *server_pids, bench_run_fn run, void *ctx);

/* CPU seconds (user + system, all threads) summed over `pids`; FALSE with an
 * error when one cannot be read (the process is gone). */
gboolean bench_pids_cpu_s(const GArray *pids, double *seconds, GError **error);

/* A snapshot of every thread's CPU time in `pids` (threads that exit before
 * the next snapshot are lost from the breakdown, not from the totals). */
typedef struct bench_threads_sample bench_threads_sample;
bench_threads_sample *bench_threads_sample_take(const GArray *pids);
void bench_threads_sample_free(bench_threads_sample *sample);
/* CPU per (process, thread name) between two snapshots, largest first: a new
 * array of bench_thread_cpu, freed with the array. */
GPtrArray *bench_threads_cpu_between(const bench_threads_sample *before, const bench_threads_sample *after);

/* ---- runners ----------------------------------------------------------- */

/* How long a step runs: a duration, or a number of requests when > 0. */
typedef struct bench_limits {
    double duration_s;
    int64_t requests;
    double warmup_s;
    int64_t timeout_ms;
} bench_limits;

typedef struct bench_load bench_load;

/* One gRPC target per stage the request goes through: one target for a
 * single call; three (preprocessor, predictor, postprocessor) for the staged
 * mode, each response becoming the next request (`models` names the models
 * of the three stages). */
bench_load *bench_load_new(const char *const *targets, int n_targets, const char *const *models, GBytes *first_request,
                           int64_t rows_per_request, GError **error);
void bench_load_free(bench_load *load);
/* The next stage's request (for `model`) from a packed ModelInferResponse:
 * every output becomes an input of the same name, datatype and shape, raw
 * contents passed through. NULL with an error when it does not unpack. */
GBytes *bench_request_from_response(GBytes *response, const char *model, GError **error);
/* Runs one step at `concurrency` calls in flight (after a warm-up at the
 * same concurrency) and measures it, reading `server_pids` around it. */
bench_step *bench_load_step(bench_load *load, int concurrency, const bench_limits *limits, const GArray *server_pids);

typedef struct bench_local bench_local;

/* How the in-process floor runs the stages. */
typedef struct bench_local_options {
    /* Add the servers' wire work per stage (request build, pack, unpack,
     * decode; reply build and pack), without the transport. */
    gboolean codec;
    /* Sleep this long before each stage, as a served stage waits between
     * its calls: what idling costs the next call (whatever the core held
     * for the thread and lost while it slept), without any transport. Left
     * out of the latencies; the CPU is the process's, so the sleep costs
     * none. */
    int64_t idle_us;
    /* The predictor's device (NULL: the CPU); the other stages always run
     * on the CPU, as they are served. */
    const char *device;
} bench_local_options;

/* The stages `first`..`last` of `export`, loaded in this process with one
 * intra-op thread, as the servers run them. */
bench_local *bench_local_new(const sw_export *export, sw_stage_kind first, sw_stage_kind last,
                             const bench_local_options *options, GError **error);
void bench_local_free(bench_local *local);
/* Runs `tensors` (sw_output*) through the stages once; the last stage's
 * outputs (sw_output*) or NULL with the stage's error. `idle_us` (may be
 * NULL) gets the time slept before the stages (the options' idle_us). */
GPtrArray *bench_local_run(bench_local *local, GPtrArray *tensors, int64_t *idle_us, GError **error);
/* Runs one step with `concurrency` threads each looping over the stages. */
bench_step *bench_local_step(bench_local *local, const bench_input *input, int concurrency, const bench_limits *limits);

/* ---- reporting --------------------------------------------------------- */

typedef struct bench_report bench_report;

/* `argv` is recorded as the command line; `config` is a JSON object (owned
 * by the report) describing the run. */
bench_report *bench_report_new(int argc, char **argv, JsonObject *config);
void bench_report_free(bench_report *report);
/* Prints the step as a table row and keeps it for the JSON. Takes `step`. */
void bench_report_add(bench_report *report, bench_step *step);
void bench_report_print_header(void);
gboolean bench_report_write(const bench_report *report, const char *path, GError **error);
/* TRUE when any step had errors. */
gboolean bench_report_had_errors(const bench_report *report);

G_END_DECLS

#endif
