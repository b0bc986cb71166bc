/* Reading a Ludwig export folder: the features and facts the specs are built
 * from, which predictor file is served, and errors that name the file. */
#include <string.h>

#include "export.h"
#include "fake_torch.h"
#include "sw_error.h"
#include "unit_support.h"

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    g_free(path);
}

static const sw_feature *feature(GPtrArray *features, guint i)
{
    g_assert_cmpuint(i, <, features->len);
    return g_ptr_array_index(features, i);
}

/* Loading `dir` fails FAILED_PRECONDITION with a message holding `part1`
 * and `part2` (NULL: not checked). */
static void expect_precondition(const char *dir, const char *part1, const char *part2)
{
    GError *error = NULL;
    g_assert_null(sw_export_load(dir, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    if (strstr(error->message, part1) == NULL || (part2 && strstr(error->message, part2) == NULL))
        g_error("message '%s' lacks '%s' or '%s'", error->message, part1, part2 ? part2 : "");
    g_error_free(error);
}

static void test_support_export(void)
{
    char *dir = sw_test_dir_new();
    sw_test_write_export(dir, "op=echo", "op=echo", "op=echo");
    GError *error = NULL;
    sw_export *e = sw_export_load(dir, &error);
    g_assert_no_error(error);
    g_assert_nonnull(e);

    char *base = g_path_get_basename(dir);
    g_assert_cmpstr(e->name, ==, base);
    g_free(base);
    g_assert_cmpstr(e->dir, ==, dir);
    char *path = g_build_filename(dir, "inference_predictor-cpu.pt", NULL);
    g_assert_cmpstr(e->predictor_path, ==, path);
    g_free(path);
    g_assert_cmpstr(e->predictor_device, ==, "cpu");
    path = g_build_filename(dir, "inference_preprocessor.pt", NULL);
    g_assert_cmpstr(e->preprocessor_path, ==, path);
    g_free(path);
    path = g_build_filename(dir, "inference_postprocessor.pt", NULL);
    g_assert_cmpstr(e->postprocessor_path, ==, path);
    g_free(path);

    g_assert_cmpuint(e->input_features->len, ==, 4);
    const sw_feature *age = feature(e->input_features, 0);
    g_assert_cmpstr(age->name, ==, "age");
    g_assert_cmpstr(age->type, ==, "number");
    g_assert_cmpstr(age->column, ==, "Age");
    /* An integer computed_fill_value is kept as its text. */
    g_assert_cmpstr(age->fill_value, ==, "40");
    g_assert_null(age->datetime_format);
    g_assert_cmpint(age->vocab_size, ==, 0);

    const sw_feature *color = feature(e->input_features, 1);
    g_assert_cmpstr(color->name, ==, "color");
    g_assert_cmpstr(color->type, ==, "category");
    g_assert_cmpstr(color->column, ==, "color"); /* no column: the name */
    g_assert_cmpint(color->vocab_size, ==, 3);
    g_assert_null(color->fill_value);

    const sw_feature *review = feature(e->input_features, 2);
    g_assert_cmpstr(review->type, ==, "text");
    g_assert_cmpint(review->vocab_size, ==, 5);
    g_assert_cmpint(review->max_sequence_length, ==, 6);

    const sw_feature *when = feature(e->input_features, 3);
    g_assert_cmpstr(when->name, ==, "when");
    g_assert_cmpstr(when->type, ==, "date");
    g_assert_cmpstr(when->datetime_format, ==, "%Y-%m-%d");
    g_assert_cmpstr(when->fill_value, ==, "2020-01-01");

    g_assert_cmpuint(e->output_features->len, ==, 2);
    const sw_feature *label = feature(e->output_features, 0);
    g_assert_cmpstr(label->name, ==, "label");
    g_assert_cmpstr(label->type, ==, "category");
    g_assert_cmpint(label->vocab_size, ==, 3);
    g_assert_false(label->has_bool2str);
    const sw_feature *score = feature(e->output_features, 1);
    g_assert_cmpstr(score->name, ==, "score");
    g_assert_cmpstr(score->type, ==, "number");
    g_assert_cmpint(score->vocab_size, ==, 0);
    sw_export_free(e);

    /* A trailing slash does not change the model name. */
    char *slashed = g_strconcat(dir, "/", NULL);
    e = sw_export_load(slashed, &error);
    g_assert_no_error(error);
    base = g_path_get_basename(dir);
    g_assert_cmpstr(e->name, ==, base);
    g_free(base);
    sw_export_free(e);
    g_free(slashed);
    sw_test_dir_remove(dir);
}

/* Facts that come from elsewhere than the support export has them: the
 * config's preprocessing section, idx2str alone, bool2str, floats. */
static void test_metadata_sources(void)
{
    char *dir = sw_test_dir_new();
    write_text(dir, "model_hyperparameters.json",
               "{\"input_features\": ["
               "{\"name\": \"tokens\", \"type\": \"sequence\", \"preprocessing\": {\"max_sequence_length\": 12}},"
               "{\"name\": \"emb\", \"type\": \"vector\", \"preprocessing\": {\"vector_size\": 4}},"
               "{\"name\": \"d\", \"type\": \"date\", \"preprocessing\": {\"datetime_format\": \"%d/%m/%Y\","
               " \"fill_value\": \"01/01/2000\"}},"
               "{\"name\": \"x\", \"type\": \"number\"}],"
               "\"output_features\": [{\"name\": \"ok\", \"type\": \"binary\"},"
               "{\"name\": \"tags\", \"type\": \"set\"}]}");
    write_text(dir, "training_set_metadata.json",
               "{\"tokens\": {\"idx2str\": [\"a\", \"b\", \"c\", \"d\"]},"
               "\"x\": {\"preprocessing\": {\"computed_fill_value\": 2.5}},"
               "\"ok\": {\"bool2str\": [\"no\", \"yes\"]},"
               "\"tags\": {\"vocab_size\": 7.0}}");
    GError *error = NULL;
    sw_export *e = sw_export_load(dir, &error);
    g_assert_no_error(error);
    const sw_feature *tokens = feature(e->input_features, 0);
    g_assert_cmpint(tokens->vocab_size, ==, 4); /* the length of idx2str */
    g_assert_cmpint(tokens->max_sequence_length, ==, 12);
    g_assert_cmpint(feature(e->input_features, 1)->vector_size, ==, 4);
    const sw_feature *d = feature(e->input_features, 2);
    g_assert_cmpstr(d->datetime_format, ==, "%d/%m/%Y");
    g_assert_cmpstr(d->fill_value, ==, "01/01/2000");
    g_assert_cmpstr(feature(e->input_features, 3)->fill_value, ==, "2.5");
    g_assert_true(feature(e->output_features, 0)->has_bool2str);
    g_assert_cmpint(feature(e->output_features, 1)->vocab_size, ==, 7);
    /* A --model_only export without any predictor file still loads; the
     * stage reports the missing module when it is asked for. */
    g_assert_null(e->predictor_path);
    g_assert_null(e->predictor_device);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

static void test_errors_name_the_file(void)
{
    char *dir = sw_test_dir_new();
    char *missing = g_build_filename(dir, "no-such-model", NULL);
    expect_precondition(missing, missing, "does not exist");
    g_free(missing);

    /* An empty folder: the config is the first file missing. */
    expect_precondition(dir, "model_hyperparameters.json", NULL);

    write_text(dir, "model_hyperparameters.json", "{\"input_features\": [], \"output_features\": []}");
    expect_precondition(dir, "training_set_metadata.json", NULL);

    write_text(dir, "training_set_metadata.json", "{\"x\": ");
    expect_precondition(dir, "training_set_metadata.json", NULL);

    write_text(dir, "training_set_metadata.json", "[1, 2]");
    expect_precondition(dir, "training_set_metadata.json", "not a JSON object");

    write_text(dir, "training_set_metadata.json", "{}");
    write_text(dir, "model_hyperparameters.json", "{\"input_features\": [ {\"name\": ");
    expect_precondition(dir, "model_hyperparameters.json", NULL);

    write_text(dir, "model_hyperparameters.json", "{\"output_features\": []}");
    expect_precondition(dir, "model_hyperparameters.json", "input_features");

    write_text(dir, "model_hyperparameters.json",
               "{\"input_features\": [{\"name\": \"a\", \"type\": \"number\"}, {\"name\": \"b\"}],"
               " \"output_features\": []}");
    expect_precondition(dir, "model_hyperparameters.json", "input_features[1]");

    write_text(dir, "model_hyperparameters.json",
               "{\"input_features\": [{\"name\": \"a\", \"type\": \"number\"}],"
               " \"output_features\": [{\"type\": \"number\"}]}");
    expect_precondition(dir, "model_hyperparameters.json", "output_features[0]");

    /* A name that is not a string is as good as none. */
    write_text(dir, "model_hyperparameters.json",
               "{\"input_features\": [{\"name\": 3, \"type\": \"number\"}], \"output_features\": []}");
    expect_precondition(dir, "model_hyperparameters.json", "input_features[0]");

    write_text(dir, "model_hyperparameters.json", "{\"input_features\": [], \"output_features\": []}");
    GError *error = NULL;
    sw_export *e = sw_export_load(dir, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(e->input_features->len, ==, 0);
    sw_export_free(e);
    sw_test_dir_remove(dir);
}

/* The device suffix of the predictor picked from `files` (NULL-terminated). */
static char *predictor_device_among(const char *const *files)
{
    char *dir = sw_test_dir_new();
    sw_test_write_export(dir, NULL, NULL, NULL);
    for (size_t i = 0; files[i]; i++) {
        char *path = g_build_filename(dir, files[i], NULL);
        GError *error = NULL;
        sw_fake_torch_write(path, "op=echo", &error);
        g_assert_no_error(error);
        g_free(path);
    }
    GError *error = NULL;
    sw_export *e = sw_export_load(dir, &error);
    g_assert_no_error(error);
    char *device = NULL;
    if (e->predictor_path) {
        char *expected = g_strdup_printf("%s/inference_predictor-%s.pt", dir, e->predictor_device);
        g_assert_cmpstr(e->predictor_path, ==, expected);
        g_free(expected);
        device = g_strdup(e->predictor_device);
    }
    sw_export_free(e);
    sw_test_dir_remove(dir);
    return device;
}

static void check_predictor_choice(const char *const *files, const char *want)
{
    char *device = predictor_device_among(files);
    g_assert_cmpstr(device, ==, want);
    g_free(device);
}

static void test_predictor_choice(void)
{
    check_predictor_choice((const char *const[]){"inference_predictor-cpu.pt", NULL}, "cpu");
    check_predictor_choice((const char *const[]){"inference_predictor-cuda.pt", NULL}, "cuda");
    check_predictor_choice((const char *const[]){"inference_predictor-cuda:0.pt", NULL}, "cuda:0");
    /* cpu wins whatever else is there and whatever the names sort as. */
    check_predictor_choice((const char *const[]){"inference_predictor-cuda.pt", "inference_predictor-cpu.pt",
                                                 "inference_predictor-a.pt", NULL},
                           "cpu");
    /* Without cpu: the first in name order, not in directory order. */
    check_predictor_choice(
        (const char *const[]){"inference_predictor-cuda:1.pt", "inference_predictor-cuda:0.pt", NULL}, "cuda:0");
    /* Files that are not predictors are not taken for one. */
    check_predictor_choice(
        (const char *const[]){"inference_predictor.pt", "inference_predictor-cpu.pt.bak", "predictor-cpu.pt", NULL},
        NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/export/support-export", test_support_export);
    g_test_add_func("/export/metadata-sources", test_metadata_sources);
    g_test_add_func("/export/errors-name-the-file", test_errors_name_the_file);
    g_test_add_func("/export/predictor-choice", test_predictor_choice);
    return g_test_run();
}
