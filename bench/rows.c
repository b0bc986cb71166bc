/* The inputs a benchmark sends: synthetic raw rows built from an export's
 * features, or a recorded ModelInferRequest replayed byte for byte. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "date_parse.h"
#include "oip_codec.h"
#include "sw_error.h"
#include "table.h"

void bench_input_free(bench_input *input)
{
    if (input == NULL)
        return;
    g_free(input->model);
    if (input->tensors)
        g_ptr_array_unref(input->tensors);
    g_free(input);
}

/* An empty input of raw rows for the preprocessor (or the whole pipeline). */
static bench_input *raw_input_new(const sw_export *export, const char *model, int64_t rows)
{
    bench_input *input = g_new0(bench_input, 1);
    input->model = g_strdup(model ? model : export->name);
    input->tensors = sw_output_array_new();
    input->rows = rows;
    input->first = SW_STAGE_PREPROCESSOR;
    input->pipeline = !g_str_has_suffix(input->model, "_preprocessor");
    return input;
}

/* Adds `tensor` (ownership taken) as input `name`. */
static void input_add(bench_input *input, const char *name, sw_tensor *tensor)
{
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup(name);
    o->tensor = tensor;
    g_ptr_array_add(input->tensors, o);
}

/* ---- synthetic rows ------------------------------------------------------ */

/* What a feature's values are drawn from: its training set metadata. */
typedef struct feature_pool {
    GPtrArray *words; /* char*: vocabulary without special symbols, or binary labels */
    double mean, std;
} feature_pool;

static JsonObject *member_object(JsonObject *obj, const char *name)
{
    JsonNode *n = obj && json_object_has_member(obj, name) ? json_object_get_member(obj, name) : NULL;
    return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static double member_double(JsonObject *obj, const char *name, double fallback)
{
    JsonNode *n = obj && json_object_has_member(obj, name) ? json_object_get_member(obj, name) : NULL;
    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n))
        return fallback;
    GType t = json_node_get_value_type(n);
    if (t == G_TYPE_INT64)
        return (double)json_node_get_int(n);
    return t == G_TYPE_DOUBLE ? json_node_get_double(n) : fallback;
}

/* Ludwig's special symbols (<PAD>, <UNK>, ...) are not what users send. */
static gboolean is_special_symbol(const char *word)
{
    size_t n = strlen(word);
    return n >= 2 && word[0] == '<' && word[n - 1] == '>';
}

/* Punctuation tokens of a text vocabulary ("!", ",") are not words users
 * type on their own. */
static gboolean has_alnum(const char *word)
{
    for (const char *p = word; *p; p++)
        if (g_ascii_isalnum(*p) || (guchar)*p >= 0x80)
            return TRUE;
    return FALSE;
}

static void pool_read(feature_pool *pool, JsonObject *meta)
{
    pool->words = g_ptr_array_new_with_free_func(g_free);
    pool->mean = member_double(meta, "mean", 0.0);
    pool->std = member_double(meta, "std", 1.0);
    JsonObject *str2bool = member_object(meta, "str2bool");
    JsonNode *idx = meta && json_object_has_member(meta, "idx2str") ? json_object_get_member(meta, "idx2str") : NULL;
    if (str2bool) {
        GList *keys = json_object_get_members(str2bool);
        for (GList *k = keys; k; k = k->next)
            g_ptr_array_add(pool->words, g_strdup(k->data));
        g_list_free(keys);
    } else if (idx && JSON_NODE_HOLDS_ARRAY(idx)) {
        JsonArray *a = json_node_get_array(idx);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            const char *w = json_array_get_string_element(a, i);
            if (w && !is_special_symbol(w) && has_alnum(w))
                g_ptr_array_add(pool->words, g_strdup(w));
        }
    }
    if (pool->words->len == 0)
        g_ptr_array_add(pool->words, g_strdup("a"));
}

static const char *pick(const feature_pool *pool, GRand *rng)
{
    return g_ptr_array_index(pool->words, g_rand_int_range(rng, 0, (gint32)pool->words->len));
}

