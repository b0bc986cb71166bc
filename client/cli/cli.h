/* Shared by the files of the `stagewise` command-line client.
 *
 * Every failure travels as a GError in the CLI_ERROR domain until main()
 * prints it, so each module says what went wrong and where, and only one
 * place decides how it looks and which exit status it gives. */
#ifndef SW_CLI_H
#define SW_CLI_H

#include <glib.h>

#include "stagewise.h"

/* Exit statuses: failures 1, command lines that make no sense 2. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILED = 1, CLI_EXIT_USAGE = 2 };

#define CLI_ERROR (cli_error_quark())
typedef enum cli_error_code {
    CLI_ERROR_FAILED, /* the input, the server or the output: exit 1 */
    CLI_ERROR_USAGE,  /* the command line: exit 2 */
} cli_error_code;

GQuark cli_error_quark(void);

/* Turns a library error into a CLI_ERROR_FAILED GError in `*out` (when
 * `out` is not NULL) and frees `error`. */
void cli_error_take_stagewise(GError **out, stagewise_error *error);

/* Prints `error` on stderr, frees it and returns the exit status it means. */
int cli_error_report(GError *error);

/* Parses a subcommand's options with `ctx` (the program name set to
 * "stagewise SUBCOMMAND" for --help); arguments left over are a usage error. */
gboolean cli_parse_options(GOptionContext *ctx, const char *subcommand, int *argc, char ***argv, GError **error);

/* Whether `s` ends with `suffix`, ignoring ASCII case (file extensions). */
gboolean cli_has_suffix(const char *s, const char *suffix);

/* The subcommands: argv[0] is the subcommand's name. */
int cli_predict_main(int argc, char **argv);
int cli_metadata_main(int argc, char **argv);
int cli_health_main(int argc, char **argv);

#endif
