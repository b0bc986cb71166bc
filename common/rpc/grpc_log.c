#include "grpc_log.h"

#include <grpc/support/log.h>

#include "log.h"

static void log_from_grpc(gpr_log_func_args *args)
{
    sw_log_level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? SW_LOG_ERROR
                         : args->severity == GPR_LOG_SEVERITY_INFO ? SW_LOG_INFO
                                                                   : SW_LOG_DEBUG;
    char *message = sw_log_quote(args->message);
    char *where = g_path_get_basename(args->file);
    sw_log(level, "event=grpc source=%s:%d message=%s", where, args->line, message);
    g_free(where);
    g_free(message);
}

void sw_log_capture_grpc(void)
{
    gpr_set_log_function(log_from_grpc);
}
