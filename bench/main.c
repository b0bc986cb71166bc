/* stagewise-bench: flags, the choice of mode, the concurrency sweep. */
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "channel.h"
#include "http.h"
#include "oip_codec.h"

#define EXIT_STEP_ERRORS 1
#define EXIT_USAGE 2

#define USAGE_EXAMPLES                                                                                                 \
    "Modes (one per run):\n"                                                                                           \
    "  --target T           one call per request to T (any OIP server)\n"                                              \
    "  --http-target H:P    one v2 REST call per request (POST /v2/models/<model>/infer over HTTP/1.1),\n"             \
    "                       JSON tensors, or Triton's binary tensor extension with --http-binary\n"                    \
    "  --staged A,B,C       three calls per request: <model>_preprocessor at A, _predictor at B,\n"                    \
    "                       _postprocessor at C, each response fed to the next stage\n"                                \
    "  --in-process DIR     no gRPC: the export's stages in this process (the floor)\n"                                \
    "  --write-request FILE write the request a stage receives, running the stages before it\n"                        \
    "                       in-process, or over gRPC with --staged (or --target: the preprocessor)\n"                  \
    "\n"                                                                                                               \
    "Examples:\n"                                                                                                      \
    "  stagewise-bench --in-process models/example --rows-per-request 64 --concurrency 1,16\n"                         \
    "  stagewise-bench --target localhost:8001 --rows-from-export models/example \\\n"                                 \
    "      --concurrency 1,2,4,8,16,32 --duration-s 10 --server-pids 1234,1235,1236 --json-out pipe.json\n"            \
    "  stagewise-bench --http-target localhost:8000 --rows-from-export models/example --concurrency 1,4\n"             \
    "  stagewise-bench --rows-from-export models/example --rows-per-request 64 --write-request pred.pb\n"              \
    "  stagewise-bench --target localhost:8002 --request-file pred.pb --server-pids 1235\n"                            \
    "\n"                                                                                                               \
    "Each step prints requests/s, rows/s, latency percentiles (µs, nearest rank), errors and CPU per\n"               \
    "row: the servers' (utime+stime of --server-pids, all threads, read from /proc in clock ticks of\n"                \
    "10 ms: give each step well over 10 ms of server CPU per process) for gRPC and HTTP modes, this\n"                 \
    "process's for --in-process. Exit status: 0, 1 when any call failed, 2 on bad usage or setup.\n"

typedef struct bench_options {
    char *target;
    char *http_target;
    char *model;
    char *rows_from_export;
    char *rows_file;
    char *request_file;
    char *write_request;
    char *write_stage;
    char *in_process;
    char *device;
    char *staged;
    char *concurrency;
    char *server_pids;
    char *json_out;
    char *date_form;
    char *label;
    int rows_per_request;
    double duration_s;
    gint64 requests;
    double warmup_s;
    int timeout_ms;
    int seed;
    gboolean codec;
    gint64 idle_us;
    gboolean http_binary;
} bench_options;

/* Options choosing what is sent or run (the requests, their source, the
 * topology), writing into `o`: a new NULL-terminated array; g_free it. */
