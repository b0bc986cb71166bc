/* The gRPC load generator: a closed loop of `concurrency` slots, each with
 * one call in flight; a completed call records its latency and its slot
 * starts the next one at once, from the channel's completion thread. The
 * request is packed once and every call sends the same bytes, so the client
 * spends its CPU on gRPC, not on building requests.
 *
 * Staged mode chains three calls per request: each response is turned into
 * the next stage's request (its outputs become inputs, raw contents passed
 * through untouched), as a client calling the stages one by one does. */
#include <string.h>

#include "bench.h"
#include "channel.h"
#include "oip_codec.h"
#include "sw_error.h"

#define OIP_INFER "/inference.GRPCInferenceService/ModelInfer"
#define MAX_STAGES 3

struct bench_load {
    int n_stages;
    sw_channel *channels[MAX_STAGES];
    char *models[MAX_STAGES];
    GBytes *first_request;
    int64_t rows_per_request;
    /* The phase being run; set by the main thread while no call is in flight. */
    GMutex lock;
    GCond idle;
    int active; /* slots still looping */
    gboolean by_count;
    gint remaining;
    int64_t end_us;
    int64_t timeout_us;
    bench_step *step; /* NULL while warming up: nothing is recorded */
};

typedef struct slot {
    bench_load *load;
    int stage;
    int64_t start_us;
} slot;

bench_load *bench_load_new(const char *const *targets, int n_targets, const char *const *models, GBytes *first_request,
                           int64_t rows_per_request, GError **error)
{
    g_return_val_if_fail(n_targets >= 1 && n_targets <= MAX_STAGES, NULL);
    bench_load *load = g_new0(bench_load, 1);
    load->first_request = g_bytes_ref(first_request);
    load->rows_per_request = rows_per_request;
    g_mutex_init(&load->lock);
    g_cond_init(&load->idle);
    for (int i = 0; i < n_targets; i++) {
        sw_channel_options options = {.target = targets[i], .max_message_bytes = -1};
        load->channels[i] = sw_channel_new(&options, error);
        if (load->channels[i] == NULL) {
            bench_load_free(load);
            return NULL;
        }
        load->models[i] = g_strdup(models ? models[i] : NULL);
        load->n_stages = i + 1;
    }
    return load;
}

void bench_load_free(bench_load *load)
{
    if (load == NULL)
        return;
    for (int i = 0; i < load->n_stages; i++) {
        sw_channel_free(load->channels[i]);
        g_free(load->models[i]);
    }
    g_bytes_unref(load->first_request);
    g_mutex_clear(&load->lock);
    g_cond_clear(&load->idle);
    g_free(load);
}

/* The next stage's request from this stage's response: every output becomes
 * an input of the same name, datatype and shape, its contents borrowed. */
GBytes *bench_request_from_response(GBytes *response, const char *model, GError **error)
{
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(response, &len);
    Inference__ModelInferResponse *resp = (Inference__ModelInferResponse *)protobuf_c_message_unpack(
        &inference__model_infer_response__descriptor, NULL, len, data);
    if (resp == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "the response is not a ModelInferResponse");
        return NULL;
    }
    size_t n = resp->n_outputs;
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor *tensors =
        g_new0(Inference__ModelInferRequest__InferInputTensor, n + 1);
    Inference__ModelInferRequest__InferInputTensor **ptrs =
        g_new0(Inference__ModelInferRequest__InferInputTensor *, n + 1);
    for (size_t i = 0; i < n; i++) {
        const Inference__ModelInferResponse__InferOutputTensor *o = resp->outputs[i];
        inference__model_infer_request__infer_input_tensor__init(&tensors[i]);
        tensors[i].name = o->name;
        tensors[i].datatype = o->datatype;
        tensors[i].n_shape = o->n_shape;
        tensors[i].shape = o->shape;
        tensors[i].contents = o->contents;
        ptrs[i] = &tensors[i];
    }
    req.model_name = (char *)model;
    req.id = resp->id;
    req.n_inputs = n;
    req.inputs = ptrs;
    req.n_raw_input_contents = resp->n_raw_output_contents;
    req.raw_input_contents = resp->raw_output_contents;
    GBytes *packed = sw_protobuf_pack(&req.base);
    g_free(ptrs);
    g_free(tensors);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return packed;
}

