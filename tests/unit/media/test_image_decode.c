/* image_decode.h: PNG, JPEG and WebP files decoded to [C,H,W] uint8 with the
 * channels asked for; corrupt, truncated and oversized files refused with
 * the right code, the oversized ones from their header alone. Fixtures are
 * written here with the same libraries' encoders. */
#include <stdio.h> /* before jpeglib.h, which needs FILE */

#include <glib.h>
#include <jpeglib.h>
#include <png.h>
#include <string.h>
#include <webp/encode.h>
#include <zlib.h>

#include "image_decode.h"
#include "sw_error.h"

#define W 5
#define H 3

/* A deterministic test pattern: pixel (x, y) channel c. */
static uint8_t pattern(int x, int y, int c)
{
    return (uint8_t)(x * 40 + y * 70 + c * 25 + 3);
}

static void append_png_bytes(png_structp png, png_bytep data, size_t n)
{
    g_byte_array_append(png_get_io_ptr(png), data, (guint)n);
}

static void flush_nothing(png_structp png)
{
    (void)png;
}

/* A W x H PNG of `color_type` and `depth`, samples from pattern()
 * (16-bit samples: the pattern value in the high byte, 0x5a in the low). */
static GByteArray *write_png(int color_type, int depth)
{
    GByteArray *out = g_byte_array_new();
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    g_assert_cmpint(setjmp(png_jmpbuf(png)), ==, 0);
    png_set_write_fn(png, out, append_png_bytes, flush_nothing);
    png_set_IHDR(png, info, W, H, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    int channels = color_type == PNG_COLOR_TYPE_GRAY         ? 1
                   : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                   : color_type == PNG_COLOR_TYPE_RGB        ? 3
                   : color_type == PNG_COLOR_TYPE_RGBA       ? 4
                                                             : 1;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color palette[4] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 0}, {7, 8, 9}};
        png_set_PLTE(png, info, palette, 4);
    }
    png_write_info(png, info);
    int bytes = depth / 8;
    for (int y = 0; y < H; y++) {
        uint8_t row[W * 4 * 2];
        for (int x = 0; x < W; x++)
            for (int c = 0; c < channels; c++) {
                uint8_t v = color_type == PNG_COLOR_TYPE_PALETTE ? (uint8_t)((x + y) % 4) : pattern(x, y, c);
                row[(x * channels + c) * bytes] = v;
                if (bytes == 2)
                    row[(x * channels + c) * bytes + 1] = 0x5a;
            }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return out;
}

static sw_tensor *decode(const GByteArray *file, int channels, GError **error)
{
    sw_image_limits limits = {.max_bytes = 1 << 20, .max_pixels = 1000000};
    return sw_image_decode(file->data, file->len, channels, &limits, error);
}

static uint8_t at(const sw_tensor *t, int c, int y, int x)
{
    const uint8_t *d = sw_tensor_data(t, NULL);
    return d[(c * t->shape[1] + y) * t->shape[2] + x];
}

static void assert_shape(const sw_tensor *t, int c)
{
    g_assert_cmpint(t->dtype, ==, SW_DTYPE_UINT8);
    g_assert_cmpint(t->ndim, ==, 3);
    g_assert_cmpint(t->shape[0], ==, c);
    g_assert_cmpint(t->shape[1], ==, H);
    g_assert_cmpint(t->shape[2], ==, W);
}

