/* Progress of a long prediction on stderr: "12000/50000 rows", at most a
 * few updates a second (rewritten in place on a terminal, one line each
 * otherwise), then a summary with the rate. Short inputs stay quiet. */
#ifndef SW_CLI_PROGRESS_H
#define SW_CLI_PROGRESS_H

#include <glib.h>

/* Inputs of more rows than this show progress. */
#define CLI_PROGRESS_MIN_ROWS 2000

typedef struct cli_progress {
    size_t total;
    gboolean shown;
    gboolean tty;
    gboolean drawn; /* a terminal line is waiting for its end */
    gint64 start_us;
    gint64 last_us;
} cli_progress;

void cli_progress_start(cli_progress *progress, size_t total);
void cli_progress_update(cli_progress *progress, size_t done);
/* The summary line when progress was shown and `ok`; after a failure
 * only ends the line, so the error message gets its own. */
void cli_progress_finish(cli_progress *progress, size_t done, gboolean ok);

#endif
