#include "sw_error.h"

/* Spelled out rather than G_DEFINE_QUARK(stagewise-error-quark, ...), whose
 * name clang-format would space into "stagewise - error - quark". */
GQuark sw_error_quark(void)
{
    return g_quark_from_static_string("stagewise-error-quark");
}

#define SW_CODE_NAME_ENTRY(name, number) [number] = #name,
static const char *const code_names[] = {SW_CODE_MAP(SW_CODE_NAME_ENTRY)};
#undef SW_CODE_NAME_ENTRY

const char *sw_code_name(int code)
{
    if (code >= 0 && (size_t)code < G_N_ELEMENTS(code_names) && code_names[code])
        return code_names[code];
    return "UNKNOWN";
}

sw_code sw_error_code(const GError *error)
{
    if (error->domain == SW_ERROR && error->code > SW_CODE_OK && error->code < SW_CODE_COUNT)
        return (sw_code)error->code;
    return SW_CODE_INTERNAL;
}
