#include <stdio.h>
#include <string.h>

#include "cli.h"

GQuark cli_error_quark(void)
{
    return g_quark_from_static_string("stagewise-cli-error-quark");
}

void cli_error_take_stagewise(GError **out, stagewise_error *error)
{
    g_set_error(out, CLI_ERROR, CLI_ERROR_FAILED, "%s", stagewise_error_message(error));
    stagewise_error_free(error);
}

int cli_error_report(GError *error)
{
    gboolean usage = g_error_matches(error, CLI_ERROR, CLI_ERROR_USAGE);
    fprintf(stderr, "%s: %s\n", g_get_prgname(), error->message);
    if (usage)
        fprintf(stderr, "Try '%s --help'.\n", g_get_prgname());
    g_error_free(error);
    return usage ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

gboolean cli_parse_options(GOptionContext *ctx, const char *subcommand, int *argc, char ***argv, GError **error)
{
    char *prgname = g_strdup_printf("stagewise %s", subcommand);
    g_set_prgname(prgname);
    g_free(prgname);
    GError *parse_error = NULL;
    if (!g_option_context_parse(ctx, argc, argv, &parse_error)) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "%s", parse_error->message);
        g_error_free(parse_error);
        return FALSE;
    }
    /* GOption leaves argv[0] and whatever it did not recognise. */
    if (*argc > 1) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "unexpected argument '%s'", (*argv)[1]);
        return FALSE;
    }
    return TRUE;
}

gboolean cli_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && g_ascii_strcasecmp(s + n - m, suffix) == 0;
}
