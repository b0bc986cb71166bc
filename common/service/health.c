/* grpc.health.v1.Health: Check, and Watch streams that follow readiness
 * as loading finishes and draining starts. */
#include <string.h>

#include "clip.h"
#include "oip_paths.h"
#include "service_internal.h"
#include "sw_error.h"

/* One open Health/Watch stream and the status it was last sent. */
typedef struct watcher {
    sw_call *call;
    int sent;
    gboolean unknown_service; /* sent SERVICE_UNKNOWN once; never changes */
} watcher;

static int health_status(sw_oip_service *svc)
{
    return sw__is_serving(svc) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void send_health(sw_call *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    sw_call_send(call, &resp.base);
}

static gboolean known_service(const char *service)
{
    return service[0] == '\0' || strcmp(service, SW_OIP_SERVICE) == 0;
}

void sw_oip_service_set_loaded(sw_oip_service *svc)
{
    /* Publishes the stage's module to the worker threads. */
    g_atomic_int_set(&svc->loaded, 1);
}

void sw_oip_service_set_serving(sw_oip_service *svc, gboolean serving)
{
    g_atomic_int_set(&svc->serving, serving ? 1 : 0);
    int status = health_status(svc);
    g_mutex_lock(&svc->watch_lock);
    for (guint i = 0; i < svc->watchers->len; i++) {
        watcher *w = g_ptr_array_index(svc->watchers, i);
        if (!w->unknown_service && w->sent != status) {
            send_health(w->call, status);
            w->sent = status;
        }
    }
    g_mutex_unlock(&svc->watch_lock);
}

void sw_oip_service_end_watches(sw_oip_service *svc)
{
    g_mutex_lock(&svc->watch_lock);
    GPtrArray *ending = svc->watchers;
    svc->watchers = g_ptr_array_new_with_free_func(g_free);
    g_mutex_unlock(&svc->watch_lock);
    for (guint i = 0; i < ending->len; i++)
        sw_call_finish(((watcher *)g_ptr_array_index(ending, i))->call, SW_CODE_UNAVAILABLE,
                       "the server is shutting down");
    g_ptr_array_unref(ending);
}

static void watch_cancelled(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    gboolean found = FALSE;
    g_mutex_lock(&svc->watch_lock);
    for (guint i = 0; i < svc->watchers->len && !found; i++) {
        if (((watcher *)g_ptr_array_index(svc->watchers, i))->call == call) {
            g_ptr_array_remove_index_fast(svc->watchers, i);
            found = TRUE;
        }
    }
    g_mutex_unlock(&svc->watch_lock);
    /* Not found: shutdown already ended it. */
    if (found)
        sw_call_finish(call, SW_CODE_CANCELLED, "the client cancelled the watch");
}

void sw__handle_health_watch(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)sw__unpack_request(
        call, &grpc__health__v1__health_check_request__descriptor);
    if (req == NULL)
        return;
    watcher *w = g_new0(watcher, 1);
    w->call = call;
    w->unknown_service = !known_service(req->service);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    g_mutex_lock(&svc->watch_lock);
    w->sent = w->unknown_service ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                                 : health_status(svc);
    send_health(call, w->sent);
    g_ptr_array_add(svc->watchers, w);
    g_mutex_unlock(&svc->watch_lock);
    sw_call_on_cancel(call, watch_cancelled, svc);
}

void sw__handle_health_check(sw_call *call, void *data)
{
    sw_oip_service *svc = data;
    Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)sw__unpack_request(
        call, &grpc__health__v1__health_check_request__descriptor);
    if (req == NULL)
        return;
    if (!known_service(req->service)) {
        char *text = g_strdup_printf("unknown service '" SW_CLIP_FMT "'", SW_CLIP(req->service));
        sw_call_fail(call, SW_CODE_NOT_FOUND, text);
        g_free(text);
    } else {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)health_status(svc);
        sw_call_reply(call, &resp.base);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
