#include "export.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "sw_error.h"

#define PRECONDITION(error, ...) g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, __VA_ARGS__)

static void feature_free(sw_feature *f)
{
    g_free(f->name);
    g_free(f->type);
    g_free(f->column);
    g_free(f->datetime_format);
    g_free(f->tokenizer);
    g_free(f->fill_value);
    g_strfreev(f->labels);
    g_free(f);
}

void sw_export_free(sw_export *export)
{
    if (export == NULL)
        return;
    g_free(export->dir);
    g_free(export->name);
    g_free(export->preprocessor_path);
    g_free(export->predictor_path);
    g_free(export->predictor_device);
    g_free(export->postprocessor_path);
    if (export->input_features)
        g_ptr_array_unref(export->input_features);
    if (export->output_features)
        g_ptr_array_unref(export->output_features);
    g_free(export);
}

/* The object member `name` of `obj` if it is an object, else NULL. */
static JsonObject *object_member(JsonObject *obj, const char *name)
{
    if (obj == NULL || !json_object_has_member(obj, name))
        return NULL;
    JsonNode *n = json_object_get_member(obj, name);
    return JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static const char *string_member(JsonObject *obj, const char *name)
{
    if (obj == NULL || !json_object_has_member(obj, name))
        return NULL;
    JsonNode *n = json_object_get_member(obj, name);
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(n);
}

static int64_t int_member(JsonObject *obj, const char *name)
{
    if (obj == NULL || !json_object_has_member(obj, name))
        return 0;
    JsonNode *n = json_object_get_member(obj, name);
    if (!JSON_NODE_HOLDS_VALUE(n))
        return 0;
    GType t = json_node_get_value_type(n);
    if (t == G_TYPE_INT64)
        return json_node_get_int(n);
    if (t == G_TYPE_DOUBLE) {
        /* Converting a double outside int64's range is undefined; a size
         * that large is no size, like a string in its place. */
        double d = json_node_get_double(n);
        return d >= -0x1p63 && d < 0x1p63 ? (int64_t)d : 0;
    }
    return 0;
}

/* A scalar JSON value as text (strings as they are, numbers printed), or NULL. */
static char *scalar_as_text(JsonObject *obj, const char *name)
{
    if (obj == NULL || !json_object_has_member(obj, name))
        return NULL;
    JsonNode *n = json_object_get_member(obj, name);
    if (!JSON_NODE_HOLDS_VALUE(n))
        return NULL;
    GType t = json_node_get_value_type(n);
    if (t == G_TYPE_STRING)
        return g_strdup(json_node_get_string(n));
    if (t == G_TYPE_INT64)
        return g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
    if (t == G_TYPE_DOUBLE) {
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        return g_strdup(g_ascii_dtostr(buf, sizeof buf, json_node_get_double(n)));
    }
    if (t == G_TYPE_BOOLEAN)
        return g_strdup(json_node_get_boolean(n) ? "true" : "false");
    return NULL;
}

/* The array member `name` as a NULL-terminated string vector, or NULL when
 * it is absent or holds anything but strings. */
static char **string_array(JsonObject *obj, const char *name)
{
    if (obj == NULL || !json_object_has_member(obj, name))
        return NULL;
    JsonNode *n = json_object_get_member(obj, name);
    if (!JSON_NODE_HOLDS_ARRAY(n))
        return NULL;
    JsonArray *a = json_node_get_array(n);
    guint len = json_array_get_length(a);
    char **out = g_new0(char *, len + 1);
    for (guint i = 0; i < len; i++) {
        JsonNode *e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
            g_strfreev(out);
            return NULL;
        }
        out[i] = g_strdup(json_node_get_string(e));
    }
    return out;
}

static int64_t array_length(JsonObject *obj, const char *name)
{
    if (obj == NULL || !json_object_has_member(obj, name))
        return 0;
    JsonNode *n = json_object_get_member(obj, name);
    return JSON_NODE_HOLDS_ARRAY(n) ? (int64_t)json_array_get_length(json_node_get_array(n)) : 0;
}

/* Element `i` of the array member `name` as an integer, or 0. */
static int64_t int_element(JsonObject *obj, const char *name, guint i)
{
    if (array_length(obj, name) <= (int64_t)i)
        return 0;
    JsonNode *n = json_array_get_element(json_node_get_array(json_object_get_member(obj, name)), i);
    return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64 ? json_node_get_int(n) : 0;
}