/* PIL's convert("L") in its fixed point: 299/1000, 587/1000, 114/1000. */
static uint8_t luma(uint8_t r, uint8_t g, uint8_t b)
{
    return (uint8_t)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

static void test_png_rgb_in_every_mode(void)
{
    GByteArray *file = write_png(PNG_COLOR_TYPE_RGB, 8);
    GError *error = NULL;
    sw_tensor *rgb = decode(file, 3, &error), *gray = decode(file, 1, &error), *rgba = decode(file, 4, &error),
              *own = decode(file, 0, &error);
    g_assert_no_error(error);
    assert_shape(rgb, 3);
    assert_shape(gray, 1);
    assert_shape(rgba, 4);
    assert_shape(own, 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            for (int c = 0; c < 3; c++) {
                g_assert_cmpuint(at(rgb, c, y, x), ==, pattern(x, y, c));
                g_assert_cmpuint(at(rgba, c, y, x), ==, pattern(x, y, c));
                g_assert_cmpuint(at(own, c, y, x), ==, pattern(x, y, c));
            }
            g_assert_cmpuint(at(rgba, 3, y, x), ==, 255);
            g_assert_cmpuint(at(gray, 0, y, x), ==, luma(pattern(x, y, 0), pattern(x, y, 1), pattern(x, y, 2)));
        }
    sw_tensor_free(rgb);
    sw_tensor_free(gray);
    sw_tensor_free(rgba);
    sw_tensor_free(own);
    g_byte_array_unref(file);
}

static void test_png_rgba_drops_or_keeps_alpha(void)
{
    GByteArray *file = write_png(PNG_COLOR_TYPE_RGBA, 8);
    GError *error = NULL;
    sw_tensor *rgb = decode(file, 3, &error), *rgba = decode(file, 4, &error);
    g_assert_no_error(error);
    assert_shape(rgb, 3);
    for (int c = 0; c < 4; c++)
        g_assert_cmpuint(at(rgba, c, 2, 4), ==, pattern(4, 2, c));
    g_assert_cmpuint(at(rgb, 2, 1, 3), ==, pattern(3, 1, 2));
    sw_tensor_free(rgb);
    sw_tensor_free(rgba);
    g_byte_array_unref(file);
}

static void test_png_gray_is_replicated(void)
{
    GByteArray *file = write_png(PNG_COLOR_TYPE_GRAY, 8);
    GError *error = NULL;
    sw_tensor *gray = decode(file, 1, &error), *rgb = decode(file, 3, &error);
    g_assert_no_error(error);
    for (int c = 0; c < 3; c++)
        g_assert_cmpuint(at(rgb, c, 1, 2), ==, pattern(2, 1, 0));
    g_assert_cmpuint(at(gray, 0, 2, 4), ==, pattern(4, 2, 0));
    sw_tensor_free(gray);
    sw_tensor_free(rgb);
    g_byte_array_unref(file);
}

static void test_png_palette_is_expanded(void)
{
    GByteArray *file = write_png(PNG_COLOR_TYPE_PALETTE, 8);
    GError *error = NULL;
    sw_tensor *rgb = decode(file, 3, &error);
    g_assert_no_error(error);
    /* (x + y) % 4 == 1 at (1, 0): palette entry {200, 100, 50} */
    g_assert_cmpuint(at(rgb, 0, 0, 1), ==, 200);
    g_assert_cmpuint(at(rgb, 1, 0, 1), ==, 100);
    g_assert_cmpuint(at(rgb, 2, 0, 1), ==, 50);
    g_assert_cmpuint(at(rgb, 1, 0, 2), ==, 255); /* entry 2 {0, 255, 0} */
    sw_tensor_free(rgb);
    g_byte_array_unref(file);
}

static void test_png_16_bit_keeps_the_high_byte(void)
{
    GByteArray *file = write_png(PNG_COLOR_TYPE_RGB, 16);
    GError *error = NULL;
    sw_tensor *rgb = decode(file, 3, &error);
    g_assert_no_error(error);
    assert_shape(rgb, 3);
    for (int c = 0; c < 3; c++)
        g_assert_cmpuint(at(rgb, c, 2, 3), ==, pattern(3, 2, c));
    sw_tensor_free(rgb);
    g_byte_array_unref(file);
}

/* A W x H JPEG (quality 100, no subsampling): RGB or gray. */
static GByteArray *write_jpeg(gboolean gray)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    unsigned char *mem = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&cinfo, &mem, &size);
    cinfo.image_width = W;
    cinfo.image_height = H;
    cinfo.input_components = gray ? 1 : 3;
    cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 100, TRUE);
    for (int i = 0; i < cinfo.num_components; i++)
        cinfo.comp_info[i].h_samp_factor = cinfo.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < H) {
        uint8_t row[W * 3];
        for (int x = 0; x < W; x++)
            for (int c = 0; c < cinfo.input_components; c++)
                row[x * cinfo.input_components + c] = pattern((int)cinfo.next_scanline, x, c);
        JSAMPROW r = row;
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, mem, (guint)size);
    free(mem);
    return out;
}

