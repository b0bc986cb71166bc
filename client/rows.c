#include <math.h>
#include <string.h>

#include "internal.h"
#include "oip_codec.h"
#include "sw_error.h"

STAGEWISE_API stagewise_rows *stagewise_rows_new(size_t n_rows)
{
    stagewise_rows *rows = g_new0(stagewise_rows, 1);
    rows->n_rows = n_rows;
    rows->columns = sw_output_array_new();
    return rows;
}

STAGEWISE_API size_t stagewise_rows_count(const stagewise_rows *rows)
{
    return rows->n_rows;
}

STAGEWISE_API void stagewise_rows_free(stagewise_rows *rows)
{
    if (rows == NULL)
        return;
    g_ptr_array_unref(rows->columns);
    g_free(rows);
}

/* FALSE (with an error) when `feature` already has a column. */
static gboolean check_new_column(const stagewise_rows *rows, const char *feature, stagewise_error **error)
{
    if (feature == NULL || feature[0] == '\0') {
        stagewise_error_setf(error, SW_CODE_INVALID_ARGUMENT, "a column needs a feature name");
        return FALSE;
    }
    for (guint i = 0; i < rows->columns->len; i++) {
        const sw_output *c = g_ptr_array_index(rows->columns, i);
        if (strcmp(c->name, feature) == 0) {
            stagewise_error_setf(error, SW_CODE_INVALID_ARGUMENT, "feature '%s' already has a column", feature);
            return FALSE;
        }
    }
    return TRUE;
}

static void add_column(stagewise_rows *rows, const char *feature, sw_tensor *tensor)
{
    sw_output *c = g_new0(sw_output, 1);
    c->name = g_strdup(feature);
    c->tensor = tensor;
    g_ptr_array_add(rows->columns, c);
}

STAGEWISE_API int stagewise_rows_add_strings(stagewise_rows *rows, const char *feature, const char *const *values,
                                             stagewise_error **error)
{
    if (!check_new_column(rows, feature, error))
        return -1;
    const char **items = g_new(const char *, rows->n_rows ? rows->n_rows : 1);
    for (size_t i = 0; i < rows->n_rows; i++) {
        const char *v = values[i] ? values[i] : "nan";
        if (!g_utf8_validate(v, -1, NULL)) {
            g_free(items);
            stagewise_error_setf(error, SW_CODE_INVALID_ARGUMENT, "feature '%s' row %zu: not valid UTF-8", feature, i);
            return -1;
        }
        items[i] = v;
    }
    add_column(rows, feature, sw_tensor_new_strings(items, NULL, rows->n_rows));
    g_free(items);
    return 0;
}

STAGEWISE_API int stagewise_rows_add_numbers(stagewise_rows *rows, const char *feature, const double *values,
                                             stagewise_error **error)
{
    if (!check_new_column(rows, feature, error))
        return -1;
    /* Doubles, as pandas holds a numeric column; the preprocessor casts. */
    int64_t shape[1] = {(int64_t)rows->n_rows};
    add_column(rows, feature, sw_tensor_new_copy(SW_DTYPE_FP64, 1, shape, values, sizeof(double) * rows->n_rows));
    return 0;
}

STAGEWISE_API int stagewise_rows_add_vectors(stagewise_rows *rows, const char *feature, const float *values, size_t dim,
                                             stagewise_error **error)
{
    if (!check_new_column(rows, feature, error))
        return -1;
    if (dim == 0) {
        stagewise_error_setf(error, SW_CODE_INVALID_ARGUMENT, "feature '%s': vectors need at least one element",
                             feature);
        return -1;
    }
    int64_t shape[2] = {(int64_t)rows->n_rows, (int64_t)dim};
    add_column(rows, feature, sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, values, sizeof(float) * rows->n_rows * dim));
    return 0;
}

STAGEWISE_API int stagewise_rows_add_integers(stagewise_rows *rows, const char *feature, const int64_t *values,
                                              stagewise_error **error)
{
    if (!check_new_column(rows, feature, error))
        return -1;
    int64_t shape[1] = {(int64_t)rows->n_rows};
    add_column(rows, feature, sw_tensor_new_copy(SW_DTYPE_INT64, 1, shape, values, sizeof(int64_t) * rows->n_rows));
    return 0;
}

STAGEWISE_API int stagewise_rows_add_bytes(stagewise_rows *rows, const char *feature, const void *const *values,
                                           const size_t *lengths, stagewise_error **error)
{
    if (!check_new_column(rows, feature, error))
        return -1;
    const char **items = g_new(const char *, rows->n_rows ? rows->n_rows : 1);
    for (size_t i = 0; i < rows->n_rows; i++) {
        if (values[i] == NULL && lengths[i] != 0) {
            g_free(items);
            stagewise_error_setf(error, SW_CODE_INVALID_ARGUMENT, "feature '%s' row %zu: no bytes for a length of %zu",
                                 feature, i, lengths[i]);
            return -1;
        }
        /* memcpy from NULL is undefined even for 0 bytes. */
        items[i] = values[i] ? values[i] : "";
    }
    add_column(rows, feature, sw_tensor_new_strings(items, lengths, rows->n_rows));
    g_free(items);
    return 0;
}
