#include "progress.h"

#include <stdio.h>
#include <unistd.h>

/* A terminal redraws one line cheaply; a log file gets a line per update,
 * so it gets fewer. */
#define TTY_INTERVAL_US (G_USEC_PER_SEC / 4)
#define LOG_INTERVAL_US G_USEC_PER_SEC

void cli_progress_start(cli_progress *p, size_t total)
{
    p->total = total;
    p->shown = total > CLI_PROGRESS_MIN_ROWS;
    p->tty = isatty(STDERR_FILENO);
    p->start_us = p->last_us = g_get_monotonic_time();
}

void cli_progress_update(cli_progress *p, size_t done)
{
    if (!p->shown)
        return;
    gint64 now = g_get_monotonic_time();
    if (now - p->last_us < (p->tty ? TTY_INTERVAL_US : LOG_INTERVAL_US))
        return;
    p->last_us = now;
    p->drawn = p->tty;
    fprintf(stderr, p->tty ? "\r%zu/%zu rows" : "%zu/%zu rows\n", done, p->total);
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p, size_t done, gboolean ok)
{
    if (!p->shown)
        return;
    if (!ok) {
        if (p->drawn)
            fputc('\n', stderr);
        return;
    }
    double seconds = (double)(g_get_monotonic_time() - p->start_us) / G_USEC_PER_SEC;
    double rate = seconds > 0 ? (double)done / seconds : 0;
    fprintf(stderr, "%s%zu/%zu rows in %.1f s (%.0f rows/s)\n", p->tty ? "\r" : "", done, p->total, seconds, rate);
}
