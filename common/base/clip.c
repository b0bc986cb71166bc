#include "clip.h"

#include <glib.h>
#include <string.h>

size_t sw_clip_length(const char *text)
{
    if (text == NULL)
        return 0;
    size_t len = strnlen(text, SW_CLIP_BYTES + 1);
    if (len <= SW_CLIP_BYTES)
        return len;
    len = SW_CLIP_BYTES;
    /* Back off continuation bytes (10xxxxxx) so no character is split. */
    while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
        len--;
    return len;
}

const char *sw_clip_mark(const char *text)
{
    return text && strnlen(text, SW_CLIP_BYTES + 1) > SW_CLIP_BYTES ? SW_CLIP_MARK : "";
}

char *sw_clip_escaped(const char *data, size_t len)
{
    GString *out = g_string_sized_new(MIN(len, SW_CLIP_BYTES) + 16);
    const char *p = data, *end = data + len;
    while (p < end && out->len < SW_CLIP_BYTES) {
        unsigned char c = (unsigned char)*p;
        gunichar ch = c < 0x80 ? c : g_utf8_get_char_validated(p, end - p);
        if (c < 0x20 || c == 0x7f || c == '\\' || ch == (gunichar)-1 || ch == (gunichar)-2) {
            g_string_append_printf(out, "\\x%02x", c);
            p++;
        } else {
            const char *next = g_utf8_next_char(p);
            g_string_append_len(out, p, next - p);
            p = next;
        }
    }
    if (p < end)
        g_string_append(out, SW_CLIP_MARK);
    return g_string_free(out, FALSE);
}

char *sw_clip_status(const char *text, size_t max_bytes)
{
    char *valid = g_utf8_make_valid(text ? text : "", -1);
    size_t len = strlen(valid);
    if (len <= max_bytes)
        return valid;
    size_t keep = max_bytes;
    while (keep > 0 && ((unsigned char)valid[keep] & 0xC0) == 0x80)
        keep--;
    char *cut = g_strdup_printf("%.*s%s", (int)keep, valid, SW_CLIP_MARK);
    g_free(valid);
    return cut;
}
