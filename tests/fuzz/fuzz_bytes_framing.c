/* Fuzzes the raw BYTES framing of OIP tensors (sw_oip_parse_raw_bytes): a
 * 4-byte little-endian length before each element, for exactly the elements
 * of a shape. The input is a shape, then the raw contents:
 *   byte 0      number of dimensions (low 4 bits: 0..15, above 8 is refused)
 *   per dim     one byte, the dimension; 0xFF escapes to the next 8 bytes
 *               as a little-endian int64 (negative and huge shapes)
 *   the rest    the raw contents.
 * What parses must be exactly what the encoder (sw_oip_raw_contents) writes
 * back for it: the framing has one valid form per tensor. */
#include <string.h>

#include "fuzz_support.h"
#include "oip_codec.h"
#include "sw_error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    return 0;
}

/* Reads the shape; FALSE when the input ends inside it. */
static gboolean read_shape(const uint8_t **data, size_t *size, int *ndim, int64_t shape[16])
{
    if (*size < 1)
        return FALSE;
    *ndim = (*data)[0] & 0x0f;
    (*data)++, (*size)--;
    for (int i = 0; i < *ndim; i++) {
        if (*size < 1)
            return FALSE;
        uint8_t b = (*data)[0];
        (*data)++, (*size)--;
        if (b != 0xff) {
            shape[i] = b;
            continue;
        }
        if (*size < 8)
            return FALSE;
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | (*data)[k];
        shape[i] = (int64_t)v;
        *data += 8, *size -= 8;
    }
    return TRUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int ndim = 0;
    int64_t shape[16] = {0};
    if (!read_shape(&data, &size, &ndim, shape))
        return 0;
    /* A copy of exactly the contents, so reading past them is an ASan report. */
    GBytes *raw = g_bytes_new(data, size);
    GError *error = NULL;
    sw_tensor *t = sw_oip_parse_raw_bytes(raw, ndim, shape, "input 'x'", &error);
    if (t == NULL) {
        FUZZ_CHECK(error != NULL, "refused without an error");
        FUZZ_CHECK(error->domain == SW_ERROR && error->code == SW_CODE_INVALID_ARGUMENT, "error code %d", error->code);
        FUZZ_CHECK(g_str_has_prefix(error->message, "input 'x'"), "message '%s' does not name the input",
                   error->message);
        g_error_free(error);
        g_bytes_unref(raw);
        return 0;
    }
    FUZZ_CHECK(error == NULL, "parsed but set an error: %s", error->message);
    FUZZ_CHECK(t->dtype == SW_DTYPE_BYTES && t->ndim == ndim, "dtype %d ndim %d", t->dtype, t->ndim);
    FUZZ_CHECK(memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0, "shape changed");
    int64_t n = sw_tensor_element_count(t);
    size_t payload = 0;
    (void)sw_tensor_data(t, &payload);
    FUZZ_CHECK(payload + 4 * (size_t)n == size, "%zu payload bytes and %" G_GINT64_FORMAT " prefixes in %zu bytes",
               payload, n, size);
    FUZZ_CHECK(t->offsets[0] == 0 && t->offsets[n] == payload, "offsets do not span the payloads");
    for (int64_t i = 0; i < n; i++) {
        FUZZ_CHECK(t->offsets[i] <= t->offsets[i + 1], "offsets decrease at %" G_GINT64_FORMAT, i);
        size_t len = 0;
        (void)sw_tensor_bytes_element(t, (size_t)i, &len);
    }
    GBytes *again = sw_oip_raw_contents(t);
    FUZZ_CHECK(g_bytes_equal(again, raw), "re-encoded framing differs from the input");
    g_bytes_unref(again);
    sw_tensor_free(t);
    g_bytes_unref(raw);
    return 0;
}