static GOptionEntry *request_option_entries(bench_options *o)
{
    const GOptionEntry entries[] = {
        {.long_name = "target",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->target,
         .description = "gRPC target to load (host:port, unix:path, ...)",
         .arg_description = "T"},
        {.long_name = "http-target",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->http_target,
         .description = "v2 REST (HTTP/1.1) server to load: host:port, or an http(s):// URL without a path",
         .arg_description = "H:P"},
        {.long_name = "http-binary",
         .arg = G_OPTION_ARG_NONE,
         .arg_data = &o->http_binary,
         .description = "with --http-target: tensors as Triton's binary data (Inference-Header-Content-Length), "
                        "outputs asked for as binary too; default JSON tensors",
         .arg_description = NULL},
        {.long_name = "model",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->model,
         .description =
             "model name (default: the export's name, the pipeline; with --staged the base of <NAME>_<stage>)",
         .arg_description = "NAME"},
        {.long_name = "rows-from-export",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->rows_from_export,
         .description = "build raw preprocessor rows from this export's features",
         .arg_description = "DIR"},
        {.long_name = "rows-file",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->rows_file,
         .description =
             "take the rows from this CSV (with a header) or .jsonl file, its columns matched to the features of the "
             "export given with --rows-from-export or --in-process",
         .arg_description = "FILE"},
        {.long_name = "request-file",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->request_file,
         .description = "replay this serialized ModelInferRequest",
         .arg_description = "FILE"},
        {.long_name = "write-request",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->write_request,
         .description = "write a serialized request for --write-stage and exit",
         .arg_description = "FILE"},
        {.long_name = "write-stage",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->write_stage,
         .description = "stage of the written request: preprocessor, predictor (default) or postprocessor",
         .arg_description = "STAGE"},
        {.long_name = "in-process",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->in_process,
         .description = "run the export's stages in this process: the floor",
         .arg_description = "DIR"},
        {.long_name = "device",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->device,
         .description = "in-process: run the predictor on this device (cpu, cuda, cuda:N)",
         .arg_description = "DEV"},
        {.long_name = "codec",
         .arg = G_OPTION_ARG_NONE,
         .arg_data = &o->codec,
         .description = "in-process: add the servers' OIP encode/decode per stage"},
        {.long_name = "idle-us",
         .arg = G_OPTION_ARG_INT64,
         .arg_data = &o->idle_us,
         .description = "in-process: sleep US before each stage, as a served stage idles between calls "
                        "(left out of the latencies)",
         .arg_description = "US"},
        {.long_name = "staged",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->staged,
         .description = "three calls per request: preprocessor, predictor, postprocessor targets",
         .arg_description = "PRE,PRED,POST"},
        {NULL},
    };
    return g_memdup2(entries, sizeof entries);
}

/* Options shaping the load and its report, writing into `o`: as above. */
static GOptionEntry *load_option_entries(bench_options *o)
{
    const GOptionEntry entries[] = {
        {.long_name = "rows-per-request",
         .arg = G_OPTION_ARG_INT,
         .arg_data = &o->rows_per_request,
         .description = "rows in each request (default 1)",
         .arg_description = "N"},
        {.long_name = "concurrency",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->concurrency,
         .description = "requests in flight, one step each (default 1)",
         .arg_description = "N,N,..."},
        {.long_name = "duration-s",
         .arg = G_OPTION_ARG_DOUBLE,
         .arg_data = &o->duration_s,
         .description = "seconds per step (default 5)",
         .arg_description = "S"},
        {.long_name = "requests",
         .arg = G_OPTION_ARG_INT64,
         .arg_data = &o->requests,
         .description = "requests per step instead of a duration",
         .arg_description = "N"},
        {.long_name = "warmup-s",
         .arg = G_OPTION_ARG_DOUBLE,
         .arg_data = &o->warmup_s,
         .description = "unmeasured seconds before each step (default 1)",
         .arg_description = "S"},
        {.long_name = "timeout-ms",
         .arg = G_OPTION_ARG_INT,
         .arg_data = &o->timeout_ms,
         .description = "deadline of each call (default 60000; 0 none)",
         .arg_description = "MS"},
        {.long_name = "server-pids",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->server_pids,
         .description = "report these processes' CPU seconds per row",
         .arg_description = "PID,PID,..."},
        {.long_name = "json-out",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->json_out,
         .description = "write the results as JSON",
         .arg_description = "FILE"},
        {.long_name = "date-form",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->date_form,
         .description = "date inputs as 'string' (default) or 'vector' (INT64 [B,9])",
         .arg_description = "FORM"},
        {.long_name = "seed",
         .arg = G_OPTION_ARG_INT,
         .arg_data = &o->seed,
         .description = "seed of the synthetic rows (default 0)",
         .arg_description = "N"},
        {.long_name = "label",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->label,
         .description = "free text recorded in the JSON",
         .arg_description = "TEXT"},
        {NULL},
    };
    return g_memdup2(entries, sizeof entries);
}

