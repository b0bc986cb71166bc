/* The serialized google.protobuf.FileDescriptorSet of every .proto file the
 * servers speak (inference, health, reflection v1 and v1alpha), generated
 * at build time (proto/CMakeLists.txt) for server reflection. */
#ifndef SW_DESCRIPTOR_SET_H
#define SW_DESCRIPTOR_SET_H

#include <stddef.h>

extern const unsigned char sw_descriptor_set[];
extern const size_t sw_descriptor_set_len;

#endif
