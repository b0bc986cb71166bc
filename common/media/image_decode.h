/* Encoded image files (PNG, JPEG, WebP) decoded to [C,H,W] uint8 tensors, as
 * Ludwig's predict() reads image files with torchvision before calling the
 * preprocessor.
 *
 * The format is recognised from the file's signature, never from a name.
 * Each decoder reads the image header first and refuses, before any pixel
 * memory is allocated, files over the byte limit or images over the pixel
 * limit (a few bytes of PNG can claim gigapixels). Decoding errors of the
 * libraries (libpng, libjpeg-turbo: longjmp; libwebp: status codes) become
 * GErrors; nothing they allocated outlives the call.
 *
 * Stateless and reentrant: any thread may decode at any time. The caller
 * owns the returned tensor. */
#ifndef SW_IMAGE_DECODE_H
#define SW_IMAGE_DECODE_H

#include <glib.h>
#include <stdint.h>

#include "tensor.h"

G_BEGIN_DECLS

typedef struct sw_image_limits {
    size_t max_bytes;   /* largest encoded file; 0: no limit */
    int64_t max_pixels; /* largest width * height; 0: no limit */
} sw_image_limits;

/* Decodes `data` to a UINT8 tensor [channels, height, width], channels as
 * torchvision's ImageReadMode asks: 1 grayscale (L = R*299/1000 +
 * G*587/1000 + B*114/1000, exactly as PIL's convert("L")), 3 RGB, 4 RGBA (opaque alpha added when
 * the file has none); 0 keeps the file's own (1 gray, 2 gray + alpha, 3 RGB,
 * 4 RGBA). Palettes are expanded and 16-bit samples reduced to 8 bits.
 * NULL with RESOURCE_EXHAUSTED when a limit is exceeded, INVALID_ARGUMENT
 * when the file is not a PNG, JPEG or WebP image or is corrupt or truncated;
 * messages say what was wrong but name no input (the caller does). */
sw_tensor *sw_image_decode(const void *data, size_t len, int channels, const sw_image_limits *limits, GError **error);

/* The formats this build decodes, "PNG, JPEG, WebP": static string. */
const char *sw_image_formats(void);

G_END_DECLS

#endif
