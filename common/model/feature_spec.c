#include "feature_spec.h"

#include <string.h>

#include "sw_error.h"

/* Symbolic dimensions resolved from the feature's metadata. */
enum {
    DIM_ANY = -1,
    DIM_VOCAB = -2,
    DIM_SEQUENCE = -3,
    DIM_VECTOR = -4,
    DIM_TIMESERIES = -5,
    DIM_IMAGE_CHANNELS = -6,
    DIM_IMAGE_HEIGHT = -7,
    DIM_IMAGE_WIDTH = -8,
    DIM_AUDIO_LENGTH = -9,
    DIM_AUDIO_FEATURES = -10,
};

/* Binary predictions are strings when the metadata has bool2str, else BOOL. */
#define DTYPE_BOOL_OR_STRINGS SW_DTYPE_INVALID

#define B(d) SW_DTYPE_BIT(SW_DTYPE_##d)
#define NUMERIC                                                                                                        \
    (B(BOOL) | B(UINT8) | B(UINT16) | B(UINT32) | B(UINT64) | B(INT8) | B(INT16) | B(INT32) | B(INT64) | B(FP16) |     \
     B(BF16) | B(FP32) | B(FP64))
#define FLOATS (B(FP16) | B(BF16) | B(FP32) | B(FP64))
#define INDEXES (B(INT32) | B(INT64))

typedef struct spec_row {
    const char *key;
    sw_dtype dtype;
    guint32 accepted; /* 0: just dtype */
    int ndim;
    int dims[4]; /* the batch dimension is implicit and first */
    gboolean optional;
    gboolean json;
} spec_row;

typedef struct type_table {
    const char *type;
    spec_row raw;
    spec_row preprocessed;
    spec_row predicted[4];
    spec_row postprocessed[4];
} type_table;

/* Table rows by field name, so a field added to spec_row cannot shift the
 * others. ROW: a feature's raw or preprocessed tensor; KEY: a required
 * flattened output key; OPT: an optional one; JSON_ROWS: a ragged output. */
#define ROW(dt, acc, n, ...)                                                                                           \
    {                                                                                                                  \
        .dtype = SW_DTYPE_##dt, .accepted = (acc), .ndim = (n), .dims = { __VA_ARGS__ }                                \
    }
#define KEY(k, dt, n, ...)                                                                                             \
    {                                                                                                                  \
        .key = (k), .dtype = SW_DTYPE_##dt, .ndim = (n), .dims = { __VA_ARGS__ }                                       \
    }
#define OPT(k, dt, n, ...)                                                                                             \
    {                                                                                                                  \
        .key = (k), .dtype = SW_DTYPE_##dt, .ndim = (n), .dims = {__VA_ARGS__}, .optional = TRUE                       \
    }
#define JSON_ROWS(k)                                                                                                   \
    {                                                                                                                  \
        .key = (k), .dtype = SW_DTYPE_BYTES, .ndim = 1, .optional = TRUE, .json = TRUE                                 \
    }

/* Keys the postprocessor always reads are required; the rest are optional
 * so that predictors exporting extra or fewer keys still pass. */
