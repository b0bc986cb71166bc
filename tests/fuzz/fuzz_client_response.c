/* Fuzzes how libstagewise reads a ModelInfer reply: unpacking the
 * inference.ModelInferResponse, decoding its outputs (sw_oip_decode_outputs:
 * datatypes, shapes, raw contents, BYTES framing, the JSON content type)
 * and turning them into result columns (stagewise_result_from_outputs, in
 * the library's result code, compiled into this target because the shared
 * library exports only its public API), then reading every column back
 * through the public accessors as a user would. The input is the packed
 * reply, as a server, honest or not, might send it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "internal.h"
#include "oip_codec.h"
#include "sw_error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    return 0;
}

/* A reply may claim millions of empty rows ([N,0] tensors): reading a few
 * of them is as telling as reading all. */
#define MAX_ROWS 64
#define MAX_ITEMS 16

static void read_list(const stagewise_result *r, size_t c, size_t row, stagewise_column_type type)
{
    size_t n = stagewise_result_list_length(r, c, row);
    for (size_t i = 0; i < n && i < MAX_ITEMS; i++) {
        double v = stagewise_result_list_number(r, c, row, i);
        const char *s = stagewise_result_list_string(r, c, row, i);
        if (type == STAGEWISE_COLUMN_VECTOR)
            FUZZ_CHECK(s == NULL, "a vector element as a string");
        else
            FUZZ_CHECK(s == NULL || isnan(v), "list element %zu is both a string and the number %g", i, v);
    }
    /* One past the end is nothing, never a read past the list. */
    FUZZ_CHECK(isnan(stagewise_result_list_number(r, c, row, n)), "an element past the end");
    FUZZ_CHECK(stagewise_result_list_string(r, c, row, n) == NULL, "a string past the end");
}

static void read_result(const stagewise_result *r)
{
    size_t rows = stagewise_result_rows(r), columns = stagewise_result_columns(r);
    for (size_t c = 0; c < columns; c++) {
        const char *name = stagewise_result_column_name(r, c);
        FUZZ_CHECK(name != NULL, "column %zu has no name", c);
        long found = stagewise_result_find_column(r, name);
        FUZZ_CHECK(found >= 0 && (size_t)found <= c, "column %zu '%s' found at %ld", c, name, found);
        stagewise_column_type type = stagewise_result_column_type(r, c);
        FUZZ_CHECK(type < STAGEWISE_COLUMN_INVALID, "column %zu has no type", c);
        for (size_t row = 0; row < rows && row < MAX_ROWS; row++) {
            const char *s = stagewise_result_string(r, c, row);
            FUZZ_CHECK((s != NULL) == (type == STAGEWISE_COLUMN_STRING), "a string where there is none, or none");
            double v = stagewise_result_number(r, c, row);
            if (type == STAGEWISE_COLUMN_BOOL)
                FUZZ_CHECK(v == 0 || v == 1, "a boolean read as %g", v);
            if (type == STAGEWISE_COLUMN_VECTOR || type == STAGEWISE_COLUMN_LIST)
                read_list(r, c, row, type);
            char *text = stagewise_result_cell_text(r, c, row);
            FUZZ_CHECK(text != NULL, "cell %zu,%zu has no text", c, row);
            free(text);
        }
        FUZZ_CHECK(stagewise_result_string(r, c, rows) == NULL && stagewise_result_cell_text(r, c, rows) == NULL,
                   "a cell past the last row");
    }
    FUZZ_CHECK(stagewise_result_column_type(r, columns) == STAGEWISE_COLUMN_INVALID &&
                   stagewise_result_column_name(r, columns) == NULL,
               "a column past the last");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly the reply, so reading past it is an ASan report. */
    uint8_t *copy = g_memdup2(data, size);
    Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, size, copy);
    if (resp == NULL) {
        g_free(copy);
        return 0;
    }
    GError *error = NULL;
    GPtrArray *outputs = sw_oip_decode_outputs(resp, &error);
    inference__model_infer_response__free_unpacked(resp, NULL);
    g_free(copy);
    if (outputs == NULL) {
        /* A reply that contradicts itself is the server's fault. */
        FUZZ_CHECK(error && error->code == SW_CODE_INTERNAL, "not decoded, and no INTERNAL error");
        g_error_free(error);
        return 0;
    }
    stagewise_result *result = stagewise_result_from_outputs(outputs, &error);
    g_ptr_array_unref(outputs);
    if (result == NULL) {
        FUZZ_CHECK(error && error->code == SW_CODE_INTERNAL, "no result, and no INTERNAL error");
        g_error_free(error);
        return 0;
    }
    FUZZ_CHECK(error == NULL, "a result and an error: %s", error->message);
    read_result(result);
    stagewise_result_free(result);
    return 0;
}