/* `min`..`max` words of the pool separated by spaces. */
static char *words(const feature_pool *pool, GRand *rng, int min, int max)
{
    GString *s = g_string_new(NULL);
    int n = g_rand_int_range(rng, min, max + 1);
    for (int i = 0; i < n; i++)
        g_string_append_printf(s, "%s%s", i ? " " : "", pick(pool, rng));
    return g_string_free(s, FALSE);
}

/* A date between 2015 and 2024 written with the feature's format (ISO when
 * it has none), as a user's data column would hold it. */
static char *date_text(const sw_feature *f, GRand *rng)
{
    struct tm tm = {0};
    tm.tm_year = 115 + g_rand_int_range(rng, 0, 10);
    tm.tm_mon = g_rand_int_range(rng, 0, 12);
    tm.tm_mday = g_rand_int_range(rng, 1, 29);
    tm.tm_hour = 12;
    char buf[128];
    size_t n = strftime(buf, sizeof buf, f->datetime_format ? f->datetime_format : "%Y-%m-%d", &tm);
    return g_strndup(buf, n ? n : 0);
}

/* One string per row for the feature types sent as BYTES; NULL otherwise. */
static char *string_cell(const sw_feature *f, const feature_pool *pool, GRand *rng, int64_t row)
{
    const char *t = f->type;
    /* Every seventh row leaves text empty, as the tests' rows do, so the
     * fill paths are part of what is measured. */
    if ((strcmp(t, "text") == 0 || strcmp(t, "sequence") == 0) && row % 7 == 1)
        return g_strdup("");
    if (strcmp(t, "binary") == 0 || strcmp(t, "category") == 0)
        return g_strdup(pick(pool, rng));
    if (strcmp(t, "set") == 0 || strcmp(t, "bag") == 0)
        return words(pool, rng, 1, 3);
    if (strcmp(t, "text") == 0 || strcmp(t, "sequence") == 0) {
        int longest = f->max_sequence_length > 0 ? (int)f->max_sequence_length + 1 : 9;
        return words(pool, rng, 1, longest);
    }
    if (strcmp(t, "timeseries") == 0) {
        GString *s = g_string_new(NULL);
        int64_t n = f->max_timeseries_length > 0 ? f->max_timeseries_length : 8;
        for (int64_t i = 0; i < n; i++)
            g_string_append_printf(s, "%s%.3f", i ? " " : "", g_rand_double_range(rng, -1.0, 1.0));
        return g_string_free(s, FALSE);
    }
    if (strcmp(t, "date") == 0)
        return date_text(f, rng);
    return NULL;
}

static sw_tensor *string_column(const sw_feature *f, const feature_pool *pool, GRand *rng, int64_t rows)
{
    char **cells = g_new0(char *, rows + 1);
    for (int64_t r = 0; r < rows; r++)
        cells[r] = string_cell(f, pool, rng, r);
    sw_tensor *t = sw_tensor_new_strings((const char *const *)cells, NULL, (size_t)rows);
    g_strfreev(cells);
    return t;
}

/* Dates as Ludwig's INT64 [B,9] vectors, parsed from the same texts. */
static sw_tensor *date_vector_column(const sw_feature *f, GRand *rng, int64_t rows)
{
    int64_t *v = g_new(int64_t, rows * SW_DATE_VECTOR_LEN);
    for (int64_t r = 0; r < rows; r++) {
        char *text = date_text(f, rng);
        if (!sw_date_vector_parse(text, strlen(text), f->datetime_format, v + r * SW_DATE_VECTOR_LEN))
            memset(v + r * SW_DATE_VECTOR_LEN, 0, sizeof(int64_t) * SW_DATE_VECTOR_LEN);
        g_free(text);
    }
    int64_t shape[2] = {rows, SW_DATE_VECTOR_LEN};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_INT64, 2, shape, v, sizeof(int64_t) * rows * SW_DATE_VECTOR_LEN);
    g_free(v);
    return t;
}

