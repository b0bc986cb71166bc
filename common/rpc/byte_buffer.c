#include "byte_buffer.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>

static void release_slice(gpointer slice)
{
    grpc_slice_unref(*(grpc_slice *)slice);
    g_free(slice);
}

/* Messages up to a few KiB usually arrive in one slice; large ones in many. */
static grpc_slice whole_slice(grpc_byte_buffer *buffer)
{
    grpc_byte_buffer_reader reader;
    grpc_slice first, second, whole;
    if (!grpc_byte_buffer_reader_init(&reader, buffer))
        return grpc_empty_slice();
    if (!grpc_byte_buffer_reader_next(&reader, &first)) {
        whole = grpc_empty_slice();
    } else if (!grpc_byte_buffer_reader_next(&reader, &second)) {
        whole = first;
    } else {
        grpc_slice_unref(first);
        grpc_slice_unref(second);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_reader_init(&reader, buffer);
        whole = grpc_byte_buffer_reader_readall(&reader);
    }
    grpc_byte_buffer_reader_destroy(&reader);
    return whole;
}

GBytes *sw_byte_buffer_to_bytes(grpc_byte_buffer *buffer)
{
    grpc_slice *whole = g_new(grpc_slice, 1);
    *whole = buffer ? whole_slice(buffer) : grpc_empty_slice();
    return g_bytes_new_with_free_func(GRPC_SLICE_START_PTR(*whole), GRPC_SLICE_LENGTH(*whole), release_slice, whole);
}
