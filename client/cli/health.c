/* `stagewise health`: the grpc.health.v1 Check a Kubernetes probe makes,
 * as an exit status a shell script can test. */
#include <stdio.h>

#include "cli.h"
#include "connection.h"

/* 1 serving, 0 not, -1 with an error. */
static int check(cli_connection *c, const char *service, GError **error)
{
    if (!cli_connection_load(c, error))
        return -1;
    stagewise_client *client = cli_connection_client(c, NULL, error);
    if (client == NULL)
        return -1;
    stagewise_error *lib_error = NULL;
    int serving = stagewise_health_check(client, service ? service : "", &lib_error);
    stagewise_client_free(client);
    if (serving < 0)
        cli_error_take_stagewise(error, lib_error);
    return serving;
}

int cli_health_main(int argc, char **argv)
{
    cli_connection c = {0};
    char *service = NULL;
    const GOptionEntry entries[] = {
        {.long_name = "service",
         .short_name = 's',
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &service,
         .description = "service to check (default: the whole server)",
         .arg_description = "S"},
        {.long_name = NULL, .arg = 0, .arg_data = NULL, .description = NULL},
    };
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx, "Prints SERVING or NOT_SERVING; exits 0 only when serving.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    cli_connection_add_options(ctx, &c);
    GError *error = NULL;
    int serving = cli_parse_options(ctx, "health", &argc, &argv, &error) ? check(&c, service, &error) : -1;
    g_option_context_free(ctx);
    cli_connection_clear(&c);
    g_free(service);
    if (serving < 0)
        return cli_error_report(error);
    printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
    return serving ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
