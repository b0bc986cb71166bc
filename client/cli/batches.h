/* Sending the inputs batch by batch and writing each answer as it comes. */
#ifndef SW_CLI_BATCHES_H
#define SW_CLI_BATCHES_H

#include <glib.h>

#include "inputs.h"
#include "output.h"
#include "stagewise.h"

/* Where batches go: one call to `model` on clients[0] (a preprocessor
 * started with --next runs the whole pipeline), or, staged, the three
 * stage models on clients[0..2] in turn. */
typedef struct cli_route {
    const char *model;
    gboolean staged;
    stagewise_client *clients[3];
} cli_route;

/* Sends rows [0, n) in batches of `batch_size`, one after the other, and
 * appends each batch's predictions to `out` in input order. Stops at the
 * first failure, with an error naming the batch's rows. */
gboolean cli_batches_run(const cli_route *route, const cli_inputs *inputs, size_t batch_size, cli_output *out,
                         GError **error);

#endif
