#include "service_main.h"

#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "absl_checks.h"
#include "auth.h"
#include "channel.h"
#include "completion.h"
#include "cpu_allowance.h"
#include "export.h"
#include "grpc_log.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "oip_service.h"
#include "reflection.h"
#include "rest_server.h"
#include "server.h"
#include "settings.h"
#include "stage.h"
#include "sw_error.h"
#include "torch_shim.h"

/* Everything a running stage server holds, released in reverse order. */
typedef struct service {
    /* Polled by the server's thread for its own calls and for the calls it
     * forwards to the next stage: a reply coming back from downstream is
     * answered upstream on that thread, and the completion of that answer
     * lands on the queue the same thread is about to read, so no other
     * thread has to be woken per hop. */
    grpc_completion_queue *cq;
    sw_export *export;
    sw_stage *stage;
    sw_channel *next;
    sw_auth *auth;
    sw_oip_service *oip;
    sw_reflection *reflection; /* grpc.reflection v1 and v1alpha */
    sw_server *server;
    sw_metrics *metrics;
    sw_metrics_http *metrics_http;
    sw_rest_server *rest; /* NULL without --http-listen */
    char *tls_cert, *tls_key, *tls_client_ca;
    gboolean inline_when_busy; /* --inline-when-busy, "auto" resolved */
} service;

static char *read_pem(const char *path, const char *what, GError **error)
{
    char *text = NULL;
    GError *local = NULL;
    if (path && !g_file_get_contents(path, &text, NULL, &local)) {
        g_set_error(error, SW_ERROR, SW_CODE_FAILED_PRECONDITION, "%s: %s", what, local->message);
        g_error_free(local);
    }
    return text;
}

static sw_channel *open_next(const sw_settings *s, grpc_completion_queue *cq, GError **error)
{
    GError *local = NULL;
    char *ca = read_pem(s->next_tls_ca, "--next-tls-ca", &local);
    char *cert = local ? NULL : read_pem(s->next_tls_cert, "--next-tls-cert", &local);
    char *key = local ? NULL : read_pem(s->next_tls_key, "--next-tls-key", &local);
    sw_channel *next = NULL;
    if (local == NULL) {
        sw_channel_options o = {.target = s->next,
                                .max_message_bytes = s->max_message_mb * 1024 * 1024,
                                .tls_root_certs = ca,
                                .keepalive_ms = 1000,
                                /* Longer than a reconnect takes on a loaded host:
                                 * docs/DESIGN.md, "Shutdown". */
                                .retry_window_ms = 3000,
                                .tls_cert_chain = cert,
                                .tls_private_key = key,
                                .cq = cq};
        next = sw_channel_new(&o, &local);
    }
    if (local)
        g_propagate_error(error, local);
    g_free(ca);
    g_free(cert);
    g_free(key);
    return next;
}

/* The REST port (--http-listen), with the gRPC port's TLS (mutual too) and
 * token. */
static gboolean start_rest(service *svc, const sw_settings *s, GError **error)
{
    if (s->http_listen == NULL)
        return TRUE;
    sw_rest_options ro = {
        .listen = s->http_listen,
        .worker_threads = s->threads,
        .max_body_bytes = (size_t)s->max_message_mb * 1024 * 1024,
        .max_in_flight = s->max_concurrent,
        .tls_cert_pem = svc->tls_cert,
        .tls_key_pem = svc->tls_key,
        .tls_client_ca_pem = svc->tls_client_ca,
        .auth = svc->auth,
        .metrics = svc->metrics,
    };
    svc->rest = sw_rest_server_start(svc->oip, &ro, error);
    return svc->rest != NULL;
}

/* "auto" is on where the process may keep at most one CPU busy: there the
 * workers cannot run beside the polling thread, so handing them small calls
 * buys no parallelism and costs a wake-up each. */
static gboolean inline_when_busy(const sw_settings *s)
{
    if (s->inline_when_busy != SW_SETTING_AUTO)
        return s->inline_when_busy;
    sw_cpu_allowance cpus = sw_cpu_allowance_read();
    gboolean on = cpus.cpus <= 1.0;
    sw_log(SW_LOG_INFO, "event=inline_when_busy value=%s cpus=%.2f limited_by=\"%s\"", on ? "true" : "false", cpus.cpus,
           cpus.source);
    return on;
}

