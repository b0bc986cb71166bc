/* client_check: libstagewise as a C user sees it, against real servers.
 *
 * Uses only the public header. Builds a deterministic batch of raw rows for
 * the example export (a table of 5 rows, repeated), then checks:
 *   - sync:   stagewise_predict; the result's columns, types and accessors;
 *             the result is printed to stdout as JSON lines (one object per
 *             row, column name -> cell text) for the caller to compare with
 *             an in-process reference;
 *   - async:  concurrent stagewise_predict_async calls (rows freed right after
 *             each call), each callback exactly once, on a library thread,
 *             with a result equal to the sync one cell for cell; freeing a
 *             client with calls in flight runs their callbacks first;
 *   - threads: one client shared by several threads calling stagewise_predict;
 *   - staged: stagewise_predict_staged over three clients equals one call;
 *   - errors: unreachable target, unknown model, unknown feature, duplicate
 *             column, non-UTF-8 text, empty batch, bad options;
 *   - model information and health.
 * Exits 0 only when every check passes; diagnostics go to stderr.
 *
 * usage: client_check --target T [--model NAME] [--rows N] [--async-calls N]
 *                     [--pre T] [--pred T] [--post T] */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#endif

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stagewise.h"

/* ---- checks ------------------------------------------------------------------ */

static atomic_int failures;
static atomic_int checks;

static void failf(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    fputs("client_check: FAIL: ", stderr);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_fetch_add(&failures, 1);
}

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        atomic_fetch_add(&checks, 1);                                                                                  \
        if (!(cond))                                                                                                   \
            failf(__VA_ARGS__);                                                                                        \
    } while (0)

/* Reports and frees an error that was not expected. */
static void unexpected_error(const char *what, stagewise_error *error)
{
    if (error == NULL)
        failf("%s: failed without an error", what);
    else
        failf("%s: %s (%d): %s", what, stagewise_error_code_name(error), stagewise_error_code(error),
              stagewise_error_message(error));
    stagewise_error_free(error);
}

/* Checks that `error` is set, with `code`, and a message containing `needle`
 * (when not NULL); frees it. */
static void expect_error(const char *what, stagewise_error *error, int code, const char *needle)
{
    atomic_fetch_add(&checks, 1);
    if (error == NULL) {
        failf("%s: no error, expected code %d", what, code);
        return;
    }
    const char *message = stagewise_error_message(error);
    const char *name = stagewise_error_code_name(error);
    if (stagewise_error_code(error) != code)
        failf("%s: code %d (%s), expected %d; message: %s", what, stagewise_error_code(error), name, code,
              message ? message : "(null)");
    else if (message == NULL || message[0] == '\0')
        failf("%s: code %d but no message", what, code);
    else if (needle && strstr(message, needle) == NULL)
        failf("%s: the message does not name '%s': %s", what, needle, message);
    else if (name == NULL || name[0] == '\0')
        failf("%s: code %d has no name", what, code);
    else
        fprintf(stderr, "client_check: ok: %s -> %s: %s\n", what, name, message);
    stagewise_error_free(error);
}

/* ---- the rows ------------------------------------------------------------------ */

#define TABLE_ROWS 5
#define EMBEDDING_DIM 4

/* Keep in step with TABLE in test_client_library.py. NaN / NULL are missing. */
static const struct table_row {
    double age;
    const char *married;
    const char *occupation;
    const char *review;
    const char *tags;
    float embedding[EMBEDDING_DIM];
    const char *signup;
} TABLE[TABLE_ROWS] = {
    {34.5, "yes", "engineer", "Great service, very fast!", "sports music", {0.25f, -1.5f, 0.75f, 2.0f}, "2020-05-17"},
    {NAN, "no", " teacher ", "", "", {-0.5f, 0.125f, 1.0f, -2.25f}, "2019-12-31"},
    {61.0,
     "yes",
     "astronaut",
     "The caf\xc3\xa9 was slow",
     "travel gardening",
     {1.5f, 1.5f, -0.25f, 0.0f},
     "2016-02-29"},
    {22.0, "no", "nurse", NULL, "food tech Music", {0.0f, -0.75f, 0.5f, 3.0f}, "2023-07-04"},
    {45.25, "yes", "artist", "the price was not good", "tech", {-1.0f, 2.5f, -0.125f, 0.375f}, "2015-01-01"},
};

static const char *const FEATURES[] = {"age", "married", "occupation", "review", "tags", "embedding", "signup"};
static const char *const COLUMNS[] = {"Age", "Married", "Occupation", "Review", "Tags", "Embedding", "Signup"};
static const char *const TYPES[] = {"number", "binary", "category", "text", "set", "vector", "date"};
#define N_FEATURES 7

/* `n` rows: TABLE repeated. `skip` leaves that feature out, `rename` sends
 * the feature `skip` under another name instead. NULL with a diagnostic on
 * failure. */
