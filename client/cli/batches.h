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

/* Sends rows [0, n) in batches of `batch_size`, up to `concurrency` calls
 * at once (each on a thread of its own: the clients are thread-safe, and
 * staged calls have no asynchronous form), and appends each batch's
 * predictions to `out` in input order, whatever order the answers come in.
 * At most 2 x `concurrency` batches are held at once (in flight or waiting
 * their turn to be written), so memory does not grow with the input.
 * Stops at the first failure: no batch starts after it, the batches before
 * it are written, and the error names its rows. */
gboolean cli_batches_run(const cli_route *route, const cli_inputs *inputs, size_t batch_size, int concurrency,
                         cli_output *out, GError **error);

#endif