static gboolean parse_options(int *argc, char ***argv, bench_options *o)
{
    *o = (bench_options){.rows_per_request = 1, .duration_s = 5.0, .warmup_s = 1.0, .timeout_ms = 60000};
    GOptionEntry *requests = request_option_entries(o), *load = load_option_entries(o);
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx, "Load generator for Open Inference Protocol servers (perf_analyzer style), "
                                      "and the in-process floor of a Ludwig export.");
    g_option_context_set_description(ctx, USAGE_EXAMPLES);
    g_option_context_add_main_entries(ctx, requests, NULL);
    g_option_context_add_main_entries(ctx, load, NULL);
    GError *error = NULL;
    gboolean ok = g_option_context_parse(ctx, argc, argv, &error);
    if (!ok) {
        fprintf(stderr, "%s\n", error->message);
        g_error_free(error);
    }
    g_option_context_free(ctx);
    g_free(requests);
    g_free(load);
    return ok;
}

static void free_options(bench_options *o)
{
    char **strings[] = {&o->target,        &o->model,       &o->rows_from_export, &o->rows_file, &o->request_file,
                        &o->write_request, &o->write_stage, &o->in_process,       &o->device,    &o->staged,
                        &o->concurrency,   &o->server_pids, &o->json_out,         &o->date_form, &o->label,
                        &o->http_target};
    for (size_t i = 0; i < G_N_ELEMENTS(strings); i++)
        g_clear_pointer(strings[i], g_free);
}

/* "1,2,4" as positive integers; NULL when an item is not one. */
static GArray *parse_int_list(const char *text, const char *what)
{
    GArray *values = g_array_new(FALSE, FALSE, sizeof(int));
    gchar **items = g_strsplit(text, ",", -1);
    for (gchar **it = items; *it; it++) {
        char *end = NULL;
        long v = strtol(*it, &end, 10);
        if (end == *it || *end != '\0' || v < 1 || v > G_MAXINT) {
            fprintf(stderr, "%s: '%s' is not a positive integer\n", what, *it);
            g_array_unref(values);
            values = NULL;
            break;
        }
        int value = (int)v;
        g_array_append_val(values, value);
    }
    g_strfreev(items);
    return values;
}

static gboolean check_options(const bench_options *o)
{
    const char *problem = NULL;
    int modes = !!o->target + !!o->http_target + !!o->staged + !!o->in_process;
    if (o->write_request == NULL && modes != 1)
        problem = "give exactly one of --target, --http-target, --staged and --in-process (or --write-request)";
    else if (o->http_binary && !o->http_target)
        problem = "--http-binary is for --http-target";
    else if (!!o->rows_from_export + !!o->request_file > 1)
        problem = "give --rows-from-export or --request-file, not both";
    else if (!o->rows_from_export && !o->request_file && !o->in_process)
        problem = "give --rows-from-export DIR or --request-file FILE";
    else if (o->rows_file && (o->request_file || (!o->rows_from_export && !o->in_process)))
        problem = "--rows-file needs the export its columns belong to (--rows-from-export or --in-process), and "
                  "no --request-file";
    else if (o->rows_file && o->date_form && strcmp(o->date_form, "string") != 0)
        problem = "--rows-file sends dates as the file writes them: no --date-form vector";
    else if (o->device && !o->in_process)
        problem = "--device is for --in-process (a server takes its own --device)";
    else if (o->idle_us && !o->in_process)
        problem = "--idle-us is for --in-process (served stages idle on their own)";
    else if (o->idle_us < 0 || o->idle_us > 10 * G_USEC_PER_SEC)
        problem = "--idle-us takes 0 to 10000000 microseconds";
    else if (o->write_request && o->request_file)
        problem = "--write-request builds rows: use --rows-from-export (or --in-process DIR)";
    else if (o->rows_per_request < 1)
        problem = "--rows-per-request must be at least 1";
    else if (o->requests <= 0 && o->duration_s <= 0)
        problem = "--duration-s must be positive (or give --requests)";
    else if (o->date_form && strcmp(o->date_form, "string") != 0 && strcmp(o->date_form, "vector") != 0)
        problem = "--date-form is 'string' or 'vector'";
    if (problem)
        fprintf(stderr, "%s (see --help)\n", problem);
    return problem == NULL;
}