static stagewise_rows *make_rows(size_t n, const char *skip, const char *rename)
{
    stagewise_rows *rows = stagewise_rows_new(n);
    double *ages = malloc(sizeof(double) * (n ? n : 1));
    const char **strings[3]; /* occupation, review, tags */
    for (int k = 0; k < 3; k++)
        strings[k] = malloc(sizeof(char *) * (n ? n : 1));
    const char **signups = malloc(sizeof(char *) * (n ? n : 1));
    const char **married = malloc(sizeof(char *) * (n ? n : 1));
    float *embedding = malloc(sizeof(float) * EMBEDDING_DIM * (n ? n : 1));
    for (size_t r = 0; r < n; r++) {
        const struct table_row *t = &TABLE[r % TABLE_ROWS];
        ages[r] = t->age;
        married[r] = t->married;
        strings[0][r] = t->occupation;
        strings[1][r] = t->review;
        strings[2][r] = t->tags;
        signups[r] = t->signup;
        memcpy(embedding + r * EMBEDDING_DIM, t->embedding, sizeof t->embedding);
    }
    stagewise_error *error = NULL;
    int rc = 0;
    for (int f = 0; f < N_FEATURES && rc == 0; f++) {
        const char *name = FEATURES[f];
        if (skip && strcmp(skip, name) == 0) {
            if (rename == NULL)
                continue;
            name = rename;
        }
        switch (f) {
        case 0: rc = stagewise_rows_add_numbers(rows, name, ages, &error); break;
        case 1: rc = stagewise_rows_add_strings(rows, name, married, &error); break;
        case 2:
        case 3:
        case 4: rc = stagewise_rows_add_strings(rows, name, strings[f - 2], &error); break;
        case 5: rc = stagewise_rows_add_vectors(rows, name, embedding, EMBEDDING_DIM, &error); break;
        case 6: rc = stagewise_rows_add_strings(rows, name, signups, &error); break;
        }
        if (rc != 0) {
            unexpected_error(name, error);
            error = NULL;
        }
    }
    free(ages);
    for (int k = 0; k < 3; k++)
        free(strings[k]);
    free(signups);
    free(married);
    free(embedding);
    if (rc != 0) {
        stagewise_rows_free(rows);
        return NULL;
    }
    if (stagewise_rows_count(rows) != n) {
        failf("stagewise_rows_count: %zu, expected %zu", stagewise_rows_count(rows), n);
        stagewise_rows_free(rows);
        return NULL;
    }
    return rows;
}

/* ---- results ------------------------------------------------------------------ */

static const struct expected_column {
    const char *name;
    stagewise_column_type type;
    size_t width; /* VECTOR: numbers per row */
} EXPECTED[] = {
    {"churn_predictions", STAGEWISE_COLUMN_STRING, 0},     {"churn_probabilities", STAGEWISE_COLUMN_VECTOR, 2},
    {"plan_predictions", STAGEWISE_COLUMN_STRING, 0},      {"plan_probabilities", STAGEWISE_COLUMN_VECTOR, 3},
    {"spend_predictions", STAGEWISE_COLUMN_NUMBER, 0},     {"interests_predictions", STAGEWISE_COLUMN_LIST, 0},
    {"interests_probabilities", STAGEWISE_COLUMN_LIST, 0},
};
#define N_EXPECTED (sizeof EXPECTED / sizeof EXPECTED[0])

static const char *type_name(stagewise_column_type t)
{
    switch (t) {
    case STAGEWISE_COLUMN_STRING: return "STRING";
    case STAGEWISE_COLUMN_NUMBER: return "NUMBER";
    case STAGEWISE_COLUMN_BOOL: return "BOOL";
    case STAGEWISE_COLUMN_VECTOR: return "VECTOR";
    case STAGEWISE_COLUMN_LIST: return "LIST";
    case STAGEWISE_COLUMN_INVALID: return "INVALID";
    }
    return "?";
}

/* Past the last column: nothing, no crash, nothing printed (the test reads
 * stderr). */
static void check_past_last_column(const char *what, const stagewise_result *result)
{
    size_t past = stagewise_result_columns(result);
    CHECK(stagewise_result_column_name(result, past) == NULL, "%s: a column name past the last column", what);
    CHECK(stagewise_result_column_type(result, past) == STAGEWISE_COLUMN_INVALID,
          "%s: a column type past the last column", what);
    CHECK(stagewise_result_string(result, past, 0) == NULL, "%s: a string past the last column", what);
    CHECK(isnan(stagewise_result_number(result, past, 0)), "%s: a number past the last column", what);
    CHECK(stagewise_result_list_length(result, past, 0) == 0, "%s: a list past the last column", what);
    CHECK(stagewise_result_list_string(result, past, 0, 0) == NULL, "%s: a list string past the last column", what);
    CHECK(isnan(stagewise_result_list_number(result, past, 0, 0)), "%s: a list number past the last column", what);
    CHECK(stagewise_result_cell_text(result, past, 0) == NULL, "%s: cell text past the last column", what);
}

