/* Shared between the files of libstagewise; not installed. */
#ifndef STAGEWISE_INTERNAL_H
#define STAGEWISE_INTERNAL_H

#include <glib.h>

#include "inference.pb-c.h"
#include "stagewise.h"
#include "tensor.h"

#define STAGEWISE_API __attribute__((visibility("default")))

struct stagewise_error {
    int code;
    char *message;
};

/* A new error from a GError (SW_ERROR domain codes are gRPC codes); stores it
 * in `*out` when `out` is not NULL. `error` is borrowed. */
void stagewise_error_set(stagewise_error **out, const GError *error);
void stagewise_error_setf(stagewise_error **out, int code, const char *format, ...) G_GNUC_PRINTF(3, 4);

struct stagewise_rows {
    size_t n_rows;
    GPtrArray *columns; /* sw_output*, one per feature */
};

/* Turns decoded outputs into result columns; takes nothing over. */
stagewise_result *stagewise_result_from_outputs(GPtrArray *outputs, GError **error);

/* A blocking unary call with the client's deadline and metadata; failures
 * name `what` and the target. */
GBytes *stagewise_client_call(stagewise_client *client, const char *method, GBytes *request, const char *what,
                              stagewise_error **error);

#endif
