/* The tensors that cross each stage boundary, derived from the export's
 * features: names, datatypes, shapes (batch first, vocabulary and sequence
 * dimensions from the metadata), and the types not served. */
#include <string.h>

#include "feature_spec.h"
#include "sw_error.h"
#include "unit_support.h"

static sw_export *load_support_export(char **dir)
{
    *dir = sw_test_dir_new();
    sw_test_write_export(*dir, NULL, NULL, NULL);
    GError *error = NULL;
    sw_export *e = sw_export_load(*dir, &error);
    g_assert_no_error(error);
    return e;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    g_free(path);
}

/* An export of the given feature lists (JSON arrays) and metadata. */
static sw_export *load_export(char **dir, const char *inputs, const char *outputs, const char *metadata)
{
    *dir = sw_test_dir_new();
    char *config = g_strdup_printf("{\"input_features\": %s, \"output_features\": %s}", inputs, outputs);
    write_text(*dir, "model_hyperparameters.json", config);
    write_text(*dir, "training_set_metadata.json", metadata);
    g_free(config);
    GError *error = NULL;
    sw_export *e = sw_export_load(*dir, &error);
    g_assert_no_error(error);
    return e;
}

/* Spec `i` of `specs` is called `name`, has `dtype` and the shape given as
 * text ("[-1,3]"), and is required or not. */
static const sw_tensor_spec *check_spec(GPtrArray *specs, guint i, const char *name, sw_dtype dtype, const char *shape,
                                        gboolean required)
{
    g_assert_cmpuint(i, <, specs->len);
    const sw_tensor_spec *s = g_ptr_array_index(specs, i);
    g_assert_cmpstr(s->name, ==, name);
    g_assert_cmpstr(sw_dtype_name(s->dtype), ==, sw_dtype_name(dtype));
    char *got = sw_shape_to_string(s->ndim, s->shape);
    g_assert_cmpstr(got, ==, shape);
    g_free(got);
    g_assert_cmpint(s->required, ==, required);
    /* The advertised datatype is always one a request may use. */
    g_assert_true(s->accepted & SW_DTYPE_BIT(s->dtype));
    return s;
}

static void test_preprocessor(void)
{
    char *dir = NULL;
    sw_export *e = load_support_export(&dir);
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_PREPROCESSOR, e, &in, &out, &error));
    g_assert_no_error(error);

    g_assert_cmpuint(in->len, ==, 4);
    const sw_tensor_spec *age = check_spec(in, 0, "age", SW_DTYPE_FP32, "[-1]", TRUE);
    g_assert_cmpstr(age->feature_type, ==, "number");
    g_assert_cmpstr(age->column, ==, "Age");
    g_assert_cmpstr(age->fill_value, ==, "40");
    /* Numbers may come in any numeric datatype, but not as strings. */
    g_assert_true(age->accepted & SW_DTYPE_BIT(SW_DTYPE_INT64));
    g_assert_true(age->accepted & SW_DTYPE_BIT(SW_DTYPE_BOOL));
    g_assert_false(age->accepted & SW_DTYPE_BIT(SW_DTYPE_BYTES));
    const sw_tensor_spec *color = check_spec(in, 1, "color", SW_DTYPE_BYTES, "[-1]", TRUE);
    g_assert_cmpuint(color->accepted, ==, SW_DTYPE_BIT(SW_DTYPE_BYTES));
    g_assert_false(color->json);
    check_spec(in, 2, "review", SW_DTYPE_BYTES, "[-1]", TRUE);
    const sw_tensor_spec *when = check_spec(in, 3, "when", SW_DTYPE_INT64, "[-1,9]", TRUE);
    g_assert_cmpstr(when->datetime_format, ==, "%Y-%m-%d");
    g_assert_cmpstr(when->fill_value, ==, "2020-01-01");
    g_assert_cmpuint(when->accepted, ==,
                     SW_DTYPE_BIT(SW_DTYPE_INT32) | SW_DTYPE_BIT(SW_DTYPE_INT64) | SW_DTYPE_BIT(SW_DTYPE_BYTES));

    /* The preprocessed tensors, one per input feature under its name. */
    g_assert_cmpuint(out->len, ==, 4);
    check_spec(out, 0, "age", SW_DTYPE_FP32, "[-1]", TRUE);
    const sw_tensor_spec *color_idx = check_spec(out, 1, "color", SW_DTYPE_INT32, "[-1]", TRUE);
    g_assert_true(color_idx->accepted & SW_DTYPE_BIT(SW_DTYPE_INT64));
    check_spec(out, 2, "review", SW_DTYPE_INT64, "[-1,6]", TRUE);
    check_spec(out, 3, "when", SW_DTYPE_INT32, "[-1,9]", TRUE);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