/* One cell: the typed accessors agree with its text. */
static void check_cell(const char *what, const stagewise_result *result, size_t e, size_t col, size_t r,
                       stagewise_column_type type, const char *text)
{
    switch (type) {
    case STAGEWISE_COLUMN_STRING: {
        const char *s = stagewise_result_string(result, col, r);
        CHECK(s && strcmp(s, text) == 0, "%s: %s row %zu: string '%s', cell text '%s'", what, EXPECTED[e].name, r,
              s ? s : "(null)", text);
        CHECK(isnan(stagewise_result_number(result, col, r)), "%s: %s: a number from a STRING column", what,
              EXPECTED[e].name);
        CHECK(stagewise_result_list_length(result, col, r) == 0, "%s: %s: a list length of a STRING column", what,
              EXPECTED[e].name);
        break;
    }
    case STAGEWISE_COLUMN_NUMBER:
    case STAGEWISE_COLUMN_BOOL: {
        double v = stagewise_result_number(result, col, r);
        char *end = NULL;
        double parsed = strtod(text, &end);
        CHECK(isfinite(v), "%s: %s row %zu: %g", what, EXPECTED[e].name, r, v);
        /* Shortest round-trip text of the FP32 value the column holds. */
        CHECK(end && *end == '\0' && (float)parsed == (float)v, "%s: %s row %zu: number %.9g, cell text '%s'", what,
              EXPECTED[e].name, r, v, text);
        CHECK(stagewise_result_string(result, col, r) == NULL, "%s: %s: a string from a NUMBER column", what,
              EXPECTED[e].name);
        break;
    }
    case STAGEWISE_COLUMN_VECTOR: {
        size_t len = stagewise_result_list_length(result, col, r);
        CHECK(len == EXPECTED[e].width, "%s: %s row %zu: length %zu, expected %zu", what, EXPECTED[e].name, r, len,
              EXPECTED[e].width);
        double sum = 0;
        for (size_t i = 0; i < len; i++) {
            double p = stagewise_result_list_number(result, col, r, i);
            CHECK(p >= 0.0 && p <= 1.0, "%s: %s row %zu [%zu]: probability %g", what, EXPECTED[e].name, r, i, p);
            sum += p;
            CHECK(stagewise_result_list_string(result, col, r, i) == NULL,
                  "%s: %s row %zu [%zu]: a string from a VECTOR", what, EXPECTED[e].name, r, i);
        }
        CHECK(fabs(sum - 1.0) < 1e-4, "%s: %s row %zu: probabilities sum to %g", what, EXPECTED[e].name, r, sum);
        CHECK(isnan(stagewise_result_list_number(result, col, r, len)), "%s: %s row %zu: element past the end", what,
              EXPECTED[e].name, r);
        CHECK(text[0] == '[' && text[strlen(text) - 1] == ']', "%s: %s row %zu: cell text '%s'", what, EXPECTED[e].name,
              r, text);
        break;
    }
    case STAGEWISE_COLUMN_LIST: {
        size_t len = stagewise_result_list_length(result, col, r);
        bool strings = strcmp(EXPECTED[e].name, "interests_predictions") == 0;
        for (size_t i = 0; i < len; i++) {
            const char *s = stagewise_result_list_string(result, col, r, i);
            double v = stagewise_result_list_number(result, col, r, i);
            if (strings) {
                CHECK(s && s[0] && isnan(v), "%s: %s row %zu [%zu]: expected a string", what, EXPECTED[e].name, r, i);
                CHECK(s && strstr(text, s), "%s: %s row %zu [%zu]: '%s' is not in the cell text %s", what,
                      EXPECTED[e].name, r, i, s ? s : "(null)", text);
            } else {
                CHECK(s == NULL && v >= 0.0 && v <= 1.0, "%s: %s row %zu [%zu]: expected a probability, got %g", what,
                      EXPECTED[e].name, r, i, v);
            }
        }
        CHECK(stagewise_result_list_string(result, col, r, len) == NULL &&
                  isnan(stagewise_result_list_number(result, col, r, len)),
              "%s: %s row %zu: element past the end", what, EXPECTED[e].name, r);
        CHECK(text[0] == '[' && text[strlen(text) - 1] == ']', "%s: %s row %zu: cell text '%s'", what, EXPECTED[e].name,
              r, text);
        break;
    }
    case STAGEWISE_COLUMN_INVALID:
        failf("%s: %s: column type INVALID for an existing column", what, EXPECTED[e].name);
        break;
    }
}

/* Every column the example export has, with its type, and what the typed
 * accessors give agrees with the cell text. */
