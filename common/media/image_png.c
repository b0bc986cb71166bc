/* PNG files through libpng's progressive-free reading API, from memory.
 *
 * libpng reports errors by longjmp to the setjmp in decode(): everything
 * allocated between the two lives in the `png_read` struct, reached through
 * a pointer, so nothing depends on locals the jump may have clobbered. */
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "image_formats.h"
#include "sw_error.h"

typedef struct png_read {
    const uint8_t *data;
    size_t len, pos;
    char message[200]; /* libpng's error message */
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    png_bytep *rows;
} png_read;

static void read_bytes(png_structp png, png_bytep out, size_t n)
{
    png_read *r = png_get_io_ptr(png);
    if (n > r->len - r->pos)
        png_error(png, "the file is truncated");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static void on_error(png_structp png, png_const_charp message)
{
    png_read *r = png_get_error_ptr(png);
    g_strlcpy(r->message, message, sizeof r->message);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message; /* benign (unknown chunks, bad gamma): the pixels are fine */
}

/* Expands palettes, low bit depths and tRNS to 8-bit gray/RGB(A) and
 * reduces 16-bit samples; returns the channels that result. */
static int set_transforms(png_structp png, png_infop info)
{
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    return png_get_channels(png, info);
}

/* The part that may longjmp; TRUE when the pixels were read. */
static gboolean decode(png_read *r, const sw_image_limits *limits, sw_pixels *out, GError **error)
{
    if (setjmp(png_jmpbuf(r->png)))
        return FALSE;
    png_set_sig_bytes(r->png, 0);
    png_read_info(r->png, r->info);
    png_uint_32 width = png_get_image_width(r->png, r->info), height = png_get_image_height(r->png, r->info);
    if (!sw__image_check_size(width, height, limits, "PNG", error))
        return TRUE; /* no libpng error: the caller sees *error */
    int channels = set_transforms(r->png, r->info);
    size_t stride = png_get_rowbytes(r->png, r->info);
    if (channels < 1 || channels > 4 || stride != (size_t)width * (size_t)channels)
        png_error(r->png, "unexpected pixel layout after expansion");
    r->pixels = g_malloc(stride * height);
    r->rows = g_new(png_bytep, height);
    for (png_uint_32 y = 0; y < height; y++)
        r->rows[y] = r->pixels + stride * y;
    png_read_image(r->png, r->rows);
    png_read_end(r->png, NULL);
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->pixels = r->pixels;
    r->pixels = NULL;
    return TRUE;
}

gboolean sw__png_decode(const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out, GError **error)
{
    png_read r = {.data = data, .len = len};
    r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_error, on_warning);
    r.info = r.png ? png_create_info_struct(r.png) : NULL;
    if (r.info == NULL) {
        png_destroy_read_struct(&r.png, NULL, NULL);
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED, "PNG: out of memory");
        return FALSE;
    }
    png_set_read_fn(r.png, &r, read_bytes);
    /* libpng's own bounds stay on too (1,000,000 pixels per side, 8 MB per
     * ancillary chunk): text chunks cannot balloon either. */
    GError *local = NULL;
    gboolean read = decode(&r, limits, out, &local);
    png_destroy_read_struct(&r.png, &r.info, NULL);
    g_free(r.pixels);
    g_free(r.rows);
    if (!read) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "corrupt PNG file: %s", r.message);
        return FALSE;
    }
    if (local) {
        g_propagate_error(error, local);
        return FALSE;
    }
    return TRUE;
}