static void test_predictor(void)
{
    char *dir = NULL;
    sw_export *e = load_support_export(&dir);
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_PREDICTOR, e, &in, &out, &error));
    g_assert_no_error(error);
    /* The predictor takes what the preprocessor makes. */
    g_assert_cmpuint(in->len, ==, 4);
    check_spec(in, 0, "age", SW_DTYPE_FP32, "[-1]", TRUE);
    check_spec(in, 1, "color", SW_DTYPE_INT32, "[-1]", TRUE);
    check_spec(in, 2, "review", SW_DTYPE_INT64, "[-1,6]", TRUE);
    check_spec(in, 3, "when", SW_DTYPE_INT32, "[-1,9]", TRUE);

    /* Flattened "<feature>::<key>" outputs; logits are optional. */
    g_assert_cmpuint(out->len, ==, 5);
    const sw_tensor_spec *pred = check_spec(out, 0, "label::predictions", SW_DTYPE_INT64, "[-1]", TRUE);
    g_assert_cmpstr(pred->feature_type, ==, "category");
    g_assert_cmpstr(pred->column, ==, "label");
    check_spec(out, 1, "label::probabilities", SW_DTYPE_FP32, "[-1,3]", TRUE);
    check_spec(out, 2, "label::logits", SW_DTYPE_FP32, "[-1,3]", FALSE);
    check_spec(out, 3, "score::predictions", SW_DTYPE_FP32, "[-1]", TRUE);
    check_spec(out, 4, "score::logits", SW_DTYPE_FP32, "[-1]", FALSE);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

static void test_postprocessor(void)
{
    char *dir = NULL;
    sw_export *e = load_support_export(&dir);
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_POSTPROCESSOR, e, &in, &out, &error));
    g_assert_no_error(error);
    /* The postprocessor takes what the predictor gives. */
    g_assert_cmpuint(in->len, ==, 5);
    check_spec(in, 0, "label::predictions", SW_DTYPE_INT64, "[-1]", TRUE);
    check_spec(in, 2, "label::logits", SW_DTYPE_FP32, "[-1,3]", FALSE);
    check_spec(in, 3, "score::predictions", SW_DTYPE_FP32, "[-1]", TRUE);

    g_assert_cmpuint(out->len, ==, 3);
    check_spec(out, 0, "label::predictions", SW_DTYPE_BYTES, "[-1]", TRUE);
    check_spec(out, 1, "label::probabilities", SW_DTYPE_FP32, "[-1,3]", TRUE);
    check_spec(out, 2, "score::predictions", SW_DTYPE_FP32, "[-1]", TRUE);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

/* Types the support export lacks: binary predictions follow bool2str, ragged
 * outputs are JSON rows, unknown sizes stay -1. */
static void test_other_types(void)
{
    char *dir = NULL;
    sw_export *e = load_export(&dir,
                               "[{\"name\": \"v\", \"type\": \"vector\"}, {\"name\": \"s\", \"type\": \"set\"},"
                               " {\"name\": \"h\", \"type\": \"h3\"}]",
                               "[{\"name\": \"yes\", \"type\": \"binary\"}, {\"name\": \"flag\", \"type\": \"binary\"},"
                               " {\"name\": \"tags\", \"type\": \"set\"}, {\"name\": \"words\", \"type\": \"text\"}]",
                               "{\"s\": {\"vocab_size\": 4}, \"yes\": {\"bool2str\": [\"no\", \"yes\"]},"
                               " \"tags\": {\"vocab_size\": 5}, \"words\": {\"vocab_size\": 9,"
                               " \"max_sequence_length\": 3}}");
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_PREPROCESSOR, e, &in, &out, &error));
    /* A vector without vector_size: any width. */
    const sw_tensor_spec *v = check_spec(in, 0, "v", SW_DTYPE_FP32, "[-1,-1]", TRUE);
    g_assert_true(v->accepted & SW_DTYPE_BIT(SW_DTYPE_BYTES));
    check_spec(in, 2, "h", SW_DTYPE_INT64, "[-1]", TRUE);
    check_spec(out, 1, "s", SW_DTYPE_FP32, "[-1,4]", TRUE);
    check_spec(out, 2, "h", SW_DTYPE_UINT8, "[-1,19]", TRUE);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);

    g_assert_true(sw_stage_specs(SW_STAGE_PREDICTOR, e, &in, &out, &error));
    check_spec(out, 0, "yes::predictions", SW_DTYPE_BOOL, "[-1]", TRUE);
    check_spec(out, 1, "yes::probabilities", SW_DTYPE_FP32, "[-1]", TRUE);
    check_spec(out, 9, "words::predictions", SW_DTYPE_INT64, "[-1,3]", TRUE);
    check_spec(out, 10, "words::probabilities", SW_DTYPE_FP32, "[-1,3,9]", TRUE);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);

    g_assert_true(sw_stage_specs(SW_STAGE_POSTPROCESSOR, e, &in, &out, &error));
    g_assert_no_error(error);
    /* With bool2str the predictions are strings, without it booleans. */
    check_spec(out, 0, "yes::predictions", SW_DTYPE_BYTES, "[-1]", TRUE);
    check_spec(out, 1, "yes::probabilities", SW_DTYPE_FP32, "[-1,2]", TRUE);
    check_spec(out, 2, "flag::predictions", SW_DTYPE_BOOL, "[-1]", TRUE);
    const sw_tensor_spec *tags = check_spec(out, 4, "tags::predictions", SW_DTYPE_BYTES, "[-1]", FALSE);
    g_assert_true(tags->json);
    const sw_tensor_spec *words = check_spec(out, 6, "words::predictions", SW_DTYPE_BYTES, "[-1]", FALSE);
    g_assert_true(words->json);
    const sw_tensor_spec *probs = check_spec(out, 7, "words::probabilities", SW_DTYPE_FP32, "[-1,3]", FALSE);
    g_assert_false(probs->json);
    g_assert_cmpuint(out->len, ==, 9);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

