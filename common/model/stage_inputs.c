/* A request's decoded inputs checked against a stage's specs and turned
 * into what forward takes (sw_stage_prepare). */
#include <errno.h>
#include <string.h>

#include "clip.h"
#include "date_parse.h"
#include "media_inputs.h"
#include "stage.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

static gboolean fail_spec(const sw_tensor_spec *spec, const sw_tensor *t, const char *why, GError **error)
{
    char *want = sw_spec_describe(spec);
    char *got = sw_shape_to_string(t->ndim, t->shape);
    INVALID(error, "input '%s' (%s): %s: expected %s, got %s with shape %s", spec->name, spec->feature_type, why, want,
            sw_dtype_name(t->dtype), got);
    g_free(want);
    g_free(got);
    return FALSE;
}

/* BYTES sent for a feature whose tensor form is numeric (vectors, binaries as
 * strings) is one string per row: [B] or [B,1]. */
static gboolean check_string_form(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    if (t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1))
        return TRUE;
    return fail_spec(spec, t, "strings must have shape [-1] or [-1,1]", error);
}

static gboolean check_tensor(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    if (!(spec->accepted & SW_DTYPE_BIT(t->dtype)))
        return fail_spec(spec, t, "wrong datatype", error);
    if (t->dtype == SW_DTYPE_BYTES && spec->dtype != SW_DTYPE_BYTES)
        return check_string_form(spec, t, error);
    /* Triton clients often send one column per row as [B,1]: accept it for
     * one-dimensional inputs. */
    gboolean column = spec->ndim == 1 && t->ndim == 2 && t->shape[1] == 1;
    if (t->ndim != spec->ndim && !column)
        return fail_spec(spec, t, "wrong number of dimensions", error);
    for (int i = 1; i < spec->ndim && !column; i++)
        if (spec->shape[i] >= 0 && t->shape[i] != spec->shape[i])
            return fail_spec(spec, t, "wrong shape", error);
    return TRUE;
}

/* Dates sent as strings become Ludwig's 9-integer vectors, parsed as
 * InferenceModule.predict would before calling the preprocessor. */
static sw_tensor *date_strings_to_vectors(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    int64_t rows = t->shape[0];
    int64_t fill[SW_DATE_VECTOR_LEN];
    gboolean has_fill = spec->fill_value &&
                        sw_date_vector_parse(spec->fill_value, strlen(spec->fill_value), spec->datetime_format, fill);
    int64_t *out = g_new(int64_t, (size_t)rows * SW_DATE_VECTOR_LEN);
    for (int64_t r = 0; r < rows; r++) {
        size_t len = 0;
        const char *text = sw_tensor_bytes_element(t, (size_t)r, &len);
        int64_t *row = out + r * SW_DATE_VECTOR_LEN;
        if (sw_date_vector_parse(text, len, spec->datetime_format, row))
            continue;
        if (has_fill) {
            memcpy(row, fill, sizeof fill);
            continue;
        }
        char *shown = sw_clip_escaped(text, len);
        INVALID(error,
                "input '%s' row %" G_GINT64_FORMAT ": cannot read date '%s'%s%s%s, and the feature has no "
                "fill value",
                spec->name, r, shown, spec->datetime_format ? " with format '" : "",
                spec->datetime_format ? spec->datetime_format : "", spec->datetime_format ? "' or as ISO 8601" : "");
        g_free(shown);
        g_free(out);
        return NULL;
    }
    int64_t shape[2] = {rows, SW_DATE_VECTOR_LEN};
    GBytes *bytes = g_bytes_new_take(out, sizeof(int64_t) * (size_t)rows * SW_DATE_VECTOR_LEN);
    sw_tensor *vectors = sw_tensor_new(SW_DTYPE_INT64, 2, shape, bytes);
    g_bytes_unref(bytes);
    return vectors;
}

/* An h3 index is 64 bits whose top bit is always 0 (its reserved bit), so
 * every valid one fits the INT64 the preprocessor takes. */
#define H3_INDEX_LIMIT ((uint64_t)1 << 63)