/* The base of the per-stage model names "<base>_<stage>": --model, the
 * export's name, or the replayed request's model without its suffix. */
static char *model_base(const bench_options *o, const sw_export *export, const bench_input *input)
{
    if (o->model)
        return g_strdup(o->model);
    if (export)
        return g_strdup(export->name);
    const char *suffix = strrchr(input->model, '_');
    return suffix ? g_strndup(input->model, (gsize)(suffix - input->model)) : g_strdup(input->model);
}

static char *stage_model(const char *base, sw_stage_kind kind)
{
    return g_strdup_printf("%s_%s", base, sw_stage_kind_name(kind));
}

/* The export rows are built from (and the in-process stages loaded from). */
static sw_export *load_export(const bench_options *o, GError **error)
{
    const char *dir = o->in_process ? o->in_process : o->rows_from_export;
    if (dir == NULL)
        return NULL;
    return sw_export_load(dir, error);
}

static bench_input *load_input(const bench_options *o, const sw_export *export, GError **error)
{
    if (o->request_file)
        return bench_rows_from_request_file(o->request_file, o->model, error);
    char *model = NULL;
    if (o->staged || o->write_request)
        model = stage_model(o->model ? o->model : export->name, SW_STAGE_PREPROCESSOR);
    gboolean vectors = o->date_form && strcmp(o->date_form, "vector") == 0;
    bench_input *input =
        o->rows_file ? bench_rows_from_file(export, o->rows_file, model ? model : o->model, o->rows_per_request, error)
                     : bench_rows_from_export(export, model ? model : o->model, o->rows_per_request, vectors,
                                              (guint32)o->seed, error);
    g_free(model);
    return input;
}

static gboolean parse_stage(const char *name, sw_stage_kind *kind)
{
    static const sw_stage_kind kinds[] = {SW_STAGE_PREPROCESSOR, SW_STAGE_PREDICTOR, SW_STAGE_POSTPROCESSOR};
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++)
        if (strcmp(name, sw_stage_kind_name(kinds[i])) == 0) {
            *kind = kinds[i];
            return TRUE;
        }
    return FALSE;
}

/* The request for stage `stage`, the earlier stages called over gRPC, one
 * target each: `targets` lists them from the preprocessor on. */
static GBytes *request_over_grpc(gchar **targets, const char *base, sw_stage_kind stage, GBytes *raw, GError **error)
{
    GBytes *request = g_bytes_ref(raw);
    for (int k = 0; k < (int)stage && request; k++) {
        sw_channel_options options = {.target = targets[k], .max_message_bytes = -1};
        sw_channel *channel = sw_channel_new(&options, error);
        GBytes *response = channel ? sw_channel_call(channel, "/inference.GRPCInferenceService/ModelInfer", request,
                                                     60 * G_USEC_PER_SEC, NULL, error)
                                   : NULL;
        sw_channel_free(channel);
        g_bytes_unref(request);
        request = NULL;
        if (response == NULL) {
            g_prefix_error(error, "%s at %s: ", sw_stage_kind_name((sw_stage_kind)k), targets[k]);
            break;
        }
        char *model = stage_model(base, (sw_stage_kind)(k + 1));
        request = bench_request_from_response(response, model, error);
        g_free(model);
        g_bytes_unref(response);
    }
    return request;
}