static void test_jpeg_rgb_and_gray(void)
{
    GByteArray *file = write_jpeg(FALSE), *gray_file = write_jpeg(TRUE);
    GError *error = NULL;
    sw_tensor *rgb = decode(file, 3, &error), *gray = decode(file, 1, &error), *g3 = decode(gray_file, 3, &error);
    g_assert_no_error(error);
    assert_shape(rgb, 3);
    assert_shape(gray, 1);
    assert_shape(g3, 3);
    /* Lossy even at quality 100: within a few levels. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            for (int c = 0; c < 3; c++)
                g_assert_cmpint(ABS((int)at(rgb, c, y, x) - pattern(y, x, c)), <=, 4);
            int want = luma(pattern(y, x, 0), pattern(y, x, 1), pattern(y, x, 2));
            g_assert_cmpint(ABS((int)at(gray, 0, y, x) - want), <=, 4);
            g_assert_cmpuint(at(g3, 0, y, x), ==, at(g3, 2, y, x));
        }
    sw_tensor_free(rgb);
    sw_tensor_free(gray);
    sw_tensor_free(g3);
    g_byte_array_unref(file);
    g_byte_array_unref(gray_file);
}

static void test_webp_lossless_is_exact(void)
{
    uint8_t rgba[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++)
                rgba[(y * W + x) * 4 + c] = pattern(x, y, c);
    uint8_t *encoded = NULL;
    size_t size = WebPEncodeLosslessRGBA(rgba, W, H, W * 4, &encoded);
    g_assert_cmpuint(size, >, 0);
    GByteArray *file = g_byte_array_new();
    g_byte_array_append(file, encoded, (guint)size);
    WebPFree(encoded);
    GError *error = NULL;
    sw_tensor *t = decode(file, 4, &error);
    g_assert_no_error(error);
    assert_shape(t, 4);
    for (int c = 0; c < 4; c++)
        g_assert_cmpuint(at(t, c, 2, 1), ==, pattern(1, 2, c));
    sw_tensor_free(t);
    g_byte_array_unref(file);
}

static void assert_refused(const GByteArray *file, int code, const char *fragment)
{
    GError *error = NULL;
    sw_tensor *t = decode(file, 3, &error);
    g_assert_null(t);
    g_assert_error(error, SW_ERROR, code);
    if (strstr(error->message, fragment) == NULL)
        g_error("'%s' lacks '%s'", error->message, fragment);
    g_error_free(error);
}

static void test_truncated_and_corrupt_files_are_refused(void)
{
    GByteArray *png = write_png(PNG_COLOR_TYPE_RGB, 8), *jpeg = write_jpeg(FALSE);
    GByteArray *cut = g_byte_array_new();
    g_byte_array_append(cut, png->data, png->len - 20);
    assert_refused(cut, SW_CODE_INVALID_ARGUMENT, "PNG");
    g_byte_array_set_size(cut, 0);
    g_byte_array_append(cut, jpeg->data, jpeg->len / 2);
    assert_refused(cut, SW_CODE_INVALID_ARGUMENT, "JPEG");
    /* A flipped byte in the PNG's compressed data breaks its CRC. */
    png->data[png->len - 20] ^= 0xff;
    assert_refused(png, SW_CODE_INVALID_ARGUMENT, "corrupt PNG");
    g_byte_array_set_size(cut, 0);
    g_byte_array_append(cut, (const guint8 *)"GIF89a not supported", 20);
    assert_refused(cut, SW_CODE_INVALID_ARGUMENT, "not an image file");
    g_byte_array_set_size(cut, 0);
    assert_refused(cut, SW_CODE_INVALID_ARGUMENT, "not an image file");
    g_byte_array_set_size(cut, 0);
    g_byte_array_append(cut, (const guint8 *)"RIFF\x10\0\0\0WEBPVP8 garbage", 24);
    assert_refused(cut, SW_CODE_INVALID_ARGUMENT, "WebP");
    g_byte_array_unref(cut);
    g_byte_array_unref(png);
    g_byte_array_unref(jpeg);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A PNG of 45 bytes whose header claims 999,999 x 999,999 RGBA pixels (4 TB
 * decoded): refused from the header, or g_malloc would abort the test. */
static void test_pixel_bomb_is_refused_from_the_header(void)
{
    uint8_t file[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *ihdr = file + 8;
    put_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, 999999);
    put_be32(ihdr + 12, 999999);
    ihdr[16] = 8; /* depth */
    ihdr[17] = 6; /* RGBA */
    put_be32(ihdr + 21, (uint32_t)crc32(0, ihdr + 4, 17));
    uint8_t *idat = ihdr + 25;
    memcpy(idat + 4, "IDAT", 4);
    put_be32(idat + 8, (uint32_t)crc32(0, idat + 4, 4));
    GByteArray *bomb = g_byte_array_new();
    g_byte_array_append(bomb, file, sizeof file);
    assert_refused(bomb, SW_CODE_RESOURCE_EXHAUSTED, "999999x999999 pixels");

    /* The same for JPEG: a real file whose frame header is patched. */
    GByteArray *jpeg = write_jpeg(FALSE);
    for (guint i = 0; i + 8 < jpeg->len; i++)
        if (jpeg->data[i] == 0xff && jpeg->data[i + 1] == 0xc0) {
            /* 65,000 x 65,000: under libjpeg's own 65,500 a side */
            jpeg->data[i + 5] = jpeg->data[i + 7] = 0xfd;
            jpeg->data[i + 6] = jpeg->data[i + 8] = 0xe8;
            break;
        }
    assert_refused(jpeg, SW_CODE_RESOURCE_EXHAUSTED, "65000x65000 pixels");
    g_byte_array_unref(jpeg);
    g_byte_array_unref(bomb);
}

static void test_limits_apply(void)
{
    GByteArray *png = write_png(PNG_COLOR_TYPE_RGB, 8);
    GError *error = NULL;
    sw_image_limits pixels = {.max_pixels = W * H - 1};
    g_assert_null(sw_image_decode(png->data, png->len, 3, &pixels, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED);
    g_clear_error(&error);
    sw_image_limits bytes = {.max_bytes = png->len - 1};
    g_assert_null(sw_image_decode(png->data, png->len, 3, &bytes, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED);
    g_clear_error(&error);
    sw_image_limits exact = {.max_bytes = png->len, .max_pixels = W * H};
    sw_tensor *t = sw_image_decode(png->data, png->len, 3, &exact, &error);
    g_assert_no_error(error);
    sw_tensor_free(t);
    g_byte_array_unref(png);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/image/png-rgb-in-every-mode", test_png_rgb_in_every_mode);
    g_test_add_func("/image/png-rgba-drops-or-keeps-alpha", test_png_rgba_drops_or_keeps_alpha);
    g_test_add_func("/image/png-gray-is-replicated", test_png_gray_is_replicated);
    g_test_add_func("/image/png-palette-is-expanded", test_png_palette_is_expanded);
    g_test_add_func("/image/png-16-bit-keeps-the-high-byte", test_png_16_bit_keeps_the_high_byte);
    g_test_add_func("/image/jpeg-rgb-and-gray", test_jpeg_rgb_and_gray);
    g_test_add_func("/image/webp-lossless-is-exact", test_webp_lossless_is_exact);
    g_test_add_func("/image/truncated-and-corrupt-files-are-refused", test_truncated_and_corrupt_files_are_refused);
    g_test_add_func("/image/pixel-bomb-is-refused-from-the-header", test_pixel_bomb_is_refused_from_the_header);
    g_test_add_func("/image/limits-apply", test_limits_apply);
    return g_test_run();
}
