/* URL routing, the status map and the metadata JSON of the REST protocol. */
#include "rest_routes.h"

#include <string.h>

#include "clip.h"
#include "json_text.h"
#include "sw_error.h"

/* A path segment: non-empty, no slash. */
static gboolean is_segment(const char *s)
{
    return s && s[0] != '\0' && strchr(s, '/') == NULL;
}

static gboolean route_model(char **parts, guint n, sw_rest_route *route)
{
    /* parts: "", "v2", "models", name, [versions, v], [ready|infer] */
    if (n < 4 || !is_segment(parts[3]))
        return FALSE;
    guint at = 4;
    route->model = g_strdup(parts[3]);
    if (n >= 6 && strcmp(parts[4], "versions") == 0 && is_segment(parts[5])) {
        route->version = g_strdup(parts[5]);
        at = 6;
    } else {
        route->version = g_strdup("");
    }
    if (at == n) {
        route->kind = SW_REST_MODEL_METADATA;
        return TRUE;
    }
    if (at + 1 != n)
        return FALSE;
    if (strcmp(parts[at], "ready") == 0)
        route->kind = SW_REST_MODEL_READY;
    else if (strcmp(parts[at], "infer") == 0)
        route->kind = SW_REST_MODEL_INFER;
    else if (strcmp(parts[at], "config") == 0)
        route->kind = SW_REST_MODEL_CONFIG;
    else if (strcmp(parts[at], "stats") == 0)
        route->kind = SW_REST_MODEL_STATS;
    else
        return FALSE;
    return TRUE;
}

gboolean sw_rest_route_parse(const char *method, const char *path, sw_rest_route *route, GError **error)
{
    memset(route, 0, sizeof *route);
    char **parts = g_strsplit(path, "/", -1);
    guint n = g_strv_length(parts);
    /* A trailing slash names the same resource. */
    if (n > 2 && parts[n - 1][0] == '\0') {
        g_free(parts[n - 1]);
        parts[--n] = NULL;
    }
    gboolean found = FALSE;
    if (n >= 2 && parts[0][0] == '\0' && strcmp(parts[1], "v2") == 0) {
        if (n == 2) {
            route->kind = SW_REST_SERVER_METADATA;
            found = TRUE;
        } else if (n == 4 && strcmp(parts[2], "health") == 0 && strcmp(parts[3], "live") == 0) {
            route->kind = SW_REST_SERVER_LIVE;
            found = TRUE;
        } else if (n == 4 && strcmp(parts[2], "health") == 0 && strcmp(parts[3], "ready") == 0) {
            route->kind = SW_REST_SERVER_READY;
            found = TRUE;
        } else if (n == 4 && strcmp(parts[2], "models") == 0 && strcmp(parts[3], "stats") == 0) {
            /* Triton's URL for every model's statistics: a model named
             * "stats" is still reached as /v2/models/stats/versions/1. */
            route->kind = SW_REST_ALL_STATS;
            route->model = g_strdup("");
            route->version = g_strdup("");
            found = TRUE;
        } else if (strcmp(parts[2], "models") == 0) {
            found = route_model(parts, n, route);
        }
    }
    g_strfreev(parts);
    if (!found) {
        g_set_error(error, SW_ERROR, SW_CODE_NOT_FOUND,
                    "no such URL: '" SW_CLIP_FMT "'; this server answers /v2, /v2/health/live, /v2/health/ready, "
                    "/v2/models/NAME[/versions/V][/ready|/infer|/config|/stats] and /v2/models/stats",
                    SW_CLIP(path));
        sw_rest_route_clear(route);
        return FALSE;
    }
    const char *want = route->kind == SW_REST_MODEL_INFER ? "POST" : "GET";
    if (strcmp(method, want) != 0 && !(strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0)) {
        g_set_error(error, SW_ERROR, SW_CODE_UNIMPLEMENTED, "'" SW_CLIP_FMT "' takes %s, not " SW_CLIP_FMT,
                    SW_CLIP(path), want, SW_CLIP(method));
        return FALSE;
    }
    return TRUE;
}

void sw_rest_route_clear(sw_rest_route *route)
{
    g_clear_pointer(&route->model, g_free);
    g_clear_pointer(&route->version, g_free);
}

gboolean sw_rest_route_is_open(const sw_rest_route *route)
{
    return route->kind == SW_REST_SERVER_LIVE || route->kind == SW_REST_SERVER_READY;
}

unsigned sw_rest_http_status(int code)
{
    switch (code) {
    case SW_CODE_OK: return 200;
    case SW_CODE_INVALID_ARGUMENT: return 400;
    case SW_CODE_NOT_FOUND: return 404;
    case SW_CODE_UNAVAILABLE: return 503;
    case SW_CODE_RESOURCE_EXHAUSTED: return 429;
    case SW_CODE_UNAUTHENTICATED: return 401;
    case SW_CODE_PERMISSION_DENIED: return 403;
    case SW_CODE_DEADLINE_EXCEEDED: return 504;
    case SW_CODE_UNIMPLEMENTED: return 501;
    default: return 500;
    }
}

char *sw_rest_server_metadata_json(const Inference__ServerMetadataResponse *m)
{
    GString *out = g_string_new("{\"name\":");
    sw_json_append_string(out, m->name);
    g_string_append(out, ",\"version\":");
    sw_json_append_string(out, m->version);
    g_string_append(out, ",\"extensions\":[");
    for (size_t i = 0; i < m->n_extensions; i++) {
        g_string_append(out, i ? "," : "");
        sw_json_append_string(out, m->extensions[i]);
    }
    g_string_append(out, "]}");
    return g_string_free(out, FALSE);
}

static void append_tensors(GString *out, const char *key, Inference__ModelMetadataResponse__TensorMetadata **tensors,
                           size_t n)
{
    g_string_append_printf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        g_string_append(out, i ? ",{\"name\":" : "{\"name\":");
        sw_json_append_string(out, tensors[i]->name);
        g_string_append(out, ",\"datatype\":");
        sw_json_append_string(out, tensors[i]->datatype);
        g_string_append(out, ",\"shape\":[");
        for (size_t d = 0; d < tensors[i]->n_shape; d++)
            g_string_append_printf(out, "%s%" G_GINT64_FORMAT, d ? "," : "", tensors[i]->shape[d]);
        g_string_append(out, "]}");
    }
    g_string_append_c(out, ']');
}

char *sw_rest_model_metadata_json(const Inference__ModelMetadataResponse *m)
{
    GString *out = g_string_new("{\"name\":");
    sw_json_append_string(out, m->name);
    g_string_append(out, ",\"versions\":[");
    for (size_t i = 0; i < m->n_versions; i++) {
        g_string_append(out, i ? "," : "");
        sw_json_append_string(out, m->versions[i]);
    }
    g_string_append(out, "],\"platform\":");
    sw_json_append_string(out, m->platform);
    append_tensors(out, "inputs", m->inputs, m->n_inputs);
    append_tensors(out, "outputs", m->outputs, m->n_outputs);
    /* The map the gRPC answer carries (properties=6), under the same name. */
    g_string_append(out, ",\"properties\":{");
    for (size_t i = 0; i < m->n_properties; i++) {
        g_string_append(out, i ? "," : "");
        sw_json_append_string(out, m->properties[i]->key);
        g_string_append_c(out, ':');
        sw_json_append_string(out, m->properties[i]->value);
    }
    g_string_append(out, "}}");
    return g_string_free(out, FALSE);
}
