/* Fuzzes image and audio files through the media decoders (sw_image_decode,
 * sw_audio_decode): libpng's and libjpeg's longjmp error paths, libwebp's
 * and libsndfile's status paths, the header checks before allocation. The
 * input:
 *   byte 0      bit 0 clear: an image, read with (byte 0 >> 1) % 5 channels
 *               (0: the file's own); set: an audio file
 *   the rest    the file.
 * With small limits (4096 pixels, 100,000 samples) every header claiming
 * more must be refused before allocating. A result must have the channels
 * asked for and stay within the limits; a refusal must be INVALID_ARGUMENT
 * or RESOURCE_EXHAUSTED with a message. ASan sees leaks on every path. */
#include "audio_decode.h"
#include "fuzz_support.h"
#include "image_decode.h"
#include "sw_error.h"

#define MAX_PIXELS 4096
#define MAX_SAMPLES 100000

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    return 0;
}

static void check_refusal(const GError *error)
{
    FUZZ_CHECK(error != NULL, "no result and no error");
    FUZZ_CHECK(error->code == SW_CODE_INVALID_ARGUMENT || error->code == SW_CODE_RESOURCE_EXHAUSTED, "code %d: %s",
               error->code, error->message);
    FUZZ_CHECK(error->message[0] != '\0', "empty message");
}

static void fuzz_image(const uint8_t *data, size_t size, int channels)
{
    sw_image_limits limits = {.max_bytes = 1 << 20, .max_pixels = MAX_PIXELS};
    GError *error = NULL;
    sw_tensor *t = sw_image_decode(data, size, channels, &limits, &error);
    if (t == NULL) {
        check_refusal(error);
        g_error_free(error);
        return;
    }
    FUZZ_CHECK(error == NULL, "a result and an error");
    FUZZ_CHECK(t->dtype == SW_DTYPE_UINT8 && t->ndim == 3, "not [C,H,W] uint8");
    FUZZ_CHECK(channels ? t->shape[0] == channels : t->shape[0] >= 1 && t->shape[0] <= 4,
               "%" G_GINT64_FORMAT " channels for %d", t->shape[0], channels);
    FUZZ_CHECK(t->shape[1] >= 1 && t->shape[2] >= 1 && t->shape[1] * t->shape[2] <= MAX_PIXELS,
               "%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " pixels", t->shape[2], t->shape[1]);
    sw_tensor_free(t);
}

static void fuzz_audio(const uint8_t *data, size_t size)
{
    sw_audio_limits limits = {.max_bytes = 1 << 20, .max_samples = MAX_SAMPLES};
    GError *error = NULL;
    int64_t rate = 0;
    sw_tensor *t = sw_audio_decode(data, size, &limits, &rate, &error);
    if (t == NULL) {
        check_refusal(error);
        g_error_free(error);
        return;
    }
    FUZZ_CHECK(error == NULL, "a result and an error");
    FUZZ_CHECK(t->dtype == SW_DTYPE_FP32 && t->ndim == 2, "not [C,T] float32");
    FUZZ_CHECK(t->shape[0] >= 1 && t->shape[1] >= 1 && t->shape[0] * t->shape[1] <= MAX_SAMPLES,
               "%" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " samples", t->shape[0], t->shape[1]);
    FUZZ_CHECK(rate >= 1, "rate %" G_GINT64_FORMAT, rate);
    sw_tensor_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_audio(data + 1, size - 1);
    else
        fuzz_image(data + 1, size - 1, (data[0] >> 1) % 5);
    return 0;
}
