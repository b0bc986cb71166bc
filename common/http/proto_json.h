/* Any protobuf-c message as JSON text, as protobuf's JSON printer writes
 * it with the options Triton's HTTP extensions use (model configuration,
 * statistics): the .proto field names, every scalar field including zeros
 * and empty strings, enums by name, 64-bit integers as JSON numbers, maps
 * as objects; unset message fields are left out.
 * No state: any thread may call it. */
#ifndef SW_PROTO_JSON_H
#define SW_PROTO_JSON_H

#include <glib.h>
#include <protobuf-c/protobuf-c.h>

G_BEGIN_DECLS

/* Appends `message` (borrowed) to `out` as one JSON object. */
void sw_proto_json_append(GString *out, const ProtobufCMessage *message);

/* `message` as a newly allocated JSON text. */
char *sw_proto_json(const ProtobufCMessage *message);

G_END_DECLS

#endif
