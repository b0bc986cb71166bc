#include "batches.h"

#include "cli.h"
#include "progress.h"

static stagewise_result *predict(const cli_route *route, const stagewise_rows *rows, GError **error)
{
    stagewise_error *lib_error = NULL;
    stagewise_result *result = route->staged
                                   ? stagewise_predict_staged(route->clients[0], route->clients[1], route->clients[2],
                                                              route->model, rows, &lib_error)
                                   : stagewise_predict(route->clients[0], route->model, rows, &lib_error);
    if (result == NULL)
        cli_error_take_stagewise(error, lib_error);
    return result;
}

/* One batch: rows [first, first + count) in, their predictions out. */
static gboolean run_batch(const cli_route *route, const cli_inputs *inputs, size_t first, size_t count, cli_output *out,
                          GError **error)
{
    stagewise_rows *rows = cli_inputs_batch(inputs, first, count, error);
    stagewise_result *result = rows ? predict(route, rows, error) : NULL;
    stagewise_rows_free(rows);
    if (result == NULL)
        return FALSE;
    gboolean ok = stagewise_result_rows(result) == count;
    if (!ok)
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%zu rows were sent but the server answered %zu", count,
                    stagewise_result_rows(result));
    ok = ok && cli_output_write(out, result, error);
    stagewise_result_free(result);
    return ok;
}

gboolean cli_batches_run(const cli_route *route, const cli_inputs *inputs, size_t batch_size, cli_output *out,
                         GError **error)
{
    size_t total = cli_inputs_rows(inputs);
    cli_progress progress;
    cli_progress_start(&progress, total);
    size_t done = 0;
    gboolean ok = TRUE;
    while (ok && done < total) {
        size_t count = MIN(batch_size, total - done);
        ok = run_batch(route, inputs, done, count, out, error);
        if (!ok)
            g_prefix_error(error, "rows %zu-%zu: ", done + 1, done + count);
        else
            done += count;
        cli_progress_update(&progress, done);
    }
    cli_progress_finish(&progress, done, ok);
    return ok;
}