/* The request for stage `stage`, the earlier stages run in this process. */
static GBytes *request_in_process(const sw_export *export, const bench_input *input, const char *base,
                                  sw_stage_kind stage, GError **error)
{
    if (stage == SW_STAGE_PREPROCESSOR)
        return bench_input_pack(input);
    bench_local_options options = {.codec = FALSE};
    bench_local *local = bench_local_new(export, SW_STAGE_PREPROCESSOR, (sw_stage_kind)(stage - 1), &options, error);
    GPtrArray *outputs = local ? bench_local_run(local, input->tensors, NULL, error) : NULL;
    GBytes *packed = NULL;
    if (outputs) {
        char *model = stage_model(base, stage);
        Inference__ModelInferRequest *req = sw_oip_request_build(model, "bench", outputs, NULL);
        packed = sw_protobuf_pack(&req->base);
        sw_oip_request_free(req);
        g_free(model);
        g_ptr_array_unref(outputs);
    }
    bench_local_free(local);
    return packed;
}

/* --write-request: the request a stage would receive, for replaying later
 * with --request-file (a predictor request to load the predictor alone). */
static int write_request(const bench_options *o, const sw_export *export, const bench_input *input)
{
    sw_stage_kind stage = SW_STAGE_PREDICTOR;
    if (o->write_stage && !parse_stage(o->write_stage, &stage)) {
        fprintf(stderr, "--write-stage: '%s' is not preprocessor, predictor or postprocessor\n", o->write_stage);
        return EXIT_USAGE;
    }
    char *base = model_base(o, export, input);
    gchar **targets = o->staged ? g_strsplit(o->staged, ",", -1) : o->target ? g_strsplit(o->target, ",", 1) : NULL;
    GError *error = NULL;
    GBytes *request = NULL;
    if (targets && (int)g_strv_length(targets) < (int)stage)
        g_set_error(&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "a %s request needs the targets of the %d stages before it (--staged PRE,PRED,POST)",
                    sw_stage_kind_name(stage), (int)stage);
    else if (targets)
        request = request_over_grpc(targets, base, stage, bench_input_pack(input), &error);
    else
        request = request_in_process(export, input, base, stage, &error);
    if (request && !g_file_set_contents(o->write_request, g_bytes_get_data(request, NULL),
                                        (gssize)g_bytes_get_size(request), &error))
        g_clear_pointer(&request, g_bytes_unref);
    int rc = 0;
    if (request == NULL) {
        fprintf(stderr, "stagewise-bench: %s\n", error->message);
        g_error_free(error);
        rc = EXIT_USAGE;
    } else {
        fprintf(stderr, "wrote a %s request of %" G_GINT64_FORMAT " rows (%zu bytes) to %s\n",
                sw_stage_kind_name(stage), input->rows, (size_t)g_bytes_get_size(request), o->write_request);
        g_bytes_unref(request);
    }
    g_strfreev(targets);
    g_free(base);
    return rc;
}

/* Where the requests go (or the export run in-process). */
static const char *run_target(const bench_options *o)
{
    return o->staged ? o->staged : o->target ? o->target : o->http_target ? o->http_target : o->in_process;
}