static gboolean fail_h3_range(const sw_tensor_spec *spec, int64_t row, uint64_t value, GError **error)
{
    INVALID(error,
            "input '%s' row %" G_GINT64_FORMAT ": %" G_GUINT64_FORMAT " is not an h3 index: an h3 index is below "
            "2^63 (its top bit is 0)",
            spec->name, row, value);
    return FALSE;
}

/* Digits only, at most UINT64_MAX: no sign, space or other spelling. */
static gboolean parse_decimal_u64(const char *text, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isdigit(text[i]))
            return FALSE;
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (v > (G_MAXUINT64 - digit) / 10)
            return FALSE;
        v = v * 10 + digit;
    }
    *out = v;
    return TRUE;
}

/* h3 indexes sent as decimal strings, one per row, become INT64. */
static sw_tensor *h3_strings_to_indexes(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    int64_t rows = t->shape[0];
    int64_t *out = g_new(int64_t, rows);
    for (int64_t r = 0; r < rows; r++) {
        size_t len = 0;
        const char *text = sw_tensor_bytes_element(t, (size_t)r, &len);
        uint64_t v = 0;
        gboolean ok = parse_decimal_u64(text, len, &v);
        if (!ok) {
            char *shown = sw_clip_escaped(text, len);
            INVALID(error,
                    "input '%s' row %" G_GINT64_FORMAT ": cannot read '%s' as an h3 index: expected a decimal "
                    "integer (digits only, below 2^63)",
                    spec->name, r, shown);
            g_free(shown);
        } else if (v >= H3_INDEX_LIMIT) {
            ok = fail_h3_range(spec, r, v, error);
        }
        if (!ok) {
            g_free(out);
            return NULL;
        }
        out[r] = (int64_t)v;
    }
    int64_t shape[1] = {rows};
    GBytes *bytes = g_bytes_new_take(out, sizeof(int64_t) * (size_t)rows);
    sw_tensor *indexes = sw_tensor_new(SW_DTYPE_INT64, 1, shape, bytes);
    g_bytes_unref(bytes);
    return indexes;
}

/* UINT64 h3 indexes are the same bits as INT64 ones below 2^63: the
 * buffer is shared, viewed as INT64 [B]. */
static sw_tensor *h3_unsigned_to_indexes(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    int64_t rows = t->shape[0];
    const char *data = sw_tensor_data(t, NULL);
    for (int64_t r = 0; r < rows; r++) {
        uint64_t v = 0;
        memcpy(&v, data + (size_t)r * sizeof v, sizeof v); /* a received buffer may be unaligned */
        if (v >= H3_INDEX_LIMIT) {
            fail_h3_range(spec, r, v, error);
            return NULL;
        }
    }
    int64_t shape[1] = {rows};
    return sw_tensor_new(SW_DTYPE_INT64, 1, shape, t->data);
}

/* A timeseries tensor [B,T] as Ludwig's preprocessor takes tensors: a
 * List[Tensor] of float32 [T] rows (FP64 converted), each a view of one
 * buffer. */
static sw_value *timeseries_rows(const sw_tensor_spec *spec, const sw_value *in, GError **error)
{
    const sw_tensor *t = in->tensor;
    int64_t rows = t->shape[0], len = t->shape[1];
    if (len == 0) {
        INVALID(error, "input '%s' (timeseries): a row needs at least one value, got shape [%" G_GINT64_FORMAT ",0]",
                spec->name, rows);
        return NULL;
    }
    size_t count = (size_t)rows * (size_t)len;
    GBytes *floats = NULL;
    if (t->dtype == SW_DTYPE_FP64) {
        const char *src = sw_tensor_data(t, NULL);
        float *f = g_new(float, count);
        for (size_t i = 0; i < count; i++) {
            double d = 0;
            memcpy(&d, src + i * sizeof d, sizeof d);
            f[i] = (float)d;
        }
        floats = g_bytes_new_take(f, count * sizeof(float));
    } else {
        floats = g_bytes_ref(t->data);
    }
    size_t row_bytes = (size_t)len * sizeof(float);
    GPtrArray *items = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    for (int64_t r = 0; r < rows; r++) {
        GBytes *row = g_bytes_new_from_bytes(floats, (size_t)r * row_bytes, row_bytes);
        g_ptr_array_add(items, sw_tensor_new(SW_DTYPE_FP32, 1, &len, row));
        g_bytes_unref(row);
    }
    g_bytes_unref(floats);
    return sw_value_new_list(in->name, SW_VALUE_TENSOR_LIST, items);
}

