/* Bearer tokens read from a file: trimmed, one line, and never echoed in an
 * error. sw_auth_admit needs a live call; the end-to-end tests cover it. */
#include <string.h>

#include "auth.h"
#include "sw_error.h"
#include "unit_support.h"

static char *write_token_file(const char *dir, const char *text, gssize len)
{
    char *path = g_build_filename(dir, "token", NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, len, &error);
    g_assert_no_error(error);
    return path;
}

static void test_read_trims(void)
{
    char *dir = sw_test_dir_new();
    static const char *const files[] = {"s3cr3t", "s3cr3t\n", "  s3cr3t\r\n", "\n\ts3cr3t \n\n"};
    for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
        char *path = write_token_file(dir, files[i], -1);
        GError *error = NULL;
        char *token = sw_auth_read_token(path, &error);
        g_assert_no_error(error);
        g_assert_cmpstr(token, ==, "s3cr3t");
        g_free(token);
        g_free(path);
    }
    /* Blanks inside a token are part of it. */
    char *path = write_token_file(dir, "two words\n", -1);
    GError *error = NULL;
    char *token = sw_auth_read_token(path, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(token, ==, "two words");
    g_free(token);
    g_free(path);
    sw_test_dir_remove(dir);
}

static void expect_refused(const char *path, const char *secret)
{
    GError *error = NULL;
    g_assert_null(sw_auth_read_token(path, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_assert_nonnull(strstr(error->message, "token file"));
    /* Whatever the file holds stays out of messages that reach logs. */
    if (secret)
        g_assert_null(strstr(error->message, secret));
    g_clear_error(&error);
    g_assert_null(sw_auth_new_from_file(path, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION);
    g_clear_error(&error);
}

static void test_read_refuses(void)
{
    char *dir = sw_test_dir_new();
    char *path = write_token_file(dir, "", 0);
    expect_refused(path, NULL);
    g_free(path);
    path = write_token_file(dir, " \n\t\r\n ", -1);
    expect_refused(path, NULL);
    g_free(path);
    /* Two tokens (or a token and junk) are a mistake, not the first line. */
    path = write_token_file(dir, "first-secret\nsecond-secret\n", -1);
    expect_refused(path, "first-secret");
    g_assert_null(strstr(path, "secret"));
    g_free(path);
    path = write_token_file(dir, "carriage\rsecret", -1);
    expect_refused(path, "carriage");
    g_free(path);

    /* A NUL would make the token the part before it, a shorter secret. */
    path = write_token_file(dir, "nulsecret\0rest-of-it\n", 22);
    expect_refused(path, "nulsecret");
    g_free(path);

    path = g_build_filename(dir, "no-such-token", NULL);
    expect_refused(path, NULL);
    g_free(path);
    /* A folder is not a token file. */
    expect_refused(dir, NULL);
    sw_test_dir_remove(dir);
}

static void test_new_from_file(void)
{
    char *dir = sw_test_dir_new();
    char *path = write_token_file(dir, "tok-123\n", -1);
    GError *error = NULL;
    sw_auth *auth = sw_auth_new_from_file(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(auth);
    sw_auth_free(auth);
    sw_auth_free(NULL);
    g_free(path);
    sw_test_dir_remove(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/auth/read-trims", test_read_trims);
    g_test_add_func("/auth/read-refuses", test_read_refuses);
    g_test_add_func("/auth/new-from-file", test_new_from_file);
    return g_test_run();
}
