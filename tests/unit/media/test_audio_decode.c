/* audio_decode.h: WAV files (16-bit PCM, float, stereo) decoded to planar
 * float32 in [-1, 1] with their sample rate; corrupt, truncated and
 * oversized files refused. Fixtures are written here with libsndfile. */
#include <glib.h>
#include <glib/gstdio.h>
#include <sndfile.h>
#include <string.h>

#include "audio_decode.h"
#include "sw_error.h"

#define FRAMES 50

/* A WAV file of `format` with `channels` channels at `rate` Hz; frame i of
 * channel c holds level(i, c), as an integer in 16-bit files and as
 * level / 32768 in float files: both read back as sample(i, c). */
static int level(int i, int c)
{
    return (i - 25) * 1000 + c * 300;
}

static float sample(int i, int c)
{
    return (float)level(i, c) / 32768.0f;
}

static GBytes *write_audio(int major, int format, int channels, int rate)
{
    char *path = NULL;
    int fd = g_file_open_tmp("sw-audio-XXXXXX.wav", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = major | format};
    SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, SF_TRUE);
    g_assert_nonnull(sf);
    float frames[FRAMES * 2];
    short levels[FRAMES * 2];
    for (int i = 0; i < FRAMES; i++)
        for (int c = 0; c < channels; c++) {
            frames[i * channels + c] = sample(i, c);
            levels[i * channels + c] = (short)level(i, c);
        }
    sf_count_t written =
        format == SF_FORMAT_FLOAT ? sf_writef_float(sf, frames, FRAMES) : sf_writef_short(sf, levels, FRAMES);
    g_assert_cmpint(written, ==, FRAMES);
    sf_close(sf);
    char *contents = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_unlink(path);
    g_free(path);
    return g_bytes_new_take(contents, len);
}

static GBytes *write_wav(int format, int channels, int rate)
{
    return write_audio(SF_FORMAT_WAV, format, channels, rate);
}

static sw_tensor *decode(GBytes *file, const sw_audio_limits *limits, int64_t *rate, GError **error)
{
    gsize len = 0;
    const void *data = g_bytes_get_data(file, &len);
    return sw_audio_decode(data, len, limits, rate, error);
}

static void assert_waveform(GBytes *file, int channels, int rate)
{
    int64_t got_rate = 0;
    GError *error = NULL;
    sw_tensor *t = decode(file, NULL, &got_rate, &error);
    g_assert_no_error(error);
    g_assert_cmpint(got_rate, ==, rate);
    g_assert_cmpint(t->dtype, ==, SW_DTYPE_FP32);
    g_assert_cmpint(t->ndim, ==, 2);
    g_assert_cmpint(t->shape[0], ==, channels);
    g_assert_cmpint(t->shape[1], ==, FRAMES);
    const float *d = sw_tensor_data(t, NULL);
    /* The samples are multiples of 1/32768 within 16 bits: exact in both
     * 16-bit PCM and float files, as torchaudio.load reads them. */
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < FRAMES; i++)
            g_assert_cmpfloat(d[c * FRAMES + i], ==, sample(i, c));
    sw_tensor_free(t);
}

static void test_pcm16_mono(void)
{
    GBytes *file = write_wav(SF_FORMAT_PCM_16, 1, 16000);
    assert_waveform(file, 1, 16000);
    g_bytes_unref(file);
}

static void test_float_stereo_is_planar(void)
{
    GBytes *file = write_wav(SF_FORMAT_FLOAT, 2, 44100);
    assert_waveform(file, 2, 44100);
    g_bytes_unref(file);
}

static void test_pcm16_stereo_is_planar(void)
{
    GBytes *file = write_wav(SF_FORMAT_PCM_16, 2, 8000);
    assert_waveform(file, 2, 8000);
    g_bytes_unref(file);
}

/* FLAC is lossless: the same samples come back, from libsndfile's other
 * decoder behind the same call. */
static void test_flac_stereo(void)
{
    GBytes *file = write_audio(SF_FORMAT_FLAC, SF_FORMAT_PCM_16, 2, 22050);
    assert_waveform(file, 2, 22050);
    g_bytes_unref(file);
}

static void assert_refused(const void *data, size_t len, const sw_audio_limits *limits, int code, const char *fragment)
{
    int64_t rate = 0;
    GError *error = NULL;
    g_assert_null(sw_audio_decode(data, len, limits, &rate, &error));
    g_assert_error(error, SW_ERROR, code);
    if (strstr(error->message, fragment) == NULL)
        g_error("'%s' lacks '%s'", error->message, fragment);
    g_error_free(error);
}

static void test_corrupt_and_truncated_files_are_refused(void)
{
    GBytes *file = write_wav(SF_FORMAT_PCM_16, 1, 16000);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(file, &len);
    assert_refused("not audio at all, just some text", 32, NULL, SW_CODE_INVALID_ARGUMENT, "not an audio file");
    assert_refused("", 0, NULL, SW_CODE_INVALID_ARGUMENT, "not an audio file");
    assert_refused(data, 30, NULL, SW_CODE_INVALID_ARGUMENT, "audio file");      /* half a header */
    assert_refused(data, len - 40, NULL, SW_CODE_INVALID_ARGUMENT, "truncated"); /* samples cut */
    g_bytes_unref(file);
}

static void test_limits_apply(void)
{
    GBytes *file = write_wav(SF_FORMAT_PCM_16, 2, 16000);
    gsize len = 0;
    const void *data = g_bytes_get_data(file, &len);
    sw_audio_limits samples = {.max_samples = 2 * FRAMES - 1};
    assert_refused(data, len, &samples, SW_CODE_RESOURCE_EXHAUSTED, "100 samples");
    sw_audio_limits bytes = {.max_bytes = len - 1};
    assert_refused(data, len, &bytes, SW_CODE_RESOURCE_EXHAUSTED, "bytes");
    sw_audio_limits exact = {.max_bytes = len, .max_samples = 2 * FRAMES};
    int64_t rate = 0;
    GError *error = NULL;
    sw_tensor *t = sw_audio_decode(data, len, &exact, &rate, &error);
    g_assert_no_error(error);
    sw_tensor_free(t);
    g_bytes_unref(file);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/audio/pcm16-mono", test_pcm16_mono);
    g_test_add_func("/audio/float-stereo-is-planar", test_float_stereo_is_planar);
    g_test_add_func("/audio/pcm16-stereo-is-planar", test_pcm16_stereo_is_planar);
    g_test_add_func("/audio/flac-stereo", test_flac_stereo);
    g_test_add_func("/audio/corrupt-and-truncated-files-are-refused", test_corrupt_and_truncated_files_are_refused);
    g_test_add_func("/audio/limits-apply", test_limits_apply);
    return g_test_run();
}
