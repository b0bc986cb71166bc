/* What each stage takes and gives, derived from the export's features.
 *
 * One table per Ludwig feature type says, for every stage boundary, the
 * tensors that cross it: the raw inputs the preprocessor accepts, the
 * preprocessed tensors the predictor takes, the predictor's flattened outputs
 * and the postprocessor's. Stages validate requests against these specs so a
 * client hears "input 'age': expected ..." instead of a TorchScript trace, and
 * ModelMetadata publishes them. */
#ifndef SW_FEATURE_SPEC_H
#define SW_FEATURE_SPEC_H

#include <glib.h>

#include "export.h"
#include "tensor.h"

G_BEGIN_DECLS

#define SW_DTYPE_BIT(d) (1u << (d))

typedef struct sw_tensor_spec {
    char *name;
    char *feature_type; /* the Ludwig type it comes from */
    char *column;       /* the data column of the feature it comes from */
    sw_dtype dtype;     /* advertised in ModelMetadata */
    guint32 accepted;   /* SW_DTYPE_BIT set of datatypes a request may use */
    int ndim;
    int64_t shape[SW_MAX_DIMS]; /* -1: any size (always so for the batch dimension) */
    gboolean required;
    gboolean json; /* BYTES rows of JSON (ragged outputs) */
    /* Date inputs sent as strings: how to read them, and what an empty or
     * unreadable one becomes (NULL: it is an error). */
    char *datetime_format;
    char *fill_value;
    /* Timeseries inputs sent as strings: the feature's tokenizer (NULL: unset,
     * Ludwig's default "space"). */
    char *tokenizer;
    /* Image inputs: the channels files are decoded with (0: the file's own). */
    int image_channels;
    /* The feature's class names by index (sw_feature.labels), for Triton's
     * classification of score outputs; NULL when it has none. */
    char **labels;
} sw_tensor_spec;

void sw_tensor_spec_free(sw_tensor_spec *spec);

typedef enum sw_stage_kind {
    SW_STAGE_PREPROCESSOR,
    SW_STAGE_PREDICTOR,
    SW_STAGE_POSTPROCESSOR,
} sw_stage_kind;

/* "preprocessor", "predictor", "postprocessor". */
const char *sw_stage_kind_name(sw_stage_kind kind);

/* New arrays of sw_tensor_spec (freed with the array) for the inputs and the
 * outputs of `kind`. FALSE with a FAILED_PRECONDITION error when a feature
 * type is not supported. */
gboolean sw_stage_specs(sw_stage_kind kind, const sw_export *export, GPtrArray **inputs, GPtrArray **outputs,
                        GError **error);

/* The spec called `name` in `specs`, or NULL. */
const sw_tensor_spec *sw_spec_find(GPtrArray *specs, const char *name);

/* "BYTES with shape [-1]" or "FP32, FP64 with shape [-1,4]": the accepted
 * datatypes and the shape; newly allocated, for messages. */
char *sw_spec_describe(const sw_tensor_spec *spec);

G_END_DECLS

#endif