/* What the JSON says about this run besides its steps. */
static JsonObject *describe_run(const bench_options *o, const bench_input *input, const char *mode)
{
    JsonObject *c = json_object_new();
    json_object_set_string_member(c, "mode", mode);
    json_object_set_string_member(c, "label", o->label ? o->label : "");
    json_object_set_string_member(c, "target", run_target(o));
    json_object_set_string_member(c, "model", input->model);
    json_object_set_string_member(c, "first_stage", input->pipeline ? "pipeline" : sw_stage_kind_name(input->first));
    json_object_set_string_member(c, "source",
                                  o->request_file ? "request-file"
                                  : o->rows_file  ? "rows-file"
                                                  : "rows-from-export");
    json_object_set_string_member(c, "source_path",
                                  o->request_file       ? o->request_file
                                  : o->rows_file        ? o->rows_file
                                  : o->rows_from_export ? o->rows_from_export
                                                        : o->in_process);
    json_object_set_int_member(c, "rows_per_request", input->rows);
    json_object_set_string_member(c, "concurrency", o->concurrency ? o->concurrency : "1");
    json_object_set_double_member(c, "duration_s", o->requests > 0 ? 0.0 : o->duration_s);
    json_object_set_int_member(c, "requests_per_step", o->requests);
    json_object_set_double_member(c, "warmup_s", o->warmup_s);
    json_object_set_string_member(c, "server_pids", o->server_pids ? o->server_pids : "");
    json_object_set_boolean_member(c, "codec", o->codec);
    json_object_set_int_member(c, "idle_us", o->idle_us);
    json_object_set_string_member(c, "device", o->device ? o->device : "cpu");
    json_object_set_string_member(c, "date_form", o->date_form ? o->date_form : "string");
    if (o->http_target)
        json_object_set_string_member(c, "http_body", o->http_binary ? "binary" : "json");
    return c;
}

/* The servers' process ids, or NULL (and an empty array when none given). */
static GArray *parse_pids(const char *text)
{
    GArray *pids = g_array_new(FALSE, FALSE, sizeof(pid_t));
    GArray *ints = text ? parse_int_list(text, "--server-pids") : g_array_new(FALSE, FALSE, sizeof(int));
    if (ints == NULL) {
        g_array_unref(pids);
        return NULL;
    }
    for (guint i = 0; i < ints->len; i++) {
        pid_t pid = (pid_t)g_array_index(ints, int, i);
        g_array_append_val(pids, pid);
    }
    g_array_unref(ints);
    return pids;
}

/* The runner for this mode: gRPC (one target or three staged), HTTP or local. */
typedef struct runner {
    bench_load *load;
    bench_http *http;
    bench_local *local;
    const bench_input *input;
} runner;

static gboolean runner_open(runner *r, const bench_options *o, const sw_export *export, const bench_input *input,
                            GError **error)
{
    r->input = input;
    if (o->in_process) {
        /* A stage model runs that stage alone, as its server does; the
         * pipeline model runs all three. */
        sw_stage_kind first = input->pipeline ? SW_STAGE_PREPROCESSOR : input->first;
        sw_stage_kind last = input->pipeline ? SW_STAGE_POSTPROCESSOR : input->first;
        bench_local_options options = {.codec = o->codec, .idle_us = o->idle_us, .device = o->device};
        r->local = bench_local_new(export, first, last, &options, error);
        return r->local != NULL;
    }
    GBytes *packed = bench_input_pack(input);
    if (o->http_target) {
        bench_http_body body;
        if (bench_http_body_build(packed, o->http_binary, &body, error)) {
            for (guint i = 0; i < body.binary_inputs->len; i++)
                fprintf(stderr, "stagewise-bench: sent as binary data: %s\n",
                        (char *)g_ptr_array_index(body.binary_inputs, i));
            r->http = bench_http_new(o->http_target, input->model, &body, input->rows, error);
        }
        bench_http_body_clear(&body);
        g_bytes_unref(packed);
        return r->http != NULL;
    }
    if (o->staged) {
        gchar **targets = g_strsplit(o->staged, ",", -1);
        char *base = model_base(o, export, input);
        char *models[3] = {stage_model(base, SW_STAGE_PREPROCESSOR), stage_model(base, SW_STAGE_PREDICTOR),
                           stage_model(base, SW_STAGE_POSTPROCESSOR)};
        if (g_strv_length(targets) != 3)
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--staged takes three targets, PRE,PRED,POST");
        else
            r->load = bench_load_new((const char *const *)targets, 3, (const char *const *)models, packed, input->rows,
                                     error);
        for (int i = 0; i < 3; i++)
            g_free(models[i]);
        g_free(base);
        g_strfreev(targets);
    } else {
        const char *targets[1] = {o->target};
        r->load = bench_load_new(targets, 1, NULL, packed, input->rows, error);
    }
    g_bytes_unref(packed);
    return r->load != NULL;
}

