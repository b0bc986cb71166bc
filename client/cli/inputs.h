/* The model's input features, filled from the table's columns the way
 * Ludwig's InferenceModule does from a DataFrame: each feature reads the
 * column its metadata names ("column:<feature>"); number features get
 * numbers, every other type the cells' text, which the server parses
 * (vectors as whitespace-separated numbers, dates with the feature's
 * datetime_format). */
#ifndef SW_CLI_INPUTS_H
#define SW_CLI_INPUTS_H

#include <glib.h>

#include "stagewise.h"
#include "table.h"

typedef struct cli_inputs cli_inputs;

/* Checks every feature has its column and every cell fits its feature's
 * type, before anything is sent. Errors name the column and feature, and
 * the row. `table` and `model` must outlive the result. */
cli_inputs *cli_inputs_new(const stagewise_model *model, const sw_table *table, GError **error);
size_t cli_inputs_rows(const cli_inputs *inputs);
/* Rows [first, first + count) as a batch to send. */
stagewise_rows *cli_inputs_batch(const cli_inputs *inputs, size_t first, size_t count, GError **error);
void cli_inputs_free(cli_inputs *inputs);

#endif
