/* The in-process floor: the same stages the servers load, called directly
 * through sw_stage_prepare/sw_stage_run (the validation and conversions the
 * servers do), with no gRPC. Each of `concurrency` threads loops over whole
 * requests, so the figure is what the model costs on this machine and every
 * served number can be read against it. */
#include <string.h>

#include "bench.h"
#include "oip_codec.h"
#include "stage.h"
#include "sw_error.h"
#include "torch_shim.h"

#define N_KINDS 3

struct bench_local {
    sw_stage *stages[N_KINDS];
    int n;
    gboolean codec;
    int64_t idle_us;
};

bench_local *bench_local_new(const sw_export *export, sw_stage_kind first, sw_stage_kind last,
                             const bench_local_options *options, GError **error)
{
    /* The servers' default (--torch-threads 1): one core per call, so the
     * floor and the servers spend CPU the same way. */
    sw_torch_set_num_threads(1);
    bench_local *local = g_new0(bench_local, 1);
    local->codec = options->codec;
    local->idle_us = options->idle_us;
    for (int kind = (int)first; kind <= (int)last; kind++) {
        const char *on = kind == SW_STAGE_PREDICTOR ? options->device : NULL;
        sw_stage *stage = sw_stage_load((sw_stage_kind)kind, export, export->name, on, error);
        if (stage == NULL) {
            bench_local_free(local);
            return NULL;
        }
        local->stages[local->n++] = stage;
    }
    return local;
}

void bench_local_free(bench_local *local)
{
    if (local == NULL)
        return;
    for (int i = 0; i < local->n; i++)
        sw_stage_free(local->stages[i]);
    g_free(local);
}

/* Tensors as sw_oip_decode_inputs gives them to a stage: BYTES as strings,
 * the rest as tensors, sharing the buffers. */
static GPtrArray *tensors_to_values(GPtrArray *tensors)
{
    GPtrArray *values = sw_value_array_new();
    for (guint i = 0; i < tensors->len; i++) {
        const sw_output *o = g_ptr_array_index(tensors, i);
        sw_value_kind kind = o->tensor->dtype == SW_DTYPE_BYTES ? SW_VALUE_STRINGS : SW_VALUE_TENSOR;
        g_ptr_array_add(values, sw_value_new_tensor(o->name, kind, sw_tensor_share(o->tensor, 0, NULL)));
    }
    return values;
}

static GPtrArray *prepare_and_run(sw_stage *stage, GPtrArray *values, GError **error)
{
    int64_t batch = 0;
    GPtrArray *prepared = sw_stage_prepare(stage, values, &batch, error);
    if (prepared == NULL)
        return NULL;
    GPtrArray *outputs = sw_stage_run(stage, prepared, error);
    g_ptr_array_unref(prepared);
    return outputs;
}

static void free_unpacked(gpointer msg)
{
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* What a server does around the stage, minus the socket: the request is
 * built and packed (the client's or previous stage's part), unpacked and
 * decoded; the reply is built and packed. */
static GPtrArray *run_with_codec(sw_stage *stage, GPtrArray *tensors, GError **error)
{
    Inference__ModelInferRequest *out = sw_oip_request_build(stage->model_name, "bench", tensors, NULL);
    GBytes *packed = sw_protobuf_pack(&out->base);
    sw_oip_request_free(out);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(packed, &len);
    Inference__ModelInferRequest *req = (Inference__ModelInferRequest *)protobuf_c_message_unpack(
        &inference__model_infer_request__descriptor, NULL, len, data);
    g_bytes_unref(packed);
    if (req == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "%s: the packed request does not unpack", stage->model_name);
        return NULL;
    }
    GBytes *owner = g_bytes_new_with_free_func(req, sizeof *req, free_unpacked, req);
    GPtrArray *decoded = sw_oip_decode_inputs(req, owner, error);
    GPtrArray *outputs = decoded ? prepare_and_run(stage, decoded, error) : NULL;
    if (outputs) {
        Inference__ModelInferResponse *resp = sw_oip_response_build(stage->model_name, req->id, outputs);
        g_bytes_unref(sw_protobuf_pack(&resp->base));
        sw_oip_response_free(resp);
    }
    if (decoded)
        g_ptr_array_unref(decoded);
    g_bytes_unref(owner);
    return outputs;
}

