/* Channel arguments for gRPC C core, shared by servers and channels. */
#ifndef SW_GRPC_ARGS_H
#define SW_GRPC_ARGS_H

#include <grpc/grpc.h>
#include <string.h>

static inline grpc_arg sw_grpc_int_arg(const char *key, int value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

/* `value` is borrowed: it must outlive the channel or server creation. */
static inline grpc_arg sw_grpc_string_arg(const char *key, const char *value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_STRING;
    a.key = (char *)key;
    a.value.string = (char *)value;
    return a;
}

/* The quota is borrowed: gRPC takes its own reference while creating the
 * channel or server. */
static inline grpc_arg sw_grpc_resource_quota_arg(grpc_resource_quota *quota)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_POINTER;
    a.key = (char *)GRPC_ARG_RESOURCE_QUOTA;
    a.value.pointer.p = quota;
    a.value.pointer.vtable = grpc_resource_quota_arg_vtable();
    return a;
}

#endif
