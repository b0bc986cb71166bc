/* clip.h: client text in messages is bounded, cut on a character boundary
 * and marked when cut. */
#include <glib.h>
#include <string.h>

#include "clip.h"

static char *clipped(const char *text)
{
    return g_strdup_printf(SW_CLIP_FMT, SW_CLIP(text));
}

static void test_short_text_is_kept_whole(void)
{
    char *out = clipped("feature_1");
    g_assert_cmpstr(out, ==, "feature_1");
    g_free(out);
    char *exact = g_strnfill(SW_CLIP_BYTES, 'a');
    out = clipped(exact);
    g_assert_cmpstr(out, ==, exact);
    g_free(out);
    g_free(exact);
    out = clipped(NULL);
    g_assert_cmpstr(out, ==, "");
    g_free(out);
}

static void test_long_text_is_cut_and_marked(void)
{
    char *text = g_strnfill(1 << 20, 'x');
    char *out = clipped(text);
    g_assert_cmpuint(strlen(out), ==, SW_CLIP_BYTES + strlen(SW_CLIP_MARK));
    g_assert_true(g_str_has_suffix(out, SW_CLIP_MARK));
    g_assert_cmpint(strncmp(out, text, SW_CLIP_BYTES), ==, 0);
    g_free(out);
    g_free(text);
}

static void test_cut_never_splits_a_character(void)
{
    /* "é" is two bytes: 255 ASCII bytes then é puts the 256-byte limit in
     * the middle of it. */
    GString *text = g_string_new(NULL);
    for (int i = 0; i < SW_CLIP_BYTES - 1; i++)
        g_string_append_c(text, 'a');
    for (int i = 0; i < 10; i++)
        g_string_append(text, "\xc3\xa9");
    g_assert_cmpuint(sw_clip_length(text->str), ==, SW_CLIP_BYTES - 1);
    char *out = clipped(text->str);
    g_assert_true(g_utf8_validate(out, -1, NULL));
    g_assert_true(g_str_has_suffix(out, SW_CLIP_MARK));
    g_free(out);
    g_string_free(text, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/clip/short-text-is-kept-whole", test_short_text_is_kept_whole);
    g_test_add_func("/clip/long-text-is-cut-and-marked", test_long_text_is_cut_and_marked);
    g_test_add_func("/clip/cut-never-splits-a-character", test_cut_never_splits_a_character);
    return g_test_run();
}