/* The first of the metadata's preprocessing section, its `reshape`
 * (element `reshape_index`) and the config's preprocessing that has `key`. */
static int64_t media_fact(JsonObject *meta, JsonObject *config_pre, const char *key, guint reshape_index)
{
    int64_t v = int_member(object_member(meta, "preprocessing"), key);
    if (v <= 0)
        v = int_member(meta, key);
    if (v <= 0)
        v = int_element(meta, "reshape", reshape_index);
    if (v <= 0)
        v = int_member(config_pre, key);
    return v > 0 ? v : 0;
}

/* Images: Ludwig stores the resize target and channels in the metadata's
 * preprocessing section and as reshape [C,H,W]. Audio: feature_dim,
 * max_length, sampling_rate_in_hz and reshape [max_length, feature_dim]. */
static void feature_read_media(sw_feature *f, JsonObject *meta, JsonObject *config_pre)
{
    if (strcmp(f->type, "image") == 0) {
        f->image_channels = media_fact(meta, config_pre, "num_channels", 0);
        f->image_height = media_fact(meta, config_pre, "height", 1);
        f->image_width = media_fact(meta, config_pre, "width", 2);
    } else if (strcmp(f->type, "audio") == 0) {
        f->audio_max_length = media_fact(meta, NULL, "max_length", 0);
        f->audio_feature_dim = media_fact(meta, NULL, "feature_dim", 1);
        f->audio_sample_rate = int_member(meta, "sampling_rate_in_hz");
    }
}

/* Fills the metadata-derived facts of `f` from its training_set_metadata
 * entry and its config preprocessing section; either may be NULL. */
static void feature_read_metadata(sw_feature *f, JsonObject *meta, JsonObject *config_pre)
{
    feature_read_media(f, meta, config_pre);
    JsonObject *meta_pre = object_member(meta, "preprocessing");
    f->vocab_size = int_member(meta, "vocab_size");
    if (f->vocab_size == 0)
        f->vocab_size = array_length(meta, "idx2str");
    f->max_sequence_length = int_member(meta, "max_sequence_length");
    if (f->max_sequence_length == 0)
        f->max_sequence_length = int_member(config_pre, "max_sequence_length");
    f->vector_size = int_member(meta, "vector_size");
    if (f->vector_size == 0)
        f->vector_size = int_member(config_pre, "vector_size");
    f->max_timeseries_length = int_member(meta, "max_timeseries_length");
    f->has_bool2str = array_length(meta, "bool2str") == 2;
    if (strcmp(f->type, "category") == 0)
        f->labels = string_array(meta, "idx2str");
    else if (f->has_bool2str)
        f->labels = string_array(meta, "bool2str");
    const char *fmt = string_member(meta_pre, "datetime_format");
    if (fmt == NULL)
        fmt = string_member(config_pre, "datetime_format");
    f->datetime_format = fmt ? g_strdup(fmt) : NULL;
    const char *tokenizer = string_member(meta_pre, "tokenizer");
    if (tokenizer == NULL)
        tokenizer = string_member(config_pre, "tokenizer");
    f->tokenizer = g_strdup(tokenizer);
    f->fill_value = scalar_as_text(meta_pre, "computed_fill_value");
    if (f->fill_value == NULL)
        f->fill_value = scalar_as_text(config_pre, "fill_value");
}

static GPtrArray *read_features(JsonObject *config, const char *section, JsonObject *metadata, const char *config_path,
                                GError **error)
{
    JsonNode *node = json_object_has_member(config, section) ? json_object_get_member(config, section) : NULL;
    if (node == NULL || !JSON_NODE_HOLDS_ARRAY(node)) {
        PRECONDITION(error, "%s: no '%s' list", config_path, section);
        return NULL;
    }
    JsonArray *list = json_node_get_array(node);
    GPtrArray *features = g_ptr_array_new_with_free_func((GDestroyNotify)feature_free);
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonNode *item = json_array_get_element(list, i);
        JsonObject *obj = JSON_NODE_HOLDS_OBJECT(item) ? json_node_get_object(item) : NULL;
        const char *name = string_member(obj, "name");
        const char *type = string_member(obj, "type");
        if (name == NULL || type == NULL) {
            PRECONDITION(error, "%s: %s[%u] lacks a string 'name' or 'type'", config_path, section, i);
            g_ptr_array_unref(features);
            return NULL;
        }
        sw_feature *f = g_new0(sw_feature, 1);
        f->name = g_strdup(name);
        f->type = g_strdup(type);
        const char *column = string_member(obj, "column");
        f->column = g_strdup(column ? column : name);
        feature_read_metadata(f, object_member(metadata, name), object_member(obj, "preprocessing"));
        /* A timeseries output's length is its horizon, which Ludwig copies
         * from the metadata's max_timeseries_length into the config. */
        if (f->max_timeseries_length == 0 && strcmp(type, "timeseries") == 0)
            f->max_timeseries_length = int_member(obj, "horizon");
        g_ptr_array_add(features, f);
    }
    return features;
}

