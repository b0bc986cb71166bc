/* Date strings to Ludwig's 9-integer date vector, as InferenceModule.predict
 * builds it in Python before calling the preprocessor:
 * [year, month, day, weekday (Monday = 0), day of year (1-based), hour,
 *  minute, second, second of day]. Time zones and fractions of a second are
 * read but ignored, as Ludwig ignores them. */
#ifndef SW_DATE_PARSE_H
#define SW_DATE_PARSE_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define SW_DATE_VECTOR_LEN 9

/* Parses `text` (`len` bytes, not NUL-terminated) with `format` (a
 * strftime-style pattern; NULL for none) and, failing that, with the common
 * forms: ISO 8601 dates and date-times with or without a time zone and
 * fractional seconds, "YYYY-MM-DD HH:MM[:SS]", "YYYY/MM/DD", "MM/DD/YYYY",
 * "YYYYMMDD". FALSE when nothing matches. */
gboolean sw_date_vector_parse(const char *text, size_t len, const char *format, int64_t out[SW_DATE_VECTOR_LEN]);

G_END_DECLS

#endif
