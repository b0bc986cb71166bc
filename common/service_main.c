#include "service_main.h"

#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "channel.h"
#include "export.h"
#include "log.h"
#include "oip_service.h"
#include "server.h"
#include "stage.h"
#include "torch_shim.h"

typedef struct service_flags {
    char *model_dir;
    char *listen;
    char *name;
    char *device;
    char *next;
    int threads;
    int torch_threads;
    int max_message_mb;
    int drain_timeout_s;
} service_flags;

static gboolean parse_flags(sw_stage_kind kind, int *argc, char ***argv, service_flags *f)
{
    *f = (service_flags){NULL, NULL, NULL, NULL, NULL, 4, 1, 256, 30};
    GOptionEntry entries[] = {
        {"model-dir", 'm', 0, G_OPTION_ARG_FILENAME, &f->model_dir, "Ludwig TorchScript export folder (required)", "DIR"},
        {"listen", 'l', 0, G_OPTION_ARG_STRING, &f->listen, "address to serve on (default 0.0.0.0:8001; port 0 picks one)", "HOST:PORT"},
        {"name", 'n', 0, G_OPTION_ARG_STRING, &f->name, "model name (default: the export folder's name)", "NAME"},
        {"next", 0, 0, G_OPTION_ARG_STRING, &f->next, "next stage's gRPC target (host:port, ipv4:a:p,b:q, dns:///name:port, unix:path); serves the pipeline model NAME", "TARGET"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &f->threads, "worker threads running inference (default 4)", "N"},
        {"torch-threads", 0, 0, G_OPTION_ARG_INT, &f->torch_threads, "libtorch intra-op threads per call (default 1)", "N"},
        {"max-message-mb", 0, 0, G_OPTION_ARG_INT, &f->max_message_mb, "largest request or reply in MiB (default 256)", "MIB"},
        {"drain-timeout", 0, 0, G_OPTION_ARG_INT, &f->drain_timeout_s, "seconds to finish calls in flight on SIGTERM (default 30)", "S"},
        {"device", 'd', 0, G_OPTION_ARG_STRING, &f->device, "device for the model: cpu, cuda, cuda:N (default cpu)", "DEV"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    /* Only the predictor runs on an accelerator. */
    if (kind != SW_STAGE_PREDICTOR)
        entries[G_N_ELEMENTS(entries) - 2] = entries[G_N_ELEMENTS(entries) - 1];
    char *summary = g_strdup_printf("Serves the %s of a Ludwig TorchScript export over the Open Inference Protocol (gRPC).",
                                    sw_stage_kind_name(kind));
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx, summary);
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *error = NULL;
    gboolean ok = g_option_context_parse(ctx, argc, argv, &error);
    if (!ok) {
        fprintf(stderr, "%s\n", error->message);
        g_error_free(error);
    } else if (f->model_dir == NULL) {
        fprintf(stderr, "--model-dir is required (see --help)\n");
        ok = FALSE;
    } else if (f->threads < 1 || f->max_message_mb < 1 || f->drain_timeout_s < 0) {
        fprintf(stderr, "--threads and --max-message-mb must be at least 1, --drain-timeout at least 0\n");
        ok = FALSE;
    }
    g_option_context_free(ctx);
    g_free(summary);
    if (f->listen == NULL)
        f->listen = g_strdup("0.0.0.0:8001");
    return ok;
}

static void free_flags(service_flags *f)
{
    g_free(f->model_dir);
    g_free(f->listen);
    g_free(f->name);
    g_free(f->device);
    g_free(f->next);
}

/* A second signal while draining means "now". */
static gpointer exit_on_second_signal(gpointer data)
{
    sigset_t *set = data;
    int sig = 0;
    sigwait(set, &sig);
    sw_log(SW_LOG_WARN, "event=forced_exit signal=%d", sig);
    _exit(128 + sig);
    return NULL;
}

static int serve(sw_stage_kind kind, const service_flags *f, const sigset_t *signals)
{
    GError *error = NULL;
    sw_export *export = sw_export_load(f->model_dir, &error);
    sw_stage *stage = NULL;
    if (export) {
        sw_torch_set_num_threads(f->torch_threads);
        stage = sw_stage_load(kind, export, f->name ? f->name : export->name, f->device, &error);
    }
    if (stage == NULL) {
        sw_log(SW_LOG_ERROR, "event=load_failed model_dir=\"%s\" error=\"%s\"", f->model_dir, error->message);
        g_error_free(error);
        sw_export_free(export);
        return 1;
    }
    sw_channel *next = NULL;
    if (f->next) {
        sw_channel_options copts = {.target = f->next, .max_message_bytes = f->max_message_mb * 1024 * 1024};
        next = sw_channel_new(&copts, &error);
    }
    sw_oip_service *svc = error ? NULL : sw_oip_service_new(stage, export, f->name ? f->name : export->name, next, &error);
    if (svc == NULL) {
        sw_log(SW_LOG_ERROR, "event=start_failed error=\"%s\"", error->message);
        g_error_free(error);
        sw_channel_free(next);
        sw_stage_free(stage);
        sw_export_free(export);
        return 1;
    }
    sw_method methods[SW_OIP_SERVICE_MAX_METHODS];
    size_t n_methods = sw_oip_service_methods(svc, methods);
    sw_server_options options = {f->listen, f->threads, f->max_message_mb * 1024 * 1024};
    sw_server *server = sw_server_new(&options, methods, n_methods, &error);
    int rc = 0;
    if (server == NULL) {
        sw_log(SW_LOG_ERROR, "event=listen_failed listen=%s error=\"%s\"", f->listen, error->message);
        g_error_free(error);
        rc = 1;
    } else {
        sw_server_start(server);
        sw_oip_service_set_serving(svc, TRUE);
        sw_log(SW_LOG_INFO, "event=listening model=%s device=%s port=%d threads=%d next=%s", stage->model_name,
               stage->device, sw_server_port(server), f->threads, f->next ? f->next : "none");
        int sig = 0;
        sigwait(signals, &sig);
        sw_oip_service_set_serving(svc, FALSE);
        sw_log(SW_LOG_INFO, "event=draining signal=%d timeout_s=%d", sig, f->drain_timeout_s);
        g_thread_unref(g_thread_new("sw-signal", exit_on_second_signal, (gpointer)signals));
        int cancelled = sw_server_shutdown(server, f->drain_timeout_s * 1000);
        sw_log(SW_LOG_INFO, "event=stopped cancelled_after_timeout=%s", cancelled ? "yes" : "no");
        sw_server_free(server);
    }
    sw_oip_service_free(svc);
    /* After the server: calls it forwarded have all completed. */
    sw_channel_free(next);
    sw_stage_free(stage);
    sw_export_free(export);
    return rc;
}

int sw_service_main(sw_stage_kind kind, int argc, char **argv)
{
    /* Every thread (gRPC's and libtorch's included) inherits this mask, so the
     * signals reach only sigwait. */
    static sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    sw_log_init_from_env();

    service_flags flags;
    if (!parse_flags(kind, &argc, &argv, &flags)) {
        free_flags(&flags);
        return 2;
    }
    grpc_init();
    int rc = serve(kind, &flags, &signals);
    grpc_shutdown();
    free_flags(&flags);
    return rc;
}