/* Timeseries text as Ludwig's space tokenizer splits it (TorchScript's
 * str.split()): each token the preprocessor reads, the first
 * max_timeseries_length, must be a number its float() takes, which fails
 * otherwise with a bare "stod" or "Could not convert" naming neither input nor
 * row. "nan" is a missing value the module fills. Other tokenizers are left
 * to the module. */
static gboolean check_timeseries_text(const sw_tensor_spec *spec, const sw_tensor *t, GError **error)
{
    if (spec->tokenizer != NULL && strcmp(spec->tokenizer, "space") != 0)
        return TRUE;
    int64_t limit = spec->ndim == 2 && spec->shape[1] > 0 ? spec->shape[1] : G_MAXINT64;
    for (int64_t r = 0; r < t->shape[0]; r++) {
        size_t len = 0;
        const char *text = sw_tensor_bytes_element(t, (size_t)r, &len);
        if (len == 3 && memcmp(text, "nan", 3) == 0)
            continue;
        size_t i = 0;
        for (int64_t n = 0; n < limit; n++) {
            while (i < len && g_ascii_isspace(text[i]))
                i++;
            if (i == len)
                break;
            size_t start = i;
            while (i < len && !g_ascii_isspace(text[i]))
                i++;
            /* NUL-terminated for strtod; an embedded NUL makes it shorter. */
            char *token = g_strndup(text + start, i - start);
            char *end = NULL;
            errno = 0;
            g_ascii_strtod(token, &end);
            gboolean ok = strlen(token) == i - start && end == token + (i - start) && errno != ERANGE;
            g_free(token);
            if (ok)
                continue;
            char *shown = sw_clip_escaped(text + start, i - start);
            INVALID(error,
                    "input '%s' row %" G_GINT64_FORMAT ": cannot read '%s' as a number: expected "
                    "whitespace-separated numbers (token %" G_GINT64_FORMAT ")",
                    spec->name, r, shown, n + 1);
            g_free(shown);
            return FALSE;
        }
    }
    return TRUE;
}

/* The conversions a raw input of some feature types needs before the
 * preprocessor's forward; *handled FALSE when the generic one below does. */
static sw_value *convert_typed(const sw_tensor_spec *spec, const sw_value *in, gboolean *handled, GError **error)
{
    const sw_tensor *t = in->tensor;
    sw_tensor *converted = NULL;
    *handled = TRUE;
    if (t->dtype == SW_DTYPE_BYTES && strcmp(spec->feature_type, "date") == 0)
        converted = date_strings_to_vectors(spec, t, error);
    else if (t->dtype == SW_DTYPE_BYTES && strcmp(spec->feature_type, "h3") == 0)
        converted = h3_strings_to_indexes(spec, t, error);
    else if (t->dtype == SW_DTYPE_UINT64 && strcmp(spec->feature_type, "h3") == 0)
        converted = h3_unsigned_to_indexes(spec, t, error);
    else if (t->dtype != SW_DTYPE_BYTES && strcmp(spec->feature_type, "timeseries") == 0)
        return timeseries_rows(spec, in, error);
    else if (strcmp(spec->feature_type, "timeseries") == 0 && !check_timeseries_text(spec, t, error))
        return NULL;
    else
        *handled = FALSE;
    return converted ? sw_value_new_tensor(in->name, SW_VALUE_TENSOR, converted) : NULL;
}

/* The value forward receives: one-dimensional views where the spec is
 * one-dimensional, BYTES as List[str]; `raw`: a preprocessor's input. Shares
 * buffers with `in`. */
static sw_value *convert_input(const sw_tensor_spec *spec, const sw_value *in, gboolean raw, GError **error)
{
    const sw_tensor *t = in->tensor;
    gboolean handled = FALSE;
    sw_value *typed = raw ? convert_typed(spec, in, &handled, error) : NULL;
    if (handled)
        return typed;
    int64_t shape[SW_MAX_DIMS];
    int ndim = t->ndim;
    memcpy(shape, t->shape, sizeof shape);
    /* Strings and [B,1] columns of one-dimensional inputs travel as [B]. */
    if (t->dtype == SW_DTYPE_BYTES || (spec->ndim == 1 && ndim == 2))
        ndim = 1;
    sw_value_kind kind = t->dtype == SW_DTYPE_BYTES ? SW_VALUE_STRINGS : SW_VALUE_TENSOR;
    return sw_value_new_tensor(in->name, kind, sw_tensor_share(t, ndim, shape));
}

