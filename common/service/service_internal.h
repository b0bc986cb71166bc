/* What the files of the service layer share: the service object, the
 * model table, and one inference call's life (infer.c starts and ends it,
 * hop.c carries it to the next stage). Not for other layers. */
#ifndef SW_SERVICE_INTERNAL_H
#define SW_SERVICE_INTERNAL_H

#include "health.pb-c.h"
#include "inference.pb-c.h"
#include "oip_service.h"
#include "output.h"

#define SW_PLATFORM "ludwig_torchscript"
#define SW_MODEL_VERSION "1"

/* The metadata of one model this service answers for. It never changes:
 * built once, everything it points to owned by `allocations` or borrowed
 * from specs that live as long as the service. */
/* Cumulative ModelStatistics of one model (stats.c), under `lock`. */
#define SW_STATS_RECENT 64
typedef struct model_stats {
    GMutex lock;
    guint64 last_inference_ms; /* real time of the last call's end */
    guint64 inference_count;   /* rows of calls answered OK */
    guint64 execution_count;   /* distinct forward calls that ran for it */
    guint64 success_count, success_ns, fail_count, fail_ns;
    guint64 queue_ns, input_ns, infer_ns, output_ns; /* of calls answered OK */
    /* The last forward calls counted, so a batch's requests count it once:
     * their ends come one after another on the executor that ran it. */
    guint64 recent[SW_STATS_RECENT];
    guint recent_next;
    /* With batching: batch_bucket per executed batch size, ascending;
     * NULL until the first batch. */
    GArray *batches;
} model_stats;

typedef struct model_entry {
    const char *name;
    Inference__ModelMetadataResponse metadata;
    Inference__ModelConfigResponse config; /* built with the metadata */
    model_stats *stats;                    /* owned by the service */
} model_entry;

struct sw_oip_service {
    sw_stage *stage;
    char *base_name;
    sw_channel *next;       /* borrowed; NULL at the end of the pipeline */
    char *next_metadata[3]; /* authorization for the next stage, NULL-terminated */
    int max_rows;
    int inline_max_rows;         /* sw_oip_service_options.inline_max_rows */
    gboolean inline_when_busy;   /* sw_oip_service_options.inline_when_busy */
    sw_batcher_options batching; /* max_batch_size 0: no batching */
    size_t max_reply_bytes;      /* 0: no limit */
    gboolean access_log;
    sw_batcher *batcher; /* NULL: every call runs forward alone */
    /* Small requests' batches run on the polling thread: set by
     * sw_oip_service_poll_work() (oip_service.c, batches_on_poller()). */
    gboolean batch_on_poller;
    sw_metrics *metrics;
    gint loaded; /* the stage's module is loaded: inference may run */
    gint serving;
    GMutex watch_lock;
    GPtrArray *watchers; /* watcher*: open Health/Watch streams */
    model_entry stage_model;
    model_entry pipeline_model;  /* name NULL when this stage does not serve the pipeline */
    GPtrArray *pipeline_outputs; /* sw_tensor_spec* of the last stage */
    GPtrArray *allocations;
};

/* One ModelInfer call from acceptance to its answer, which may come from a
 * batch executor or from the next stage on other threads. Access logging
 * (and metrics) hook in at its single end. */
typedef struct infer_call {
    sw_call *call;          /* the gRPC call; NULL for sw_oip_service_infer() */
    sw_oip_infer_done done; /* with call NULL: where the answer goes */
    void *done_data;
    gint64 deadline_us; /* with call NULL: monotonic deadline; 0 none */
    sw_oip_service *svc;
    const Inference__ModelInferRequest *req; /* kept alive by `owner` */
    GBytes *owner;
    const model_entry *entry;
    int64_t rows;
    gint64 start_us;
    gint64 prepared_us;  /* when its inputs were decoded and prepared */
    sw_batch_timing ran; /* when forward ran for it */
    gint64 forwarded_us; /* when it went to the next stage */
} infer_call;

