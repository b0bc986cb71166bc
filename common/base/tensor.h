/* The tensor value type every layer of stagewise passes around.
 *
 * A tensor is a datatype, a shape and its contents:
 *  - numeric datatypes: `data` holds the elements row-major, no padding;
 *  - BYTES: `data` holds the element payloads back to back and `offsets`
 *    (element count + 1 entries) says where each starts and ends.
 *
 * Ownership: a sw_tensor owns one reference to `data` and owns `offsets`.
 * Contents are immutable once built (GBytes), so tensors can share buffers
 * with received messages, libtorch tensors or replies without copying; the
 * buffer lives as long as the last GBytes reference. sw_tensor_free() drops
 * the tensor's reference and frees the struct.
 *
 * A sw_value names a tensor or a list of per-row tensors: the shapes that
 * TorchScript values take at stage boundaries (Tensor, List[str],
 * List[List[str]], List[Tensor], List[Tuple[Tensor, int]]). A value owns
 * everything it points to. */
#ifndef SW_TENSOR_H
#define SW_TENSOR_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define SW_MAX_DIMS 8

/* The Open Inference Protocol datatypes, in the order its specification lists
 * them (docs/DESIGN.md, "Wire protocol"). */
typedef enum sw_dtype {
    SW_DTYPE_INVALID = 0,
    SW_DTYPE_BOOL,
    SW_DTYPE_UINT8,
    SW_DTYPE_UINT16,
    SW_DTYPE_UINT32,
    SW_DTYPE_UINT64,
    SW_DTYPE_INT8,
    SW_DTYPE_INT16,
    SW_DTYPE_INT32,
    SW_DTYPE_INT64,
    SW_DTYPE_FP16,
    SW_DTYPE_BF16,
    SW_DTYPE_FP32,
    SW_DTYPE_FP64,
    SW_DTYPE_BYTES,
} sw_dtype;

#define SW_DTYPE_COUNT (SW_DTYPE_BYTES + 1)

/* The OIP name ("FP32"), or "INVALID". Static string. */
const char *sw_dtype_name(sw_dtype dtype);
/* SW_DTYPE_INVALID when `name` is not an OIP datatype. */
sw_dtype sw_dtype_from_name(const char *name);
/* Bytes per element; 0 for BYTES and INVALID. */
size_t sw_dtype_size(sw_dtype dtype);
gboolean sw_dtype_is_numeric(sw_dtype dtype);

typedef struct sw_tensor {
    sw_dtype dtype;
    int ndim;
    int64_t shape[SW_MAX_DIMS];
    GBytes *data;
    size_t *offsets; /* BYTES only, else NULL */
} sw_tensor;

/* Product of the dimensions; FALSE (and an INVALID_ARGUMENT error naming
 * `what`) when a dimension is negative, there are too many dimensions or the
 * product overflows. */
gboolean sw_shape_element_count(int ndim, const int64_t *shape, const char *what, int64_t *count, GError **error);

/* A numeric tensor over `data`, which must hold exactly the elements of
 * `shape`. Adds its own reference to `data`; the caller keeps its own. */
sw_tensor *sw_tensor_new(sw_dtype dtype, int ndim, const int64_t *shape, GBytes *data);

/* A numeric tensor copying `nbytes` from `src` (NULL: zero-filled). */
sw_tensor *sw_tensor_new_copy(sw_dtype dtype, int ndim, const int64_t *shape, const void *src, size_t nbytes);

/* A BYTES tensor over `payloads`. Takes ownership of `offsets` (g_malloc'd,
 * element count + 1 entries, non-decreasing, last == payload size) and adds
 * its own reference to `payloads`. */
sw_tensor *sw_tensor_new_bytes(int ndim, const int64_t *shape, GBytes *payloads, size_t *offsets);

/* A 1-D BYTES tensor copying `n` strings; `lens` NULL means NUL-terminated. */
sw_tensor *sw_tensor_new_strings(const char *const *strings, const size_t *lens, size_t n);

