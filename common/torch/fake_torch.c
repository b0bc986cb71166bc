/* A fake torch backend: the sw_torch_* interface in C over tiny
 * deterministic modules, so model, service and server logic are unit tested
 * without libtorch or Python. A "module file" is a GKeyFile whose [module]
 * group says what forward does:
 *
 *   op=echo      every input comes back under its own name (tensors share
 *                their buffers, as libtorch's outputs may alias inputs)
 *   op=scale     like echo, with FP32/FP64 tensors multiplied by `factor`
 *   op=fail      forward fails INVALID_ARGUMENT, "forward failed: <error>",
 *                as a TorchScript exception raised by the module does
 *   refuse_negative=true   forward fails INVALID_ARGUMENT when any FP32
 *                value it gets is negative: a module refusing one client's
 *                rows, whichever batch they came in
 *   sleep_us=N   forward sleeps first, so batching and draining can be seen
 *   rows_output=NAME   adds INT64 [B] output NAME holding B, the rows this
 *                forward call received (what a batch looked like)
 *   tokens_output=NAME adds a List[List[str]] output NAME: each element of
 *                the first BYTES input split at spaces, one list per row
 *   schema=TEXT  what sw_torch_module_schema() returns
 *
 * Devices: only "cpu" exists here, as in a CPU-only libtorch. */
#include "fake_torch.h"

#include <string.h>

#include "sw_error.h"

typedef enum fake_op { FAKE_ECHO, FAKE_SCALE, FAKE_FAIL } fake_op;

struct sw_torch_module {
    fake_op op;
    double factor;
    char *error;
    gint64 sleep_us;
    gboolean refuse_negative;
    char *rows_output;
    char *tokens_output;
    char *schema;
    gint forward_calls;
    gint forward_started; /* counted on entry, before the sleep */
    gint64 max_rows;      /* under lock */
    GMutex lock;
};

void sw_torch_set_num_threads(int intra_op_threads)
{
    (void)intra_op_threads;
}

gboolean sw_torch_device_check(const char *device, GError **error)
{
    if (device && strcmp(device, "cpu") == 0)
        return TRUE;
    g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION,
                "device '%s': this build (the fake torch backend) has no CUDA support", device ? device : "(null)");
    return FALSE;
}

static gboolean parse_op(const char *name, fake_op *op)
{
    static const struct {
        const char *name;
        fake_op op;
    } ops[] = {
        {.name = "echo", .op = FAKE_ECHO}, {.name = "scale", .op = FAKE_SCALE}, {.name = "fail", .op = FAKE_FAIL}};
    for (size_t i = 0; name && i < G_N_ELEMENTS(ops); i++) {
        if (strcmp(name, ops[i].name) == 0) {
            *op = ops[i].op;
            return TRUE;
        }
    }
    return FALSE;
}

sw_torch_module *sw_torch_module_load(const char *path, const char *device, GError **error)
{
    if (!sw_torch_device_check(device ? device : "cpu", error))
        return NULL;
    GKeyFile *file = g_key_file_new();
    GError *local = NULL;
    sw_torch_module *m = NULL;
    if (!g_key_file_load_from_file(file, path, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, "cannot load TorchScript module '%s': %s", path,
                    local->message);
        g_error_free(local);
        g_key_file_free(file);
        return NULL;
    }
    char *op = g_key_file_get_string(file, "module", "op", NULL);
    m = g_new0(sw_torch_module, 1);
    g_mutex_init(&m->lock);
    if (!parse_op(op, &m->op)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION,
                    "cannot load TorchScript module '%s': [module] op must be echo, scale or fail", path);
        g_free(op);
        g_key_file_free(file);
        sw_torch_module_free(m);
        return NULL;
    }
    g_free(op);
    m->factor = g_key_file_has_key(file, "module", "factor", NULL)
                    ? g_key_file_get_double(file, "module", "factor", NULL)
                    : 1.0;
    m->error = g_key_file_get_string(file, "module", "error", NULL);
    m->sleep_us = g_key_file_get_int64(file, "module", "sleep_us", NULL);
    m->refuse_negative = g_key_file_get_boolean(file, "module", "refuse_negative", NULL);
    m->rows_output = g_key_file_get_string(file, "module", "rows_output", NULL);
    m->tokens_output = g_key_file_get_string(file, "module", "tokens_output", NULL);
    m->schema = g_key_file_get_string(file, "module", "schema", NULL);
    if (m->schema == NULL)
        m->schema = g_strdup("forward(__torch__.Fake self, Dict(str, Tensor) inputs) -> Dict(str, Tensor)");
    g_key_file_free(file);
    return m;
}

void sw_torch_module_free(sw_torch_module *m)
{
    if (m == NULL)
        return;
    g_free(m->error);
    g_free(m->rows_output);
    g_free(m->tokens_output);
    g_free(m->schema);
    g_mutex_clear(&m->lock);
    g_free(m);
}

GBytes *sw_torch_module_new_host_buffer(sw_torch_module *module, size_t size)
{
    (void)module;
    return g_bytes_new_take(g_malloc(size ? size : 1), size);
}

char *sw_torch_module_schema(const sw_torch_module *module)
{
    return g_strdup(module->schema);
}

