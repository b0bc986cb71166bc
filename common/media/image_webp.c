/* WebP files through libwebp's simple decoding API, from memory: the
 * header's size is read first (WebPGetFeatures), then the pixels. libwebp
 * reports errors by status, so there is nothing to unwind. */
#include <webp/decode.h>

#include "image_formats.h"
#include "sw_error.h"

static const char *status_text(VP8StatusCode status)
{
    switch (status) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the file is truncated";
    default: return "cannot decode";
    }
}

gboolean sw__webp_decode(const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out, GError **error)
{
    WebPBitstreamFeatures features;
    VP8StatusCode status = WebPGetFeatures(data, len, &features);
    if (status != VP8_STATUS_OK) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "corrupt WebP file: %s", status_text(status));
        return FALSE;
    }
    if (!sw__image_check_size(features.width, features.height, limits, "WebP", error))
        return FALSE;
    if (features.has_animation) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "animated WebP files are not images this server reads");
        return FALSE;
    }
    int channels = features.has_alpha ? 4 : 3;
    size_t stride = (size_t)features.width * (size_t)channels;
    size_t size = stride * (size_t)features.height;
    uint8_t *pixels = g_malloc(size);
    uint8_t *done = features.has_alpha ? WebPDecodeRGBAInto(data, len, pixels, size, (int)stride)
                                       : WebPDecodeRGBInto(data, len, pixels, size, (int)stride);
    if (done == NULL) {
        g_free(pixels);
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "corrupt or truncated WebP file");
        return FALSE;
    }
    out->width = features.width;
    out->height = features.height;
    out->channels = channels;
    out->pixels = pixels;
    return TRUE;
}
