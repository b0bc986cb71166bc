/* Fuzzes reading a Ludwig export's JSON (sw_export_load: the config's
 * feature lists, the training-set metadata's vocabularies, sizes, formats
 * and fill values) and what is derived from it: every stage's tensor specs
 * (sw_stage_new) and, for the preprocessor, checking a request against them
 * (sw_stage_prepare), which parses date fill values with the feature's
 * datetime_format. The input is model_hyperparameters.json, then a NUL,
 * then training_set_metadata.json (no NUL: the metadata is "{}"). The
 * folder also holds empty module files, which a stage only checks exist. */
#include <glib/gstdio.h>
#include <string.h>

#include "export.h"
#include "fuzz_support.h"
#include "stage.h"
#include "sw_error.h"

static char *dir, *config_path, *meta_path;

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void remove_folder(void)
{
    const char *names[] = {"model_hyperparameters.json", "training_set_metadata.json", "inference_preprocessor.pt",
                           "inference_predictor-cpu.pt", "inference_postprocessor.pt"};
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        char *path = g_build_filename(dir, names[i], NULL);
        g_unlink(path);
        g_free(path);
    }
    g_rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    /* Two files are written per input: in memory where there is a tmpfs. */
    const char *base = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();
    dir = g_build_filename(base, "stagewise-fuzz-export-XXXXXX", NULL);
    if (g_mkdtemp(dir) == NULL) {
        perror(dir);
        abort();
    }
    const char *modules[] = {"inference_preprocessor.pt", "inference_predictor-cpu.pt", "inference_postprocessor.pt"};
    for (size_t i = 0; i < G_N_ELEMENTS(modules); i++) {
        char *path = g_build_filename(dir, modules[i], NULL);
        write_file(path, "", 0);
        g_free(path);
    }
    config_path = g_build_filename(dir, "model_hyperparameters.json", NULL);
    meta_path = g_build_filename(dir, "training_set_metadata.json", NULL);
    atexit(remove_folder);
    return 0;
}

static void check_spec(const sw_tensor_spec *s)
{
    FUZZ_CHECK(s->name && s->feature_type && s->column, "a spec without its names");
    FUZZ_CHECK(s->ndim >= 1 && s->ndim <= 4 && s->shape[0] == -1, "'%s': ndim %d, first dimension %" G_GINT64_FORMAT,
               s->name, s->ndim, s->shape[0]);
    for (int i = 1; i < s->ndim; i++)
        FUZZ_CHECK(s->shape[i] == -1 || s->shape[i] > 0, "'%s': dimension %d is %" G_GINT64_FORMAT, s->name, i,
                   s->shape[i]);
    FUZZ_CHECK(s->accepted & SW_DTYPE_BIT(s->dtype), "'%s' does not accept its own datatype", s->name);
    char *text = sw_spec_describe(s);
    g_free(text);
}

/* Two rows of what a client would send for `spec`, or NULL when its shape
 * is too large to bother. Date strings: one in the feature's format, one
 * empty, which takes the fill value. */
static sw_value *sample_input(const sw_tensor_spec *spec)
{
    const int64_t rows = 2;
    if (spec->dtype == SW_DTYPE_BYTES || strcmp(spec->feature_type, "date") == 0) {
        const char *date = spec->datetime_format ? "2021-02-03" : "2021-02-03T04:05:06";
        const char *strings[] = {strcmp(spec->feature_type, "date") == 0 ? date : "a b", ""};
        return sw_value_new_tensor(spec->name, SW_VALUE_STRINGS, sw_tensor_new_strings(strings, NULL, 2));
    }
    int64_t shape[SW_MAX_DIMS] = {rows};
    int64_t n = rows;
    for (int i = 1; i < spec->ndim; i++) {
        shape[i] = spec->shape[i] < 0 ? 1 : spec->shape[i];
        if (shape[i] > 4096 || n * shape[i] > 4096)
            return NULL;
        n *= shape[i];
    }
    size_t nbytes = (size_t)n * sw_dtype_size(spec->dtype);
    return sw_value_new_tensor(spec->name, SW_VALUE_TENSOR,
                               sw_tensor_new_copy(spec->dtype, spec->ndim, shape, NULL, nbytes));
}

static void prepare_sample(const sw_stage *stage)
{
    GPtrArray *decoded = sw_value_array_new();
    for (guint i = 0; i < stage->inputs->len; i++) {
        const sw_tensor_spec *spec = g_ptr_array_index(stage->inputs, i);
        /* Feature names may repeat; a request holds each name once. */
        gboolean seen = FALSE;
        for (guint k = 0; k < decoded->len && !seen; k++)
            seen = strcmp(((sw_value *)g_ptr_array_index(decoded, k))->name, spec->name) == 0;
        sw_value *v = seen ? NULL : sample_input(spec);
        if (v)
            g_ptr_array_add(decoded, v);
    }
    GError *error = NULL;
    int64_t batch = 0;
    GPtrArray *prepared = sw_stage_prepare(stage, decoded, &batch, &error);
    if (prepared) {
        FUZZ_CHECK(batch == 2 && prepared->len == decoded->len, "batch %" G_GINT64_FORMAT ", %u of %u values", batch,
                   prepared->len, decoded->len);
        g_ptr_array_unref(prepared);
    } else {
        FUZZ_CHECK(error && error->code == SW_CODE_INVALID_ARGUMENT, "refused without INVALID_ARGUMENT");
        g_error_free(error);
    }
    g_ptr_array_unref(decoded);
}

static void check_features(GPtrArray *features)
{
    FUZZ_CHECK(features != NULL, "loaded without a feature list");
    for (guint i = 0; i < features->len; i++) {
        const sw_feature *f = g_ptr_array_index(features, i);
        FUZZ_CHECK(f->name && f->type && f->column, "feature %u lacks a name, type or column", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t config_len = nul ? (size_t)(nul - data) : size;
    write_file(config_path, data, config_len);
    if (nul)
        write_file(meta_path, nul + 1, size - config_len - 1);
    else
        write_file(meta_path, "{}", 2);

    GError *error = NULL;
    sw_export *export = sw_export_load(dir, &error);
    if (export == NULL) {
        FUZZ_CHECK(error && error->code == SW_CODE_FAILED_PRECONDITION, "refused without FAILED_PRECONDITION");
        g_error_free(error);
        return 0;
    }
    FUZZ_CHECK(error == NULL, "loaded but set an error: %s", error->message);
    check_features(export->input_features);
    check_features(export->output_features);
    FUZZ_CHECK(export->predictor_path && strcmp(export->predictor_device, "cpu") == 0, "the predictor file is lost");
    for (int kind = SW_STAGE_PREPROCESSOR; kind <= SW_STAGE_POSTPROCESSOR; kind++) {
        sw_stage *stage = sw_stage_new((sw_stage_kind)kind, export, "fuzz", "cpu", &error);
        if (stage == NULL) {
            FUZZ_CHECK(error && error->code == SW_CODE_FAILED_PRECONDITION, "no stage, and no FAILED_PRECONDITION");
            g_clear_error(&error);
            continue;
        }
        for (guint i = 0; i < stage->inputs->len; i++)
            check_spec(g_ptr_array_index(stage->inputs, i));
        for (guint i = 0; i < stage->outputs->len; i++)
            check_spec(g_ptr_array_index(stage->outputs, i));
        if (kind == SW_STAGE_PREPROCESSOR)
            prepare_sample(stage);
        sw_stage_free(stage);
    }
    sw_export_free(export);
    return 0;
}
