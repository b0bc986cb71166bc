/* JPEG files through libjpeg-turbo, from memory.
 *
 * libjpeg reports fatal errors through error_exit, which must not return:
 * it longjmps to the setjmp in decode(). What is allocated in between lives
 * in the `jpeg_read` struct, reached through a pointer, so the jump clobbers
 * nothing that cleanup needs; jpeg_destroy_decompress frees libjpeg's own. */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */

#include <jerror.h> /* JWRN_JPEG_EOF */
#include <jpeglib.h>

#include "image_formats.h"
#include "sw_error.h"

typedef struct jpeg_read {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr err;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    uint8_t *pixels;
} jpeg_read;

static void on_error_exit(j_common_ptr cinfo)
{
    jpeg_read *r = (jpeg_read *)cinfo; /* cinfo is the struct's first member */
    cinfo->err->format_message(cinfo, r->message);
    longjmp(r->jump, 1);
}

/* Warnings are ignored (libjpeg recovers from them), except the end of the
 * data arriving early: libjpeg would fill the rest of a truncated file with
 * gray and call it an image. */
static void on_emit_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        on_error_exit(cinfo);
}

static gboolean decode(jpeg_read *r, const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out,
                       GError **error)
{
    if (setjmp(r->jump))
        return FALSE;
    jpeg_create_decompress(&r->cinfo);
    jpeg_mem_src(&r->cinfo, data, (unsigned long)len);
    jpeg_read_header(&r->cinfo, TRUE);
    if (!sw__image_check_size(r->cinfo.image_width, r->cinfo.image_height, limits, "JPEG", error))
        return TRUE;
    /* Gray files stay gray; color converts to RGB, as PIL reads it, so a
     * gray read of a color file gets the same luma as any other RGB image
     * (image_decode.c), not libjpeg's Y channel. */
    r->cinfo.out_color_space = r->cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&r->cinfo);
    size_t stride = (size_t)r->cinfo.output_width * (size_t)r->cinfo.output_components;
    r->pixels = g_malloc(stride * r->cinfo.output_height);
    while (r->cinfo.output_scanline < r->cinfo.output_height) {
        JSAMPROW row = r->pixels + stride * r->cinfo.output_scanline;
        jpeg_read_scanlines(&r->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&r->cinfo);
    out->width = (int)r->cinfo.output_width;
    out->height = (int)r->cinfo.output_height;
    out->channels = r->cinfo.output_components;
    out->pixels = r->pixels;
    r->pixels = NULL;
    return TRUE;
}

gboolean sw__jpeg_decode(const void *data, size_t len, const sw_image_limits *limits, sw_pixels *out, GError **error)
{
    jpeg_read *r = g_new0(jpeg_read, 1);
    r->cinfo.err = jpeg_std_error(&r->err);
    r->err.error_exit = on_error_exit;
    r->err.emit_message = on_emit_message;
    GError *local = NULL;
    gboolean read = decode(r, data, len, limits, out, &local);
    jpeg_destroy_decompress(&r->cinfo);
    g_free(r->pixels);
    if (!read)
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "corrupt JPEG file: %s", r->message);
    else if (local)
        g_propagate_error(error, local);
    g_free(r);
    return read && local == NULL;
}
