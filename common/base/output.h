/* Output tensors ready to answer with, and the rule that makes them from a
 * stage's output values (docs/DESIGN.md, "Outputs"): a value's TorchScript
 * type alone decides its encoding, never its data. */
#ifndef SW_OUTPUT_H
#define SW_OUTPUT_H

#include <glib.h>

#include "tensor.h"

G_BEGIN_DECLS

/* An output ready for the wire: a tensor plus whether its BYTES elements are
 * JSON documents (the `content_type = "json"` parameter). */
typedef struct sw_output {
    char *name;
    sw_tensor *tensor;
    gboolean json;
} sw_output;

void sw_output_free(sw_output *output);
/* A GPtrArray freeing its sw_output elements. */
GPtrArray *sw_output_array_new(void);

/* Encodes a stage's output value under that rule, by the value's type
 * alone: Tensor -> itself; List[str] -> BYTES [B]; List[List[str]] and
 * List[Tensor] -> BYTES [B] with one JSON array per row. Does not take
 * ownership of `value`; the result shares its buffers where it can. */
sw_output *sw_output_from_value(const sw_value *value, GError **error);

G_END_DECLS

#endif