static const type_table type_tables[] = {
    {.type = "number",
     .raw = ROW(FP32, NUMERIC, 1, 0),
     .preprocessed = ROW(FP32, 0, 1, 0),
     .predicted = {KEY("predictions", FP32, 1, 0), OPT("logits", FP32, 1, 0)},
     .postprocessed = {KEY("predictions", FP32, 1, 0)}},
    {.type = "binary",
     .raw = ROW(BYTES, NUMERIC | B(BYTES), 1, 0),
     .preprocessed = ROW(FP32, 0, 1, 0),
     .predicted = {KEY("predictions", BOOL, 1, 0), KEY("probabilities", FP32, 1, 0), OPT("logits", FP32, 1, 0)},
     .postprocessed = {{.key = "predictions", .dtype = DTYPE_BOOL_OR_STRINGS, .ndim = 1},
                       KEY("probabilities", FP32, 2, 2)}},
    {.type = "category",
     .raw = ROW(BYTES, 0, 1, 0),
     .preprocessed = ROW(INT32, INDEXES, 1, 0),
     .predicted = {KEY("predictions", INT64, 1, 0), KEY("probabilities", FP32, 2, DIM_VOCAB),
                   OPT("logits", FP32, 2, DIM_VOCAB)},
     .postprocessed = {KEY("predictions", BYTES, 1, 0), KEY("probabilities", FP32, 2, DIM_VOCAB)}},
    {.type = "set",
     .raw = ROW(BYTES, 0, 1, 0),
     .preprocessed = ROW(FP32, 0, 2, DIM_VOCAB),
     .predicted = {KEY("predictions", INT64, 2, DIM_VOCAB), KEY("probabilities", FP32, 2, DIM_VOCAB),
                   OPT("logits", FP32, 2, DIM_VOCAB)},
     .postprocessed = {JSON_ROWS("predictions"), JSON_ROWS("probabilities")}},
    {.type = "bag",
     .raw = ROW(BYTES, 0, 1, 0),
     .preprocessed = ROW(FP32, 0, 2, DIM_VOCAB),
     .predicted = {{0}},
     .postprocessed = {{0}}},
    {.type = "text",
     .raw = ROW(BYTES, 0, 1, 0),
     .preprocessed = ROW(INT64, INDEXES, 2, DIM_SEQUENCE),
     .predicted = {KEY("predictions", INT64, 2, DIM_SEQUENCE), KEY("probabilities", FP32, 3, DIM_SEQUENCE, DIM_VOCAB),
                   OPT("logits", FP32, 3, DIM_SEQUENCE, DIM_VOCAB)},
     .postprocessed = {JSON_ROWS("predictions"), OPT("probabilities", FP32, 2, DIM_SEQUENCE),
                       OPT("probability", FP32, 1, 0)}},
    {.type = "sequence",
     .raw = ROW(BYTES, 0, 1, 0),
     .preprocessed = ROW(INT64, INDEXES, 2, DIM_SEQUENCE),
     .predicted = {KEY("predictions", INT64, 2, DIM_SEQUENCE), KEY("probabilities", FP32, 3, DIM_SEQUENCE, DIM_VOCAB),
                   OPT("logits", FP32, 3, DIM_SEQUENCE, DIM_VOCAB)},
     .postprocessed = {JSON_ROWS("predictions"), OPT("probabilities", FP32, 2, DIM_SEQUENCE),
                       OPT("probability", FP32, 1, 0)}},
    {.type = "vector",
     .raw = ROW(FP32, FLOATS | B(BYTES), 2, DIM_VECTOR),
     .preprocessed = ROW(FP32, 0, 2, DIM_VECTOR),
     .predicted = {KEY("predictions", FP32, 2, DIM_VECTOR), OPT("logits", FP32, 2, DIM_VECTOR)},
     .postprocessed = {KEY("predictions", FP32, 2, DIM_VECTOR), OPT("logits", FP32, 2, DIM_VECTOR)}},
    /* Timeseries inputs are advertised in their tensor form, as vectors are:
     * FP32 or FP64 [B,T] rows (sent as List[Tensor]), or one string of
     * whitespace-separated floats per row. As outputs (Ludwig's
     * TimeseriesOutputFeature) they are vectors of `horizon` floats. */
    {.type = "timeseries",
     .raw = ROW(FP32, B(FP32) | B(FP64) | B(BYTES), 2, DIM_TIMESERIES),
     .preprocessed = ROW(FP32, 0, 2, DIM_TIMESERIES),
     .predicted = {KEY("predictions", FP32, 2, DIM_TIMESERIES), OPT("logits", FP32, 2, DIM_TIMESERIES)},
     .postprocessed = {KEY("predictions", FP32, 2, DIM_TIMESERIES), OPT("logits", FP32, 2, DIM_TIMESERIES)}},
    {.type = "date",
     .raw = ROW(INT64, INDEXES | B(BYTES), 2, 9),
     .preprocessed = ROW(INT32, INDEXES, 2, 9),
     .predicted = {{0}},
     .postprocessed = {{0}}},
    /* Media: files as BYTES rows, or tensors already decoded (UINT8
     * [B,C,H,W] images, FP32 waveforms with a sample_rate parameter);
     * media_inputs.c checks and decodes them. */
    {.type = "image",
     .raw = ROW(BYTES, B(BYTES) | B(UINT8), 1, 0),
     .preprocessed = ROW(FP32, 0, 4, DIM_IMAGE_CHANNELS, DIM_IMAGE_HEIGHT, DIM_IMAGE_WIDTH),
     .predicted = {{0}},
     .postprocessed = {{0}}},
    {.type = "audio",
     .raw = ROW(BYTES, B(BYTES) | B(FP32), 1, 0),
     .preprocessed = ROW(FP32, 0, 3, DIM_AUDIO_LENGTH, DIM_AUDIO_FEATURES),
     .predicted = {{0}},
     .postprocessed = {{0}}},
    /* h3 cell indexes: INT64 as the preprocessor takes them, UINT64 below
     * 2^63, or decimal strings (both become INT64 before forward). */
    {.type = "h3",
     .raw = ROW(INT64, INDEXES | B(UINT64) | B(BYTES), 1, 0),
     .preprocessed = ROW(UINT8, 0, 2, 19),
     .predicted = {{0}},
     .postprocessed = {{0}}},
};

