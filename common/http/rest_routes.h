/* The URLs of the KServe v2 REST protocol, the JSON of its metadata
 * answers, and how OIP status codes read as HTTP statuses.
 * No state: any thread may call any function. */
#ifndef SW_REST_ROUTES_H
#define SW_REST_ROUTES_H

#include <glib.h>

#include "inference.pb-c.h"

G_BEGIN_DECLS

typedef enum sw_rest_route_kind {
    SW_REST_SERVER_LIVE,     /* GET /v2/health/live */
    SW_REST_SERVER_READY,    /* GET /v2/health/ready */
    SW_REST_SERVER_METADATA, /* GET /v2 */
    SW_REST_MODEL_METADATA,  /* GET /v2/models/{name}[/versions/{v}] */
    SW_REST_MODEL_READY,     /* GET /v2/models/{name}[/versions/{v}]/ready */
    SW_REST_MODEL_INFER,     /* POST /v2/models/{name}[/versions/{v}]/infer */
    SW_REST_MODEL_CONFIG,    /* GET /v2/models/{name}[/versions/{v}]/config (Triton's model configuration) */
    SW_REST_MODEL_STATS,     /* GET /v2/models/{name}[/versions/{v}]/stats (Triton's statistics) */
    SW_REST_ALL_STATS,       /* GET /v2/models/stats: every model's, as Triton routes it */
} sw_rest_route_kind;

typedef struct sw_rest_route {
    sw_rest_route_kind kind;
    char *model;   /* model routes: the name ("" for SW_REST_ALL_STATS); else NULL */
    char *version; /* "" when the URL names none */
} sw_rest_route;

/* Routes `method` on `path` (no query string). FALSE with an error whose
 * code is NOT_FOUND (no such URL) or UNIMPLEMENTED (a URL that takes
 * another method: answer 405). Clear `route` with sw_rest_route_clear()
 * either way. */
gboolean sw_rest_route_parse(const char *method, const char *path, sw_rest_route *route, GError **error);
void sw_rest_route_clear(sw_rest_route *route);

/* Health routes are open (probes carry no token), as grpc.health.v1 is. */
gboolean sw_rest_route_is_open(const sw_rest_route *route);

/* The HTTP status of an OIP (gRPC) status code, as KServe and Triton map
 * them: INVALID_ARGUMENT 400, NOT_FOUND 404, UNAVAILABLE 503,
 * RESOURCE_EXHAUSTED 429, UNAUTHENTICATED 401, PERMISSION_DENIED 403,
 * DEADLINE_EXCEEDED 504, UNIMPLEMENTED 501, OK 200, others 500. */
unsigned sw_rest_http_status(int code);

/* The JSON texts of the metadata answers; newly allocated. The model
 * configuration and statistics answers are their gRPC messages as Triton's
 * HTTP extensions write them (proto_json.h). */
char *sw_rest_server_metadata_json(const Inference__ServerMetadataResponse *metadata);
char *sw_rest_model_metadata_json(const Inference__ModelMetadataResponse *metadata);

G_END_DECLS

#endif
