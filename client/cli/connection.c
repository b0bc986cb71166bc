#include "connection.h"

#include <string.h>

#include "cli.h"

void cli_connection_add_options(GOptionContext *ctx, cli_connection *c)
{
    const GOptionEntry entries[] = {
        {.long_name = "target",
         .short_name = 't',
         .arg = G_OPTION_ARG_STRING,
         .arg_data = &c->target,
         .description = "gRPC target of the server (host:port, ipv4:a:p,b:q, dns:///name:port, unix:path); required",
         .arg_description = "TARGET"},
        {.long_name = "timeout-ms",
         .arg = G_OPTION_ARG_INT64,
         .arg_data = &c->timeout_ms,
         .description = "deadline of each call (default: none)",
         .arg_description = "MS"},
        {.long_name = "tls-ca",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &c->tls_ca_file,
         .description = "PEM root certificates: use TLS",
         .arg_description = "FILE"},
        {.long_name = "tls-cert",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &c->tls_cert_file,
         .description = "PEM client certificate chain (mutual TLS)",
         .arg_description = "FILE"},
        {.long_name = "tls-key",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &c->tls_key_file,
         .description = "PEM client private key (mutual TLS)",
         .arg_description = "FILE"},
        {.long_name = "auth-token-file",
         .arg = G_OPTION_ARG_FILENAME,
         .arg_data = &c->auth_token_file,
         .description = "file holding a token sent as 'authorization: Bearer TOKEN'",
         .arg_description = "FILE"},
        {.long_name = NULL, .arg = 0, .arg_data = NULL, .description = NULL},
    };
    g_option_context_add_main_entries(ctx, entries, NULL);
}

/* The contents of `path` into `*out`; NULL paths are left alone. */
static gboolean read_file(const char *option, const char *path, char **out, GError **error)
{
    if (path == NULL)
        return TRUE;
    GError *read_error = NULL;
    if (!g_file_get_contents(path, out, NULL, &read_error)) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s: %s", option, read_error->message);
        g_error_free(read_error);
        return FALSE;
    }
    return TRUE;
}

gboolean cli_connection_load(cli_connection *c, GError **error)
{
    if (c->target == NULL || c->target[0] == '\0') {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "--target is required");
        return FALSE;
    }
    if (c->timeout_ms < 0) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "--timeout-ms must not be negative");
        return FALSE;
    }
    if (!c->tls_cert_file != !c->tls_key_file) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "--tls-cert and --tls-key go together");
        return FALSE;
    }
    if (!read_file("--tls-ca", c->tls_ca_file, &c->tls_ca_pem, error) ||
        !read_file("--tls-cert", c->tls_cert_file, &c->tls_cert_pem, error) ||
        !read_file("--tls-key", c->tls_key_file, &c->tls_key_pem, error) ||
        !read_file("--auth-token-file", c->auth_token_file, &c->auth_token, error))
        return FALSE;
    /* Token files usually end with a newline that is not part of the token. */
    if (c->auth_token && g_strstrip(c->auth_token)[0] == '\0') {
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "--auth-token-file: %s is empty", c->auth_token_file);
        return FALSE;
    }
    return TRUE;
}

stagewise_client *cli_connection_client(const cli_connection *c, const char *target, GError **error)
{
    stagewise_client_options options = {
        .target = target ? target : c->target,
        .timeout_ms = c->timeout_ms,
        .tls_root_certs_pem = c->tls_ca_pem,
        .tls_cert_chain_pem = c->tls_cert_pem,
        .tls_private_key_pem = c->tls_key_pem,
        .auth_token = c->auth_token,
    };
    stagewise_error *lib_error = NULL;
    stagewise_client *client = stagewise_client_new(&options, &lib_error);
    if (client == NULL)
        cli_error_take_stagewise(error, lib_error);
    return client;
}

void cli_connection_clear(cli_connection *c)
{
    g_free(c->target);
    g_free(c->tls_ca_file);
    g_free(c->tls_cert_file);
    g_free(c->tls_key_file);
    g_free(c->auth_token_file);
    g_free(c->tls_ca_pem);
    g_free(c->tls_cert_pem);
    g_free(c->tls_key_pem);
    g_free(c->auth_token);
    memset(c, 0, sizeof *c);
}
