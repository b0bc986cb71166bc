/* One line per event on stderr, key=value, with a timestamp and level.
 * The level comes from STAGEWISE_LOG_LEVEL (debug, info, warn, error). */
#ifndef SW_LOG_H
#define SW_LOG_H

#include <glib.h>

typedef enum sw_log_level {
    SW_LOG_DEBUG,
    SW_LOG_INFO,
    SW_LOG_WARN,
    SW_LOG_ERROR,
} sw_log_level;

void sw_log_init_from_env(void);
void sw_log(sw_log_level level, const char *format, ...) G_GNUC_PRINTF(2, 3);

#endif