static sw_tensor *scaled(const sw_tensor *t, double factor)
{
    int64_t n = sw_tensor_element_count(t);
    sw_tensor *out =
        sw_tensor_new_copy(t->dtype, t->ndim, t->shape, sw_tensor_data(t, NULL), (size_t)n * sw_dtype_size(t->dtype));
    void *data = (void *)sw_tensor_data(out, NULL); /* a fresh copy: nobody shares it yet */
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SW_DTYPE_FP32)
            ((float *)data)[i] = (float)(((float *)data)[i] * factor);
        else
            ((double *)data)[i] *= factor;
    }
    return out;
}

static sw_value *echo_value(const sw_torch_module *m, const sw_value *v)
{
    if (v->kind == SW_VALUE_TENSOR || v->kind == SW_VALUE_STRINGS) {
        gboolean scale =
            m->op == FAKE_SCALE && (v->tensor->dtype == SW_DTYPE_FP32 || v->tensor->dtype == SW_DTYPE_FP64);
        return sw_value_new_tensor(v->name, v->kind,
                                   scale ? scaled(v->tensor, m->factor) : sw_tensor_share(v->tensor, 0, NULL));
    }
    GPtrArray *items = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    for (guint i = 0; i < v->items->len; i++)
        g_ptr_array_add(items, sw_tensor_share(g_ptr_array_index(v->items, i), 0, NULL));
    if (v->kind == SW_VALUE_AUDIO_LIST) /* the waveforms and their rates, as given */
        return sw_value_new_audio(v->name, items, g_memdup2(v->sample_rates, sizeof(int64_t) * items->len));
    return sw_value_new_list(v->name, v->kind, items);
}

/* One list of tokens per element of `strings`. */
static sw_value *tokens_value(const char *name, const sw_tensor *strings)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sw_tensor_free);
    int64_t n = sw_tensor_element_count(strings);
    for (int64_t r = 0; r < n; r++) {
        size_t len = 0;
        const char *e = sw_tensor_bytes_element(strings, (size_t)r, &len);
        char *text = g_strndup(e, len);
        char **tokens = g_strsplit(text, " ", -1);
        g_ptr_array_add(rows, sw_tensor_new_strings((const char *const *)tokens, NULL, g_strv_length(tokens)));
        g_strfreev(tokens);
        g_free(text);
    }
    return sw_value_new_list(name, SW_VALUE_STRING_LISTS, rows);
}

static void record_call(sw_torch_module *m, int64_t rows)
{
    g_atomic_int_inc(&m->forward_calls);
    g_mutex_lock(&m->lock);
    m->max_rows = MAX(m->max_rows, rows);
    g_mutex_unlock(&m->lock);
}

GPtrArray *sw_torch_module_forward(sw_torch_module *m, sw_value *const *inputs, size_t n_inputs, GError **error)
{
    g_atomic_int_inc(&m->forward_started);
    if (m->sleep_us > 0)
        g_usleep((gulong)m->sleep_us);
    int64_t rows = n_inputs > 0 ? sw_value_batch_size(inputs[0]) : 0;
    record_call(m, rows);
    for (size_t i = 0; m->refuse_negative && i < n_inputs; i++) {
        const sw_tensor *t = inputs[i]->kind == SW_VALUE_TENSOR ? inputs[i]->tensor : NULL;
        int64_t n = t && t->dtype == SW_DTYPE_FP32 ? sw_tensor_element_count(t) : 0;
        for (int64_t k = 0; k < n; k++) {
            if (sw_tensor_element_as_double(t, k) < 0) {
                g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT,
                            "forward failed: ValueError: input %zu element %" G_GINT64_FORMAT " is negative", i, k);
                return NULL;
            }
        }
    }
    if (m->op == FAKE_FAIL) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "forward failed: %s",
                    m->error ? m->error : "ValueError: the fake module was told to fail");
        return NULL;
    }
    GPtrArray *out = sw_value_array_new();
    const sw_tensor *first_strings = NULL;
    for (size_t i = 0; i < n_inputs; i++) {
        g_ptr_array_add(out, echo_value(m, inputs[i]));
        if (first_strings == NULL && inputs[i]->kind == SW_VALUE_STRINGS)
            first_strings = inputs[i]->tensor;
    }
    if (m->rows_output) {
        int64_t shape[1] = {rows};
        int64_t *data = g_new(int64_t, rows > 0 ? rows : 1);
        for (int64_t r = 0; r < rows; r++)
            data[r] = rows;
        sw_tensor *t = sw_tensor_new_copy(SW_DTYPE_INT64, 1, shape, data, sizeof(int64_t) * (size_t)rows);
        g_free(data);
        g_ptr_array_add(out, sw_value_new_tensor(m->rows_output, SW_VALUE_TENSOR, t));
    }
    if (m->tokens_output && first_strings)
        g_ptr_array_add(out, tokens_value(m->tokens_output, first_strings));
    return out;
}

int sw_fake_torch_forward_started(const sw_torch_module *m)
{
    return g_atomic_int_get(&m->forward_started);
}

int sw_fake_torch_forward_calls(const sw_torch_module *m)
{
    return g_atomic_int_get(&m->forward_calls);
}

int64_t sw_fake_torch_max_rows(const sw_torch_module *m)
{
    g_mutex_lock((GMutex *)&m->lock);
    int64_t rows = m->max_rows;
    g_mutex_unlock((GMutex *)&m->lock);
    return rows;
}

gboolean sw_fake_torch_write(const char *path, const char *lines, GError **error)
{
    char *text = g_strdup_printf("[module]\n%s\n", lines);
    gboolean ok = g_file_set_contents(path, text, -1, error);
    g_free(text);
    return ok;
}
