/* `stagewise`: predictions from a Ludwig model served by stagewise (or any
 * Open Inference Protocol server that publishes the same metadata), from
 * the shell. This file only picks the subcommand; each lives in its own. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct subcommand {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"predict", cli_predict_main, "predict rows of a CSV or JSON-lines file"},
    {"metadata", cli_metadata_main, "print a model's metadata as JSON"},
    {"health", cli_health_main, "check a server's health (SERVING or NOT_SERVING)"},
};

static void print_usage(FILE *to)
{
    fprintf(to, "Usage:\n  stagewise COMMAND [OPTION…]\n\nCommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        fprintf(to, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(to, "\nRun 'stagewise COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    /* Messages from GOption follow the user's locale; numbers never do
     * (g_ascii_strtod and g_ascii_formatd are used throughout). */
    setlocale(LC_ALL, "");
    g_set_prgname("stagewise");
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("stagewise %s\n", SW_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "stagewise: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return CLI_EXIT_USAGE;
}
