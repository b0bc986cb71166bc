/* Error values shared by every layer of stagewise.
 *
 * Errors are GErrors in the SW_ERROR domain whose codes are the gRPC status
 * codes, so the mapping from an internal failure to what a client sees is
 * the identity. SW_CODE_MAP is the one table of codes: the enum and the
 * names are generated from it here, the rpc layer checks every number
 * against grpc/status.h from it, and libstagewise checks its public
 * STAGEWISE_CODE_* constants against it.
 * Whoever receives a GError owns it and frees it with g_error_free(). */
#ifndef SW_ERROR_H
#define SW_ERROR_H

#include <glib.h>

G_BEGIN_DECLS

/* X(NAME, number): the gRPC status codes, in order. */
#define SW_CODE_MAP(X)                                                                                                 \
    X(OK, 0)                                                                                                           \
    X(CANCELLED, 1)                                                                                                    \
    X(UNKNOWN, 2)                                                                                                      \
    X(INVALID_ARGUMENT, 3)                                                                                             \
    X(DEADLINE_EXCEEDED, 4)                                                                                            \
    X(NOT_FOUND, 5)                                                                                                    \
    X(ALREADY_EXISTS, 6)                                                                                               \
    X(PERMISSION_DENIED, 7)                                                                                            \
    X(RESOURCE_EXHAUSTED, 8)                                                                                           \
    X(FAILED_PRECONDITION, 9)                                                                                          \
    X(ABORTED, 10)                                                                                                     \
    X(OUT_OF_RANGE, 11)                                                                                                \
    X(UNIMPLEMENTED, 12)                                                                                               \
    X(INTERNAL, 13)                                                                                                    \
    X(UNAVAILABLE, 14)                                                                                                 \
    X(DATA_LOSS, 15)                                                                                                   \
    X(UNAUTHENTICATED, 16)

#define SW_CODE_ENUM_ENTRY(name, number) SW_CODE_##name = number,
typedef enum sw_code { SW_CODE_MAP(SW_CODE_ENUM_ENTRY) } sw_code;
#undef SW_CODE_ENUM_ENTRY
#define SW_CODE_COUNT_ENTRY(name, number) +1
enum { SW_CODE_COUNT = 0 SW_CODE_MAP(SW_CODE_COUNT_ENTRY) };
#undef SW_CODE_COUNT_ENTRY

#define SW_ERROR (sw_error_quark())
GQuark sw_error_quark(void);

/* The gRPC name of a code ("INVALID_ARGUMENT"); "UNKNOWN" for numbers
 * outside the table. Never NULL; a static string. */
const char *sw_code_name(int code);

/* The status a client should see for `error`: its code when it is in the
 * SW_ERROR domain and not OK, else INTERNAL (a failure that carries no
 * status of its own is the server's). */
sw_code sw_error_code(const GError *error);

G_END_DECLS

#endif
