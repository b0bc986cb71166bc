/* libstagewise: the thin client for stagewise (and any Open Inference
 * Protocol server serving a Ludwig model the stagewise way).
 *
 * Send raw rows, get predictions back as named, typed columns, like the
 * DataFrame Ludwig's InferenceModule.predict returns: one column per output,
 * named "<feature>_<key>" ("plan_predictions", "plan_probabilities").
 *
 * Conventions:
 *  - Every handle is opaque and has one *_free function. Whoever receives a
 *    handle from a function owns it.
 *  - Strings returned by accessors are borrowed from the handle they came
 *    from and live as long as it; strings passed in are copied.
 *  - Failures return NULL (or -1) and, when `error` is not NULL, a new
 *    stagewise_error the caller frees.
 *  - Bad data (rows, feature names, model names, a server's answers) and
 *    failing or absent servers are reported as errors, never fatal: the
 *    library does not abort or exit on them. It aborts only when memory runs
 *    out (glib's allocator does). Handles must be ones the library gave out
 *    and not yet freed; NULL is accepted only by the *_free functions and
 *    for `error` arguments.
 *    It never writes to stdout or stderr itself; gRPC core, which it uses,
 *    may log there (set GRPC_VERBOSITY=NONE to silence it).
 *  - Thread safety, per handle type:
 *      stagewise_client  safe to use from many threads at once (calls,
 *                        sync and async); free it once, after the last call
 *                        returns.
 *      stagewise_rows    not synchronized: build it on one thread; once
 *                        built, any number of calls may read it at once.
 *      stagewise_result, stagewise_model
 *                        immutable once returned: any thread may read;
 *                        free once.
 *      stagewise_error   owned by whoever received it; not shared.
 *
 * Build against it with pkg-config: add `$(pkg-config --cflags --libs
 * stagewise)` to the compiler's command line. */
#ifndef STAGEWISE_H
#define STAGEWISE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ------------------------------------------------------------ */

/* The version this header ships with (the project's one version number:
 * CMakeLists.txt reads it from here); stagewise_version() says which
 * library was loaded at run time. */
#define STAGEWISE_VERSION "0.1.0"
const char *stagewise_version(void);

/* ---- errors ------------------------------------------------------------ */

/* Status codes: the gRPC status codes, which travel on the wire, so the
 * numbers never change. */
typedef enum stagewise_code {
    STAGEWISE_CODE_OK = 0,
    STAGEWISE_CODE_CANCELLED = 1,
    STAGEWISE_CODE_UNKNOWN = 2,
    STAGEWISE_CODE_INVALID_ARGUMENT = 3,
    STAGEWISE_CODE_DEADLINE_EXCEEDED = 4,
    STAGEWISE_CODE_NOT_FOUND = 5,
    STAGEWISE_CODE_ALREADY_EXISTS = 6,
    STAGEWISE_CODE_PERMISSION_DENIED = 7,
    STAGEWISE_CODE_RESOURCE_EXHAUSTED = 8,
    STAGEWISE_CODE_FAILED_PRECONDITION = 9,
    STAGEWISE_CODE_ABORTED = 10,
    STAGEWISE_CODE_OUT_OF_RANGE = 11,
    STAGEWISE_CODE_UNIMPLEMENTED = 12,
    STAGEWISE_CODE_INTERNAL = 13,
    STAGEWISE_CODE_UNAVAILABLE = 14,
    STAGEWISE_CODE_DATA_LOSS = 15,
    STAGEWISE_CODE_UNAUTHENTICATED = 16,
} stagewise_code;

/* The name of a code ("INVALID_ARGUMENT"); "UNKNOWN" for other numbers.
 * A static string. */
const char *stagewise_code_name(int code);

typedef struct stagewise_error stagewise_error;

/* A STAGEWISE_CODE_* value (a gRPC status code). */
int stagewise_error_code(const stagewise_error *error);
/* Its name ("INVALID_ARGUMENT"). */
const char *stagewise_error_code_name(const stagewise_error *error);
const char *stagewise_error_message(const stagewise_error *error);
void stagewise_error_free(stagewise_error *error);

/* ---- clients ----------------------------------------------------------- */

typedef struct stagewise_client stagewise_client;

