/* Hand-written JSON strings: every byte that could end the string, the line
 * or confuse a terminal is escaped, and a JSON reader gets the text back. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "json_text.h"

static char *quoted(const char *text)
{
    GString *out = g_string_new(NULL);
    sw_json_append_string(out, text);
    return g_string_free(out, FALSE);
}

static void expect_quoted(const char *text, const char *expected)
{
    char *q = quoted(text);
    g_assert_cmpstr(q, ==, expected);
    g_free(q);
}

/* What a JSON reader makes of `literal` (a JSON string literal). */
static char *parse_back(const char *literal)
{
    char *doc = g_strdup_printf("[%s]", literal);
    JsonParser *parser = json_parser_new();
    GError *error = NULL;
    g_assert_true(json_parser_load_from_data(parser, doc, -1, &error));
    g_assert_no_error(error);
    char *text = g_strdup(json_array_get_string_element(json_node_get_array(json_parser_get_root(parser)), 0));
    g_object_unref(parser);
    g_free(doc);
    return text;
}

static void test_plain_and_appended(void)
{
    expect_quoted("", "\"\"");
    expect_quoted("plain text, 1 2 3", "\"plain text, 1 2 3\"");
    /* Non-ASCII UTF-8 is valid JSON as it is. */
    expect_quoted("caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\"");
    /* Appends: what the string held before stays. */
    GString *out = g_string_new("{\"k\":");
    sw_json_append_string(out, "v");
    g_string_append_c(out, '}');
    g_assert_cmpstr(out->str, ==, "{\"k\":\"v\"}");
    g_string_free(out, TRUE);
}

static void test_escapes(void)
{
    expect_quoted("say \"hi\"", "\"say \\\"hi\\\"\"");
    expect_quoted("C:\\path\\", "\"C:\\\\path\\\\\"");
    expect_quoted("a\nb\rc\td", "\"a\\nb\\rc\\td\"");
    expect_quoted("\x01", "\"\\u0001\"");
    expect_quoted("\x08\x0c", "\"\\u0008\\u000c\"");
    expect_quoted("\x1b[31m", "\"\\u001b[31m\"");
    expect_quoted("\x1f", "\"\\u001f\"");
    expect_quoted("\x7f", "\"\\u007f\"");
    /* The first byte past the control range is ordinary. */
    expect_quoted(" ~", "\" ~\"");
    /* A closing quote hidden behind a backslash cannot end the string. */
    expect_quoted("\\\"", "\"\\\\\\\"\"");
}

static void test_every_control_char_round_trips(void)
{
    char all[34];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        all[n++] = (char)c;
    all[n++] = 0x7f;
    all[n++] = '"';
    all[n] = '\0';
    char *q = quoted(all);
    /* One line, no raw control bytes: safe in a log line. */
    for (const char *p = q; *p; p++)
        g_assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    char *back = parse_back(q);
    g_assert_cmpstr(back, ==, all);
    g_free(back);
    g_free(q);
}

static void test_bytes_that_are_not_utf8_become_replacement_chars(void)
{
    /* A lone continuation byte, a truncated sequence at the end, an overlong
     * '/' and a byte no UTF-8 holds: each becomes one U+FFFD, and what is
     * valid around them is kept. */
    expect_quoted("a\x80"
                  "b",
                  "\"a\\ufffdb\"");
    expect_quoted("caf\xc3", "\"caf\\ufffd\"");
    expect_quoted("\xc0\xaf", "\"\\ufffd\\ufffd\"");
    expect_quoted("x\xff\xc3\xa9\"", "\"x\\ufffd\xc3\xa9\\\"\"");
    char *q = quoted("name\333\n");
    g_assert_true(g_utf8_validate(q, -1, NULL));
    char *back = parse_back(q);
    g_assert_cmpstr(back, ==, "name\xef\xbf\xbd\n");
    g_free(back);
    g_free(q);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-text/plain-and-appended", test_plain_and_appended);
    g_test_add_func("/json-text/escapes", test_escapes);
    g_test_add_func("/json-text/every-control-char-round-trips", test_every_control_char_round_trips);
    g_test_add_func("/json-text/bytes-that-are-not-utf8-become-replacement-chars",
                    test_bytes_that_are_not_utf8_become_replacement_chars);
    return g_test_run();
}
