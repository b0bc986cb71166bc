#include "unit_support.h"

#include <glib/gstdio.h>

#include "fake_torch.h"

char *sw_test_dir_new(void)
{
    GError *error = NULL;
    char *dir = g_dir_make_tmp("stagewise-unit-XXXXXX", &error);
    g_assert_no_error(error);
    return dir;
}

static void remove_tree(const char *path)
{
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
        GDir *d = g_dir_open(path, 0, NULL);
        const char *entry;
        while (d && (entry = g_dir_read_name(d)) != NULL) {
            char *child = g_build_filename(path, entry, NULL);
            remove_tree(child);
            g_free(child);
        }
        if (d)
            g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

void sw_test_dir_remove(char *dir)
{
    if (dir == NULL)
        return;
    remove_tree(dir);
    g_free(dir);
}

static const char *const config_json =
    "{\"input_features\": ["
    "{\"name\": \"age\", \"type\": \"number\", \"column\": \"Age\"},"
    "{\"name\": \"color\", \"type\": \"category\"},"
    "{\"name\": \"review\", \"type\": \"text\"},"
    "{\"name\": \"when\", \"type\": \"date\", \"preprocessing\": {\"datetime_format\": \"%Y-%m-%d\"}}],"
    "\"output_features\": ["
    "{\"name\": \"label\", \"type\": \"category\"},"
    "{\"name\": \"score\", \"type\": \"number\"}]}";

static const char *const metadata_json =
    "{\"age\": {\"mean\": 40, \"std\": 10, \"preprocessing\": {\"computed_fill_value\": 40}},"
    "\"color\": {\"idx2str\": [\"<UNK>\", \"red\", \"green\"], \"vocab_size\": 3},"
    "\"review\": {\"idx2str\": [\"<EOS>\", \"<SOS>\", \"<PAD>\", \"<UNK>\", \"good\"], \"vocab_size\": 5,"
    " \"max_sequence_length\": 6},"
    "\"when\": {\"preprocessing\": {\"computed_fill_value\": \"2020-01-01\"}},"
    "\"label\": {\"idx2str\": [\"a\", \"b\", \"c\"], \"vocab_size\": 3},"
    "\"score\": {}}";

static void write_file(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    g_free(path);
}

static void write_module(const char *dir, const char *name, const char *body)
{
    if (body == NULL)
        return;
    char *path = g_build_filename(dir, name, NULL);
    GError *error = NULL;
    sw_fake_torch_write(path, body, &error);
    g_assert_no_error(error);
    g_free(path);
}

void sw_test_write_export(const char *dir, const char *preprocessor, const char *predictor, const char *postprocessor)
{
    write_file(dir, "model_hyperparameters.json", config_json);
    write_file(dir, "training_set_metadata.json", metadata_json);
    write_module(dir, "inference_preprocessor.pt", preprocessor);
    write_module(dir, "inference_predictor-cpu.pt", predictor);
    write_module(dir, "inference_postprocessor.pt", postprocessor);
}