/* A new tensor over the same contents as `tensor` (a new reference to its
 * buffer; BYTES offsets are copied), viewed with `ndim`/`shape`, which must
 * hold as many elements; `shape` NULL keeps the tensor's own. */
sw_tensor *sw_tensor_share(const sw_tensor *tensor, int ndim, const int64_t *shape);

void sw_tensor_free(sw_tensor *tensor);

int64_t sw_tensor_element_count(const sw_tensor *tensor);
/* The first dimension, or 1 for a scalar. */
int64_t sw_tensor_batch_size(const sw_tensor *tensor);
/* Borrowed pointer to the contents; valid while the tensor lives. */
const void *sw_tensor_data(const sw_tensor *tensor, size_t *nbytes);
/* Borrowed pointer to element `i` of a BYTES tensor (not NUL-terminated). */
const char *sw_tensor_bytes_element(const sw_tensor *tensor, size_t i, size_t *len);
/* Element `i` (row-major) of a numeric tensor as a double; NaN for FP16,
 * BF16 and BYTES. */
double sw_tensor_element_as_double(const sw_tensor *tensor, int64_t i);
/* Appends element `i` of a numeric tensor as text: integers exactly, floats
 * in the shortest form that reads back as the same value of their own
 * precision (0.1f is "0.1", not "0.100000001"), booleans as true/false.
 * Non-finite floats are "null" when `json`, else NaN/Infinity/-Infinity. */
void sw_tensor_append_element(GString *out, const sw_tensor *tensor, int64_t i, gboolean json);
/* "[2,3]": newly allocated, free with g_free(). */
char *sw_shape_to_string(int ndim, const int64_t *shape);

typedef enum sw_value_kind {
    SW_VALUE_TENSOR,       /* `tensor`: a numeric tensor (TorchScript Tensor) */
    SW_VALUE_STRINGS,      /* `tensor`: a 1-D BYTES tensor (List[str]) */
    SW_VALUE_STRING_LISTS, /* `items`: 1-D BYTES tensors, one per row (List[List[str]]) */
    SW_VALUE_TENSOR_LIST,  /* `items`: numeric tensors, one per row (List[Tensor]) */
    SW_VALUE_AUDIO_LIST,   /* `items` and `sample_rates`: a waveform and its rate in Hz per row
                              (List[Tuple[Tensor, int]]) */
} sw_value_kind;

typedef struct sw_value {
    char *name;
    sw_value_kind kind;
    sw_tensor *tensor;     /* TENSOR and STRINGS */
    GPtrArray *items;      /* STRING_LISTS, TENSOR_LIST, AUDIO_LIST: sw_tensor*, freed with the value */
    int64_t *sample_rates; /* AUDIO_LIST: items->len entries */
    /* The request's parameters for this input (OIP InferInputTensor
     * parameters), by name: GVariant of type "x" (int64), "b", "s" or "d";
     * NULL when it had none. Only decoded request inputs carry them. */
    GHashTable *parameters;
} sw_value;

/* Takes ownership of `tensor`; copies `name`. */
sw_value *sw_value_new_tensor(const char *name, sw_value_kind kind, sw_tensor *tensor);
/* Takes ownership of `items`, which must free its elements with sw_tensor_free. */
sw_value *sw_value_new_list(const char *name, sw_value_kind kind, GPtrArray *items);
/* A List[Tuple[Tensor, int]]: takes ownership of `items` (as above) and of
 * `sample_rates` (g_malloc'd, items->len entries). */
sw_value *sw_value_new_audio(const char *name, GPtrArray *items, int64_t *sample_rates);
/* The parameter `key` of `value`, or NULL; borrowed. */
GVariant *sw_value_parameter(const sw_value *value, const char *key);
void sw_value_free(sw_value *value);
/* Rows in the value: first dimension of its tensor, or number of items. */
int64_t sw_value_batch_size(const sw_value *value);
/* A GPtrArray that frees its sw_value elements. */
GPtrArray *sw_value_array_new(void);

G_END_DECLS

#endif
