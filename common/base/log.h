/* One line per event on stderr: key=value pairs, or one JSON object per line
 * with --log-format json. Messages are written as key=value text by callers
 * (values with spaces in double quotes); the JSON form converts them.
 * sw_log may be called from any thread (each line is one write); configure
 * once at start-up, before other threads log. */
#ifndef SW_LOG_H
#define SW_LOG_H

#include <glib.h>

G_BEGIN_DECLS

typedef enum sw_log_level {
    SW_LOG_DEBUG,
    SW_LOG_INFO,
    SW_LOG_WARN,
    SW_LOG_ERROR,
} sw_log_level;

/* From STAGEWISE_LOG_LEVEL, before settings are read. */
void sw_log_init_from_env(void);
/* "debug", "info", "warn", "error"; "kv" or "json"; NULL keeps the current
 * one. FALSE on unknown names, and then nothing changes. */
gboolean sw_log_configure(const char *level, const char *format);
void sw_log(sw_log_level level, const char *format, ...) G_GNUC_PRINTF(2, 3);

/* `text` as one key=value value: in double quotes, with quotes, backslashes
 * and control characters escaped, so text from clients cannot end the field
 * or the line. Newly allocated. */
char *sw_log_quote(const char *text);

G_END_DECLS

#endif