static const type_table *table_for(const char *type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(type_tables); i++)
        if (strcmp(type_tables[i].type, type) == 0)
            return &type_tables[i];
    return NULL;
}

void sw_tensor_spec_free(sw_tensor_spec *spec)
{
    if (spec == NULL)
        return;
    g_free(spec->name);
    g_free(spec->feature_type);
    g_free(spec->column);
    g_free(spec->datetime_format);
    g_free(spec->tokenizer);
    g_free(spec->fill_value);
    g_strfreev(spec->labels);
    g_free(spec);
}

const char *sw_stage_kind_name(sw_stage_kind kind)
{
    switch (kind) {
    case SW_STAGE_PREPROCESSOR: return "preprocessor";
    case SW_STAGE_PREDICTOR: return "predictor";
    case SW_STAGE_POSTPROCESSOR: return "postprocessor";
    }
    return "stage";
}

static int64_t resolve_dim(int dim, const sw_feature *f)
{
    int64_t v = dim;
    switch (dim) {
    case DIM_VOCAB: v = f->vocab_size; break;
    case DIM_SEQUENCE: v = f->max_sequence_length; break;
    case DIM_VECTOR: v = f->vector_size; break;
    case DIM_TIMESERIES: v = f->max_timeseries_length; break;
    case DIM_IMAGE_CHANNELS: v = f->image_channels; break;
    case DIM_IMAGE_HEIGHT: v = f->image_height; break;
    case DIM_IMAGE_WIDTH: v = f->image_width; break;
    case DIM_AUDIO_LENGTH: v = f->audio_max_length; break;
    case DIM_AUDIO_FEATURES: v = f->audio_feature_dim; break;
    default: return dim;
    }
    return v > 0 ? v : -1;
}

static sw_tensor_spec *spec_from_row(const spec_row *row, const char *name, const sw_feature *f)
{
    sw_tensor_spec *s = g_new0(sw_tensor_spec, 1);
    s->name = g_strdup(name);
    s->feature_type = g_strdup(f->type);
    s->column = g_strdup(f->column);
    s->dtype = row->dtype;
    if (row->dtype == DTYPE_BOOL_OR_STRINGS)
        s->dtype = f->has_bool2str ? SW_DTYPE_BYTES : SW_DTYPE_BOOL;
    s->accepted = row->accepted ? row->accepted : SW_DTYPE_BIT(s->dtype);
    s->ndim = row->ndim;
    s->shape[0] = -1;
    for (int i = 1; i < row->ndim; i++)
        s->shape[i] = resolve_dim(row->dims[i - 1], f);
    s->required = !row->optional;
    s->json = row->json;
    s->datetime_format = g_strdup(f->datetime_format);
    s->tokenizer = g_strdup(f->tokenizer);
    s->fill_value = g_strdup(f->fill_value);
    s->labels = g_strdupv(f->labels);
    s->image_channels = (int)f->image_channels;
    return s;
}

