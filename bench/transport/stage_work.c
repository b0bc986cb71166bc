#include "stage_work.h"

#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct floor_stage_work {
    sw_export *export;
    bench_input *input;
    bench_local *local;
};

/* A copy of the error's message for the caller to free(). */
static char *take_message(GError *error, const char *fallback)
{
    char *msg = strdup(error ? error->message : fallback);
    g_clear_error(&error);
    return msg;
}

floor_stage_work *floor_stage_work_new(const char *export_dir, const char *request_file, char **error_message)
{
    GError *error = NULL;
    floor_stage_work *work = g_new0(floor_stage_work, 1);
    work->export = sw_export_load(export_dir, &error);
    if (work->export)
        work->input = bench_rows_from_request_file(request_file, NULL, &error);
    if (work->input && work->input->pipeline)
        g_set_error(&error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: the request is for the whole pipeline; the floor runs one stage (stagewise-bench "
                    "--write-request --write-stage STAGE writes one)",
                    request_file);
    if (work->input && error == NULL) {
        bench_local_options options = {.codec = FALSE};
        work->local = bench_local_new(work->export, work->input->first, work->input->first, &options, &error);
    }
    if (work->local == NULL) {
        *error_message = take_message(error, "cannot load the stage");
        floor_stage_work_free(work);
        return NULL;
    }
    return work;
}

int floor_stage_work_run(floor_stage_work *work, char **error_message)
{
    GError *error = NULL;
    GPtrArray *outputs = bench_local_run(work->local, work->input->tensors, NULL, &error);
    if (outputs == NULL) {
        *error_message = take_message(error, "the stage failed");
        return -1;
    }
    g_ptr_array_unref(outputs);
    return 0;
}

const char *floor_stage_work_stage(const floor_stage_work *work)
{
    return sw_stage_kind_name(work->input->first);
}

void floor_stage_work_free(floor_stage_work *work)
{
    if (work == NULL)
        return;
    bench_local_free(work->local);
    bench_input_free(work->input);
    if (work->export)
        sw_export_free(work->export);
    g_free(work);
}