static void check_result_shape(const char *what, const stagewise_result *result, size_t n_rows)
{
    CHECK(stagewise_result_rows(result) == n_rows, "%s: %zu rows, expected %zu", what, stagewise_result_rows(result),
          n_rows);
    CHECK(stagewise_result_columns(result) == N_EXPECTED, "%s: %zu columns, expected %zu", what,
          stagewise_result_columns(result), N_EXPECTED);
    CHECK(stagewise_result_find_column(result, "no_such_column") == -1, "%s: find_column of an unknown name", what);
    check_past_last_column(what, result);
    for (size_t e = 0; e < N_EXPECTED; e++) {
        long c = stagewise_result_find_column(result, EXPECTED[e].name);
        if (c < 0) {
            failf("%s: no column %s", what, EXPECTED[e].name);
            continue;
        }
        size_t col = (size_t)c;
        CHECK(strcmp(stagewise_result_column_name(result, col), EXPECTED[e].name) == 0,
              "%s: column %ld is named %s, found as %s", what, c, stagewise_result_column_name(result, col),
              EXPECTED[e].name);
        stagewise_column_type type = stagewise_result_column_type(result, col);
        if (type != EXPECTED[e].type) {
            failf("%s: column %s is %s, expected %s", what, EXPECTED[e].name, type_name(type),
                  type_name(EXPECTED[e].type));
            continue;
        }
        for (size_t r = 0; r < n_rows; r++) {
            char *text = stagewise_result_cell_text(result, col, r);
            if (text == NULL) {
                failf("%s: %s row %zu: no cell text", what, EXPECTED[e].name, r);
                continue;
            }
            check_cell(what, result, e, col, r, type, text);
            free(text);
        }
        /* Past the last row: nothing, and no crash. */
        CHECK(stagewise_result_cell_text(result, col, n_rows) == NULL, "%s: %s: cell text past the last row", what,
              EXPECTED[e].name);
        CHECK(stagewise_result_string(result, col, n_rows) == NULL, "%s: %s: string past the last row", what,
              EXPECTED[e].name);
        CHECK(isnan(stagewise_result_number(result, col, n_rows)), "%s: %s: number past the last row", what,
              EXPECTED[e].name);
        CHECK(stagewise_result_list_length(result, col, n_rows) == 0, "%s: %s: list past the last row", what,
              EXPECTED[e].name);
    }
}

/* Cell for cell, by cell text; `what` names the comparison. */
static bool same_result(const char *what, const stagewise_result *got, const stagewise_result *want)
{
    if (stagewise_result_rows(got) != stagewise_result_rows(want) ||
        stagewise_result_columns(got) != stagewise_result_columns(want)) {
        failf("%s: %zu rows x %zu columns, expected %zu x %zu", what, stagewise_result_rows(got),
              stagewise_result_columns(got), stagewise_result_rows(want), stagewise_result_columns(want));
        return false;
    }
    bool same = true;
    for (size_t c = 0; c < stagewise_result_columns(want) && same; c++) {
        const char *name = stagewise_result_column_name(want, c);
        long gc = stagewise_result_find_column(got, name);
        if (gc < 0) {
            failf("%s: no column %s", what, name);
            return false;
        }
        if (stagewise_result_column_type(got, (size_t)gc) != stagewise_result_column_type(want, c)) {
            failf("%s: column %s is %s, expected %s", what, name,
                  type_name(stagewise_result_column_type(got, (size_t)gc)),
                  type_name(stagewise_result_column_type(want, c)));
            return false;
        }
        for (size_t r = 0; r < stagewise_result_rows(want) && same; r++) {
            char *a = stagewise_result_cell_text(got, (size_t)gc, r);
            char *b = stagewise_result_cell_text(want, c, r);
            if (a == NULL || b == NULL || strcmp(a, b) != 0) {
                failf("%s: %s row %zu: '%s', expected '%s'", what, name, r, a ? a : "(null)", b ? b : "(null)");
                same = false;
            }
            free(a);
            free(b);
        }
    }
    atomic_fetch_add(&checks, 1);
    return same;
}

static void print_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* One JSON object per row: column name -> cell text. */
static void print_result(FILE *out, const stagewise_result *result)
{
    for (size_t r = 0; r < stagewise_result_rows(result); r++) {
        fputc('{', out);
        for (size_t c = 0; c < stagewise_result_columns(result); c++) {
            char *text = stagewise_result_cell_text(result, c, r);
            if (c)
                fputs(", ", out);
            print_json_string(out, stagewise_result_column_name(result, c));
            fputs(": ", out);
            print_json_string(out, text ? text : "");
            free(text);
        }
        fputs("}\n", out);
    }
    fflush(out);
}

/* ---- asynchronous calls ----------------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished; /* callbacks that ran */
} waiter;

typedef struct async_slot {
    waiter *w;
    pthread_t caller;
    atomic_int calls;          /* callbacks for this slot */
    atomic_bool caller_thread; /* a callback ran on the thread that made the call */
    stagewise_result *result;
    stagewise_error *error;
} async_slot;

static void async_done(stagewise_result *result, stagewise_error *error, void *user_data)
{
    async_slot *s = user_data;
    if (pthread_equal(pthread_self(), s->caller))
        atomic_store(&s->caller_thread, true);
    if (atomic_fetch_add(&s->calls, 1) == 0) {
        s->result = result;
        s->error = error;
    } else {
        /* A second callback: counted as a failure by the waiter; don't leak. */
        stagewise_result_free(result);
        stagewise_error_free(error);
    }
    pthread_mutex_lock(&s->w->lock);
    s->w->finished++;
    pthread_cond_broadcast(&s->w->cond);
    pthread_mutex_unlock(&s->w->lock);
}

static void waiter_init(waiter *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->finished = 0;
}