/* Timeseries in and out: inputs advertised as FP32 [B,T] that also take FP64
 * and text; outputs are vectors of the horizon (metadata, else the config's
 * horizon, else any). h3 takes INT64, UINT64 and decimal strings. */
static void test_timeseries_and_h3(void)
{
    char *dir = NULL;
    sw_export *e =
        load_export(&dir, "[{\"name\": \"ts\", \"type\": \"timeseries\"}, {\"name\": \"h\", \"type\": \"h3\"}]",
                    "[{\"name\": \"next\", \"type\": \"timeseries\"},"
                    " {\"name\": \"later\", \"type\": \"timeseries\", \"horizon\": 3},"
                    " {\"name\": \"someday\", \"type\": \"timeseries\"}]",
                    "{\"ts\": {\"max_timeseries_length\": 6}, \"next\": {\"max_timeseries_length\": 2}}");
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_PREPROCESSOR, e, &in, &out, &error));
    const sw_tensor_spec *ts = check_spec(in, 0, "ts", SW_DTYPE_FP32, "[-1,6]", TRUE);
    g_assert_cmphex(ts->accepted, ==,
                    SW_DTYPE_BIT(SW_DTYPE_FP32) | SW_DTYPE_BIT(SW_DTYPE_FP64) | SW_DTYPE_BIT(SW_DTYPE_BYTES));
    const sw_tensor_spec *h = check_spec(in, 1, "h", SW_DTYPE_INT64, "[-1]", TRUE);
    char *text = sw_spec_describe(h);
    g_assert_cmpstr(text, ==, "UINT64, INT32, INT64, BYTES with shape [-1]");
    g_free(text);
    check_spec(out, 0, "ts", SW_DTYPE_FP32, "[-1,6]", TRUE);
    check_spec(out, 1, "h", SW_DTYPE_UINT8, "[-1,19]", TRUE);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);

    g_assert_true(sw_stage_specs(SW_STAGE_PREDICTOR, e, &in, &out, &error));
    g_assert_no_error(error);
    check_spec(in, 0, "ts", SW_DTYPE_FP32, "[-1,6]", TRUE);
    check_spec(out, 0, "next::predictions", SW_DTYPE_FP32, "[-1,2]", TRUE);
    check_spec(out, 1, "next::logits", SW_DTYPE_FP32, "[-1,2]", FALSE);
    check_spec(out, 2, "later::predictions", SW_DTYPE_FP32, "[-1,3]", TRUE);
    check_spec(out, 4, "someday::predictions", SW_DTYPE_FP32, "[-1,-1]", TRUE);
    g_assert_cmpuint(out->len, ==, 6);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);

    g_assert_true(sw_stage_specs(SW_STAGE_POSTPROCESSOR, e, &in, &out, &error));
    g_assert_no_error(error);
    check_spec(in, 0, "next::predictions", SW_DTYPE_FP32, "[-1,2]", TRUE);
    check_spec(out, 0, "next::predictions", SW_DTYPE_FP32, "[-1,2]", TRUE);
    const sw_tensor_spec *logits = check_spec(out, 3, "later::logits", SW_DTYPE_FP32, "[-1,3]", FALSE);
    g_assert_false(logits->json);
    g_assert_cmpuint(out->len, ==, 6);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