static bench_step *runner_step(runner *r, int concurrency, const bench_limits *limits, const GArray *pids)
{
    if (r->local)
        return bench_local_step(r->local, r->input, concurrency, limits);
    if (r->http)
        return bench_http_step(r->http, concurrency, limits, pids);
    return bench_load_step(r->load, concurrency, limits, pids);
}

static void runner_close(runner *r)
{
    bench_local_free(r->local);
    bench_load_free(r->load);
    bench_http_free(r->http);
}

static int sweep(const bench_options *o, const sw_export *export, const bench_input *input, int argc, char **argv)
{
    GArray *levels = parse_int_list(o->concurrency ? o->concurrency : "1", "--concurrency");
    GArray *pids = parse_pids(o->server_pids);
    if (levels == NULL || pids == NULL)
        return EXIT_USAGE;
    const char *mode = o->in_process ? "in-process" : o->staged ? "staged" : o->http_target ? "http" : "grpc";
    runner r = {0};
    GError *error = NULL;
    int rc = 0;
    if (!runner_open(&r, o, export, input, &error)) {
        fprintf(stderr, "stagewise-bench: %s\n", error->message);
        g_error_free(error);
        rc = EXIT_USAGE;
    } else {
        JsonObject *config = describe_run(o, input, mode);
        bench_report *report = bench_report_new(argc, argv, config);
        printf("# %s: model %s, %" G_GINT64_FORMAT " rows/request, %s\n", mode, input->model, input->rows,
               run_target(o));
        bench_report_print_header();
        bench_limits limits = {
            .duration_s = o->duration_s, .requests = o->requests, .warmup_s = o->warmup_s, .timeout_ms = o->timeout_ms};
        for (guint i = 0; i < levels->len; i++)
            bench_report_add(report, runner_step(&r, g_array_index(levels, int, i), &limits, pids));
        if (r.http)
            bench_http_describe(r.http, config);
        if (o->json_out && !bench_report_write(report, o->json_out, &error)) {
            fprintf(stderr, "stagewise-bench: %s: %s\n", o->json_out, error->message);
            g_clear_error(&error);
            rc = EXIT_USAGE;
        }
        if (rc == 0 && bench_report_had_errors(report))
            rc = EXIT_STEP_ERRORS;
        bench_report_free(report);
    }
    runner_close(&r);
    g_array_unref(levels);
    g_array_unref(pids);
    return rc;
}

int main(int argc, char **argv)
{
    /* parse_options consumes argv; the JSON records it as given. */
    char **original = g_strdupv(argv);
    bench_options o;
    if (!parse_options(&argc, &argv, &o) || !check_options(&o)) {
        free_options(&o);
        g_strfreev(original);
        return EXIT_USAGE;
    }
    grpc_init();
    GError *error = NULL;
    sw_export *export = load_export(&o, &error);
    bench_input *input = error ? NULL : load_input(&o, export, &error);
    int rc = EXIT_USAGE;
    if (input == NULL) {
        fprintf(stderr, "stagewise-bench: %s\n", error->message);
        g_error_free(error);
    } else if (o.write_request) {
        rc = write_request(&o, export, input);
    } else {
        rc = sweep(&o, export, input, (int)g_strv_length(original), original);
    }
    bench_input_free(input);
    sw_export_free(export);
    grpc_shutdown();
    free_options(&o);
    g_strfreev(original);
    return rc;
}
