#include "auth.h"

#include <string.h>

#include "sw_error.h"

struct sw_auth {
    char *expected; /* "Bearer <token>" */
};

char *sw_auth_read_token(const char *path, GError **error)
{
    char *text = NULL;
    gsize length = 0;
    GError *local = NULL;
    if (!g_file_get_contents(path, &text, &length, &local)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, "token file: %s", local->message);
        g_error_free(local);
        return NULL;
    }
    /* A NUL inside would silently cut the token short. */
    gboolean has_nul = strlen(text) != length;
    g_strstrip(text);
    if (has_nul || text[0] == '\0' || strpbrk(text, "\r\n") != NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, "token file %s must hold one non-empty line", path);
        g_free(text);
        return NULL;
    }
    return text;
}

sw_auth *sw_auth_new_from_file(const char *path, GError **error)
{
    char *token = sw_auth_read_token(path, error);
    if (token == NULL)
        return NULL;
    sw_auth *auth = g_new0(sw_auth, 1);
    auth->expected = g_strconcat("Bearer ", token, NULL);
    memset(token, 0, strlen(token));
    g_free(token);
    return auth;
}

void sw_auth_free(sw_auth *auth)
{
    if (auth == NULL)
        return;
    memset(auth->expected, 0, strlen(auth->expected));
    g_free(auth->expected);
    g_free(auth);
}

/* Compares in time that depends only on the lengths, so timing does not
 * reveal how much of a guess was right. */
static gboolean equal_constant_time(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

gboolean sw_auth_check(const sw_auth *auth, const char *given)
{
    return given && equal_constant_time(given, auth->expected);
}

gboolean sw_auth_admit(sw_call *call, void *data)
{
    sw_auth *auth = data;
    char *given = sw_call_metadata(call, "authorization");
    gboolean ok = sw_auth_check(auth, given);
    if (given) {
        memset(given, 0, strlen(given));
        g_free(given);
    }
    if (!ok)
        sw_call_fail(call, SW_CODE_UNAUTHENTICATED,
                     "this server requires 'authorization: Bearer <token>' metadata with the right token");
    return ok;
}
