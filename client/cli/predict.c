/* `stagewise predict`: rows of a CSV or JSON-lines file in, predictions out.
 *
 * Order of work: read and check the whole input, then ask the model which
 * features it reads from which columns, check every cell against them, and
 * only then send batches; so a mistake in the input costs no server time
 * and leaves no partial output. */
#include <string.h>

#include "batches.h"
#include "cli.h"
#include "connection.h"
#include "inputs.h"
#include "output.h"
#include "table.h"

#define DEFAULT_BATCH_SIZE 256
/* Calls in flight. A server runs each call on one of its workers (4 by
 * default, --threads), so one call at a time leaves all but one idle; four
 * keep a default server busy, and a predictor batching across calls gets
 * batches to merge, while holding at most 8 batches in memory. More only
 * helps servers with more workers or replicas behind the target. */
#define DEFAULT_CONCURRENCY 4
#define MAX_CONCURRENCY 256

typedef struct predict_options {
    cli_connection connection;
    char *model;
    char *input;
    char *output;
    char *format;
    int batch_size;
    int concurrency;
    gboolean staged;
    char *predictor_target;
    char *postprocessor_target;
} predict_options;

static void add_options(GOptionContext *ctx, predict_options *o)
{
    const GOptionEntry entries[] = {
        {.long_name = "model",
         .short_name = 'm',
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->model,
         .description = "model name (the pipeline's; stages add _preprocessor...); required",
         .arg_description = "NAME"},
        {.long_name = "input",
         .short_name = 'i',
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->input,
         .description = "rows to predict: a .csv (with a header) or .jsonl file; required",
         .arg_description = "FILE"},
        {.long_name = "output",
         .short_name = 'o',
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &o->output,
         .description = "where predictions go (default: stdout)",
         .arg_description = "FILE"},
        {.long_name = "format",
         .short_name = 'f',
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->format,
         .description = "csv or jsonl (default: jsonl for a .jsonl output, else csv)",
         .arg_description = "FORMAT"},
        {.long_name = "batch-size",
         .short_name = 'b',
         .arg = G_OPTION_ARG_INT,
         .arg_data = &o->batch_size,
         .description = "rows per call (default 256)",
         .arg_description = "N"},
        {.long_name = "concurrency",
         .short_name = 'c',
         .arg = G_OPTION_ARG_INT,
         .arg_data = &o->concurrency,
         .description = "calls in flight at once, 1 to 256 (default 4); the output keeps the input's order",
         .arg_description = "N"},
        {.long_name = "staged",
         .arg = G_OPTION_ARG_NONE,
         .arg_data = &o->staged,
         .description = "call NAME_preprocessor, NAME_predictor and NAME_postprocessor in turn instead of NAME"},
        {.long_name = "predictor-target",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->predictor_target,
         .description = "with --staged: the predictor's target (default: --target)",
         .arg_description = "TARGET"},
        {.long_name = "postprocessor-target",
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &o->postprocessor_target,
         .description = "with --staged: the postprocessor's target (default: --target)",
         .arg_description = "TARGET"},
        {.long_name = NULL, .arg = 0, .arg_data = NULL, .description = NULL},
    };
    g_option_context_add_main_entries(ctx, entries, NULL);
    cli_connection_add_options(ctx, &o->connection);
}

static gboolean parse_options(predict_options *o, int argc, char **argv, GError **error)
{
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx, "Predicts every row of a CSV or JSON-lines file with a served Ludwig model.");
    g_option_context_set_description(
        ctx, "Each input feature reads the data column the model's metadata names, as Ludwig's predict does.\n"
             "Number features take numbers; h3 features integers; image and audio features the files their\n"
             "cells name (absolute, or relative to the input file's folder; URLs are refused); other features\n"
             "take the cells' text: vectors as space-separated numbers, dates in the feature's format.\n"
             "Missing cells are what pandas reads as NaN: in CSV an empty field or NA, N/A, NaN, nan, NULL,\n"
             "null, None, <NA>, #N/A, ... (exactly); in JSON lines null or an absent key. They are sent as\n"
             "NaN to number features and as \"nan\" to text-like ones, so the model fills them. In JSON lines,\n"
             "arrays of numbers are vectors. Rows in messages count from 1 after the CSV header.\n\n"
             "Output: one column per model output, named <feature>_<key>; one row per input row, in order.\n");
    add_options(ctx, o);
    gboolean ok = cli_parse_options(ctx, "predict", &argc, &argv, error);
    g_option_context_free(ctx);
    return ok;
}

static gboolean usage_error(GError **error, const char *message)
{
    g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "%s", message);
    return FALSE;
}

static gboolean check_options(const predict_options *o, GError **error)
{
    if (o->model == NULL || o->model[0] == '\0')
        return usage_error(error, "--model is required");
    if (o->input == NULL)
        return usage_error(error, "--input is required");
    if (o->batch_size < 1)
        return usage_error(error, "--batch-size must be at least 1");
    if (o->concurrency < 1 || o->concurrency > MAX_CONCURRENCY)
        return usage_error(error, "--concurrency must be from 1 to 256");
    if (!o->staged && (o->predictor_target || o->postprocessor_target))
        return usage_error(error, "--predictor-target and --postprocessor-target need --staged");
    return TRUE;
}

