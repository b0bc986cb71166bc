/* `stagewise metadata`: a model's ModelMetadata as JSON, properties (the
 * column and Ludwig type of each input feature) included. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "connection.h"

static gboolean print_metadata(cli_connection *c, const char *name, GError **error)
{
    if (name == NULL || name[0] == '\0') {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "--model is required");
        return FALSE;
    }
    if (!cli_connection_load(c, error))
        return FALSE;
    stagewise_client *client = cli_connection_client(c, NULL, error);
    if (client == NULL)
        return FALSE;
    stagewise_error *lib_error = NULL;
    stagewise_model *model = stagewise_model_get(client, name, &lib_error);
    stagewise_client_free(client);
    if (model == NULL) {
        cli_error_take_stagewise(error, lib_error);
        return FALSE;
    }
    char *json = stagewise_model_to_json(model);
    printf("%s\n", json);
    free(json);
    stagewise_model_free(model);
    return TRUE;
}

int cli_metadata_main(int argc, char **argv)
{
    cli_connection c = {0};
    char *model = NULL;
    const GOptionEntry entries[] = {
        {.long_name = "model",
         .short_name = 'm',
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &model,
         .description = "model name (NAME, NAME_preprocessor, ...); required",
         .arg_description = "NAME"},
        {.long_name = NULL, .arg = 0, .arg_data = NULL, .description = NULL},
    };
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx, "Prints a model's metadata (inputs, outputs, properties) as JSON.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    cli_connection_add_options(ctx, &c);
    GError *error = NULL;
    gboolean ok = cli_parse_options(ctx, "metadata", &argc, &argv, &error) && print_metadata(&c, model, &error);
    g_option_context_free(ctx);
    cli_connection_clear(&c);
    g_free(model);
    return ok ? CLI_EXIT_OK : cli_error_report(error);
}
