/* Log lines: quoting keeps client text inside one field of one line, the
 * level filters, unknown names are refused without changing anything, and
 * the JSON form carries the same fields with the quoting undone. Lines are
 * read back by pointing stderr at a temporary file. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

typedef void (*log_body)(void);

/* Everything `body` writes to stderr. */
static char *capture_stderr(log_body body)
{
    char *path = NULL;
    GError *error = NULL;
    int fd = g_file_open_tmp("sw-log-XXXXXX", &path, &error);
    g_assert_no_error(error);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    g_assert_cmpint(saved, >=, 0);
    g_assert_cmpint(dup2(fd, STDERR_FILENO), >=, 0);
    body();
    fflush(stderr);
    g_assert_cmpint(dup2(saved, STDERR_FILENO), >=, 0);
    close(saved);
    close(fd);
    char *text = NULL;
    g_file_get_contents(path, &text, NULL, &error);
    g_assert_no_error(error);
    g_unlink(path);
    g_free(path);
    return text;
}

/* Back to the defaults, so tests do not depend on their order. */
static void reset(void)
{
    g_assert_true(sw_log_configure("info", "kv"));
}

static void test_quote(void)
{
    char *q = sw_log_quote("say \"hi\"\nand\\leave");
    g_assert_cmpstr(q, ==, "\"say \\\"hi\\\"\\nand\\\\leave\"");
    g_free(q);
    q = sw_log_quote("");
    g_assert_cmpstr(q, ==, "\"\"");
    g_free(q);
    /* Nothing a client sends can start a new line or a new field. */
    q = sw_log_quote("x\r\n level=error forged=\"1\"\x7f");
    g_assert_null(strpbrk(q, "\r\n\x7f"));
    g_assert_cmpstr(q, ==, "\"x\\r\\n level=error forged=\\\"1\\\"\\u007f\"");
    g_free(q);
}

static void test_configure_names(void)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < G_N_ELEMENTS(levels); i++)
        g_assert_true(sw_log_configure(levels[i], NULL));
    g_assert_true(sw_log_configure(NULL, "json"));
    g_assert_true(sw_log_configure(NULL, "kv"));
    g_assert_true(sw_log_configure(NULL, NULL));
    g_assert_false(sw_log_configure("verbose", NULL));
    g_assert_false(sw_log_configure("warning", NULL));
    g_assert_false(sw_log_configure("", NULL));
    g_assert_false(sw_log_configure(NULL, "xml"));
    g_assert_false(sw_log_configure(NULL, "JSONL"));
    g_assert_false(sw_log_configure(NULL, ""));
    reset();
}

static void log_each_level(void)
{
    sw_log(SW_LOG_DEBUG, "k=debug");
    sw_log(SW_LOG_INFO, "k=info");
    sw_log(SW_LOG_WARN, "k=warn n=%d", 7);
    sw_log(SW_LOG_ERROR, "k=error");
}

static void test_level_filters(void)
{
    g_assert_true(sw_log_configure("warn", "kv"));
    char *text = capture_stderr(log_each_level);
    char **lines = g_strsplit(text, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 3); /* two lines and the empty rest */
    g_assert_true(g_str_has_prefix(lines[0], "ts="));
    g_assert_true(g_str_has_suffix(lines[0], " level=warn k=warn n=7"));
    g_assert_true(g_str_has_suffix(lines[1], " level=error k=error"));
    g_assert_cmpstr(lines[2], ==, "");
    g_strfreev(lines);
    g_free(text);

    g_assert_true(sw_log_configure("debug", NULL));
    text = capture_stderr(log_each_level);
    g_assert_true(strstr(text, "level=debug k=debug\n") != NULL);
    g_assert_true(strstr(text, "level=info k=info\n") != NULL);
    g_free(text);
    reset();
}

static void test_refused_names_change_nothing(void)
{
    g_assert_true(sw_log_configure("error", "kv"));
    g_assert_false(sw_log_configure("loud", NULL));
    g_assert_false(sw_log_configure(NULL, "yaml"));
    char *text = capture_stderr(log_each_level);
    /* Still error only, still key=value. */
    g_assert_null(strstr(text, "k=warn"));
    g_assert_true(g_str_has_prefix(text, "ts="));
    g_assert_true(strstr(text, " level=error k=error\n") != NULL);
    g_free(text);
    reset();
}

static void log_quoted_fields(void)
{
    char *q = sw_log_quote("say \"hi\"\n\ttab \\ \x01 caf\xc3\xa9");
    sw_log(SW_LOG_INFO, "event=load model=%s msg=%s", "ludwig-1", q);
    g_free(q);
}

static void test_json_format(void)
{
    g_assert_true(sw_log_configure("info", "json"));
    char *text = capture_stderr(log_quoted_fields);
    /* One line: the newline in the message is escaped, not written. */
    g_assert_true(g_str_has_suffix(text, "}\n"));
    g_assert_true(strchr(text, '\n') == text + strlen(text) - 1);
    JsonParser *parser = json_parser_new();
    GError *error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    g_assert_nonnull(o);
    g_assert_true(json_object_has_member(o, "ts"));
    g_assert_cmpstr(json_object_get_string_member(o, "level"), ==, "info");
    g_assert_cmpstr(json_object_get_string_member(o, "event"), ==, "load");
    g_assert_cmpstr(json_object_get_string_member(o, "model"), ==, "ludwig-1");
    /* The quoting is undone: the client's text, byte for byte. */
    g_assert_cmpstr(json_object_get_string_member(o, "msg"), ==, "say \"hi\"\n\ttab \\ \x01 caf\xc3\xa9");
    g_assert_cmpuint(json_object_get_size(o), ==, 5);
    g_object_unref(parser);
    g_free(text);
    reset();
}

static void test_init_from_env(void)
{
    g_setenv("STAGEWISE_LOG_LEVEL", "error", TRUE);
    sw_log_init_from_env();
    char *text = capture_stderr(log_each_level);
    g_assert_null(strstr(text, "k=warn"));
    g_assert_true(strstr(text, "k=error") != NULL);
    g_free(text);
    /* An unknown level in the environment leaves the level as it was. */
    g_setenv("STAGEWISE_LOG_LEVEL", "chatty", TRUE);
    sw_log_init_from_env();
    text = capture_stderr(log_each_level);
    g_assert_null(strstr(text, "k=warn"));
    g_free(text);
    g_unsetenv("STAGEWISE_LOG_LEVEL");
    reset();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/log/quote", test_quote);
    g_test_add_func("/log/configure-names", test_configure_names);
    g_test_add_func("/log/level-filters", test_level_filters);
    g_test_add_func("/log/refused-names-change-nothing", test_refused_names_change_nothing);
    g_test_add_func("/log/json-format", test_json_format);
    g_test_add_func("/log/init-from-env", test_init_from_env);
    return g_test_run();
}
