#include <stdarg.h>

#include "internal.h"
#include "sw_error.h"

/* The public constants are the internal table's numbers, code by code: a
 * code added to SW_CODE_MAP without its STAGEWISE_CODE_ fails here. */
#define CHECK_PUBLIC_CODE(name, number)                                                                                \
    G_STATIC_ASSERT((int)STAGEWISE_CODE_##name == (int)SW_CODE_##name && (number) == (int)SW_CODE_##name);
SW_CODE_MAP(CHECK_PUBLIC_CODE)
#undef CHECK_PUBLIC_CODE

void stagewise_error_set(stagewise_error **out, const GError *error)
{
    if (out == NULL)
        return;
    stagewise_error *e = g_new0(stagewise_error, 1);
    e->code = (int)sw_error_code(error);
    e->message = g_strdup(error->message);
    *out = e;
}

void stagewise_error_setf(stagewise_error **out, int code, const char *format, ...)
{
    if (out == NULL)
        return;
    stagewise_error *e = g_new0(stagewise_error, 1);
    e->code = code;
    va_list ap;
    va_start(ap, format);
    e->message = g_strdup_vprintf(format, ap);
    va_end(ap);
    *out = e;
}

STAGEWISE_API int stagewise_error_code(const stagewise_error *error)
{
    return error->code;
}

STAGEWISE_API const char *stagewise_error_code_name(const stagewise_error *error)
{
    return sw_code_name(error->code);
}

STAGEWISE_API const char *stagewise_code_name(int code)
{
    return sw_code_name(code);
}

STAGEWISE_API const char *stagewise_version(void)
{
    return SW_VERSION;
}

STAGEWISE_API const char *stagewise_error_message(const stagewise_error *error)
{
    return error->message;
}

STAGEWISE_API void stagewise_error_free(stagewise_error *error)
{
    if (error == NULL)
        return;
    g_free(error->message);
    g_free(error);
}