/* Handlers of the RPCs (sw_method_handler), by file: metadata.c,
 * infer.c, health.c, config.c, stats.c. `data` is the sw_oip_service. */
void sw__handle_server_live(sw_call *call, void *data);
void sw__handle_server_ready(sw_call *call, void *data);
void sw__handle_model_ready(sw_call *call, void *data);
void sw__handle_server_metadata(sw_call *call, void *data);
void sw__handle_model_metadata(sw_call *call, void *data);
void sw__handle_model_infer(sw_call *call, void *data);
void sw__handle_model_config(sw_call *call, void *data);
void sw__handle_model_statistics(sw_call *call, void *data);
void sw__handle_health_check(sw_call *call, void *data);
void sw__handle_health_watch(sw_call *call, void *data);

/* Fills `entry` with the ModelMetadata of model `name` (borrowed; lives as
 * long as the service), allocating from the service. */
void sw__build_model_metadata(sw_oip_service *svc, model_entry *entry, const char *name, GPtrArray *inputs,
                              GPtrArray *outputs);

/* Statistics (stats.c). sw__stats_count_execution: once the stage ran for a
 * call of `entry` (`batched`: by the batcher, so it counts in batch_stats);
 * sw__stats_record_call: at the call's end. */
void sw__stats_count_execution(const model_entry *entry, const sw_batch_timing *ran, gboolean batched);
void sw__stats_record_call(const infer_call *ic, int status, gint64 end_us);
void sw__stats_free(model_entry *entry);

/* Fills `entry->config` (config.c) once its metadata is built. */
void sw__build_model_config(sw_oip_service *svc, model_entry *entry, GPtrArray *inputs, GPtrArray *outputs);

/* The readiness flag of sw_oip_service_set_serving(): service_main sets it
 * once the module is loaded and clears it when draining. */
gboolean sw__is_serving(sw_oip_service *svc);

/* The request of `call` unpacked as `desc`, or NULL after failing the call
 * INVALID_ARGUMENT. Free with protobuf_c_message_free_unpacked(). */
ProtobufCMessage *sw__unpack_request(sw_call *call, const ProtobufCMessageDescriptor *desc);

/* The model `name`/`version` names, or NULL with a NOT_FOUND error. */
const model_entry *sw__find_model(sw_oip_service *svc, const char *name, const char *version, GError **error);

/* Ends `ic` with the response in `reply` (GBytes parts: OK) or with
 * `code`/`message`, records it and frees `ic`: the single end of every
 * inference call. */
void sw__infer_call_finish(infer_call *ic, GPtrArray *reply, int code, const char *message);
void sw__infer_call_fail_error(infer_call *ic, const GError *error);

/* Request parameters (parameters.c). FALSE with INVALID_ARGUMENT naming the
 * first parameter of `req` (on the request, an input or a requested output)
 * that stagewise does not act on, or one whose value has the wrong type. */
gboolean sw__check_parameters(const Inference__ModelInferRequest *req, GError **error);
/* The `classification` count of a requested output; 0 when it has none. */
int64_t sw__classification_count(const Inference__ModelInferRequest__InferRequestedOutputTensor *out);
/* Triton's classification of `output` (borrowed), a [batch, classes]
 * numeric tensor: a new BYTES [batch, min(count, classes)] output of the
 * top classes per row, best first, each "score:index" or
 * "score:index:label" with `labels` (by index; NULL: none). NULL with
 * INVALID_ARGUMENT for a tensor of another shape or type. */
sw_output *sw__classify(const sw_output *output, int64_t count, const char *const *labels, GError **error);
/* Microseconds left before the call's deadline (G_MAXINT64: none), for a
 * gRPC call or one from sw_oip_service_infer(). */
int64_t sw__infer_call_remaining_us(const infer_call *ic);

/* Sends the stage's `outputs` (sw_output, borrowed) on to the next stage as
 * the pipeline model; its answer ends `ic`. */
void sw__hop_forward(infer_call *ic, GPtrArray *outputs);

#endif