/* FP32 [B] numbers (every seventh missing, as NaN) or FP32 [B,D] vectors. */
static sw_tensor *float_column(const sw_feature *f, const feature_pool *pool, GRand *rng, int64_t rows, int64_t dim)
{
    float *v = g_new(float, rows *dim);
    for (int64_t i = 0; i < rows * dim; i++) {
        gboolean missing = dim == 1 && i % 7 == 3;
        v[i] = missing ? NAN : (float)(pool->mean + pool->std * g_rand_double_range(rng, -1.5, 1.5));
    }
    int64_t shape[2] = {rows, dim};
    int ndim = strcmp(f->type, "vector") == 0 ? 2 : 1;
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_FP32, ndim, shape, v, sizeof(float) * rows * dim);
    g_free(v);
    return t;
}

static sw_tensor *feature_column(const sw_feature *f, const feature_pool *pool, GRand *rng, int64_t rows,
                                 gboolean date_vectors, GError **error)
{
    if (strcmp(f->type, "number") == 0)
        return float_column(f, pool, rng, rows, 1);
    if (strcmp(f->type, "vector") == 0)
        return float_column(f, pool, rng, rows, f->vector_size > 0 ? f->vector_size : 1);
    if (strcmp(f->type, "date") == 0 && date_vectors)
        return date_vector_column(f, rng, rows);
    if (strcmp(f->type, "h3") == 0) {
        int64_t shape[1] = {rows};
        sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_INT64, 1, shape, NULL, sizeof(int64_t) * rows);
        int64_t *cells = (int64_t *)sw_tensor_data(t, NULL);
        for (int64_t r = 0; r < rows; r++)
            cells[r] = 576495936675512319LL; /* a resolution-0 cell: any valid index will do */
        return t;
    }
    char *probe = string_cell(f, pool, rng, 0);
    if (probe == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION,
                    "input feature '%s' has type '%s', for which the bench cannot make rows", f->name, f->type);
        return NULL;
    }
    g_free(probe);
    return string_column(f, pool, rng, rows);
}

static JsonParser *read_metadata(const sw_export *export, GError **error)
{
    char *path = g_build_filename(export->dir, "training_set_metadata.json", NULL);
    JsonParser *parser = json_parser_new();
    if (!json_parser_load_from_file(parser, path, error)) {
        g_prefix_error(error, "%s: ", path);
        g_clear_object(&parser);
    }
    g_free(path);
    return parser;
}

bench_input *bench_rows_from_export(const sw_export *export, const char *model, int64_t rows, gboolean date_vectors,
                                    guint32 seed, GError **error)
{
    JsonParser *parser = read_metadata(export, error);
    if (parser == NULL)
        return NULL;
    JsonNode *root = json_parser_get_root(parser);
    JsonObject *metadata = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    GRand *rng = g_rand_new_with_seed(seed);
    bench_input *input = raw_input_new(export, model, rows);
    for (guint i = 0; i < export->input_features->len; i++) {
        const sw_feature *f = g_ptr_array_index(export->input_features, i);
        feature_pool pool;
        pool_read(&pool, member_object(metadata, f->name));
        sw_tensor *t = feature_column(f, &pool, rng, rows, date_vectors, error);
        g_ptr_array_unref(pool.words);
        if (t == NULL) {
            g_clear_pointer(&input, bench_input_free);
            break;
        }
        input_add(input, f->name, t);
    }
    g_rand_free(rng);
    g_object_unref(parser);
    return input;
}

/* ---- rows from a file ---------------------------------------------------- */

static gboolean is_blank(const char *text)
{
    while (g_ascii_isspace(*text))
        text++;
    return *text == '\0';
}

/* The whole of `cell` as a number: NaN when missing (NULL or blank). */
static gboolean parse_number(const char *cell, double *out)
{
    if (cell == NULL || is_blank(cell)) {
        *out = NAN;
        return TRUE;
    }
    char *end = NULL;
    *out = g_ascii_strtod(cell, &end);
    while (end && g_ascii_isspace(*end))
        end++;
    return end != cell && end && *end == '\0';
}