static void waiter_destroy(waiter *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* Waits until `n` callbacks ran or `seconds` passed; returns how many ran. */
static int waiter_wait(waiter *w, int n, int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (w->finished < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cond, &w->lock, &deadline);
    int finished = w->finished;
    pthread_mutex_unlock(&w->lock);
    return finished;
}

static int waiter_count(waiter *w)
{
    pthread_mutex_lock(&w->lock);
    int finished = w->finished;
    pthread_mutex_unlock(&w->lock);
    return finished;
}

/* An asynchronous predict that must fail with `code` (and a message holding
 * `needle`, when not NULL): waits up to 30 s for its one callback. */
static void expect_async_failure(stagewise_client *client, const char *model, const stagewise_rows *rows,
                                 const char *what, int code, const char *needle)
{
    waiter w;
    waiter_init(&w);
    async_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.w = &w;
    slot.caller = pthread_self();
    stagewise_predict_async(client, model, rows, async_done, &slot);
    CHECK(waiter_wait(&w, 1, 30) == 1, "%s: no callback within 30 s", what);
    if (waiter_count(&w) != 1)
        return; /* a late callback may still use the waiter: leave it be */
    CHECK(slot.result == NULL, "%s: a result", what);
    stagewise_result_free(slot.result);
    expect_error(what, slot.error, code, needle);
    if (atomic_load(&slot.caller_thread))
        /* The header says "on a library thread"; a caller holding a lock the
         * callback takes would deadlock. Reported, not failed. */
        fprintf(stderr,
                "client_check: NOTE: %s: the callback ran on the calling thread, inside "
                "stagewise_predict_async\n",
                what);
    waiter_destroy(&w);
}

static void check_async(stagewise_client *client, const char *model, size_t n_rows, int n_calls,
                        const stagewise_result *expected)
{
    waiter w;
    waiter_init(&w);
    async_slot *slots = calloc((size_t)n_calls, sizeof *slots);
    for (int i = 0; i < n_calls; i++) {
        slots[i].w = &w;
        slots[i].caller = pthread_self();
        stagewise_rows *rows = make_rows(n_rows, NULL, NULL);
        if (rows == NULL) {
            failf("async: rows for call %d", i);
            n_calls = i;
            break;
        }
        stagewise_predict_async(client, model, rows, async_done, &slots[i]);
        /* The header allows it: the call copied what it needs. */
        stagewise_rows_free(rows);
    }
    int finished = waiter_wait(&w, n_calls, 120);
    CHECK(finished == n_calls, "async: %d of %d callbacks ran within 120 s", finished, n_calls);
    if (finished != n_calls) {
        /* Callbacks may still come and touch `slots`: don't free them. */
        fprintf(stderr, "client_check: async: leaving the slots of callbacks that never ran\n");
        return;
    }
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL); /* a duplicate callback would show up now */
    CHECK(waiter_count(&w) == n_calls, "async: %d callbacks for %d calls", waiter_count(&w), n_calls);
    int ok = 0;
    for (int i = 0; i < n_calls; i++) {
        async_slot *s = &slots[i];
        char what[64];
        snprintf(what, sizeof what, "async call %d", i);
        CHECK(atomic_load(&s->calls) == 1, "%s: %d callbacks", what, atomic_load(&s->calls));
        CHECK(!atomic_load(&s->caller_thread), "%s: the callback ran on the calling thread", what);
        CHECK((s->result == NULL) != (s->error == NULL), "%s: result %p and error %p", what, (void *)s->result,
              (void *)s->error);
        if (s->error)
            unexpected_error(what, s->error);
        else if (s->result && same_result(what, s->result, expected))
            ok++;
        stagewise_result_free(s->result);
    }
    fprintf(stderr, "client_check: async: %d calls, %d callbacks, %d results equal to the sync one\n", n_calls,
            finished, ok);
    free(slots);
    waiter_destroy(&w);
}

/* Freeing a client waits for its calls in flight: their callbacks have all
 * run when stagewise_client_free returns. */
static void check_free_with_calls_in_flight(const char *target, const char *model, size_t n_rows)
{
    enum { N = 8 };
    stagewise_error *error = NULL;
    stagewise_client_options options = {.target = target, .timeout_ms = 60000};
    stagewise_client *client = stagewise_client_new(&options, &error);
    if (client == NULL) {
        unexpected_error("client for the in-flight check", error);
        return;
    }
    waiter w;
    waiter_init(&w);
    async_slot slots[N];
    memset(slots, 0, sizeof slots);
    stagewise_rows *rows = make_rows(n_rows, NULL, NULL);
    for (int i = 0; i < N && rows; i++) {
        slots[i].w = &w;
        slots[i].caller = pthread_self();
        stagewise_predict_async(client, model, rows, async_done, &slots[i]);
    }
    stagewise_rows_free(rows);
    stagewise_client_free(client);
    int finished = waiter_count(&w);
    CHECK(finished == N, "free with calls in flight: %d of %d callbacks had run when stagewise_client_free returned",
          finished, N);
    if (finished != N) {
        fprintf(stderr, "client_check: leaving the slots of callbacks that never ran\n");
        return;
    }
    for (int i = 0; i < N; i++) {
        if (slots[i].error)
            unexpected_error("free with calls in flight", slots[i].error);
        stagewise_result_free(slots[i].result);
    }
    waiter_destroy(&w);
}

/* ---- one client, several threads ---------------------------------------------------- */

