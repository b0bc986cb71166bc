/* stagewise-bench's HTTP mode: the KServe v2 REST inference call
 * (`POST /v2/models/{model}/infer`) sent with libcurl, as JSON tensors or
 * with Triton's binary tensor extension.
 *
 * http_body.c turns the request the gRPC mode sends into the HTTP body and
 * checks answers; http_load.c keeps the requests in flight. */
#ifndef SW_BENCH_HTTP_H
#define SW_BENCH_HTTP_H

#include <glib.h>

#include "bench.h"

G_BEGIN_DECLS

/* ---- bodies ------------------------------------------------------------ */

/* An inference request body. */
typedef struct bench_http_body {
    GBytes *bytes;
    gssize header_len;        /* < 0: all JSON; else the JSON header's length, binary data after it */
    GPtrArray *binary_inputs; /* char*: without `binary`, why each input JSON cannot carry went as binary */
} bench_http_body;

/* The v2 REST body carrying the packed ModelInferRequest `packed`: every
 * input with its name, datatype, shape and parameters; its data as a flat
 * JSON array (numbers, BYTES as strings, BOOL as true/false) or, with
 * `binary`, as Triton's binary data after the JSON header, the outputs then
 * asked for as binary data too. Without `binary`, an input JSON cannot
 * carry (a missing number's NaN, text that is not UTF-8, FP16) goes as
 * binary data alone, the reason in `binary_inputs`; the outputs stay JSON.
 * FALSE with an error when `packed` is not a request with raw contents.
 * Clear `out` with bench_http_body_clear(). */
gboolean bench_http_body_build(GBytes *packed, gboolean binary, bench_http_body *out, GError **error);
void bench_http_body_clear(bench_http_body *body);

/* Checks that `body` (`len` bytes; the first `header_len` are JSON, all of
 * it when < 0) is an inference answer: a JSON object whose "outputs" is a
 * non-empty array of tensors, each with a name, a datatype, a shape and as
 * many data elements as the shape holds, or a binary_data_size, the binary
 * sizes adding up to the bytes after the header. FALSE with an error saying
 * what is wrong. `names` (NULL: not wanted) receives the output names. */
gboolean bench_http_answer_check(const guint8 *body, size_t len, gssize header_len, GPtrArray *names, GError **error);

/* The text of an error answer: its JSON "error" member, or the start of
 * the body when it has none; newly allocated. */
char *bench_http_error_text(const guint8 *body, size_t len);

/* ---- load -------------------------------------------------------------- */

typedef struct bench_http bench_http;

/* A load on `target` (HOST:PORT, or an http:// or https:// URL without a
 * path) posting `body` to the model `model`'s infer URL, one keep-alive
 * connection per request in flight. Takes no ownership. */
bench_http *bench_http_new(const char *target, const char *model, const bench_http_body *body, int64_t rows_per_request,
                           GError **error);
void bench_http_free(bench_http *http);
/* Runs one step at `concurrency` requests in flight (after a warm-up at the
 * same concurrency) and measures it, reading `server_pids` around it. */
bench_step *bench_http_step(bench_http *http, int concurrency, const bench_limits *limits, const GArray *server_pids);
/* Adds to `config` what the run's JSON says about the HTTP requests:
 * "binary_inputs" (why each input that JSON cannot carry went as binary
 * data) and "answer_outputs" (the output names of the first valid answer;
 * empty when none came). */
void bench_http_describe(const bench_http *http, JsonObject *config);

G_END_DECLS

#endif