static gboolean file_error(GError **error, const sw_table *table, size_t row, const sw_feature *f, const char *why,
                           const char *cell)
{
    char *where = sw_table_row_label(table, row);
    g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s, column '%s' (input feature '%s', %s): %s: '%s'", where,
                f->column, f->name, f->type, why, cell ? cell : "");
    g_free(where);
    return FALSE;
}

static sw_tensor *numbers_from_cells(const sw_feature *f, const sw_table *table, const char *const *cells, int64_t rows,
                                     GError **error)
{
    size_t n = sw_table_rows(table);
    float *v = g_new(float, rows);
    for (int64_t r = 0; r < rows; r++) {
        double x = 0;
        const char *cell = cells[(size_t)r % n];
        if (!parse_number(cell, &x)) {
            file_error(error, table, (size_t)r % n, f, "not a number", cell);
            g_free(v);
            return NULL;
        }
        v[r] = (float)x;
    }
    int64_t shape[1] = {rows};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_FP32, 1, shape, v, sizeof(float) * rows);
    g_free(v);
    return t;
}

static sw_tensor *vectors_from_cells(const sw_feature *f, const sw_table *table, const char *const *cells, int64_t rows,
                                     GError **error)
{
    size_t n = sw_table_rows(table);
    int64_t dim = f->vector_size;
    float *v = NULL;
    for (int64_t r = 0; r < rows; r++) {
        const char *cell = cells[(size_t)r % n] ? cells[(size_t)r % n] : "";
        char **parts = g_strsplit_set(cell, " \t", -1);
        GArray *values = g_array_new(FALSE, FALSE, sizeof(float));
        gboolean ok = TRUE;
        for (char **p = parts; ok && *p; p++) {
            if (**p == '\0')
                continue;
            double x = 0;
            ok = parse_number(*p, &x) && !isnan(x);
            float fx = (float)x;
            g_array_append_val(values, fx);
        }
        g_strfreev(parts);
        if (dim <= 0)
            dim = values->len; /* the first row says, when the metadata does not */
        if (!ok || dim == 0 || (int64_t)values->len != dim) {
            char *why = ok ? g_strdup_printf("expected %" G_GINT64_FORMAT " space-separated numbers", dim)
                           : g_strdup("not space-separated numbers");
            file_error(error, table, (size_t)r % n, f, why, cell);
            g_free(why);
            g_array_free(values, TRUE);
            g_free(v);
            return NULL;
        }
        if (v == NULL)
            v = g_new(float, rows *dim);
        memcpy(v + r * dim, values->data, sizeof(float) * (size_t)dim);
        g_array_free(values, TRUE);
    }
    int64_t shape[2] = {rows, dim};
    sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_FP32, 2, shape, v, sizeof(float) * rows * dim);
    g_free(v);
    return t;
}

static sw_tensor *texts_from_cells(const sw_table *table, const char *const *cells, int64_t rows)
{
    size_t n = sw_table_rows(table);
    const char **texts = g_new(const char *, rows);
    for (int64_t r = 0; r < rows; r++)
        texts[r] = cells[(size_t)r % n] ? cells[(size_t)r % n] : "";
    sw_tensor *t = sw_tensor_new_strings(texts, NULL, (size_t)rows);
    g_free(texts);
    return t;
}