typedef struct thread_job {
    stagewise_client *client;
    const char *model;
    size_t n_rows;
    const stagewise_result *expected;
    int index;
} thread_job;

static void *thread_main(void *data)
{
    thread_job *job = data;
    for (int k = 0; k < 4; k++) {
        char what[64];
        snprintf(what, sizeof what, "thread %d call %d", job->index, k);
        stagewise_rows *rows = make_rows(job->n_rows, NULL, NULL);
        stagewise_error *error = NULL;
        stagewise_result *result = rows ? stagewise_predict(job->client, job->model, rows, &error) : NULL;
        stagewise_rows_free(rows);
        if (result == NULL)
            unexpected_error(what, error);
        else
            same_result(what, result, job->expected);
        stagewise_result_free(result);
    }
    return NULL;
}

static void check_threads(stagewise_client *client, const char *model, size_t n_rows, const stagewise_result *expected)
{
    enum { N = 4 };
    pthread_t threads[N];
    thread_job jobs[N];
    int started = 0;
    for (int i = 0; i < N; i++) {
        jobs[i] = (thread_job){client, model, n_rows, expected, i};
        if (pthread_create(&threads[i], NULL, thread_main, &jobs[i]) != 0) {
            failf("pthread_create");
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

/* ---- errors ------------------------------------------------------------------------------ */

static void check_rows_errors(void)
{
    stagewise_error *error = NULL;
    stagewise_rows *rows = stagewise_rows_new(2);
    const char *ok[] = {"a", "b"};
    const char *bad[] = {"fine", "caf\xe9"}; /* Latin-1, not UTF-8 */
    CHECK(stagewise_rows_add_strings(rows, "review", ok, &error) == 0, "add_strings");
    if (error)
        unexpected_error("add_strings", error);
    error = NULL;

    CHECK(stagewise_rows_add_strings(rows, "review", ok, &error) == -1, "add_strings twice for a feature: not -1");
    expect_error("add_strings twice for a feature", error, 3, "review");
    error = NULL;
    double numbers[] = {1, 2};
    CHECK(stagewise_rows_add_numbers(rows, "review", numbers, &error) == -1, "add_numbers for a feature with strings");
    expect_error("add_numbers for a feature that has a column", error, 3, "review");
    error = NULL;
    /* No error wanted: still refused, and nothing to free. */
    CHECK(stagewise_rows_add_strings(rows, "review", ok, NULL) == -1, "add_strings twice with error NULL: not -1");

    CHECK(stagewise_rows_add_strings(rows, "occupation", bad, &error) == -1, "non-UTF-8 string: not -1");
    expect_error("non-UTF-8 string", error, 3, "occupation");
    error = NULL;
    /* The refused column was not added: the feature may have one now. */
    CHECK(stagewise_rows_add_strings(rows, "occupation", ok, &error) == 0, "add_strings after a refused column");
    if (error)
        unexpected_error("add_strings after a refused column", error);
    error = NULL;

    float v[2] = {1, 2};
    CHECK(stagewise_rows_add_vectors(rows, "embedding", v, 0, &error) == -1, "vectors of 0 elements: not -1");
    expect_error("vectors of 0 elements", error, 3, "embedding");
    error = NULL;
    CHECK(stagewise_rows_add_strings(rows, "", ok, &error) == -1, "a column without a feature name: not -1");
    expect_error("a column without a feature name", error, 3, NULL);
    error = NULL;
    /* Integers and raw bytes: copied (the caller's arrays may go at once), bytes as they are,
     * a NULL element only for an empty one. */
    int64_t integers[2] = {INT64_MIN, INT64_MAX};
    CHECK(stagewise_rows_add_integers(rows, "cell", integers, &error) == 0, "add_integers");
    if (error)
        unexpected_error("add_integers", error);
    error = NULL;
    CHECK(stagewise_rows_add_integers(rows, "cell", integers, &error) == -1, "add_integers twice: not -1");
    expect_error("add_integers twice for a feature", error, 3, "cell");
    error = NULL;
    const void *blobs[2] = {"\0\xff\xfe", NULL};
    size_t lengths[2] = {3, 0};
    CHECK(stagewise_rows_add_bytes(rows, "photo", blobs, lengths, &error) == 0, "add_bytes (NUL, not UTF-8, empty)");
    if (error)
        unexpected_error("add_bytes", error);
    error = NULL;
    size_t bad_lengths[2] = {3, 5};
    CHECK(stagewise_rows_add_bytes(rows, "clip", blobs, bad_lengths, &error) == -1,
          "add_bytes NULL of 5 bytes: not -1");
    expect_error("add_bytes NULL of 5 bytes", error, 3, "row 1");
    error = NULL;
    CHECK(stagewise_rows_add_bytes(rows, "photo", blobs, lengths, NULL) == -1, "add_bytes twice: not -1");
    CHECK(stagewise_rows_count(rows) == 2, "rows count after refused columns");
    stagewise_rows_free(rows);
    stagewise_rows_free(NULL);
}

static void check_call_errors(stagewise_client *client, const char *model, size_t n_rows)
{
    stagewise_error *error = NULL;
    stagewise_rows *rows = make_rows(n_rows, NULL, NULL);
    if (rows == NULL)
        return;

    /* An unknown model: NOT_FOUND, naming it. */
    stagewise_result *result = stagewise_predict(client, "no_such_model", rows, &error);
    CHECK(result == NULL, "unknown model: a result");
    stagewise_result_free(result);
    expect_error("unknown model", error, 5, "no_such_model");
    error = NULL;
    stagewise_model *m = stagewise_model_get(client, "no_such_model", &error);
    CHECK(m == NULL, "metadata of an unknown model: a model");
    stagewise_model_free(m);
    expect_error("metadata of an unknown model", error, 5, "no_such_model");
    error = NULL;
    /* A failed call without an error pointer. */
    CHECK(stagewise_predict(client, "no_such_model", rows, NULL) == NULL, "unknown model, error NULL: a result");
    stagewise_rows_free(rows);

    /* A column under a name the model has no feature for. */
    rows = make_rows(n_rows, "occupation", "job");
    if (rows) {
        result = stagewise_predict(client, model, rows, &error);
        CHECK(result == NULL, "unknown feature: a result");
        stagewise_result_free(result);
        expect_error("unknown feature 'job' (for 'occupation')", error, 3, NULL);
        error = NULL;
        stagewise_rows_free(rows);
    }

    /* An empty batch: refused before sending, sync and async. */
    rows = stagewise_rows_new(0);
    result = stagewise_predict(client, model, rows, &error);
    CHECK(result == NULL, "no rows: a result");
    stagewise_result_free(result);
    expect_error("no rows", error, 3, NULL);
    error = NULL;
    expect_async_failure(client, model, rows, "async with no rows", 3, NULL);
    stagewise_rows_free(rows);
}

static void check_unreachable(const char *model, size_t n_rows)
{
    const char *dead = "127.0.0.1:1";
    stagewise_error *error = NULL;
    stagewise_client_options options = {.target = dead, .timeout_ms = 2000};
    stagewise_client *client = stagewise_client_new(&options, &error);
    if (client == NULL) {
        unexpected_error("a client for a dead port", error);
        return;
    }
    stagewise_rows *rows = make_rows(n_rows, NULL, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stagewise_result *result = stagewise_predict(client, model, rows, &error);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(result == NULL, "dead port: a result");
    stagewise_result_free(result);
    expect_error("predict at a dead port", error, 14, dead);
    error = NULL;
    CHECK(seconds < 10.0, "dead port: the failure took %.1f s", seconds);

    CHECK(stagewise_health_check(client, "", &error) == -1, "health at a dead port: not -1");
    expect_error("health at a dead port", error, 14, NULL);
    error = NULL;
    stagewise_model *m = stagewise_model_get(client, model, &error);
    CHECK(m == NULL, "metadata at a dead port: a model");
    stagewise_model_free(m);
    expect_error("metadata at a dead port", error, 14, NULL);
    error = NULL;

    expect_async_failure(client, model, rows, "async at a dead port", 14, dead);
    stagewise_rows_free(rows);
    stagewise_client_free(client);

    /* Options the library refuses. */
    stagewise_client_options none = {.target = ""};
    client = stagewise_client_new(&none, &error);
    CHECK(client == NULL, "a client without a target");
    stagewise_client_free(client);
    expect_error("a client without a target", error, 3, NULL);
    error = NULL;
    stagewise_client_options half_tls = {.target = dead, .tls_cert_chain_pem = "-----BEGIN CERTIFICATE-----\n"};
    client = stagewise_client_new(&half_tls, &error);
    CHECK(client == NULL, "a TLS certificate chain without a key");
    stagewise_client_free(client);
    expect_error("a TLS certificate chain without a key", error, 3, NULL);
}

/* ---- model information ---------------------------------------------------------------- */

static void check_model_info(stagewise_client *client, const char *model)
{
    stagewise_error *error = NULL;
    int health = stagewise_health_check(client, "", &error);
    CHECK(health == 1, "health check: %d", health);
    if (health == -1)
        unexpected_error("health check", error);
    error = NULL;

    stagewise_model *m = stagewise_model_get(client, model, &error);
    if (m == NULL) {
        unexpected_error("stagewise_model_get", error);
        return;
    }
    size_t n = stagewise_model_input_count(m);
    CHECK(n == N_FEATURES, "model %s: %zu inputs, expected %d", model, n, N_FEATURES);
    bool seen[N_FEATURES] = {false};
    for (size_t i = 0; i < n; i++) {
        const stagewise_feature *f = stagewise_model_input(m, i);
        if (f == NULL || f->name == NULL || f->type == NULL || f->column == NULL) {
            failf("model %s: input %zu is incomplete", model, i);
            continue;
        }
        int k = -1;
        for (int j = 0; j < N_FEATURES; j++)
            if (strcmp(f->name, FEATURES[j]) == 0)
                k = j;
        if (k < 0) {
            failf("model %s: unexpected input '%s'", model, f->name);
            continue;
        }
        seen[k] = true;
        CHECK(strcmp(f->column, COLUMNS[k]) == 0, "model %s: input %s reads column '%s', expected '%s'", model, f->name,
              f->column, COLUMNS[k]);
        CHECK(strcmp(f->type, TYPES[k]) == 0, "model %s: input %s has type '%s', expected '%s'", model, f->name,
              f->type, TYPES[k]);
    }
    for (int j = 0; j < N_FEATURES; j++)
        CHECK(seen[j], "model %s: no input %s", model, FEATURES[j]);
    CHECK(stagewise_model_input(m, n) == NULL, "model %s: an input past the last", model);
    char *json = stagewise_model_to_json(m);
    CHECK(json && json[0] == '{' && strstr(json, "\"inputs\"") && strstr(json, "\"outputs\""),
          "model %s: to_json: %.200s", model, json ? json : "(null)");
    free(json);
    stagewise_model_free(m);
    stagewise_model_free(NULL);
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void)
{
    fputs(
        "usage: client_check --target T [--model NAME] [--rows N] [--async-calls N] [--pre T] [--pred T] [--post T]\n",
        stderr);
    exit(2);
}

/* Three clients, one per stage, give the one-call answer. */
static void check_staged(const char *target, const char *pre, const char *pred, const char *post, const char *model,
                         size_t n, const stagewise_result *sync)
{
    stagewise_error *error = NULL;
    stagewise_rows *rows = NULL;
    stagewise_client_options stage_options[3] = {
        {.target = pre ? pre : target, .timeout_ms = 60000},
        {.target = pred ? pred : target, .timeout_ms = 60000},
        {.target = post ? post : target, .timeout_ms = 60000},
    };
    stagewise_client *stages[3] = {NULL, NULL, NULL};
    for (int s = 0; s < 3; s++)
        if ((stages[s] = stagewise_client_new(&stage_options[s], &error)) == NULL) {
            unexpected_error("a client for a stage", error);
            error = NULL;
        }
    if (stages[0] && stages[1] && stages[2]) {
        rows = make_rows(n, NULL, NULL);
        stagewise_result *staged = stagewise_predict_staged(stages[0], stages[1], stages[2], model, rows, &error);
        if (staged == NULL)
            unexpected_error("stagewise_predict_staged", error);
        else {
            check_result_shape("staged", staged, n);
            same_result("staged vs one call", staged, sync);
        }
        error = NULL;
        stagewise_result_free(staged);
        /* A stage model the server does not have: the error names it. */
        staged = stagewise_predict_staged(stages[0], stages[1], stages[2], "no_such_model", rows, &error);
        CHECK(staged == NULL, "staged, unknown model: a result");
        stagewise_result_free(staged);
        expect_error("staged, unknown model", error, 5, "no_such_model_preprocessor");
        error = NULL;
        stagewise_rows_free(rows);
    }
    for (int s = 0; s < 3; s++)
        stagewise_client_free(stages[s]);
}

int main(int argc, char **argv)
{
    const char *target = NULL, *model = "example", *pre = NULL, *pred = NULL, *post = NULL;
    long n_rows = 12, n_async = 64;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *opt = argv[i], *value = argv[++i];
        char *end = NULL;
        if (strcmp(opt, "--target") == 0)
            target = value;
        else if (strcmp(opt, "--model") == 0)
            model = value;
        else if (strcmp(opt, "--pre") == 0)
            pre = value;
        else if (strcmp(opt, "--pred") == 0)
            pred = value;
        else if (strcmp(opt, "--post") == 0)
            post = value;
        else if (strcmp(opt, "--rows") == 0 && (n_rows = strtol(value, &end, 10)) > 0 && *end == '\0')
            ;
        else if (strcmp(opt, "--async-calls") == 0 && (n_async = strtol(value, &end, 10)) > 0 && *end == '\0')
            ;
        else
            usage();
    }
    if (target == NULL)
        usage();
    size_t n = (size_t)n_rows;

    check_rows_errors();

    stagewise_error *error = NULL;
    stagewise_client_options options = {.target = target, .timeout_ms = 60000};
    stagewise_client *client = stagewise_client_new(&options, &error);
    if (client == NULL) {
        unexpected_error("stagewise_client_new", error);
        return 1;
    }

    /* sync */
    stagewise_rows *rows = make_rows(n, NULL, NULL);
    stagewise_result *sync = rows ? stagewise_predict(client, model, rows, &error) : NULL;
    stagewise_rows_free(rows);
    if (sync == NULL) {
        unexpected_error("stagewise_predict", error);
        stagewise_client_free(client);
        return 1;
    }
    check_result_shape("sync", sync, n);
    print_result(stdout, sync);

    check_async(client, model, n, (int)n_async, sync);
    check_threads(client, model, n, sync);
    check_free_with_calls_in_flight(target, model, n);

    check_staged(target, pre, pred, post, model, n, sync);

    check_call_errors(client, model, n);
    check_unreachable(model, n);
    check_model_info(client, model);

    stagewise_result_free(sync);
    stagewise_client_free(client);
    stagewise_client_free(NULL);

    int failed = atomic_load(&failures);
    fprintf(stderr, "client_check: %d checks, %d failed\n", atomic_load(&checks), failed);
    return failed == 0 ? 0 : 1;
}
