/* A Ludwig TorchScript export folder: where its three modules are and what
 * its features are, read from model_hyperparameters.json and
 * training_set_metadata.json (docs/DESIGN.md, "Ludwig exports", describes
 * the folder). Not thread-safe to build; immutable once loaded. */
#ifndef SW_EXPORT_H
#define SW_EXPORT_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct sw_feature {
    char *name;
    char *type;   /* Ludwig type: "number", "category", "text", ... */
    char *column; /* the data column; the name when the config has none */
    /* Facts from the training set metadata; 0 or NULL where unknown. */
    int64_t vocab_size;          /* category, set, bag, text, sequence */
    int64_t max_sequence_length; /* text, sequence */
    int64_t vector_size;         /* vector */
    int64_t max_timeseries_length;
    /* image: the size the preprocessor resizes to, and the channels files
     * are decoded with (Ludwig's preprocessing.num_channels) */
    int64_t image_height, image_width, image_channels;
    /* audio: the preprocessed tensor is [B, audio_max_length, audio_feature_dim];
     * the training set's sample rate is a hint (nothing resamples) */
    int64_t audio_max_length, audio_feature_dim, audio_sample_rate;
    gboolean has_bool2str; /* binary outputs: predictions are strings */
    char *datetime_format; /* date: strptime-style, NULL when unset */
    char *tokenizer;       /* preprocessing.tokenizer, NULL when unset */
    char *fill_value;      /* computed_fill_value as text, NULL when unset */
    /* The class names by index: the metadata's idx2str (category) or
     * bool2str (binary: false, true); NULL when it has none. */
    char **labels;
} sw_feature;

typedef struct sw_export {
    char *dir;
    char *name; /* the folder's base name: the default model name */
    char *preprocessor_path;
    char *predictor_path;
    char *predictor_device; /* the device suffix of the predictor file: "cpu", "cuda", "cuda:0" */
    char *postprocessor_path;
    GPtrArray *input_features;  /* sw_feature*, config order */
    GPtrArray *output_features; /* sw_feature*, config order */
} sw_export;

/* Reads the export folder `dir`. Only the JSON files must exist: a stage
 * checks for its own module file when it loads it (a --model_only export has
 * just the predictor). Returns NULL with a FAILED_PRECONDITION error naming
 * the file and the problem. Free with sw_export_free(). */
sw_export *sw_export_load(const char *dir, GError **error);
void sw_export_free(sw_export *export);

G_END_DECLS

#endif
