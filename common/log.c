#include "log.h"

#include <stdio.h>
#include <string.h>

static sw_log_level min_level = SW_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sw_log_init_from_env(void)
{
    const char *env = g_getenv("STAGEWISE_LOG_LEVEL");
    for (int i = 0; env && i < (int)G_N_ELEMENTS(level_names); i++)
        if (g_ascii_strcasecmp(env, level_names[i]) == 0)
            min_level = (sw_log_level)i;
}

void sw_log(sw_log_level level, const char *format, ...)
{
    if (level < min_level)
        return;
    GDateTime *now = g_date_time_new_now_utc();
    char *ts = g_date_time_format_iso8601(now);
    va_list ap;
    va_start(ap, format);
    char *msg = g_strdup_vprintf(format, ap);
    va_end(ap);
    /* One fprintf per line keeps lines from interleaving across threads. */
    fprintf(stderr, "ts=%s level=%s %s\n", ts, level_names[level], msg);
    fflush(stderr);
    g_free(msg);
    g_free(ts);
    g_date_time_unref(now);
}
