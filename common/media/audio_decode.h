/* Encoded audio files (WAV, FLAC, Ogg Vorbis: what libsndfile reads)
 * decoded to float32 waveforms [channels, samples] in [-1, 1] with their
 * sample rate, as torchaudio.load returns them to Ludwig's predict() before
 * it calls the audio preprocessor. Integer samples are scaled by their full
 * range (16-bit: 1/32768); float files keep their values. No resampling.
 *
 * The header is read first: files over the byte limit and files claiming
 * more samples than the sample limit are refused before the samples are
 * allocated. Stateless and reentrant. The caller owns the tensor. */
#ifndef SW_AUDIO_DECODE_H
#define SW_AUDIO_DECODE_H

#include <glib.h>
#include <stdint.h>

#include "tensor.h"

G_BEGIN_DECLS

typedef struct sw_audio_limits {
    size_t max_bytes;    /* largest encoded file; 0: no limit */
    int64_t max_samples; /* most samples, all channels together; 0: no limit */
} sw_audio_limits;

/* Decodes `data` to an FP32 tensor [channels, frames] and its sample rate
 * in Hz. NULL with RESOURCE_EXHAUSTED when a limit is exceeded,
 * INVALID_ARGUMENT when the file is not audio libsndfile reads, or is
 * corrupt or truncated; messages name no input (the caller does). */
sw_tensor *sw_audio_decode(const void *data, size_t len, const sw_audio_limits *limits, int64_t *sample_rate,
                           GError **error);

/* The most samples a waveform may have (all channels) for `limits`; for
 * checking waveforms that arrive already decoded. FALSE with
 * RESOURCE_EXHAUSTED when `samples` is over it. */
gboolean sw_audio_check_samples(int64_t samples, const sw_audio_limits *limits, GError **error);

G_END_DECLS

#endif
