/* Byte buffers as GBytes: several slices are joined, one slice is shared
 * rather than copied, and NULL or nothing reads as empty. */
#include <grpc/grpc.h>
#include <string.h>

#include "byte_buffer.h"

static void count_release(void *user_data)
{
    (*(int *)user_data)++;
}

static void expect_contents(GBytes *bytes, const void *want, size_t len)
{
    gsize got_len = 0;
    const void *got = g_bytes_get_data(bytes, &got_len);
    g_assert_cmpmem(got, got_len, want, len);
}

static void test_slices_are_joined(void)
{
    grpc_slice slices[] = {
        grpc_slice_from_copied_string("hello, "),
        grpc_empty_slice(),
        grpc_slice_from_copied_string("world"),
        grpc_slice_from_copied_string(", and a slice longer than gRPC keeps inline"),
    };
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, G_N_ELEMENTS(slices));
    for (size_t i = 0; i < G_N_ELEMENTS(slices); i++)
        grpc_slice_unref(slices[i]);
    GBytes *bytes = sw_byte_buffer_to_bytes(bb);
    /* The bytes outlive the buffer. */
    grpc_byte_buffer_destroy(bb);
    const char *want = "hello, world, and a slice longer than gRPC keeps inline";
    expect_contents(bytes, want, strlen(want));
    g_bytes_unref(bytes);
}

static void test_many_slices_are_joined(void)
{
    /* As a large message arrives: many slices. */
    enum { N = 139, SLICE = 4096 };
    grpc_slice slices[N];
    guint8 *want = g_malloc(N * SLICE);
    for (int i = 0; i < N; i++) {
        slices[i] = grpc_slice_malloc(SLICE);
        for (int k = 0; k < SLICE; k++)
            GRPC_SLICE_START_PTR(slices[i])[k] = want[i * SLICE + k] = (guint8)(i * 31 + k);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, N);
    for (int i = 0; i < N; i++)
        grpc_slice_unref(slices[i]);
    GBytes *bytes = sw_byte_buffer_to_bytes(bb);
    grpc_byte_buffer_destroy(bb);
    expect_contents(bytes, want, N * SLICE);
    g_bytes_unref(bytes);
    g_free(want);
}

static void test_one_slice_is_not_copied(void)
{
    enum { LEN = 1000 };
    guint8 *data = g_malloc(LEN);
    for (int i = 0; i < LEN; i++)
        data[i] = (guint8)i;
    int released = 0;
    grpc_slice slice = grpc_slice_new_with_user_data(data, LEN, count_release, &released);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    GBytes *bytes = sw_byte_buffer_to_bytes(bb);
    gsize len = 0;
    g_assert_true(g_bytes_get_data(bytes, &len) == data);
    g_assert_cmpuint(len, ==, LEN);
    /* The GBytes holds the slice itself: it is released with the last
     * reference, not with the buffer. */
    grpc_byte_buffer_destroy(bb);
    g_assert_cmpint(released, ==, 0);
    GBytes *copy = g_bytes_ref(bytes);
    g_bytes_unref(bytes);
    g_assert_cmpint(released, ==, 0);
    g_assert_cmpuint(((const guint8 *)g_bytes_get_data(copy, NULL))[LEN - 1], ==, (LEN - 1) & 0xff);
    g_bytes_unref(copy);
    g_assert_cmpint(released, ==, 1);
    g_free(data);
}

static void test_nothing_reads_as_empty(void)
{
    GBytes *bytes = sw_byte_buffer_to_bytes(NULL);
    g_assert_nonnull(bytes);
    g_assert_cmpuint(g_bytes_get_size(bytes), ==, 0);
    g_bytes_unref(bytes);

    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(NULL, 0);
    bytes = sw_byte_buffer_to_bytes(bb);
    grpc_byte_buffer_destroy(bb);
    g_assert_cmpuint(g_bytes_get_size(bytes), ==, 0);
    g_bytes_unref(bytes);

    grpc_slice empty = grpc_empty_slice();
    bb = grpc_raw_byte_buffer_create(&empty, 1);
    bytes = sw_byte_buffer_to_bytes(bb);
    grpc_byte_buffer_destroy(bb);
    g_assert_cmpuint(g_bytes_get_size(bytes), ==, 0);
    g_bytes_unref(bytes);
}

static void test_small_slice_survives_the_buffer(void)
{
    /* Short enough that gRPC keeps it inline in the slice struct. */
    grpc_slice slice = grpc_slice_from_copied_string("tiny");
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    GBytes *bytes = sw_byte_buffer_to_bytes(bb);
    grpc_byte_buffer_destroy(bb);
    expect_contents(bytes, "tiny", 4);
    g_bytes_unref(bytes);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/byte-buffer/slices-are-joined", test_slices_are_joined);
    g_test_add_func("/rpc/byte-buffer/many-slices-are-joined", test_many_slices_are_joined);
    g_test_add_func("/rpc/byte-buffer/one-slice-is-not-copied", test_one_slice_is_not_copied);
    g_test_add_func("/rpc/byte-buffer/nothing-reads-as-empty", test_nothing_reads_as_empty);
    g_test_add_func("/rpc/byte-buffer/small-slice-survives-the-buffer", test_small_slice_survives_the_buffer);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
