/* Client-supplied text in statuses and logs, bounded.
 *
 * A name a client sends (a model, a tensor, a datatype, a health service)
 * is echoed back in error messages; unbounded, one 10 MB name makes every
 * status larger than gRPC's header limit (the real status turns into
 * RESOURCE_EXHAUSTED) and every log line as large. Messages print such text
 * with SW_CLIP_FMT / SW_CLIP(text): at most SW_CLIP_BYTES bytes, cut on a
 * UTF-8 character boundary and marked with SW_CLIP_MARK when cut. No
 * allocation, so it costs nothing on paths that do not fail. */
#ifndef SW_CLIP_H
#define SW_CLIP_H

#include <stddef.h>

#define SW_CLIP_BYTES 256
#define SW_CLIP_MARK "...(cut)"

#define SW_CLIP_FMT "%.*s%s"
#define SW_CLIP(text) (int)sw_clip_length(text), (text) ? (text) : "", sw_clip_mark(text)

/* Bytes of `text` (NULL reads as "") to print: all of it up to
 * SW_CLIP_BYTES, else the longest prefix that ends on a character boundary. */
size_t sw_clip_length(const char *text);
/* SW_CLIP_MARK when `text` is cut, else "". A static string. */
const char *sw_clip_mark(const char *text);

/* `len` bytes of client data (a BYTES element: any bytes, NUL included) as
 * printable text: valid UTF-8 kept, control characters, backslashes and
 * bytes that are not UTF-8 written as \xNN, at most SW_CLIP_BYTES of it,
 * then SW_CLIP_MARK when cut. Newly allocated. */
char *sw_clip_escaped(const char *data, size_t len);

/* `text` fit to be a gRPC status message: at most `max_bytes` (cut on a
 * character boundary and marked with SW_CLIP_MARK), and valid UTF-8, as the
 * protocol requires (bytes that are not become U+FFFD). Newly allocated. */
char *sw_clip_status(const char *text, size_t max_bytes);

#endif
