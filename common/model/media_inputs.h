/* Image and audio inputs of a preprocessor, checked and decoded into what
 * Ludwig's preprocessors take (List[Tensor] of [C,H,W] uint8 images, a
 * [B,C,H,W] uint8 Tensor, List[Tuple[Tensor, int]] of waveforms and their
 * sample rates). Private to the model layer (stage_inputs.c calls it).
 * Reentrant: the stage is only read. */
#ifndef SW_MEDIA_INPUTS_H
#define SW_MEDIA_INPUTS_H

#include <glib.h>

#include "stage.h"

G_BEGIN_DECLS

/* TRUE when `spec` is an image or audio input of a preprocessor. */
gboolean sw__is_media_input(const sw_stage *stage, const sw_tensor_spec *spec);

/* The value forward receives for the request input `in` of the media input
 * `spec` (new), or NULL with INVALID_ARGUMENT (a wrong datatype or shape, a
 * corrupt file, a missing sample_rate) or RESOURCE_EXHAUSTED (a file or
 * waveform over the stage's limits), naming the input and the row. */
sw_value *sw__media_input(const sw_stage *stage, const sw_tensor_spec *spec, const sw_value *in, GError **error);

G_END_DECLS

#endif
