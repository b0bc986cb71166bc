/* Prometheus metrics of a stage server, named after Triton's where they
 * correspond (nv_inference_* there, stagewise_inference_* here).
 *
 * Thread-safe: recording a call takes one short mutex (counters and
 * histograms together) and the in-flight gauge is atomic, so it can run on
 * every call from any thread. sw_metrics_render() writes the text
 * exposition format; metrics_http.h serves it. */
#ifndef SW_METRICS_H
#define SW_METRICS_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct sw_metrics sw_metrics;

/* `models` (NULL-terminated, copied): the model names requests are counted
 * under; any other name is counted as "other". */
sw_metrics *sw_metrics_new(const char *const *models);
void sw_metrics_free(sw_metrics *metrics);

/* One finished inference call: its gRPC status code, rows, and how long it
 * waited before running, ran, and took in all (microseconds). */
void sw_metrics_record_request(sw_metrics *metrics, const char *model, int code, int64_t rows, int64_t queue_us,
                               int64_t compute_us, int64_t total_us);
/* One forward call over `rows` rows (a batch of several requests, or one). */
void sw_metrics_record_execution(sw_metrics *metrics, int64_t rows);
/* A call the server refused before any handler saw it (auth, limits). */
void sw_metrics_record_refused(int code, void *metrics);
/* Calls accepted and not yet answered. */
void sw_metrics_in_flight_add(sw_metrics *metrics, int delta);
/* One call to the next stage at `target`: its code and latency. */
void sw_metrics_record_downstream(sw_metrics *metrics, const char *target, int code, int64_t latency_us);

/* The text exposition format (version 0.0.4). Newly allocated. */
char *sw_metrics_render(sw_metrics *metrics);

G_END_DECLS

#endif
