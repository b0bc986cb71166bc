/* JSON string literals written by hand, where building a JsonNode per value
 * would cost more than the text (log lines, one output line per row). */
#ifndef SW_JSON_TEXT_H
#define SW_JSON_TEXT_H

#include <glib.h>

G_BEGIN_DECLS

/* Appends `text` to `out` as a double-quoted JSON string: quotes,
 * backslashes and control characters (DEL too) escaped, so the result is
 * also one safe key=value field of a log line. The result is always valid
 * UTF-8: each byte of `text` that is not part of a UTF-8 sequence becomes
 * \ufffd (the replacement character), so callers may pass text from
 * outside without checking it first. */
void sw_json_append_string(GString *out, const char *text);

G_END_DECLS

#endif
