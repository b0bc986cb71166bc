/* gRPC server reflection (grpc.reflection.v1 and v1alpha ServerReflection),
 * so that grpcurl and other reflection clients can list the services a
 * stage serves and fetch their .proto descriptors.
 *
 * What it serves is the descriptor set embedded at build time
 * (descriptor_set.h): every service in it is listed; a file is found by
 * name or by a fully qualified symbol it declares (a service, method,
 * message or enum) and comes with the files it imports. Anything else gets
 * an error_response with NOT_FOUND. Stateless once built: the methods may
 * serve any number of streams at once. */
#ifndef SW_REFLECTION_H
#define SW_REFLECTION_H

#include <glib.h>

#include "server.h"

G_BEGIN_DECLS

typedef struct sw_reflection sw_reflection;

/* The number of methods sw_reflection_methods() fills. */
#define SW_REFLECTION_METHODS 2

/* Indexes the embedded descriptor set; NULL with an error if it cannot be
 * read (a build fault). */
sw_reflection *sw_reflection_new(GError **error);
void sw_reflection_free(sw_reflection *reflection);

/* Fills `methods` (room for SW_REFLECTION_METHODS): the v1 and v1alpha
 * ServerReflectionInfo streams, borrowing `reflection`, which must outlive
 * the server. Returns how many. */
size_t sw_reflection_methods(sw_reflection *reflection, sw_method *methods);

/* The full names of the services the descriptor set declares, in its
 * order (borrowed). */
const GPtrArray *sw_reflection_services(const sw_reflection *reflection);

G_END_DECLS

#endif
