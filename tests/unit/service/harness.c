#include "harness.h"

#include <string.h>

#include "sw_error.h"
#include "unit_support.h"

stage_server *stage_server_start(const server_setup *setup)
{
    const char *name = setup->name ? setup->name : "m";
    stage_server *s = g_new0(stage_server, 1);
    s->dir = sw_test_dir_new();
    sw_test_write_export(s->dir, setup->module, setup->module, setup->module);
    GError *error = NULL;
    s->export = sw_export_load(s->dir, &error);
    g_assert_no_error(error);
    s->stage = sw_stage_new(setup->kind, s->export, name, NULL, &error);
    g_assert_no_error(error);
    s->oip = sw_oip_service_new(s->stage, s->export, name, setup->next, &setup->options, &error);
    g_assert_no_error(error);
    sw_method methods[SW_OIP_SERVICE_MAX_METHODS];
    size_t n = sw_oip_service_methods(s->oip, methods);
    g_assert_cmpuint(n, <=, SW_OIP_SERVICE_MAX_METHODS);
    sw_server_options so = {.listen = "127.0.0.1:0",
                            .worker_threads = 2,
                            .max_message_bytes = 4 * 1024 * 1024,
                            .admit = setup->admit,
                            .admit_data = setup->admit_data,
                            .poll_work = sw_oip_service_poll_work(s->oip)};
    s->server = sw_server_new(&so, methods, n, &error);
    g_assert_no_error(error);
    sw_server_start(s->server);
    if (!setup->not_loaded) {
        g_assert_true(sw_stage_load_module(s->stage, 1, &error));
        g_assert_no_error(error);
        sw_oip_service_set_loaded(s->oip);
    }
    if (setup->serving)
        sw_oip_service_set_serving(s->oip, TRUE);
    s->target = g_strdup_printf("127.0.0.1:%d", sw_server_port(s->server));
    /* Two attempts: the fewest a retry policy allows, so an UNAVAILABLE
     * answer comes back without several rounds of backoff. */
    sw_channel_options co = {.target = s->target, .max_attempts = 2};
    s->client = sw_channel_new(&co, &error);
    g_assert_no_error(error);
    return s;
}

void stage_server_halt(stage_server *s)
{
    if (s->server == NULL)
        return;
    if (!s->shut_down) {
        sw_oip_service_set_serving(s->oip, FALSE);
        sw_oip_service_end_watches(s->oip);
        g_assert_false(sw_server_shutdown(s->server, 5000));
        s->shut_down = TRUE;
    }
    g_clear_pointer(&s->server, sw_server_free);
    g_clear_pointer(&s->oip, sw_oip_service_free);
}

void stage_server_stop(stage_server *s)
{
    stage_server_halt(s);
    sw_channel_free(s->client);
    sw_stage_free(s->stage);
    sw_export_free(s->export);
    sw_test_dir_remove(s->dir);
    g_free(s->target);
    g_free(s);
}

GBytes *stage_server_call(stage_server *s, const char *path, GBytes *request, GError **error)
{
    return sw_channel_call(s->client, path, request, CALL_TIMEOUT_US, NULL, error);
}

void assert_error(const GError *error, int code, const char *substring)
{
    g_assert_nonnull(error);
    if (error->code != code)
        g_error("expected %s, got %s: %s", sw_code_name(code), sw_code_name(error->code), error->message);
    if (substring && strstr(error->message, substring) == NULL)
        g_error("message '%s' lacks '%s'", error->message, substring);
}

void add_tensor(GPtrArray *inputs, const char *name, sw_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    sw_output *o = g_new0(sw_output, 1);
    o->name = g_strdup(name);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    o->tensor = sw_tensor_new_copy(dtype, ndim, shape, data, (size_t)n * sw_dtype_size(dtype));
    g_ptr_array_add(inputs, o);
}

GBytes *infer_request(const char *model, const char *version, const char *id, GPtrArray *inputs,
                      const char *const *wanted)
{
    Inference__ModelInferRequest *req = sw_oip_request_build(model, id, inputs, NULL);
    req->model_version = (char *)(version ? version : "");
    size_t n_wanted = wanted ? g_strv_length((char **)wanted) : 0;
    Inference__ModelInferRequest__InferRequestedOutputTensor *outs =
        g_new0(Inference__ModelInferRequest__InferRequestedOutputTensor, n_wanted + 1);
    Inference__ModelInferRequest__InferRequestedOutputTensor **ptrs =
        g_new0(Inference__ModelInferRequest__InferRequestedOutputTensor *, n_wanted + 1);
    for (size_t i = 0; i < n_wanted; i++) {
        inference__model_infer_request__infer_requested_output_tensor__init(&outs[i]);
        outs[i].name = (char *)wanted[i];
        ptrs[i] = &outs[i];
    }
    req->n_outputs = n_wanted;
    req->outputs = ptrs;
    GBytes *packed = sw_protobuf_pack(&req->base);
    sw_oip_request_free(req);
    g_free(ptrs);
    g_free(outs);
    g_ptr_array_unref(inputs);
    return packed;
}

const sw_output *output_named(GPtrArray *outputs, const char *name)
{
    for (guint i = 0; i < outputs->len; i++) {
        const sw_output *o = g_ptr_array_index(outputs, i);
        if (strcmp(o->name, name) == 0)
            return o;
    }
    g_error("no output '%s'", name);
    return NULL;
}

/* The four inputs of the predictor, `rows` rows: age holds age0, age0 + 1, ... */
GPtrArray *predictor_inputs(int rows, float age0)
{
    GPtrArray *inputs = sw_output_array_new();
    float *age = g_new(float, rows);
    int32_t *color = g_new(int32_t, rows);
    int64_t *review = g_new0(int64_t, (size_t)rows * 6);
    int32_t *when = g_new0(int32_t, (size_t)rows * 9);
    for (int r = 0; r < rows; r++) {
        age[r] = age0 + (float)r;
        color[r] = r % 3;
        review[r * 6] = r;
        when[r * 9] = 2020 + r;
    }
    int64_t b[1] = {rows}, review_shape[2] = {rows, 6}, when_shape[2] = {rows, 9};
    add_tensor(inputs, "age", SW_DTYPE_FP32, 1, b, age);
    add_tensor(inputs, "color", SW_DTYPE_INT32, 1, b, color);
    add_tensor(inputs, "review", SW_DTYPE_INT64, 2, review_shape, review);
    add_tensor(inputs, "when", SW_DTYPE_INT32, 2, when_shape, when);
    g_free(age);
    g_free(color);
    g_free(review);
    g_free(when);
    return inputs;
}
