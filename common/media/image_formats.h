/* The per-format image decoders behind sw_image_decode() (image_decode.c),
 * private to the media layer. Each decodes one file to interleaved 8-bit
 * pixels in the file's own channel layout and checks the limits from the
 * header, before allocating the pixels. Reentrant. */
#ifndef SW_IMAGE_FORMATS_H
#define SW_IMAGE_FORMATS_H

#include <glib.h>
#include <stdint.h>

#include "image_decode.h"

G_BEGIN_DECLS

/* Interleaved pixels, row-major: height rows of width * channels bytes.
 * `pixels` is g_malloc'd and owned by whoever holds the struct. */
typedef struct sw_pixels {
    int width, height;
    int channels; /* 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA */
    uint8_t *pixels;
} sw_pixels;

/* FALSE with RESOURCE_EXHAUSTED when width * height exceeds the limit. */
gboolean sw__image_check_size(int64_t width, int64_t height, const sw_image_limits *limits, const char *format,
                              GError **error);

gboolean sw__png_decode(const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out, GError **error);
gboolean sw__jpeg_decode(const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out, GError **error);
gboolean sw__webp_decode(const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out, GError **error);

G_END_DECLS

#endif
