/* Status codes: the table is gRPC's, names come from it, and only SW_ERROR
 * errors carry a status of their own. */
#include <limits.h>

#include "sw_error.h"

static void test_code_table(void)
{
    /* gRPC has 17 codes, 0..16; a changed table breaks every client. */
    g_assert_cmpint(SW_CODE_COUNT, ==, 17);
    g_assert_cmpint(SW_CODE_OK, ==, 0);
    g_assert_cmpint(SW_CODE_INVALID_ARGUMENT, ==, 3);
    g_assert_cmpint(SW_CODE_FAILED_PRECONDITION, ==, 9);
    g_assert_cmpint(SW_CODE_INTERNAL, ==, 13);
    g_assert_cmpint(SW_CODE_UNAUTHENTICATED, ==, 16);
    int seen = 0;
    /* Every entry: the enum has its number, the name is its own, and the
     * entries run 0, 1, 2... with no gap. */
#define CHECK_ENTRY(name, number)                                                                                      \
    g_assert_cmpint(SW_CODE_##name, ==, number);                                                                       \
    g_assert_cmpstr(sw_code_name(number), ==, #name);                                                                  \
    g_assert_cmpint(number, ==, seen);                                                                                 \
    seen++;
    SW_CODE_MAP(CHECK_ENTRY)
#undef CHECK_ENTRY
    g_assert_cmpint(seen, ==, SW_CODE_COUNT);
}

static void test_code_name_out_of_range(void)
{
    static const int outside[] = {-1, SW_CODE_COUNT, SW_CODE_COUNT + 1, 100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < G_N_ELEMENTS(outside); i++)
        g_assert_cmpstr(sw_code_name(outside[i]), ==, "UNKNOWN");
    g_assert_cmpstr(sw_code_name(SW_CODE_DATA_LOSS), ==, "DATA_LOSS");
}

static void expect_code(GQuark domain, int code, sw_code expected)
{
    GError *error = g_error_new(domain, code, "failure");
    g_assert_cmpint(sw_error_code(error), ==, expected);
    g_error_free(error);
}

static void test_error_code(void)
{
    g_assert_cmpuint(SW_ERROR, !=, 0);
    g_assert_cmpuint(SW_ERROR, ==, sw_error_quark());
    for (int code = 1; code < SW_CODE_COUNT; code++)
        expect_code(SW_ERROR, code, (sw_code)code);
    /* An error that says OK is no status to answer with. */
    expect_code(SW_ERROR, SW_CODE_OK, SW_CODE_INTERNAL);
    expect_code(SW_ERROR, SW_CODE_COUNT, SW_CODE_INTERNAL);
    expect_code(SW_ERROR, -3, SW_CODE_INTERNAL);
    /* Other domains' codes mean other things: G_KEY_FILE_ERROR_NOT_FOUND
     * is 4, which would read as DEADLINE_EXCEEDED. */
    expect_code(G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_NOT_FOUND, SW_CODE_INTERNAL);
    expect_code(G_FILE_ERROR, SW_CODE_INVALID_ARGUMENT, SW_CODE_INTERNAL);
    expect_code(g_quark_from_static_string("elsewhere"), SW_CODE_NOT_FOUND, SW_CODE_INTERNAL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sw-error/code-table", test_code_table);
    g_test_add_func("/sw-error/code-name-out-of-range", test_code_name_out_of_range);
    g_test_add_func("/sw-error/error-code", test_error_code);
    return g_test_run();
}
