/* Bearer-token admission for stage servers: calls must carry
 * "authorization: Bearer <token>". The token is read from a file (so it can
 * come from a Kubernetes Secret) and never written to logs or messages. */
#ifndef SW_AUTH_H
#define SW_AUTH_H

#include <glib.h>

#include "server.h"

G_BEGIN_DECLS

typedef struct sw_auth sw_auth;

/* Reads the token from `path` (surrounding whitespace ignored). NULL with an
 * error when the file cannot be read or holds no token. */
sw_auth *sw_auth_new_from_file(const char *path, GError **error);
void sw_auth_free(sw_auth *auth);

/* An sw_admit_func: lets a call through with the right token, else ends it
 * UNAUTHENTICATED. `auth` is the sw_auth. */
gboolean sw_auth_admit(sw_call *call, void *auth);

/* TRUE when `given` (an Authorization value, "Bearer <token>"; NULL
 * reads as missing) carries the right token. Any thread. */
gboolean sw_auth_check(const sw_auth *auth, const char *given);

/* The token from a file, for sending downstream; newly allocated. */
char *sw_auth_read_token(const char *path, GError **error);

G_END_DECLS

#endif
