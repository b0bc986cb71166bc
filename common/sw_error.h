/* Error values shared by every layer of stagewise.
 *
 * Errors are GErrors in the SW_ERROR domain. Their codes are the gRPC status
 * codes (the numbers are the wire contract, so they are spelled out here and
 * checked against grpc/status.h where the server is compiled), which keeps the
 * mapping from an internal failure to what a client sees a single identity.
 * Whoever receives a GError owns it and frees it with g_error_free(). */
#ifndef SW_ERROR_H
#define SW_ERROR_H

#include <glib.h>

G_BEGIN_DECLS

typedef enum sw_code {
    SW_CODE_OK = 0,
    SW_CODE_CANCELLED = 1,
    SW_CODE_UNKNOWN = 2,
    SW_CODE_INVALID_ARGUMENT = 3,
    SW_CODE_DEADLINE_EXCEEDED = 4,
    SW_CODE_NOT_FOUND = 5,
    SW_CODE_ALREADY_EXISTS = 6,
    SW_CODE_PERMISSION_DENIED = 7,
    SW_CODE_RESOURCE_EXHAUSTED = 8,
    SW_CODE_FAILED_PRECONDITION = 9,
    SW_CODE_ABORTED = 10,
    SW_CODE_OUT_OF_RANGE = 11,
    SW_CODE_UNIMPLEMENTED = 12,
    SW_CODE_INTERNAL = 13,
    SW_CODE_UNAVAILABLE = 14,
    SW_CODE_DATA_LOSS = 15,
    SW_CODE_UNAUTHENTICATED = 16,
} sw_code;

#define SW_ERROR (sw_error_quark())
GQuark sw_error_quark(void);

/* The gRPC name of a code ("INVALID_ARGUMENT"); never NULL. */
const char *sw_code_name(sw_code code);

G_END_DECLS

#endif