/* Between stages, tensors the specs do not know are passed on untouched (as
 * Ludwig's modules ignore extra keys); a client talking to the preprocessor
 * most likely misspelled a feature, so it hears about it. */
static gboolean check_unknown_input(const sw_stage *stage, const sw_value *in, GError **error)
{
    if (stage->kind != SW_STAGE_PREPROCESSOR)
        return TRUE;
    GString *names = g_string_new(NULL);
    for (guint i = 0; i < stage->inputs->len; i++) {
        const sw_tensor_spec *s = g_ptr_array_index(stage->inputs, i);
        g_string_append_printf(names, "%s'%s'", i ? ", " : "", s->name);
    }
    INVALID(error, "input '" SW_CLIP_FMT "' is not an input feature of model %s (expected %s)", SW_CLIP(in->name),
            stage->model_name, names->str);
    g_string_free(names, TRUE);
    return FALSE;
}

static gboolean check_batch(const sw_value *in, int64_t *batch, const char **first, GError **error)
{
    int64_t b = in->tensor->ndim > 0 ? in->tensor->shape[0] : -1;
    if (b <= 0) {
        INVALID(error, "input '" SW_CLIP_FMT "': the batch dimension (the first) must be at least 1, got %s",
                SW_CLIP(in->name), b == 0 ? "an empty batch" : "a scalar");
        return FALSE;
    }
    if (*batch >= 0 && b != *batch) {
        INVALID(error,
                "input '" SW_CLIP_FMT "' has %" G_GINT64_FORMAT " rows but input '" SW_CLIP_FMT
                "' has %" G_GINT64_FORMAT "; all inputs must share the batch size",
                SW_CLIP(in->name), b, SW_CLIP(*first), *batch);
        return FALSE;
    }
    *batch = b;
    *first = in->name;
    return TRUE;
}

GPtrArray *sw_stage_prepare(const sw_stage *stage, GPtrArray *decoded, int64_t *batch_size, GError **error)
{
    GPtrArray *prepared = sw_value_array_new();
    int64_t batch = -1;
    const char *first = NULL;
    for (guint i = 0; i < decoded->len; i++) {
        const sw_value *in = g_ptr_array_index(decoded, i);
        const sw_tensor_spec *spec = sw_spec_find(stage->inputs, in->name);
        if (!check_batch(in, &batch, &first, error))
            goto fail;
        if (spec == NULL) {
            if (!check_unknown_input(stage, in, error))
                goto fail;
            g_ptr_array_add(prepared, sw_value_new_tensor(in->name, in->kind, sw_tensor_share(in->tensor, 0, NULL)));
            continue;
        }
        sw_value *converted = NULL;
        if (sw__is_media_input(stage, spec))
            converted = sw__media_input(stage, spec, in, error);
        else if (check_tensor(spec, in->tensor, error))
            converted = convert_input(spec, in, stage->kind == SW_STAGE_PREPROCESSOR, error);
        if (converted == NULL)
            goto fail;
        g_ptr_array_add(prepared, converted);
    }
    for (guint i = 0; i < stage->inputs->len; i++) {
        const sw_tensor_spec *spec = g_ptr_array_index(stage->inputs, i);
        gboolean present = FALSE;
        for (guint j = 0; j < decoded->len && !present; j++)
            present = strcmp(((sw_value *)g_ptr_array_index(decoded, j))->name, spec->name) == 0;
        if (spec->required && !present) {
            char *want = sw_spec_describe(spec);
            INVALID(error, "input '%s' (%s feature) is missing: expected %s", spec->name, spec->feature_type, want);
            g_free(want);
            goto fail;
        }
    }
    if (batch < 0) {
        INVALID(error, "the request has no inputs");
        goto fail;
    }
    *batch_size = batch;
    return prepared;
fail:
    g_ptr_array_unref(prepared);
    return NULL;
}