typedef struct stagewise_client_options {
    /* gRPC target: "host:port", "ipv4:a:p,b:q", "dns:///name:port",
     * "unix:path". Calls are balanced round-robin over every address. */
    const char *target;
    /* Deadline of each call in milliseconds; 0 means none. */
    int64_t timeout_ms;
    /* Largest request or reply; 0 means 256 MiB. */
    int max_message_bytes;
    /* TLS: all NULL means plaintext. PEM text, not file names. Root
     * certificates alone give TLS; adding a chain and key gives mutual TLS. */
    const char *tls_root_certs_pem;
    const char *tls_cert_chain_pem;
    const char *tls_private_key_pem;
    /* Sent as "authorization: Bearer <token>" when not NULL. */
    const char *auth_token;
} stagewise_client_options;

stagewise_client *stagewise_client_new(const stagewise_client_options *options, stagewise_error **error);
/* Waits for asynchronous calls in flight (their callbacks run) and frees. */
void stagewise_client_free(stagewise_client *client);

/* ---- rows in ----------------------------------------------------------- */

/* A batch of raw rows, held as one column per input feature (keyed by the
 * feature's name, not its data column). */
typedef struct stagewise_rows stagewise_rows;

stagewise_rows *stagewise_rows_new(size_t n_rows);
size_t stagewise_rows_count(const stagewise_rows *rows);
/* Each stagewise_rows_add_* adds one column: `feature` is the input
 * feature's name, `values` holds one value per row (stagewise_rows_count),
 * and both are copied, so the caller keeps and frees its own. A feature has
 * at most one column. They return 0, or -1 (and an error, when `error` is
 * not NULL) with nothing added.
 *
 * Strings for text, category, set, bag, sequence, timeseries, binary, date
 * (as text, parsed by the server) and vector (whitespace-separated numbers)
 * features, as Ludwig's predict casts those columns: `values` has one
 * NUL-terminated UTF-8 string per row; a NULL entry is a missing value and
 * is sent as "nan", as pandas' astype(str) does, which the preprocessor
 * replaces with the feature's fill value. */
int stagewise_rows_add_strings(stagewise_rows *rows, const char *feature, const char *const *values,
                               stagewise_error **error);
/* Numbers for number (and binary) features: one per row; NaN is missing
 * (the preprocessor fills it). Sent as FP64, as pandas holds them. */
int stagewise_rows_add_numbers(stagewise_rows *rows, const char *feature, const double *values,
                               stagewise_error **error);
/* Vectors for vector features: `dim` floats per row, row after row, sent as
 * FP32 [rows, dim]. Timeseries features take the same form, `dim` being the
 * feature's max_timeseries_length (their strings form pads or cuts). */
int stagewise_rows_add_vectors(stagewise_rows *rows, const char *feature, const float *values, size_t dim,
                               stagewise_error **error);
/* Integers for h3 features (the 64-bit cell index) and any feature the
 * server takes as integers: one per row, sent as INT64 exactly (doubles
 * would round indexes past 2^53). There is no missing integer: fill it
 * before, as the feature's fill value says. */
int stagewise_rows_add_integers(stagewise_rows *rows, const char *feature, const int64_t *values,
                                stagewise_error **error);
/* Raw bytes for image and audio features (the encoded file: PNG, JPEG,
 * WAV, ... as read from disk, decoded by the server) and any other BYTES
 * input: row i is lengths[i] bytes at values[i], sent as they are (no
 * UTF-8 check, NUL bytes allowed). values[i] may be NULL only when
 * lengths[i] is 0 (an empty element). */
int stagewise_rows_add_bytes(stagewise_rows *rows, const char *feature, const void *const *values,
                             const size_t *lengths, stagewise_error **error);
void stagewise_rows_free(stagewise_rows *rows);

/* ---- predictions out ----------------------------------------------------- */

typedef struct stagewise_result stagewise_result;

