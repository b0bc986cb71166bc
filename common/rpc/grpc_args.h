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

#endif
