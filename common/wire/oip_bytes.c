/* BYTES tensors in raw form: a 4-byte little-endian length, then the
 * element's bytes, element after element. */
#include <string.h>

#include "oip_codec.h"
#include "sw_error.h"

#define INVALID(error, ...) g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, __VA_ARGS__)

sw_tensor *sw_oip_parse_raw_bytes(GBytes *raw, int ndim, const int64_t *shape, const char *what, GError **error)
{
    int64_t n = 0;
    if (!sw_shape_element_count(ndim, shape, what, &n, error))
        return NULL;
    gsize size = 0;
    const uint8_t *p = g_bytes_get_data(raw, &size);
    /* Each element needs at least its 4-byte prefix: reject absurd shapes
     * before allocating offsets for them. */
    if ((uint64_t)n > size / 4 + 1 && n > 0) {
        INVALID(error,
                "%s: BYTES framing truncated: shape needs %" G_GINT64_FORMAT
                " elements but raw contents hold %zu bytes",
                what, n, (size_t)size);
        return NULL;
    }
    /* Offsets index a payload buffer without the prefixes. */
    size_t *offsets = g_new(size_t, (size_t)n + 1);
    GByteArray *payloads = g_byte_array_sized_new((guint)MIN(size, G_MAXUINT));
    size_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        if (size - pos < 4) {
            INVALID(error,
                    "%s: BYTES framing truncated at element %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
                    ": no room for its 4-byte length",
                    what, i, n);
            goto fail;
        }
        uint32_t len =
            (uint32_t)p[pos] | (uint32_t)p[pos + 1] << 8 | (uint32_t)p[pos + 2] << 16 | (uint32_t)p[pos + 3] << 24;
        pos += 4;
        if (len > size - pos) {
            INVALID(error,
                    "%s: BYTES framing truncated at element %" G_GINT64_FORMAT ": length %u but only %zu bytes remain",
                    what, i, len, size - pos);
            goto fail;
        }
        offsets[i] = payloads->len;
        g_byte_array_append(payloads, p + pos, len);
        pos += len;
    }
    if (pos != size) {
        INVALID(error,
                "%s: BYTES framing overlong: %zu bytes left after the %" G_GINT64_FORMAT " elements of the shape", what,
                size - pos, n);
        goto fail;
    }
    offsets[n] = payloads->len;
    GBytes *bytes = g_byte_array_free_to_bytes(payloads);
    sw_tensor *t = sw_tensor_new_bytes(ndim, shape, bytes, offsets);
    g_bytes_unref(bytes);
    return t;
fail:
    g_free(offsets);
    g_byte_array_unref(payloads);
    return NULL;
}

GBytes *sw_oip_raw_contents(const sw_tensor *tensor)
{
    if (tensor->dtype != SW_DTYPE_BYTES)
        return g_bytes_ref(tensor->data);
    int64_t n = sw_tensor_element_count(tensor);
    size_t payload = 0;
    (void)sw_tensor_data(tensor, &payload);
    size_t total = payload + 4 * (size_t)n;
    uint8_t *out = g_malloc(total ? total : 1);
    size_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(tensor, (size_t)i, &len);
        out[pos] = (uint8_t)len;
        out[pos + 1] = (uint8_t)(len >> 8);
        out[pos + 2] = (uint8_t)(len >> 16);
        out[pos + 3] = (uint8_t)(len >> 24);
        memcpy(out + pos + 4, e, len);
        pos += 4 + len;
    }
    return g_bytes_new_take(out, total);
}