/* The input, read by the reader its name calls for; errors name the file. */
static sw_table *read_input(const char *path, GError **error)
{
    sw_table *table = NULL;
    if (cli_has_suffix(path, ".csv"))
        table = sw_table_read_csv_as_pandas(path, error);
    else if (cli_has_suffix(path, ".jsonl") || cli_has_suffix(path, ".ndjson"))
        table = sw_table_read_jsonl(path, error);
    else
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "cannot tell the format from the name: use .csv or .jsonl");
    if (table && sw_table_rows(table) == 0) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "no rows to predict");
        g_clear_pointer(&table, sw_table_free);
    }
    if (table == NULL)
        g_prefix_error(error, "%s: ", path);
    return table;
}

/* The metadata that says which column each feature reads. One call asks
 * the pipeline model; a server that only serves the stages under their own
 * names still answers for NAME_preprocessor, which has the same inputs. */
static stagewise_model *fetch_model(stagewise_client *client, const char *name, gboolean staged, GError **error)
{
    char *preprocessor = g_strdup_printf("%s_preprocessor", name);
    stagewise_error *lib_error = NULL;
    stagewise_model *model = stagewise_model_get(client, staged ? preprocessor : name, &lib_error);
    if (model == NULL && !staged && strcmp(stagewise_error_code_name(lib_error), "NOT_FOUND") == 0) {
        /* If that fails too, the first error is the one that explains. */
        model = stagewise_model_get(client, preprocessor, NULL);
    }
    g_free(preprocessor);
    if (model)
        stagewise_error_free(lib_error);
    else
        cli_error_take_stagewise(error, lib_error);
    return model;
}

/* Clients for the route; stages on the same target share one. */
static gboolean open_route(const predict_options *o, cli_route *route, GError **error)
{
    const cli_connection *c = &o->connection;
    const char *targets[3] = {c->target, o->predictor_target ? o->predictor_target : c->target,
                              o->postprocessor_target ? o->postprocessor_target : c->target};
    route->model = o->model;
    route->staged = o->staged;
    for (int s = 0; s < (o->staged ? 3 : 1); s++) {
        for (int earlier = 0; earlier < s && route->clients[s] == NULL; earlier++)
            if (strcmp(targets[earlier], targets[s]) == 0)
                route->clients[s] = route->clients[earlier];
        if (route->clients[s] == NULL && (route->clients[s] = cli_connection_client(c, targets[s], error)) == NULL)
            return FALSE;
    }
    return TRUE;
}

static void close_route(cli_route *route)
{
    for (int s = 2; s >= 0; s--) {
        gboolean shared = FALSE;
        for (int earlier = 0; earlier < s; earlier++)
            shared = shared || route->clients[earlier] == route->clients[s];
        if (!shared)
            stagewise_client_free(route->clients[s]);
    }
}

/* Everything after the command line: FALSE with an error on failure. */
static gboolean run(predict_options *o, GError **error)
{
    cli_format format;
    if (!check_options(o, error) || !cli_format_choose(o->format, o->output, &format, error) ||
        !cli_connection_load(&o->connection, error))
        return FALSE;
    sw_table *table = read_input(o->input, error);
    if (table == NULL)
        return FALSE;
    cli_route route = {0};
    stagewise_model *model = NULL;
    cli_inputs *inputs = NULL;
    cli_output *out = NULL;
    gboolean ok = open_route(o, &route, error) && (model = fetch_model(route.clients[0], o->model, o->staged, error)) &&
                  (inputs = cli_inputs_new(model, table, o->input, error));
    if (inputs == NULL && model)
        g_prefix_error(error, "%s: ", o->input);
    ok = ok && (out = cli_output_open(o->output, format, error));
    ok = ok && cli_batches_run(&route, inputs, (size_t)o->batch_size, o->concurrency, out, error);
    if (out && !cli_output_close(out, ok, ok ? error : NULL))
        ok = FALSE;
    cli_inputs_free(inputs);
    stagewise_model_free(model);
    close_route(&route);
    sw_table_free(table);
    return ok;
}

int cli_predict_main(int argc, char **argv)
{
    predict_options o = {.batch_size = DEFAULT_BATCH_SIZE, .concurrency = DEFAULT_CONCURRENCY};
    GError *error = NULL;
    gboolean ok = parse_options(&o, argc, argv, &error) && run(&o, &error);
    cli_connection_clear(&o.connection);
    g_free(o.model);
    g_free(o.input);
    g_free(o.output);
    g_free(o.format);
    g_free(o.predictor_target);
    g_free(o.postprocessor_target);
    return ok ? CLI_EXIT_OK : cli_error_report(error);
}
