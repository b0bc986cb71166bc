/* What the service tests share: one stage served in this process as
 * service_main serves it (export, stage, service, server on 127.0.0.1:0),
 * a channel to it, and request builders. Built into every unit_service_*
 * test (tests/CMakeLists.txt links a layer's harness.c into its tests).
 * Every helper aborts the test on unexpected failure. */
#ifndef SW_SERVICE_HARNESS_H
#define SW_SERVICE_HARNESS_H

#include <glib.h>

#include "channel.h"
#include "oip_codec.h"
#include "oip_service.h"
#include "server.h"
#include "stage.h"

#define CALL_TIMEOUT_US (5 * G_USEC_PER_SEC)

typedef struct stage_server {
    char *dir;
    sw_export *export;
    sw_stage *stage;
    sw_oip_service *oip;
    sw_server *server;
    sw_channel *client; /* the test's channel to this server */
    char *target;
    /* Set by a test that shut the server down itself: stopping then only
     * frees it. */
    gboolean shut_down;
} stage_server;

typedef struct server_setup {
    sw_stage_kind kind;
    const char *module; /* the fake module's [module] body, for every stage */
    const char *name;   /* the Ludwig model name; NULL: "m" */
    sw_channel *next;   /* borrowed */
    sw_oip_service_options options;
    sw_admit_func admit; /* NULL: everyone */
    void *admit_data;
    gboolean not_loaded; /* leave the module unloaded (inference UNAVAILABLE) */
    gboolean serving;    /* report SERVING at once */
} server_setup;

stage_server *stage_server_start(const server_setup *setup);
/* Stops serving in service_main's order (the drain must not time out) and
 * frees the server and service, keeping the stage for the test to inspect. */
void stage_server_halt(stage_server *s);
/* Halts (if not yet) and frees everything. */
void stage_server_stop(stage_server *s);

/* A blocking call on the server's channel; the answer or NULL and `error`. */
GBytes *stage_server_call(stage_server *s, const char *path, GBytes *request, GError **error);

/* `error` has `code` and, when `substring` is not NULL, contains it. */
void assert_error(const GError *error, int code, const char *substring);

/* Appends an output-shaped tensor (copied from `data`) to `inputs`. */
void add_tensor(GPtrArray *inputs, const char *name, sw_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* The four inputs of the fake predictor (age, color, review, when), `rows`
 * rows: age holds age0, age0 + 1, ... New array of sw_output. */
GPtrArray *predictor_inputs(int rows, float age0);
/* A packed ModelInferRequest of `model` (`version` NULL: none) over `inputs`
 * (consumed), asking for the outputs in `wanted` (NULL-terminated; NULL: all). */
GBytes *infer_request(const char *model, const char *version, const char *id, GPtrArray *inputs,
                      const char *const *wanted);
/* The output called `name` in `outputs` (sw_output); aborts when none is. */
const sw_output *output_named(GPtrArray *outputs, const char *name);

#endif