static void slot_start(slot *s);

/* Ends one request of a slot: its latency, or its error. */
static void slot_record(slot *s, const GError *error)
{
    bench_load *load = s->load;
    int64_t latency = bench_now_us() - s->start_us;
    g_mutex_lock(&load->lock);
    bench_step *step = load->step;
    if (step && error == NULL) {
        g_array_append_val(step->latency_us, latency);
        step->requests++;
        step->rows += load->rows_per_request;
    } else if (step) {
        char *text = g_strdup_printf("%s: %s", sw_code_name(error->code), error->message);
        bench_step_add_error(step, text);
        g_free(text);
    }
    g_mutex_unlock(&load->lock);
}

static void slot_done(GBytes *response, const GError *error, void *user_data)
{
    slot *s = user_data;
    bench_load *load = s->load;
    if (error == NULL && s->stage + 1 < load->n_stages) {
        GError *conversion = NULL;
        GBytes *next = bench_request_from_response(response, load->models[s->stage + 1], &conversion);
        if (next) {
            s->stage++;
            sw_channel_call_async(load->channels[s->stage], OIP_INFER, next, load->timeout_us, NULL, slot_done, s);
            g_bytes_unref(next);
            return;
        }
        slot_record(s, conversion);
        g_error_free(conversion);
    } else {
        slot_record(s, error);
    }
    slot_start(s);
}

static gboolean may_start(bench_load *load)
{
    if (load->by_count)
        return g_atomic_int_add(&load->remaining, -1) > 0;
    return bench_now_us() < load->end_us;
}

/* Starts the slot's next request, or retires the slot when the phase is over. */
static void slot_start(slot *s)
{
    bench_load *load = s->load;
    if (!may_start(load)) {
        g_mutex_lock(&load->lock);
        if (--load->active == 0)
            g_cond_signal(&load->idle);
        g_mutex_unlock(&load->lock);
        return;
    }
    s->stage = 0;
    s->start_us = bench_now_us();
    sw_channel_call_async(load->channels[0], OIP_INFER, load->first_request, load->timeout_us, NULL, slot_done, s);
}

/* Runs the loop until the phase's time or request count is spent and every
 * call in flight has completed. */
static void run_phase(bench_load *load, int concurrency, double seconds, int64_t requests, bench_step *step)
{
    load->step = step;
    load->by_count = requests > 0;
    g_atomic_int_set(&load->remaining, (gint)MIN(requests, G_MAXINT));
    load->end_us = bench_now_us() + (int64_t)(seconds * 1e6);
    load->active = concurrency;
    slot *slots = g_new0(slot, concurrency);
    for (int i = 0; i < concurrency; i++) {
        slots[i].load = load;
        slot_start(&slots[i]);
    }
    g_mutex_lock(&load->lock);
    while (load->active > 0)
        g_cond_wait(&load->idle, &load->lock);
    g_mutex_unlock(&load->lock);
    g_free(slots);
}

/* What a measured phase runs (bench_step_measure's callback). */
typedef struct measured_phase {
    bench_load *load;
    int concurrency;
    const bench_limits *limits;
} measured_phase;

static void run_measured(void *ctx, bench_step *step)
{
    measured_phase *p = ctx;
    run_phase(p->load, p->concurrency, p->limits->duration_s, p->limits->requests, step);
}

bench_step *bench_load_step(bench_load *load, int concurrency, const bench_limits *limits, const GArray *server_pids)
{
    load->timeout_us = limits->timeout_ms > 0 ? limits->timeout_ms * 1000 : -1;
    if (limits->warmup_s > 0)
        run_phase(load, concurrency, limits->warmup_s, 0, NULL);
    measured_phase phase = {load, concurrency, limits};
    return bench_step_measure(concurrency, server_pids, run_measured, &phase);
}
