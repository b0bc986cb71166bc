/* The model's input features, filled from the table's columns the way
 * Ludwig's InferenceModule.predict does from a DataFrame: each feature reads
 * the column its metadata names ("column:<feature>"), and its type (the
 * metadata's "type:<feature>") says what is sent:
 *   number          FP64 numbers; a missing cell is NaN, which the
 *                   preprocessor fills (pandas holds such a column so);
 *   h3              INT64 integers, exactly (no missing cell: INT64 has no NaN);
 *   image, audio    the bytes of the file the cell names: a path absolute or
 *                   relative to the input file's folder, never a URL (as
 *                   predict() loads them; the server decodes them);
 *   any other       the cells' text, as predict's astype(str): a missing cell
 *                   is "nan", which the preprocessor fills; vectors as
 *                   whitespace-separated numbers, dates in the feature's
 *                   datetime_format (parsed by the server).
 * Which cells are missing is the table's to say (table.h): what pandas
 * reads as NaN. */
#ifndef SW_CLI_INPUTS_H
#define SW_CLI_INPUTS_H

#include <glib.h>

#include "stagewise.h"
#include "table.h"

typedef struct cli_inputs cli_inputs;

/* Checks every feature has its column and every cell fits its feature's
 * type (file paths name readable files), before anything is sent. Errors
 * name the column and feature, and the row. Relative file paths are taken
 * from `input_path`'s folder. `table` and `model` must outlive the result. */
cli_inputs *cli_inputs_new(const stagewise_model *model, const sw_table *table, const char *input_path, GError **error);
size_t cli_inputs_rows(const cli_inputs *inputs);
/* Rows [first, first + count) as a batch to send; image and audio files
 * are read now. Reads `inputs` only: several threads may build batches at
 * once. */
stagewise_rows *cli_inputs_batch(const cli_inputs *inputs, size_t first, size_t count, GError **error);
void cli_inputs_free(cli_inputs *inputs);

#endif
