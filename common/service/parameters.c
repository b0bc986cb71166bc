/* Request parameters: the ones stagewise acts on are checked, every other
 * one is refused by name, so a client never believes a server honoured
 * something it ignored (a priority, a sequence id, a shared memory region).
 * And Triton's classification extension, applied to the outputs that ask. */
#include <math.h>
#include <string.h>

#include "clip.h"
#include "service_internal.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

typedef enum where { ON_REQUEST, ON_INPUT, ON_OUTPUT } where;

static const char *const where_names[] = {"request", "input", "requested output"};

/* Parameters known by name, where they may appear and the value they take. */
typedef struct known_parameter {
    const char *key;
    where where;
    Inference__InferParameter__ParameterChoiceCase choice;
} known_parameter;

static const known_parameter known[] = {
    /* BYTES elements' meaning, KServe's "str"/"bytes" (and ours, "json") */
    {"content_type", ON_INPUT, INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM},
    /* audio waveforms sent as tensors (media_inputs.c reads it) */
    {"sample_rate", ON_INPUT, INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM},
    /* Triton's binary tensor extension: says where a tensor's bytes are in
     * an HTTP body; over gRPC the bytes are in raw contents anyway. */
    {"binary_data_size", ON_INPUT, INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM},
    {"binary_data", ON_OUTPUT, INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM},
    /* Triton's classification extension (sw__classify_outputs) */
    {"classification", ON_OUTPUT, INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM},
};

static const char *choice_name(Inference__InferParameter__ParameterChoiceCase c)
{
    switch (c) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM: return "bool_param";
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM: return "int64_param";
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: return "string_param";
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM: return "double_param";
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM: return "uint64_param";
    default: return "no value";
    }
}

/* Where a parameter sits, for messages: "request", "input 'x'". Newly allocated. */
static char *place(where w, const char *tensor)
{
    return tensor ? g_strdup_printf("%s '" SW_CLIP_FMT "'", where_names[w], SW_CLIP(tensor)) : g_strdup(where_names[w]);
}

static gboolean check_one(where w, const char *tensor, const char *key, const Inference__InferParameter *value,
                          GError **error)
{
    Inference__InferParameter__ParameterChoiceCase got =
        value ? value->parameter_choice_case : INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE__NOT_SET;
    for (size_t i = 0; i < G_N_ELEMENTS(known); i++) {
        if (strcmp(known[i].key, key) != 0 || known[i].where != w)
            continue;
        if (got == known[i].choice)
            return TRUE;
        char *at = place(w, tensor);
        INVALID(error, "parameter '%s' of %s must be given as %s, got %s", key, at, choice_name(known[i].choice),
                choice_name(got));
        g_free(at);
        return FALSE;
    }
    char *at = place(w, tensor);
    if (g_str_has_prefix(key, "shared_memory_"))
        INVALID(error,
                "parameter '%s' of %s: shared memory is not supported by this server; send the tensor's "
                "contents in the request",
                key, at);
    else if (g_str_has_prefix(key, "sequence_"))
        INVALID(error, "parameter '%s' of %s: sequence batching is not supported; Ludwig models are stateless", key,
                at);
    else
        INVALID(error,
                "parameter '" SW_CLIP_FMT "' of %s is not supported by this server (it reads content_type, "
                "sample_rate and binary_data_size on inputs, classification and binary_data on requested "
                "outputs, and none on the request)",
                SW_CLIP(key), at);
    g_free(at);
    return FALSE;
}

gboolean sw__check_parameters(const Inference__ModelInferRequest *req, GError **error)
{
    for (size_t i = 0; i < req->n_parameters; i++)
        if (!check_one(ON_REQUEST, NULL, req->parameters[i]->key, req->parameters[i]->value, error))
            return FALSE;
    for (size_t t = 0; t < req->n_inputs; t++) {
        const Inference__ModelInferRequest__InferInputTensor *in = req->inputs[t];
        for (size_t i = 0; i < in->n_parameters; i++)
            if (!check_one(ON_INPUT, in->name, in->parameters[i]->key, in->parameters[i]->value, error))
                return FALSE;
    }
    for (size_t t = 0; t < req->n_outputs; t++) {
        const Inference__ModelInferRequest__InferRequestedOutputTensor *out = req->outputs[t];
        for (size_t i = 0; i < out->n_parameters; i++) {
            const Inference__InferParameter *v = out->parameters[i]->value;
            if (!check_one(ON_OUTPUT, out->name, out->parameters[i]->key, v, error))
                return FALSE;
            if (strcmp(out->parameters[i]->key, "classification") == 0 && v->int64_param < 1) {
                INVALID(error,
                        "parameter 'classification' of requested output '" SW_CLIP_FMT
                        "' must be at least 1 (the number of classes to return), got %" G_GINT64_FORMAT,
                        SW_CLIP(out->name), (gint64)v->int64_param);
                return FALSE;
            }
        }
    }
    return TRUE;
}

int64_t sw__classification_count(const Inference__ModelInferRequest__InferRequestedOutputTensor *out)
{
    for (size_t i = 0; i < out->n_parameters; i++)
        if (strcmp(out->parameters[i]->key, "classification") == 0 && out->parameters[i]->value)
            return out->parameters[i]->value->int64_param;
    return 0;
}

typedef struct scored {
    double score;
    int64_t index;
} scored;

/* Descending by score; equal scores keep the lower index first. */
static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

sw_output *sw__classify(const sw_output *o, int64_t count, const char *const *labels, GError **error)
{
    const sw_tensor *t = o->tensor;
    if (!sw_dtype_is_numeric(t->dtype) || t->dtype == SW_DTYPE_FP16 || t->dtype == SW_DTYPE_BF16 || t->ndim != 2 ||
        t->shape[1] < 1) {
        char *shape = sw_shape_to_string(t->ndim, t->shape);
        INVALID(error,
                "requested output '%s' cannot be classified: classification needs scores per class, a numeric "
                "[batch, classes] tensor, and this one is %s %s",
                o->name, sw_dtype_name(t->dtype), shape);
        g_free(shape);
        return NULL;
    }
    int64_t rows = t->shape[0], classes = t->shape[1];
    int64_t k = MIN(count, classes);
    guint n_labels = labels ? g_strv_length((char **)labels) : 0;
    scored *row = g_new(scored, classes);
    GString *payload = g_string_new(NULL);
    size_t *offsets = g_new(size_t, (size_t)(rows * k) + 1);
    offsets[0] = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < classes; c++) {
            double v = sw_tensor_element_as_double(t, r * classes + c);
            row[c] = (scored){.score = isnan(v) ? -INFINITY : v, .index = c};
        }
        qsort(row, (size_t)classes, sizeof *row, by_score);
        for (int64_t j = 0; j < k; j++) {
            /* Triton's form: the score as C++'s std::to_string prints it,
             * the class index, and its label when there is one. */
            g_string_append_printf(payload, "%f:%" G_GINT64_FORMAT, row[j].score, row[j].index);
            if (row[j].index < (int64_t)n_labels)
                g_string_append_printf(payload, ":%s", labels[row[j].index]);
            offsets[r * k + j + 1] = payload->len;
        }
    }
    g_free(row);
    int64_t shape[2] = {rows, k};
    gsize len = payload->len;
    GBytes *bytes = g_bytes_new_take(g_string_free(payload, FALSE), len);
    sw_output *out = g_new0(sw_output, 1);
    out->name = g_strdup(o->name);
    out->tensor = sw_tensor_new_bytes(2, shape, bytes, offsets);
    g_bytes_unref(bytes);
    return out;
}