static gboolean service_start(service *svc, sw_stage_kind kind, const sw_settings *s, GError **error)
{
    svc->export = sw_export_load(s->model_dir, error);
    if (svc->export == NULL)
        return FALSE;
    const char *name = s->name ? s->name : svc->export->name;
    sw_torch_set_num_threads(s->torch_threads);
    svc->stage = sw_stage_new(kind, svc->export, name, s->device, error);
    if (svc->stage == NULL)
        return FALSE;
    svc->stage->image_limits =
        (sw_image_limits){.max_bytes = (size_t)s->max_image_mb * 1024 * 1024, .max_pixels = s->max_image_pixels};
    svc->stage->audio_limits =
        (sw_audio_limits){.max_bytes = (size_t)s->max_audio_mb * 1024 * 1024, .max_samples = s->max_audio_samples};
    svc->cq = grpc_completion_queue_create_for_next(NULL);
    if (s->next && (svc->next = open_next(s, svc->cq, error)) == NULL)
        return FALSE;
    gboolean serves_pipeline = s->next || kind == SW_STAGE_POSTPROCESSOR;
    const char *models[] = {svc->stage->model_name, serves_pipeline ? name : NULL, NULL};
    svc->metrics = sw_metrics_new(models);
    if (s->metrics_listen &&
        (svc->metrics_http = sw_metrics_http_start(s->metrics_listen, svc->metrics, error)) == NULL)
        return FALSE;
    char *next_token = NULL;
    if (s->next_auth_token_file && (next_token = sw_auth_read_token(s->next_auth_token_file, error)) == NULL)
        return FALSE;
    svc->inline_when_busy = inline_when_busy(s);
    sw_oip_service_options oo = {
        .max_rows = s->max_rows,
        .inline_max_rows = s->inline_max_rows,
        .inline_when_busy = svc->inline_when_busy,
        .max_reply_bytes = (size_t)s->max_message_mb * 1024 * 1024,
        .access_log = s->access_log,
        .next_auth_token = next_token,
        .batching =
            {
                .max_batch_size = s->max_batch_size,
                .max_queue_delay_us = s->max_queue_delay_us,
                .max_queue_size = s->max_queue_size,
                .executors = s->instances,
            },
        .metrics = svc->metrics,
    };
    svc->oip = sw_oip_service_new(svc->stage, svc->export, name, svc->next, &oo, error);
    g_free(next_token);
    if (svc->oip == NULL)
        return FALSE;
    if (s->auth_token_file && (svc->auth = sw_auth_new_from_file(s->auth_token_file, error)) == NULL)
        return FALSE;
    if ((s->tls_cert && (svc->tls_cert = read_pem(s->tls_cert, "--tls-cert", error)) == NULL) ||
        (s->tls_key && (svc->tls_key = read_pem(s->tls_key, "--tls-key", error)) == NULL) ||
        (s->tls_client_ca && (svc->tls_client_ca = read_pem(s->tls_client_ca, "--tls-client-ca", error)) == NULL))
        return FALSE;
    if ((svc->reflection = sw_reflection_new(error)) == NULL)
        return FALSE;
    sw_method methods[SW_OIP_SERVICE_MAX_METHODS + SW_REFLECTION_METHODS];
    size_t n_methods = sw_oip_service_methods(svc->oip, methods);
    n_methods += sw_reflection_methods(svc->reflection, methods + n_methods);
    /* The budget is the server's alone, not also gRPC's resource quota:
     * under pressure gRPC resets whichever connections it picks (GOAWAY
     * "Buffers full"), and scripts/attacks.py saw it pick well-behaved
     * clients' connections. Reading no request past --max-concurrent is
     * what bounds buffering. */
    size_t budget = (size_t)s->max_request_memory_mb * 1024 * 1024;
    sw_server_options so = {
        .listen = s->listen,
        .worker_threads = s->threads,
        .max_message_bytes = s->max_message_mb * 1024 * 1024,
        .max_in_flight = s->max_concurrent,
        .request_budget_bytes = budget,
        .max_streams_per_connection = s->max_streams_per_connection,
        .keepalive_time_ms = s->keepalive_time_s * 1000,
        .keepalive_timeout_ms = s->keepalive_timeout_s * 1000,
        .max_connection_age_ms = s->max_connection_age_s * 1000,
        .tls_cert_pem = svc->tls_cert,
        .tls_key_pem = svc->tls_key,
        .tls_client_ca_pem = svc->tls_client_ca,
        .admit = svc->auth ? sw_auth_admit : NULL,
        .admit_data = svc->auth,
        .on_refused = sw_metrics_record_refused,
        .on_refused_data = svc->metrics,
        .cq = svc->cq,
        .poll_work = sw_oip_service_poll_work(svc->oip),
    };
    svc->server = sw_server_new(&so, methods, n_methods, error);
    return svc->server != NULL && start_rest(svc, s, error);
}

