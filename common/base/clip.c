#include "clip.h"

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