GPtrArray *bench_local_run(bench_local *local, GPtrArray *tensors, int64_t *idle_us, GError **error)
{
    GPtrArray *current = g_ptr_array_ref(tensors);
    int64_t slept = 0;
    for (int i = 0; i < local->n && current; i++) {
        GPtrArray *next;
        if (local->idle_us > 0) {
            int64_t before = bench_now_us();
            g_usleep((gulong)local->idle_us);
            slept += bench_now_us() - before;
        }
        if (local->codec) {
            next = run_with_codec(local->stages[i], current, error);
        } else {
            GPtrArray *values = tensors_to_values(current);
            next = prepare_and_run(local->stages[i], values, error);
            g_ptr_array_unref(values);
        }
        g_ptr_array_unref(current);
        current = next;
    }
    if (idle_us)
        *idle_us = slept;
    return current;
}

/* One phase (warm-up or measured) shared by the worker threads. */
typedef struct local_phase {
    bench_local *local;
    const bench_input *input;
    gboolean by_count;
    gint remaining;
    int64_t end_us;
    GMutex lock;
    bench_step *step; /* NULL while warming up */
} local_phase;

static gboolean phase_may_start(local_phase *p)
{
    if (p->by_count)
        return g_atomic_int_add(&p->remaining, -1) > 0;
    return bench_now_us() < p->end_us;
}

static gpointer local_worker(gpointer data)
{
    local_phase *p = data;
    GArray *latencies = g_array_new(FALSE, FALSE, sizeof(gint64));
    while (phase_may_start(p)) {
        GError *error = NULL;
        int64_t start = bench_now_us(), idle = 0;
        GPtrArray *outputs = bench_local_run(p->local, p->input->tensors, &idle, &error);
        gint64 latency = bench_now_us() - start - idle;
        if (outputs) {
            g_array_append_val(latencies, latency);
            g_ptr_array_unref(outputs);
            continue;
        }
        g_mutex_lock(&p->lock);
        if (p->step)
            bench_step_add_error(p->step, error->message);
        g_mutex_unlock(&p->lock);
        g_error_free(error);
    }
    g_mutex_lock(&p->lock);
    if (p->step) {
        g_array_append_vals(p->step->latency_us, latencies->data, latencies->len);
        p->step->requests += latencies->len;
        p->step->rows += (int64_t)latencies->len * p->input->rows;
    }
    g_mutex_unlock(&p->lock);
    g_array_unref(latencies);
    return NULL;
}

static void run_local_phase(local_phase *p, int concurrency, double seconds, int64_t requests, bench_step *step)
{
    p->step = step;
    p->by_count = requests > 0;
    g_atomic_int_set(&p->remaining, (gint)MIN(requests, G_MAXINT));
    p->end_us = bench_now_us() + (int64_t)(seconds * 1e6);
    GThread **threads = g_new0(GThread *, concurrency);
    for (int i = 0; i < concurrency; i++)
        threads[i] = g_thread_new("bench-local", local_worker, p);
    for (int i = 0; i < concurrency; i++)
        g_thread_join(threads[i]);
    g_free(threads);
}

bench_step *bench_local_step(bench_local *local, const bench_input *input, int concurrency, const bench_limits *limits)
{
    local_phase phase = {.local = local, .input = input};
    g_mutex_init(&phase.lock);
    if (limits->warmup_s > 0)
        run_local_phase(&phase, concurrency, limits->warmup_s, 0, NULL);
    bench_step *step = bench_step_new(concurrency);
    double busy = -1, steal = -1;
    if (!bench_machine_cpu_s(&busy, &steal))
        busy = -1;
    double cpu_before = bench_self_cpu_s();
    int64_t start = bench_now_us();
    run_local_phase(&phase, concurrency, limits->duration_s, limits->requests, step);
    step->elapsed_s = (double)(bench_now_us() - start) / 1e6;
    step->client_cpu_s = bench_self_cpu_s() - cpu_before;
    bench_step_set_machine(step, busy, steal);
    g_mutex_clear(&phase.lock);
    bench_step_finish(step);
    return step;
}