static void service_stop(service *svc)
{
    sw_rest_server_stop(svc->rest);
    sw_server_free(svc->server);
    sw_reflection_free(svc->reflection);
    sw_oip_service_free(svc->oip);
    sw_metrics_http_stop(svc->metrics_http);
    sw_metrics_free(svc->metrics);
    /* After the server: calls it forwarded have all completed. */
    sw_channel_free(svc->next);
    if (svc->cq) {
        /* The server shut it down if it ever polled it; anything still
         * queued (nothing, as the server drains first) is completed here. */
        grpc_completion_queue_shutdown(svc->cq);
        grpc_event ev;
        while ((ev = grpc_completion_queue_next(svc->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)).type !=
               GRPC_QUEUE_SHUTDOWN) {
            if (ev.type == GRPC_OP_COMPLETE)
                sw_completion_run(ev.tag, ev.success);
        }
        grpc_completion_queue_destroy(svc->cq);
    }
    sw_auth_free(svc->auth);
    sw_stage_free(svc->stage);
    sw_export_free(svc->export);
    g_free(svc->tls_cert);
    g_free(svc->tls_key);
    g_free(svc->tls_client_ca);
}

/* Raises the soft limit on open files to the hard one and returns it. Each
 * client connection is a descriptor, and gRPC core 1.51 never retries
 * accept() after EMFILE: a server that runs out stops accepting anyone,
 * for good. Distributions start processes at a soft limit of 1024 with a
 * far higher hard limit. */
static rlim_t raise_open_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        rlim_t wanted = limit.rlim_max;
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
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

/* Serves while the module loads (health says NOT_SERVING, inference
 * UNAVAILABLE), so probes can tell a slow load from a dead server. */
static gboolean load_while_serving(service *svc, int instances, GError **error)
{
    sw_server_start(svc->server);
    sw_log(SW_LOG_INFO, "event=loading model=%s port=%d module=\"%s\" instances=%d", svc->stage->model_name,
           sw_server_port(svc->server), svc->stage->module_path, instances);
    if (!sw_stage_load_module(svc->stage, instances, error)) {
        sw_server_shutdown(svc->server, 0);
        return FALSE;
    }
    sw_oip_service_set_loaded(svc->oip);
    return TRUE;
}

static void serve_until_signal(service *svc, const sw_settings *s, sigset_t *signals, rlim_t open_files)
{
    sw_oip_service_set_serving(svc->oip, TRUE);
    sw_log(SW_LOG_INFO,
           "event=listening model=%s device=%s port=%d metrics_port=%d http_port=%d threads=%d inline_when_busy=%s "
           "tls=%s auth=%s next=%s max_open_files=%llu",
           svc->stage->model_name, svc->stage->device, sw_server_port(svc->server),
           svc->metrics_http ? sw_metrics_http_port(svc->metrics_http) : 0,
           svc->rest ? sw_rest_server_port(svc->rest) : 0, s->threads, svc->inline_when_busy ? "true" : "false",
           s->tls_cert ? (s->tls_client_ca ? "mutual" : "on") : "off", svc->auth ? "bearer" : "off",
           s->next ? s->next : "none", (unsigned long long)open_files);
    int sig = 0;
    sigwait(signals, &sig);
    /* Probes see NOT_SERVING at once, so traffic moves away while calls in
     * flight finish. */
    sw_oip_service_set_serving(svc->oip, FALSE);
    sw_oip_service_end_watches(svc->oip);
    sw_log(SW_LOG_INFO, "event=draining signal=%d timeout_s=%d", sig, s->drain_timeout_s);
    g_thread_unref(g_thread_new("sw-signal", exit_on_second_signal, signals));
    /* First: its calls in flight may be waiting on a hop that the gRPC
     * server's polling thread completes. */
    sw_rest_server_stop(svc->rest);
    svc->rest = NULL;
    gboolean cancelled = sw_server_shutdown(svc->server, s->drain_timeout_s * 1000);
    sw_log(SW_LOG_INFO, "event=stopped cancelled_after_timeout=%s", cancelled ? "yes" : "no");
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
    rlim_t open_files = raise_open_file_limit();

    sw_settings settings;
    GError *error = NULL;
    if (!sw_settings_load(&settings, kind, &argc, &argv, &error) ||
        !sw_log_configure(settings.log_level, settings.log_format)) {
        fprintf(stderr, "%s\n",
                error ? error->message
                      : "--log-level must be debug, info, warn or error and "
                        "--log-format kv or json");
        g_clear_error(&error);
        sw_settings_clear(&settings);
        return 2;
    }
    sw_log_capture_grpc();
    /* A debug build's check, and a seventh of gRPC's work per call here. */
    sw_log(SW_LOG_DEBUG, "event=absl_deadlock_detection state=%s",
           sw_absl_deadlock_detection_off() ? "off" : "unchanged");
    grpc_init();
    service svc = {0};
    int rc = 0;
    if (service_start(&svc, kind, &settings, &error) && load_while_serving(&svc, settings.instances, &error)) {
        serve_until_signal(&svc, &settings, &signals, open_files);
    } else {
        sw_log(SW_LOG_ERROR, "event=start_failed model_dir=\"%s\" error=\"%s\"", settings.model_dir, error->message);
        g_error_free(error);
        rc = 1;
    }
    service_stop(&svc);
    grpc_shutdown();
    sw_settings_clear(&settings);
    return rc;
}
