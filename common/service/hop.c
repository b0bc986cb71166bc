/* The hop to the next stage: the pipeline model's outputs so far go on as
 * a ModelInfer of the pipeline model, a child of the caller's call, and the
 * next stage's answer (or failure, mapped) becomes the caller's. */
#include "oip_codec.h"
#include "oip_paths.h"
#include "service_internal.h"
#include "sw_error.h"

static const char *next_stage_name(const sw_stage *stage)
{
    return stage->kind == SW_STAGE_PREPROCESSOR ? "predictor" : "postprocessor";
}

/* The caller's view of a failure of the next hop: codes about the hop's own
 * credentials or configuration are this server's fault, not the caller's. */
static int downstream_code(int code)
{
    switch (code) {
    case SW_CODE_UNAUTHENTICATED:
    case SW_CODE_PERMISSION_DENIED:
    case SW_CODE_NOT_FOUND:
    case SW_CODE_UNIMPLEMENTED: return SW_CODE_INTERNAL;
    default: return code;
    }
}

/* The next stage's answer is the caller's answer, passed on as packed. */
static void forward_done(GBytes *response, const GError *error, void *user_data)
{
    infer_call *ic = user_data;
    sw_metrics_record_downstream(ic->svc->metrics, sw_channel_target(ic->svc->next), error ? error->code : SW_CODE_OK,
                                 g_get_monotonic_time() - ic->forwarded_us);
    if (response) {
        GPtrArray *reply = g_ptr_array_new();
        g_ptr_array_add(reply, response);
        sw__infer_call_finish(ic, reply, SW_CODE_OK, NULL);
        g_ptr_array_unref(reply);
        return;
    }
    /* A hop cancelled because our own deadline passed is our deadline. */
    int code = error->code == SW_CODE_CANCELLED && sw__infer_call_remaining_us(ic) <= 0 ? SW_CODE_DEADLINE_EXCEEDED
                                                                                        : error->code;
    /* This hop retried over every replica of the next stage already. */
    if (ic->call)
        sw_call_refuse_retry(ic->call);
    char *text = g_strdup_printf("%s at %s: %s: %s", next_stage_name(ic->svc->stage), sw_channel_target(ic->svc->next),
                                 sw_code_name(code), error->message);
    sw__infer_call_finish(ic, NULL, downstream_code(code), text);
    g_free(text);
}

void sw__hop_forward(infer_call *ic, GPtrArray *outputs)
{
    sw_oip_service *svc = ic->svc;
    Inference__ModelInferRequest *next_req = sw_oip_request_build(svc->base_name, ic->req->id, outputs, ic->req);
    GPtrArray *parts = sw_oip_request_pack_parts(next_req);
    sw_oip_request_free(next_req);
    /* A call without a gRPC call (REST) has no parent: its own deadline. */
    int64_t remaining = sw__infer_call_remaining_us(ic);
    ic->forwarded_us = g_get_monotonic_time();
    sw_channel_call_async_parts(svc->next, SW_PATH_MODEL_INFER, parts, remaining == G_MAXINT64 ? -1 : MAX(remaining, 0),
                                svc->next_metadata[0] ? (const char *const *)svc->next_metadata : NULL, ic->call,
                                forward_done, ic);
    g_ptr_array_unref(parts);
}