typedef enum stagewise_column_type {
    STAGEWISE_COLUMN_STRING, /* one string per row (category, binary labels) */
    STAGEWISE_COLUMN_NUMBER, /* one number per row (number predictions, probability) */
    STAGEWISE_COLUMN_BOOL,   /* one boolean per row, read as a number 0 or 1 */
    STAGEWISE_COLUMN_VECTOR, /* a fixed-length list of numbers per row (probabilities) */
    STAGEWISE_COLUMN_LIST,   /* a list of any length per row (set predictions): decoded JSON */
    STAGEWISE_COLUMN_INVALID /* asked for a column that does not exist */
} stagewise_column_type;

size_t stagewise_result_rows(const stagewise_result *result);
size_t stagewise_result_columns(const stagewise_result *result);
/* "<feature>_<key>". */
const char *stagewise_result_column_name(const stagewise_result *result, size_t column);
/* The column with this name, or -1. */
long stagewise_result_find_column(const stagewise_result *result, const char *name);
stagewise_column_type stagewise_result_column_type(const stagewise_result *result, size_t column);
/* STRING columns. */
const char *stagewise_result_string(const stagewise_result *result, size_t column, size_t row);
/* NUMBER and BOOL columns. */
double stagewise_result_number(const stagewise_result *result, size_t column, size_t row);
/* VECTOR and LIST columns: the length of the row's list. */
size_t stagewise_result_list_length(const stagewise_result *result, size_t column, size_t row);
/* Element `i` of a VECTOR or LIST row: as a number (NaN when it is a
 * string), or as a string (NULL when it is a number). */
double stagewise_result_list_number(const stagewise_result *result, size_t column, size_t row, size_t i);
const char *stagewise_result_list_string(const stagewise_result *result, size_t column, size_t row, size_t i);
/* Any cell as text: strings as they are, numbers in shortest round-trip
 * form, lists as JSON arrays. Newly allocated; free() it. */
char *stagewise_result_cell_text(const stagewise_result *result, size_t column, size_t row);
void stagewise_result_free(stagewise_result *result);

/* ---- calls ----------------------------------------------------------------- */

/* One call: sends `rows` as ModelInfer(`model`) to the client's target,
 * which runs the whole pipeline (a preprocessor started with --next). */
stagewise_result *stagewise_predict(stagewise_client *client, const char *model, const stagewise_rows *rows,
                                    stagewise_error **error);

/* Staged: calls "<model>_preprocessor" on `preprocessor`, then
 * "<model>_predictor" and "<model>_postprocessor" in turn, passing tensors
 * along. The three clients may be the same (an OIP server serving all). */
stagewise_result *stagewise_predict_staged(stagewise_client *preprocessor, stagewise_client *predictor,
                                           stagewise_client *postprocessor, const char *model,
                                           const stagewise_rows *rows, stagewise_error **error);

/* Asynchronous one call. `done` runs exactly once and owns what it is given
 * (exactly one of `result` and `error` is set); it must not block. It runs
 * on a library thread, except when the call cannot start at all (no rows):
 * then it runs before this returns, on the caller's thread. `rows` may be
 * freed as soon as this returns. */
typedef void (*stagewise_done)(stagewise_result *result, stagewise_error *error, void *user_data);
void stagewise_predict_async(stagewise_client *client, const char *model, const stagewise_rows *rows,
                             stagewise_done done, void *user_data);

/* ---- model and server information -------------------------------------------- */

/* An input feature as the model's metadata describes it. */
typedef struct stagewise_feature {
    const char *name;
    const char *type;   /* Ludwig type: "number", "category", "date", ... */
    const char *column; /* the data column it reads */
} stagewise_feature;

typedef struct stagewise_model stagewise_model;

/* ModelMetadata of `model`. */
stagewise_model *stagewise_model_get(stagewise_client *client, const char *model, stagewise_error **error);
size_t stagewise_model_input_count(const stagewise_model *model);
/* Borrowed; valid while `model` lives. */
const stagewise_feature *stagewise_model_input(const stagewise_model *model, size_t i);
/* The metadata as a JSON document. Newly allocated; free() it. */
char *stagewise_model_to_json(const stagewise_model *model);
void stagewise_model_free(stagewise_model *model);

/* grpc.health.v1 Check of `service` ("" for the server): 1 serving, 0 not
 * serving, -1 on error. */
int stagewise_health_check(stagewise_client *client, const char *service, stagewise_error **error);

#ifdef __cplusplus
}
#endif

#endif
