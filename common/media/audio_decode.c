/* Audio files through libsndfile's virtual I/O, reading from memory. */
#include "audio_decode.h"

#include <sndfile.h>
#include <stdio.h>
#include <string.h>

#include "sw_error.h"

typedef struct memory_file {
    const uint8_t *data;
    sf_count_t len, pos;
} memory_file;

static sf_count_t get_length(void *user)
{
    return ((memory_file *)user)->len;
}

static sf_count_t seek(sf_count_t offset, int whence, void *user)
{
    memory_file *f = user;
    sf_count_t base = whence == SEEK_CUR ? f->pos : whence == SEEK_END ? f->len : 0;
    if (offset < -base || offset > f->len - base)
        return -1;
    f->pos = base + offset;
    return f->pos;
}

static sf_count_t read_bytes(void *out, sf_count_t n, void *user)
{
    memory_file *f = user;
    sf_count_t left = f->len - f->pos;
    if (n > left)
        n = left;
    memcpy(out, f->data + f->pos, (size_t)n);
    f->pos += n;
    return n;
}

static sf_count_t write_bytes(const void *in, sf_count_t n, void *user)
{
    (void)in;
    (void)n;
    (void)user;
    return 0; /* opened for reading only */
}

static sf_count_t tell(void *user)
{
    return ((memory_file *)user)->pos;
}

gboolean sw_audio_check_samples(int64_t samples, const sw_audio_limits *limits, GError **error)
{
    if (limits && limits->max_samples > 0 && samples > limits->max_samples) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "%" G_GINT64_FORMAT " samples are more than this server's limit of %" G_GINT64_FORMAT
                    " per waveform (--max-audio-samples)",
                    samples, limits->max_samples);
        return FALSE;
    }
    return TRUE;
}

static gboolean check_header(const SF_INFO *info, const sw_audio_limits *limits, GError **error)
{
    if (info->channels < 1 || info->samplerate < 1 || info->frames < 1) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "audio file has %d channels, %d Hz and %" G_GINT64_FORMAT " frames: no waveform", info->channels,
                    info->samplerate, (int64_t)info->frames);
        return FALSE;
    }
    if (info->frames > G_MAXINT64 / info->channels) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "audio file claims an impossible length");
        return FALSE;
    }
    return sw_audio_check_samples((int64_t)info->frames * info->channels, limits, error);
}

/* A WAV (or AIFF, ...) whose data chunk ends before its header says:
 * libsndfile reads what is there and only logs "data : 200 (should be
 * 160)". Streaming writers put 0 or 0xFFFFFFFF there on purpose: not
 * truncated. Reentrant: the log belongs to `sf`. */
static gboolean data_truncated(SNDFILE *sf)
{
    char log[4096] = {0};
    sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log - 1);
    for (char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long long header = 0, actual = 0;
        if (sscanf(line, "data : %llu (should be %llu)", &header, &actual) == 2 && actual < header &&
            header != 0xffffffffull)
            return TRUE;
    }
    return FALSE;
}

/* Interleaved frames to planar [channels, frames]. */
static sw_tensor *to_planar(const float *frames, int channels, sf_count_t n)
{
    float *out = g_new(float, (size_t)n *(size_t)channels);
    for (int c = 0; c < channels; c++)
        for (sf_count_t i = 0; i < n; i++)
            out[(size_t)c * (size_t)n + (size_t)i] = frames[(size_t)i * (size_t)channels + (size_t)c];
    int64_t shape[2] = {channels, n};
    GBytes *bytes = g_bytes_new_take(out, sizeof(float) * (size_t)n * (size_t)channels);
    sw_tensor *t = sw_tensor_new(SW_DTYPE_FP32, 2, shape, bytes);
    g_bytes_unref(bytes);
    return t;
}

sw_tensor *sw_audio_decode(const void *data, size_t len, const sw_audio_limits *limits, int64_t *sample_rate,
                           GError **error)
{
    if (limits && limits->max_bytes > 0 && len > limits->max_bytes) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED,
                    "audio file of %zu bytes is larger than this server's limit of %zu bytes (--max-audio-mb)", len,
                    limits->max_bytes);
        return NULL;
    }
    SF_VIRTUAL_IO io = {
        .get_filelen = get_length, .seek = seek, .read = read_bytes, .write = write_bytes, .tell = tell};
    memory_file file = {.data = data, .len = (sf_count_t)len};
    SF_INFO info = {0};
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &file);
    if (sf == NULL) {
        /* sf_strerror(NULL) would say why, from a global: not reentrant. */
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "not an audio file this server reads (WAV, FLAC, Ogg), or a corrupt one");
        return NULL;
    }
    sw_tensor *t = NULL;
    if (data_truncated(sf)) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                    "truncated audio file: its samples end before its header says they do");
    } else if (check_header(&info, limits, error)) {
        float *frames = g_new(float, (size_t)info.frames *(size_t)info.channels);
        sf_command(sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
        sf_count_t got = sf_readf_float(sf, frames, info.frames);
        if (got == info.frames)
            t = to_planar(frames, info.channels, got);
        else
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                        "corrupt or truncated audio file: read %" G_GINT64_FORMAT " of the %" G_GINT64_FORMAT
                        " frames its header announces (%s)",
                        (int64_t)got, (int64_t)info.frames, sf_strerror(sf));
        g_free(frames);
        *sample_rate = info.samplerate;
    }
    sf_close(sf);
    return t;
}
