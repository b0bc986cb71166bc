/* Calls made on a server call's behalf, cancelled with it. Apart from
 * call.c so that the client library, whose channels take no parent, does
 * not pull in the server. */
#include <grpc/grpc.h>

#include "server_internal.h"

void sw__call_cancel_child(grpc_call *child, gboolean out_of_time)
{
    if (out_of_time)
        grpc_call_cancel_with_status(child, GRPC_STATUS_DEADLINE_EXCEEDED, "the call it was made for ran out of time",
                                     NULL);
    else
        grpc_call_cancel_with_status(child, GRPC_STATUS_CANCELLED, "the call it was made for was cancelled", NULL);
}

gboolean sw__call_out_of_time(const sw_call *c)
{
    return sw_call_remaining_us(c) <= SW_DEADLINE_SLACK_US;
}

void sw__call_adopt_child(sw_call *c, grpc_call *child)
{
    g_mutex_lock(&c->child_lock);
    g_warn_if_fail(c->child == NULL);
    gboolean cancelled = c->cancel_seen;
    gboolean out_of_time = c->cancel_out_of_time;
    if (!cancelled) {
        grpc_call_ref(child);
        c->child = child;
    }
    g_mutex_unlock(&c->child_lock);
    if (cancelled)
        sw__call_cancel_child(child, out_of_time);
}

void sw__call_release_child(sw_call *c, grpc_call *child)
{
    g_mutex_lock(&c->child_lock);
    gboolean held = c->child == child;
    if (held)
        c->child = NULL;
    g_mutex_unlock(&c->child_lock);
    if (held)
        grpc_call_unref(child);
}