static void expect_unsupported(sw_stage_kind kind, const sw_export *e, const char *part1, const char *part2)
{
    /* Whatever the caller had in `in` must not be left there to be freed. */
    static GPtrArray sentinel;
    GPtrArray *in = &sentinel, *out = NULL;
    GError *error = NULL;
    g_assert_false(sw_stage_specs(kind, e, &in, &out, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_assert_null(in);
    if (strstr(error->message, part1) == NULL || strstr(error->message, part2) == NULL)
        g_error("message '%s' lacks '%s' or '%s'", error->message, part1, part2);
    g_error_free(error);
}

static void test_unsupported_types(void)
{
    char *dir = NULL;
    sw_export *e =
        load_export(&dir, "[{\"name\": \"x\", \"type\": \"number\"}, {\"name\": \"pic\", \"type\": \"hologram\"}]",
                    "[{\"name\": \"y\", \"type\": \"number\"}]", "{}");
    /* An input feature concerns the two stages that take input features. */
    expect_unsupported(SW_STAGE_PREPROCESSOR, e, "'pic'", "'hologram'");
    expect_unsupported(SW_STAGE_PREDICTOR, e, "input feature 'pic'", "'hologram'");
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_POSTPROCESSOR, e, &in, &out, &error));
    g_assert_no_error(error);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);

    /* An output type unknown altogether, or known only as an input. */
    e = load_export(&dir, "[{\"name\": \"x\", \"type\": \"number\"}]",
                    "[{\"name\": \"y\", \"type\": \"number\"}, {\"name\": \"sound\", \"type\": \"audio\"}]", "{}");
    expect_unsupported(SW_STAGE_PREDICTOR, e, "output feature 'sound'", "'audio'");
    expect_unsupported(SW_STAGE_POSTPROCESSOR, e, "output feature 'sound'", "'audio'");
    g_assert_true(sw_stage_specs(SW_STAGE_PREPROCESSOR, e, &in, &out, &error));
    g_assert_no_error(error);
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);

    e = load_export(&dir, "[{\"name\": \"x\", \"type\": \"number\"}]", "[{\"name\": \"when\", \"type\": \"date\"}]",
                    "{}");
    expect_unsupported(SW_STAGE_PREDICTOR, e, "output feature 'when'", "'date'");
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

static void test_find_and_describe(void)
{
    char *dir = NULL;
    sw_export *e = load_support_export(&dir);
    GPtrArray *in = NULL, *out = NULL;
    GError *error = NULL;
    g_assert_true(sw_stage_specs(SW_STAGE_PREPROCESSOR, e, &in, &out, &error));

    const sw_tensor_spec *when = sw_spec_find(in, "when");
    g_assert_true(when == g_ptr_array_index(in, 3));
    g_assert_null(sw_spec_find(in, "Age")); /* specs go by name, not column */
    g_assert_null(sw_spec_find(in, "wh"));
    g_assert_null(sw_spec_find(in, ""));

    char *text = sw_spec_describe(sw_spec_find(in, "color"));
    g_assert_cmpstr(text, ==, "BYTES with shape [-1]");
    g_free(text);
    text = sw_spec_describe(when);
    g_assert_cmpstr(text, ==, "INT32, INT64, BYTES with shape [-1,9]");
    g_free(text);
    /* Every numeric datatype, in the protocol's order. */
    text = sw_spec_describe(sw_spec_find(in, "age"));
    g_assert_cmpstr(text, ==,
                    "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64 "
                    "with shape [-1]");
    g_free(text);
    text = sw_spec_describe(sw_spec_find(out, "review"));
    g_assert_cmpstr(text, ==, "INT32, INT64 with shape [-1,6]");
    g_free(text);

    g_assert_cmpstr(sw_stage_kind_name(SW_STAGE_PREPROCESSOR), ==, "preprocessor");
    g_assert_cmpstr(sw_stage_kind_name(SW_STAGE_PREDICTOR), ==, "predictor");
    g_assert_cmpstr(sw_stage_kind_name(SW_STAGE_POSTPROCESSOR), ==, "postprocessor");
    g_ptr_array_unref(in);
    g_ptr_array_unref(out);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/feature-spec/preprocessor", test_preprocessor);
    g_test_add_func("/feature-spec/predictor", test_predictor);
    g_test_add_func("/feature-spec/postprocessor", test_postprocessor);
    g_test_add_func("/feature-spec/other-types", test_other_types);
    g_test_add_func("/feature-spec/timeseries-and-h3", test_timeseries_and_h3);
    g_test_add_func("/feature-spec/unsupported-types", test_unsupported_types);
    g_test_add_func("/feature-spec/find-and-describe", test_find_and_describe);
    return g_test_run();
}
