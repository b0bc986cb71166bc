/* Predictions out: one line per input row, one column per output named
 * "<feature>_<key>" in the model's order, like the DataFrame Ludwig's
 * InferenceModule.predict returns. Written batch by batch. */
#ifndef SW_CLI_OUTPUT_H
#define SW_CLI_OUTPUT_H

#include <glib.h>

#include "stagewise.h"

typedef enum cli_format {
    CLI_FORMAT_CSV,   /* cells as text; lists and vectors as JSON arrays */
    CLI_FORMAT_JSONL, /* one object per row, values typed */
} cli_format;

/* The format --format names, or when it is NULL the one `path` ends with
 * (.jsonl or .ndjson: JSON lines; otherwise, stdout included: CSV). */
gboolean cli_format_choose(const char *name, const char *path, cli_format *format, GError **error);

typedef struct cli_output cli_output;

/* Opens `path` (NULL or "-": stdout). */
cli_output *cli_output_open(const char *path, cli_format format, GError **error);
/* Appends the result's rows; the first call also writes the CSV header.
 * Every batch must have the first one's columns. */
gboolean cli_output_write(cli_output *out, const stagewise_result *result, GError **error);
/* Flushes and closes. With `keep` FALSE (the run failed) a file is removed,
 * so no half-written output is mistaken for a finished one. FALSE with an
 * error when writing failed. */
gboolean cli_output_close(cli_output *out, gboolean keep, GError **error);

#endif
