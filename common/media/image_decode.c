/* Format recognition, the byte limit and the channel conversion shared by
 * the decoders (image_png.c, image_jpeg.c, image_webp.c). */
#include "image_decode.h"

#include <string.h>

#include "image_formats.h"
#include "sw_error.h"

gboolean sw__image_check_size(int64_t width, int64_t height, const sw_image_limits *limits, const char *format,
                              GError **error)
{
    if (width <= 0 || height <= 0) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "%s image has no pixels (%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT ")", format, width, height);
        return FALSE;
    }
    if (limits && limits->max_pixels > 0 && width > limits->max_pixels / height) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "%s image of %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " pixels is larger than this server's "
                    "limit of %" G_GINT64_FORMAT " pixels (--max-image-pixels)",
                    format, width, height, limits->max_pixels);
        return FALSE;
    }
    return TRUE;
}

const char *sw_image_formats(void)
{
    return "PNG, JPEG, WebP";
}

typedef enum image_format { FORMAT_UNKNOWN, FORMAT_PNG, FORMAT_JPEG, FORMAT_WEBP } image_format;

static image_format sniff(const uint8_t *d, size_t len)
{
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(d, png, 8) == 0)
        return FORMAT_PNG;
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return FORMAT_JPEG;
    if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return FORMAT_WEBP;
    return FORMAT_UNKNOWN;
}

/* PIL's "L" conversion, L = R*299/1000 + G*587/1000 + B*114/1000, in the
 * fixed point PIL computes it with, so gray images match PIL's exactly. */
static uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

/* Channel c of the pixel p (in the file's layout `from`) in layout `to`. */
static uint8_t convert_channel(const uint8_t *p, int from, int to, int c)
{
    gboolean color = from >= 3, alpha = from == 2 || from == 4;
    if (to == 1)
        return color ? luma(p) : p[0];
    if (to == 2)
        return c == 0 ? (color ? luma(p) : p[0]) : (alpha ? p[from - 1] : 255);
    if (c < 3)
        return color ? p[c] : p[0];
    return alpha ? p[from - 1] : 255; /* to == 4, the alpha channel */
}

/* Interleaved pixels in the file's layout to planar [to, H, W]. The common
 * cases (same channels, color to gray) get loops of their own: through
 * convert_channel() a 256 x 256 RGB image took longer than decoding it. */
static void fill_planes(const sw_pixels *px, int to, uint8_t *out, size_t plane)
{
    const uint8_t *src = px->pixels;
    int from = px->channels;
    if (from == to) {
        for (size_t i = 0; i < plane; i++, src += from)
            for (int c = 0; c < to; c++)
                out[plane * (size_t)c + i] = src[c];
    } else if (to == 1 && from >= 3) {
        for (size_t i = 0; i < plane; i++, src += from)
            out[i] = luma(src);
    } else {
        for (size_t i = 0; i < plane; i++, src += from)
            for (int c = 0; c < to; c++)
                out[plane * (size_t)c + i] = convert_channel(src, from, to, c);
    }
}

static sw_tensor *to_planar(const sw_pixels *px, int to)
{
    size_t plane = (size_t)px->width * (size_t)px->height;
    uint8_t *out = g_malloc(plane * (size_t)to);
    fill_planes(px, to, out, plane);
    int64_t shape[3] = {to, px->height, px->width};
    GBytes *bytes = g_bytes_new_take(out, plane * (size_t)to);
    sw_tensor *t = sw_tensor_new(SW_DTYPE_UINT8, 3, shape, bytes);
    g_bytes_unref(bytes);
    return t;
}

static gboolean decode_pixels(const uint8_t *d, size_t len, const sw_image_limits *limits, sw_pixels *px,
                              GError **error)
{
    switch (sniff(d, len)) {
    case FORMAT_PNG: return sw__png_decode(d, len, limits, px, error);
    case FORMAT_JPEG: return sw__jpeg_decode(d, len, limits, px, error);
    case FORMAT_WEBP: return sw__webp_decode(d, len, limits, px, error);
    case FORMAT_UNKNOWN: break;
    }
    g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                "not an image file this server reads (%s): the first bytes match none of them", sw_image_formats());
    return FALSE;
}

sw_tensor *sw_image_decode(const void *data, size_t len, int channels, const sw_image_limits *limits, GError **error)
{
    if (channels < 0 || channels > 4) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION,
                    "images can be read with 1, 2, 3 or 4 channels, not %d", channels);
        return NULL;
    }
    if (limits && limits->max_bytes > 0 && len > limits->max_bytes) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "image file of %zu bytes is larger than this server's limit of %zu bytes (--max-image-mb)", len,
                    limits->max_bytes);
        return NULL;
    }
    sw_pixels px = {0};
    if (!decode_pixels(data, len, limits, &px, error))
        return NULL;
    sw_tensor *t = to_planar(&px, channels ? channels : px.channels);
    g_free(px.pixels);
    return t;
}