static gboolean add_feature_specs(sw_stage_kind kind, gboolean input_side, const sw_feature *f, GPtrArray *specs,
                                  GError **error)
{
    const type_table *t = table_for(f->type);
    gboolean is_input_feature = (kind == SW_STAGE_PREPROCESSOR) || (kind == SW_STAGE_PREDICTOR && input_side);
    const spec_row *keyed = NULL;
    if (t && !is_input_feature) /* t->... on a NULL t is undefined even unread */
        keyed = (kind == SW_STAGE_POSTPROCESSOR && !input_side) ? t->postprocessed : t->predicted;
    if (t == NULL || (keyed && keyed[0].key == NULL)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION,
                    "%s feature '%s' has type '%s', which stagewise does not serve yet",
                    is_input_feature ? "input" : "output", f->name, f->type);
        return FALSE;
    }
    if (is_input_feature) {
        gboolean raw = kind == SW_STAGE_PREPROCESSOR && input_side;
        /* Files are decoded to the feature's channels, which must be a mode
         * an image can be read in (torchvision's ImageReadMode). */
        if (raw && strcmp(f->type, "image") == 0 && f->image_channels > 4) {
            g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION,
                        "input feature '%s' has num_channels %" G_GINT64_FORMAT
                        "; image files are read with 1, 2, 3 or 4 channels",
                        f->name, f->image_channels);
            return FALSE;
        }
        g_ptr_array_add(specs, spec_from_row(raw ? &t->raw : &t->preprocessed, f->name, f));
        return TRUE;
    }
    for (int i = 0; i < 4 && keyed[i].key; i++) {
        char *name = g_strdup_printf("%s::%s", f->name, keyed[i].key);
        g_ptr_array_add(specs, spec_from_row(&keyed[i], name, f));
        g_free(name);
    }
    return TRUE;
}

static GPtrArray *specs_for_side(sw_stage_kind kind, gboolean input_side, const sw_export *export, GError **error)
{
    gboolean uses_inputs = kind == SW_STAGE_PREPROCESSOR || (kind == SW_STAGE_PREDICTOR && input_side);
    GPtrArray *features = uses_inputs ? export->input_features : export->output_features;
    GPtrArray *specs = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_spec_free);
    for (guint i = 0; i < features->len; i++) {
        if (!add_feature_specs(kind, input_side, g_ptr_array_index(features, i), specs, error)) {
            g_ptr_array_unref(specs);
            return NULL;
        }
    }
    return specs;
}

gboolean sw_stage_specs(sw_stage_kind kind, const sw_export *export, GPtrArray **inputs, GPtrArray **outputs,
                        GError **error)
{
    *inputs = specs_for_side(kind, TRUE, export, error);
    if (*inputs == NULL)
        return FALSE;
    *outputs = specs_for_side(kind, FALSE, export, error);
    if (*outputs == NULL) {
        g_ptr_array_unref(*inputs);
        *inputs = NULL;
        return FALSE;
    }
    return TRUE;
}

const sw_tensor_spec *sw_spec_find(GPtrArray *specs, const char *name)
{
    for (guint i = 0; i < specs->len; i++) {
        const sw_tensor_spec *s = g_ptr_array_index(specs, i);
        if (strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

char *sw_spec_describe(const sw_tensor_spec *spec)
{
    GString *s = g_string_new(NULL);
    for (int d = SW_DTYPE_BOOL; d < SW_DTYPE_COUNT; d++) {
        if (!(spec->accepted & SW_DTYPE_BIT(d)))
            continue;
        if (s->len)
            g_string_append(s, ", ");
        g_string_append(s, sw_dtype_name((sw_dtype)d));
    }
    char *shape = sw_shape_to_string(spec->ndim, spec->shape);
    g_string_append_printf(s, " with shape %s", shape);
    g_free(shape);
    return g_string_free(s, FALSE);
}