static JsonParser *parse_json_file(const char *path, GError **error)
{
    JsonParser *parser = json_parser_new();
    GError *local = NULL;
    if (!json_parser_load_from_file(parser, path, &local)) {
        PRECONDITION(error, "%s: %s", path, local->message);
        g_error_free(local);
        g_object_unref(parser);
        return NULL;
    }
    /* An empty (or blank) file parses without error and without a root. */
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        PRECONDITION(error, "%s: the top level is not a JSON object", path);
        g_object_unref(parser);
        return NULL;
    }
    return parser;
}

/* The predictor file is named after the device it was exported for; any
 * suffix is accepted since the server may load it elsewhere. */
static void find_predictor(sw_export *export)
{
    GDir *d = g_dir_open(export->dir, 0, NULL);
    if (d == NULL)
        return;
    const char *entry;
    char *best = NULL;
    while ((entry = g_dir_read_name(d)) != NULL) {
        if (!g_str_has_prefix(entry, "inference_predictor-") || !g_str_has_suffix(entry, ".pt"))
            continue;
        /* Several files: prefer cpu, then the first in name order, so the
         * choice does not depend on directory order. */
        if (best == NULL || strcmp(entry, "inference_predictor-cpu.pt") == 0 ||
            (strcmp(best, "inference_predictor-cpu.pt") != 0 && strcmp(entry, best) < 0)) {
            g_free(best);
            best = g_strdup(entry);
        }
    }
    g_dir_close(d);
    if (best) {
        export->predictor_path = g_build_filename(export->dir, best, NULL);
        size_t prefix = strlen("inference_predictor-");
        export->predictor_device = g_strndup(best + prefix, strlen(best) - prefix - strlen(".pt"));
        g_free(best);
    }
}

sw_export *sw_export_load(const char *dir, GError **error)
{
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        PRECONDITION(error, "model directory '%s' does not exist", dir);
        return NULL;
    }
    sw_export *export = g_new0(sw_export, 1);
    export->dir = g_strdup(dir);
    char *trimmed = g_strdup(dir);
    while (strlen(trimmed) > 1 && g_str_has_suffix(trimmed, "/"))
        trimmed[strlen(trimmed) - 1] = '\0';
    export->name = g_path_get_basename(trimmed);
    g_free(trimmed);
    export->preprocessor_path = g_build_filename(dir, "inference_preprocessor.pt", NULL);
    export->postprocessor_path = g_build_filename(dir, "inference_postprocessor.pt", NULL);
    find_predictor(export);

    char *config_path = g_build_filename(dir, "model_hyperparameters.json", NULL);
    char *meta_path = g_build_filename(dir, "training_set_metadata.json", NULL);
    JsonParser *config = parse_json_file(config_path, error);
    JsonParser *meta = config ? parse_json_file(meta_path, error) : NULL;
    gboolean ok = meta != NULL;
    if (ok) {
        JsonObject *c = json_node_get_object(json_parser_get_root(config));
        JsonObject *m = json_node_get_object(json_parser_get_root(meta));
        export->input_features = read_features(c, "input_features", m, config_path, error);
        ok = export->input_features != NULL;
        if (ok)
            export->output_features = read_features(c, "output_features", m, config_path, error);
        ok = ok && export->output_features != NULL;
    }
    if (config)
        g_object_unref(config);
    if (meta)
        g_object_unref(meta);
    g_free(config_path);
    g_free(meta_path);
    if (!ok) {
        sw_export_free(export);
        return NULL;
    }
    return export;
}
