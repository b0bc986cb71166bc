#include "json_text.h"

static void append_escaped_byte(GString *out, unsigned char c)
{
    switch (c) {
    case '"': g_string_append(out, "\\\""); break;
    case '\\': g_string_append(out, "\\\\"); break;
    case '\n': g_string_append(out, "\\n"); break;
    case '\r': g_string_append(out, "\\r"); break;
    case '\t': g_string_append(out, "\\t"); break;
    default:
        if (c < 0x20 || c == 0x7f)
            g_string_append_printf(out, "\\u%04x", c);
        else
            g_string_append_c(out, (char)c);
    }
}

void sw_json_append_string(GString *out, const char *text)
{
    g_string_append_c(out, '"');
    const char *p = text;
    while (*p) {
        const char *valid_end = NULL;
        g_utf8_validate(p, -1, &valid_end);
        for (; p < valid_end; p++)
            append_escaped_byte(out, (unsigned char)*p);
        if (*p) {
            /* The text came from outside (a URL path, a module's vocabulary):
             * a reader must still get a JSON document, so the byte becomes
             * U+FFFD, as g_utf8_make_valid would make it. */
            g_string_append(out, "\\ufffd");
            p++;
        }
    }
    g_string_append_c(out, '"');
}
