/* The Open Inference Protocol and gRPC health services for one stage.
 *
 * Binds the OIP RPCs and grpc.health.v1.Health to a loaded sw_stage and
 * exposes them as a table of sw_method for sw_server. The service borrows
 * the stage; both must outlive the server that serves them.
 * Threading: handlers run on the server's threads; set_loaded, set_serving
 * and end_watches may be called from any thread. Files: oip_service.c
 * (construction, models), metadata.c, infer.c, hop.c, health.c. */
#ifndef SW_OIP_SERVICE_H
#define SW_OIP_SERVICE_H

#include <glib.h>

#include "batcher.h"
#include "channel.h"
#include "export.h"
#include "inference.pb-c.h"
#include "server.h"
#include "stage.h"

G_BEGIN_DECLS

typedef struct sw_oip_service sw_oip_service;

/* The maximum number of methods sw_oip_service_methods() fills. */
#define SW_OIP_SERVICE_MAX_METHODS 10

typedef struct sw_oip_service_options {
    int max_rows; /* most rows per request; 0 no limit */
    /* Without batching, a request of at most this many rows runs to
     * completion on the polling thread while no other inference call is in
     * flight (sw_method.inline_when_idle); with batching and no queue delay,
     * such a request is batched and run on that thread (batcher.h). 0:
     * every call goes to a worker or the batch executor. */
    int inline_max_rows;
    /* Without batching, such a request runs on the polling thread even
     * while other calls are in flight or waiting (sw_method.inline_when_idle
     * FALSE): no hand-off to workers at any load, so small calls use one
     * core. */
    gboolean inline_when_busy;
    size_t max_reply_bytes;      /* the largest reply sent; 0 no limit */
    gboolean access_log;         /* one log line per inference call */
    const char *next_auth_token; /* bearer token for the next stage; copied */
    sw_batcher_options batching; /* max_batch_size 0: no batching */
    sw_metrics *metrics;         /* borrowed; NULL records nothing */
} sw_oip_service_options;

/* Serves `stage` (its module may still be loading: see
 * sw_oip_service_set_loaded) as "<base>_<stage>". With `next` (borrowed: a channel to
 * the next stage), or as the postprocessor, it also serves the pipeline
 * model "<base>": it runs its stage and passes the outputs on to `next`, or
 * answers them as the last step. NULL with an error when the export's
 * output features cannot be served. */
sw_oip_service *sw_oip_service_new(sw_stage *stage, const sw_export *export, const char *model_base_name,
                                   sw_channel *next, const sw_oip_service_options *options, GError **error);
void sw_oip_service_free(sw_oip_service *service);

/* Fills `methods` (room for SW_OIP_SERVICE_MAX_METHODS) and returns how many. */
size_t sw_oip_service_methods(sw_oip_service *service, sw_method *methods);

/* What the polling thread of the server serving these methods must run
 * when it has no event (sw_server_options.poll_work): the batches of small
 * requests queued there; zeroed when the service queues none. Asking for
 * it is what lets the service queue them so: call it once, before the
 * server starts, and give it to that server. */
sw_poll_work sw_oip_service_poll_work(sw_oip_service *service);

/* Where the answer of sw_oip_service_infer() goes: exactly once, on
 * whichever thread ends the call (the caller's, a batch executor's, or the
 * gRPC polling thread after a hop), so it must not block. `response` is a
 * packed ModelInferResponse (borrowed: take a reference to keep it) when
 * `code` is 0 (OK), else NULL and `message` says what went wrong. */
typedef void (*sw_oip_infer_done)(GBytes *response, int code, const char *message, void *user_data);

/* One ModelInfer from a transport other than gRPC (the REST layer): the
 * packed ModelInferRequest `request` (a reference is taken) goes through
 * the very path of a gRPC ModelInfer: validation, limits, batching, the hop
 * to the next stage, metrics and the access log. Without batching the stage
 * runs on the calling thread, so call it from a worker thread, never from a
 * polling one. `deadline_us` (g_get_monotonic_time() clock; 0: none) is
 * the call's deadline, as a gRPC deadline is: checked before the stage
 * runs, and passed on to the next stage. */
void sw_oip_service_infer(sw_oip_service *service, GBytes *request, gint64 deadline_us, sw_oip_infer_done done,
                          void *user_data);

/* The ModelMetadata of model `name` at `version` ("" for any): borrowed,
 * lives as long as the service. NULL with a NOT_FOUND error. */
const Inference__ModelMetadataResponse *sw_oip_service_model_metadata(sw_oip_service *service, const char *name,
                                                                      const char *version, GError **error);

/* The ModelConfig answer (Triton's model_configuration extension) of model
 * `name` at `version` ("" for any): borrowed, lives as long as the
 * service. NULL with a NOT_FOUND error. */
const Inference__ModelConfigResponse *sw_oip_service_model_config(sw_oip_service *service, const char *name,
                                                                  const char *version, GError **error);

/* The ModelStatistics answer (Triton's statistics extension) for model
 * `name` at `version` ("" for any), or for every model served when `name`
 * is "": a snapshot of the counters, newly allocated and owned by the
 * caller (free with sw_oip_service_statistics_free()). NULL with a
 * NOT_FOUND error. Any thread. */
Inference__ModelStatisticsResponse *sw_oip_service_model_statistics(sw_oip_service *service, const char *name,
                                                                    const char *version, GError **error);
void sw_oip_service_statistics_free(Inference__ModelStatisticsResponse *statistics);

/* ServerMetadata: `response` filled with static strings, the extensions
 * REST and gRPC both implement. */
void sw_oip_service_server_metadata(Inference__ServerMetadataResponse *response);

/* Readiness as ServerReady and ModelReady report it. */
gboolean sw_oip_service_is_serving(sw_oip_service *service);

/* Inference calls get UNAVAILABLE until this says the stage's module is
 * loaded. */
void sw_oip_service_set_loaded(sw_oip_service *service);

/* Readiness as health and ServerReady report it: FALSE while loading and
 * while draining. */
void sw_oip_service_set_serving(sw_oip_service *service, gboolean serving);

/* Ends every open Health/Watch stream (UNAVAILABLE), so that draining does
 * not wait on them. */
void sw_oip_service_end_watches(sw_oip_service *service);

G_END_DECLS

#endif