bench_input *bench_rows_from_file(const sw_export *export, const char *path, const char *model, int64_t rows,
                                  GError **error)
{
    GError *local = NULL;
    sw_table *table =
        g_str_has_suffix(path, ".jsonl") ? sw_table_read_jsonl(path, &local) : sw_table_read_csv(path, &local);
    if (table == NULL || sw_table_rows(table) == 0) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: %s", path,
                    local ? local->message : "the file has no rows");
        g_clear_error(&local);
        if (table)
            sw_table_free(table);
        return NULL;
    }
    bench_input *input = raw_input_new(export, model, rows);
    for (guint i = 0; i < export->input_features->len && input; i++) {
        const sw_feature *f = g_ptr_array_index(export->input_features, i);
        long column = sw_table_find(table, f->column);
        sw_tensor *t = NULL;
        if (column < 0) {
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: %s column '%s' for input feature '%s'", path,
                        column == -1 ? "no" : "more than one", f->column, f->name);
        } else {
            const char *const *cells = sw_table_cells(table, (size_t)column);
            if (strcmp(f->type, "number") == 0)
                t = numbers_from_cells(f, table, cells, rows, error);
            else if (strcmp(f->type, "vector") == 0)
                t = vectors_from_cells(f, table, cells, rows, error);
            else
                t = texts_from_cells(table, cells, rows);
            if (t == NULL)
                g_prefix_error(error, "%s: ", path);
        }
        if (t == NULL) {
            g_clear_pointer(&input, bench_input_free);
            break;
        }
        input_add(input, f->name, t);
    }
    sw_table_free(table);
    return input;
}

/* ---- replayed requests --------------------------------------------------- */

static void free_unpacked(gpointer msg)
{
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* The stage a model name addresses, by the servers' naming: "<name>_<stage>"
 * is one stage, anything else the pipeline. */
static void stage_of_model(bench_input *input)
{
    static const sw_stage_kind kinds[] = {SW_STAGE_PREPROCESSOR, SW_STAGE_PREDICTOR, SW_STAGE_POSTPROCESSOR};
    input->first = SW_STAGE_PREPROCESSOR;
    input->pipeline = TRUE;
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        char *suffix = g_strdup_printf("_%s", sw_stage_kind_name(kinds[i]));
        if (g_str_has_suffix(input->model, suffix)) {
            input->first = kinds[i];
            input->pipeline = FALSE;
        }
        g_free(suffix);
    }
}

/* Decoded values back to the sw_output form every runner takes. */
static GPtrArray *values_to_tensors(GPtrArray *values)
{
    GPtrArray *tensors = sw_output_array_new();
    for (guint i = 0; i < values->len; i++) {
        const sw_value *v = g_ptr_array_index(values, i);
        sw_output *o = g_new0(sw_output, 1);
        o->name = g_strdup(v->name);
        o->tensor = sw_tensor_share(v->tensor, 0, NULL);
        g_ptr_array_add(tensors, o);
    }
    return tensors;
}

bench_input *bench_rows_from_request_file(const char *path, const char *model, GError **error)
{
    gchar *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &data, &len, error))
        return NULL;
    Inference__ModelInferRequest *req = (Inference__ModelInferRequest *)protobuf_c_message_unpack(
        &inference__model_infer_request__descriptor, NULL, len, (const uint8_t *)data);
    g_free(data);
    if (req == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: not a serialized ModelInferRequest", path);
        return NULL;
    }
    GBytes *owner = g_bytes_new_with_free_func(req, sizeof *req, free_unpacked, req);
    bench_input *input = NULL;
    GPtrArray *values = sw_oip_decode_inputs(req, owner, error);
    if (values && values->len == 0)
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: the request has no inputs", path);
    else if (values) {
        input = g_new0(bench_input, 1);
        input->model = g_strdup(model ? model : req->model_name);
        input->tensors = values_to_tensors(values);
        input->rows = sw_value_batch_size(g_ptr_array_index(values, 0));
        stage_of_model(input);
    }
    if (values)
        g_ptr_array_unref(values);
    g_bytes_unref(owner);
    if (error && *error)
        g_prefix_error(error, "%s: ", path);
    return input;
}

GBytes *bench_input_pack(const bench_input *input)
{
    Inference__ModelInferRequest *req = sw_oip_request_build(input->model, "bench", input->tensors, NULL);
    GBytes *packed = sw_protobuf_pack(&req->base);
    sw_oip_request_free(req);
    return packed;
}
