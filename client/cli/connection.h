/* The options every subcommand shares to reach a server: target, deadline,
 * TLS and a bearer token, and the clients made from them. */
#ifndef SW_CLI_CONNECTION_H
#define SW_CLI_CONNECTION_H

#include <glib.h>

#include "stagewise.h"

typedef struct cli_connection {
    /* Filled by the command line. */
    char *target;
    gint64 timeout_ms;
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    char *auth_token_file;
    /* Filled by cli_connection_load: the files' contents. */
    char *tls_ca_pem;
    char *tls_cert_pem;
    char *tls_key_pem;
    char *auth_token;
} cli_connection;

/* Adds --target, --timeout-ms, --tls-ca, --tls-cert, --tls-key and
 * --auth-token-file to the main group of `ctx`, writing into `c`, which
 * must outlive the parse. */
void cli_connection_add_options(GOptionContext *ctx, cli_connection *c);

/* After parsing: checks the options go together and reads the files they
 * name, so a bad file fails before any call. */
gboolean cli_connection_load(cli_connection *c, GError **error);

/* A client for `target` (NULL: the --target) with the loaded settings. */
stagewise_client *cli_connection_client(const cli_connection *c, const char *target, GError **error);

void cli_connection_clear(cli_connection *c);

#endif
