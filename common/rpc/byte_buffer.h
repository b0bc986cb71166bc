/* gRPC byte buffers as GBytes, shared by the server and the channels. */
#ifndef SW_BYTE_BUFFER_H
#define SW_BYTE_BUFFER_H

#include <glib.h>

G_BEGIN_DECLS

struct grpc_byte_buffer;

/* The contents of `buffer` (borrowed; NULL reads as empty) as one new
 * GBytes: a reference to its slice when it holds a single one (no copy), else
 * the slices joined. Stays valid after the buffer is destroyed. */
GBytes *sw_byte_buffer_to_bytes(struct grpc_byte_buffer *buffer);

G_END_DECLS

#endif
