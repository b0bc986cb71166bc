#include "settings.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "stage.h"
#include "sw_error.h"

typedef enum option_type {
    OPT_STRING,
    OPT_INT,
    OPT_BOOL,
    OPT_AUTO_BOOL, /* OPT_BOOL that may also be "auto": an int, SW_SETTING_AUTO */
} option_type;

#define ALL_STAGES 7u
#define PREDICTOR_ONLY (1u << SW_STAGE_PREDICTOR)
#define PREPROCESSOR_ONLY (1u << SW_STAGE_PREPROCESSOR)

typedef struct option {
    const char *name;
    option_type type;
    const char *default_value; /* NULL: unset */
    int min, max;              /* OPT_INT */
    size_t offset;
    unsigned stages; /* bit per sw_stage_kind */
    const char *arg;
    const char *help;
} option;

#define S(field) offsetof(sw_settings, field)

static const option options[] = {
    {.name = "model-dir",
     .type = OPT_STRING,
     .offset = S(model_dir),
     .stages = ALL_STAGES,
     .arg = "DIR",
     .help = "Ludwig TorchScript export folder (required)"},
    {.name = "listen",
     .type = OPT_STRING,
     .default_value = "0.0.0.0:8001",
     .offset = S(listen),
     .stages = ALL_STAGES,
     .arg = "HOST:PORT",
     .help = "address to serve on; port 0 picks a free one; unix:PATH for a socket"},
    {.name = "name",
     .type = OPT_STRING,
     .offset = S(name),
     .stages = ALL_STAGES,
     .arg = "NAME",
     .help = "model name (default: the export folder's name)"},
    {.name = "device",
     .type = OPT_STRING,
     .default_value = "cpu",
     .offset = S(device),
     .stages = PREDICTOR_ONLY,
     .arg = "DEV",
     .help = "device for the model: cpu, cuda, cuda:N"},
    {.name = "next",
     .type = OPT_STRING,
     .offset = S(next),
     .stages = ALL_STAGES,
     .arg = "TARGET",
     .help = "next stage (host:port, ipv4:a:p,b:q, dns:///name:port, unix:PATH); then the pipeline model NAME is "
             "served too"},
    {.name = "threads",
     .type = OPT_INT,
     .default_value = "4",
     .min = 1,
     .max = 1024,
     .offset = S(threads),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "worker threads running inference"},
    {.name = "inline-max-rows",
     .type = OPT_INT,
     .default_value = "16",
     .max = 4096,
     .offset = S(inline_max_rows),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "without batching, a request of at most N rows (and 16 KiB) runs on the thread that received it "
             "while no other inference call is in flight, saving a thread hand-off (0: every call goes to a worker; "
             "never for image or audio inputs)"},
    {.name = "inline-when-busy",
     .type = OPT_AUTO_BOOL,
     .default_value = "auto",
     .offset = S(inline_when_busy),
     .stages = ALL_STAGES,
     .arg = "auto|true|false",
     .help = "run those small requests on the receiving thread even while other calls are in flight, as a bare "
             "gRPC server would: the least CPU per call where a stage has a core or less to itself, but its small "
             "calls then use one core (auto: true where the CPU affinity or cgroup quota allows at most one CPU)"},
    {.name = "torch-threads",
     .type = OPT_INT,
     .default_value = "1",
     .min = 1,
     .max = 256,
     .offset = S(torch_threads),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "libtorch intra-op threads per call"},
    {.name = "max-message-mb",
     .type = OPT_INT,
     .default_value = "256",
     .min = 1,
     .max = 2047,
     .offset = S(max_message_mb),
     .stages = ALL_STAGES,
     .arg = "MIB",
     .help = "largest request or reply"},
    {.name = "drain-timeout",
     .type = OPT_INT,
     .default_value = "30",
     .max = 86400,
     .offset = S(drain_timeout_s),
     .stages = ALL_STAGES,
     .arg = "S",
     .help = "seconds to finish calls in flight after SIGTERM"},
    {.name = "max-rows",
     .type = OPT_INT,
     .default_value = "0",
     .max = G_MAXINT,
     .offset = S(max_rows),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "most rows in one request (0: no limit)"},
    {.name = "max-concurrent",
     .type = OPT_INT,
     .default_value = "0",
     .max = G_MAXINT,
     .offset = S(max_concurrent),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "most inference calls in flight; more get RESOURCE_EXHAUSTED (0: no limit)"},
    {.name = "max-request-memory-mb",
     .type = OPT_INT,
     .default_value = "1024",
     .min = 0,
     .max = 1048576,
     .offset = S(max_request_memory_mb),
     .stages = ALL_STAGES,
     .arg = "MIB",
     .help = "most request bytes held by inference calls in flight; more get RESOURCE_EXHAUSTED (0: no limit)"},
    {.name = "max-streams-per-connection",
     .type = OPT_INT,
     .default_value = "512",
     .max = G_MAXINT,
     .offset = S(max_streams_per_connection),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "most concurrent calls on one client connection; more wait in the client (0: no limit)"},
    {.name = "keepalive-time",
     .type = OPT_INT,
     .default_value = "60",
     .min = 1,
     .max = 86400,
     .offset = S(keepalive_time_s),
     .stages = ALL_STAGES,
     .arg = "S",
     .help = "seconds between keepalive pings on idle connections"},
    {.name = "keepalive-timeout",
     .type = OPT_INT,
     .default_value = "20",
     .min = 1,
     .max = 86400,
     .offset = S(keepalive_timeout_s),
     .stages = ALL_STAGES,
     .arg = "S",
     .help = "seconds to wait for a keepalive answer"},
    {.name = "max-connection-age",
     .type = OPT_INT,
     .default_value = "0",
     .max = 864000,
     .offset = S(max_connection_age_s),
     .stages = ALL_STAGES,
     .arg = "S",
     .help = "close connections after this long so clients rebalance (0: never)"},
    {.name = "tls-cert",
     .type = OPT_STRING,
     .offset = S(tls_cert),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "server certificate chain (PEM); with --tls-key enables TLS"},
    {.name = "tls-key",
     .type = OPT_STRING,
     .offset = S(tls_key),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "server private key (PEM)"},
    {.name = "tls-client-ca",
     .type = OPT_STRING,
     .offset = S(tls_client_ca),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "require client certificates signed by these CAs (mutual TLS)"},
    {.name = "next-tls-ca",
     .type = OPT_STRING,
     .offset = S(next_tls_ca),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "CAs to verify the next stage with; enables TLS on --next"},
    {.name = "next-tls-cert",
     .type = OPT_STRING,
     .offset = S(next_tls_cert),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "client certificate for the next stage (mutual TLS)"},
    {.name = "next-tls-key",
     .type = OPT_STRING,
     .offset = S(next_tls_key),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "client private key for the next stage"},
    {.name = "auth-token-file",
     .type = OPT_STRING,
     .offset = S(auth_token_file),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "require 'authorization: Bearer <token>' with this file's token (health stays open)"},
    {.name = "next-auth-token-file",
     .type = OPT_STRING,
     .offset = S(next_auth_token_file),
     .stages = ALL_STAGES,
     .arg = "FILE",
     .help = "bearer token to send to the next stage"},
    {.name = "log-level",
     .type = OPT_STRING,
     .default_value = "info",
     .offset = S(log_level),
     .stages = ALL_STAGES,
     .arg = "LEVEL",
     .help = "debug, info, warn or error"},
    {.name = "log-format",
     .type = OPT_STRING,
     .default_value = "kv",
     .offset = S(log_format),
     .stages = ALL_STAGES,
     .arg = "FORMAT",
     .help = "kv (key=value) or json"},
    {.name = "access-log",
     .type = OPT_BOOL,
     .default_value = "false",
     .offset = S(access_log),
     .stages = ALL_STAGES,
     .help = "log one line per inference call"},
    {.name = "metrics-listen",
     .type = OPT_STRING,
     .offset = S(metrics_listen),
     .stages = ALL_STAGES,
     .arg = "HOST:PORT",
     .help = "serve Prometheus metrics over HTTP here"},
    {.name = "http-listen",
     .type = OPT_STRING,
     .offset = S(http_listen),
     .stages = ALL_STAGES,
     .arg = "HOST:PORT",
     .help = "also serve the OIP (KServe v2) REST protocol over HTTP/1.1 here"},
    {.name = "max-batch-size",
     .type = OPT_INT,
     .default_value = "0",
     .max = 1 << 20,
     .offset = S(max_batch_size),
     .stages = ALL_STAGES,
     .arg = "ROWS",
     .help = "dynamic batching: most rows in one forward (0: off)"},
    {.name = "max-queue-delay-us",
     .type = OPT_INT,
     .default_value = "0",
     .max = 10000000,
     .offset = S(max_queue_delay_us),
     .stages = ALL_STAGES,
     .arg = "US",
     .help = "dynamic batching: longest wait for a batch to fill (0: a batch is what waits when the last one ends)"},
    {.name = "max-queue-size",
     .type = OPT_INT,
     .default_value = "1024",
     .min = 1,
     .max = G_MAXINT,
     .offset = S(max_queue_size),
     .stages = ALL_STAGES,
     .arg = "N",
     .help = "dynamic batching: most requests waiting; more get RESOURCE_EXHAUSTED"},
    {.name = "instances",
     .type = OPT_INT,
     .default_value = "1",
     .min = 1,
     .max = 64,
     .offset = S(instances),
     .stages = PREDICTOR_ONLY,
     .arg = "N",
     .help = "model copies on the device, run concurrently"},
    {.name = "max-image-pixels",
     .type = OPT_INT,
     .default_value = G_STRINGIFY(SW_STAGE_DEFAULT_MAX_IMAGE_PIXELS),
     .max = G_MAXINT,
     .offset = S(max_image_pixels),
     .stages = PREPROCESSOR_ONLY,
     .arg = "N",
     .help = "largest image (width x height) decoded from a file or sent as UINT8; checked from the file's header "
             "(0: no limit)"},
    {.name = "max-image-mb",
     .type = OPT_INT,
     .default_value = G_STRINGIFY(SW_STAGE_DEFAULT_MAX_MEDIA_MB),
     .max = 2047,
     .offset = S(max_image_mb),
     .stages = PREPROCESSOR_ONLY,
     .arg = "MIB",
     .help = "largest image file (0: no limit)"},
    {.name = "max-audio-mb",
     .type = OPT_INT,
     .default_value = G_STRINGIFY(SW_STAGE_DEFAULT_MAX_MEDIA_MB),
     .max = 2047,
     .offset = S(max_audio_mb),
     .stages = PREPROCESSOR_ONLY,
     .arg = "MIB",
     .help = "largest audio file (0: no limit)"},
    {.name = "max-audio-samples",
     .type = OPT_INT,
     .default_value = G_STRINGIFY(SW_STAGE_DEFAULT_MAX_AUDIO_SAMPLES),
     .max = G_MAXINT,
     .offset = S(max_audio_samples),
     .stages = PREPROCESSOR_ONLY,
     .arg = "N",
     .help = "most samples (all channels) in one waveform, decoded or sent as FP32; checked from the file's header "
             "(0: no limit)"},
};

static char *env_name(const char *name)
{
    char *upper = g_ascii_strup(name, -1);
    g_strdelimit(upper, "-", '_');
    char *env = g_strconcat("STAGEWISE_", upper, NULL);
    g_free(upper);
    return env;
}

/* Flags are gathered as text first, so that every source goes through the
 * same parsing and checks. */
static gboolean collect_flag(const gchar *option_name, const gchar *value, gpointer data, GError **error)
{
    (void)error;
    GHashTable *flags = data;
    const char *name = option_name + (g_str_has_prefix(option_name, "--") ? 2 : 1);
    g_hash_table_insert(flags, g_strdup(name), g_strdup(value ? value : "true"));
    return TRUE;
}

static gboolean parse_value(const option *o, const char *text, const char *source, sw_settings *s, GError **error)
{
    char *field = (char *)s + o->offset;
    if (o->type == OPT_STRING) {
        g_free(*(char **)field);
        *(char **)field = g_strdup(text);
        return TRUE;
    }
    if (o->type == OPT_AUTO_BOOL && !g_ascii_strcasecmp(text, "auto")) {
        *(int *)field = SW_SETTING_AUTO;
        return TRUE;
    }
    if (o->type == OPT_BOOL || o->type == OPT_AUTO_BOOL) {
        gboolean yes = !g_ascii_strcasecmp(text, "true") || !strcmp(text, "1") || !g_ascii_strcasecmp(text, "yes");
        gboolean no = !g_ascii_strcasecmp(text, "false") || !strcmp(text, "0") || !g_ascii_strcasecmp(text, "no");
        if (!yes && !no) {
            g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: %s must be %s, not '%s'", source, o->name,
                        o->type == OPT_AUTO_BOOL ? "auto, true or false" : "true or false", text);
            return FALSE;
        }
        *(gboolean *)field = yes;
        return TRUE;
    }
    char *end = NULL;
    long long v = g_ascii_strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < o->min || v > o->max) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "%s: %s must be a whole number from %d to %d, not '%s'",
                    source, o->name, o->min, o->max, text);
        return FALSE;
    }
    *(int *)field = (int)v;
    return TRUE;
}

static GKeyFile *load_config_file(GHashTable *flags, GError **error)
{
    const char *path = g_hash_table_lookup(flags, "config");
    if (path == NULL)
        path = g_getenv("STAGEWISE_CONFIG");
    GKeyFile *kf = g_key_file_new();
    GError *local = NULL;
    if (path && !g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "config file %s: %s", path, local->message);
        g_error_free(local);
        g_key_file_unref(kf);
        return NULL;
    }
    return kf;
}

/* Resolves each setting from the highest-priority source that has it. */
static gboolean resolve(sw_settings *s, sw_stage_kind kind, GHashTable *flags, GKeyFile *kf, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        const option *o = &options[i];
        /* Settings a stage does not offer keep their defaults. */
        if (!(o->stages & (1u << kind))) {
            if (o->default_value && !parse_value(o, o->default_value, "default", s, error))
                return FALSE;
            continue;
        }
        char *env = env_name(o->name);
        char *from_file = g_key_file_get_value(kf, "stagewise", o->name, NULL);
        const char *text = g_hash_table_lookup(flags, o->name);
        const char *source = "flag";
        if (text == NULL && g_getenv(env))
            text = g_getenv(env), source = env;
        if (text == NULL && from_file)
            text = from_file, source = "config file";
        if (text == NULL)
            text = o->default_value, source = "default";
        gboolean ok = text == NULL || parse_value(o, text, source, s, error);
        g_free(env);
        g_free(from_file);
        if (!ok)
            return FALSE;
    }
    if (s->model_dir == NULL) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "--model-dir is required (see --help)");
        return FALSE;
    }
    if (!s->tls_cert != !s->tls_key) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "--tls-cert and --tls-key go together");
        return FALSE;
    }
    return TRUE;
}

static GOptionEntry *option_entries(sw_stage_kind kind, GPtrArray *help_texts)
{
    GOptionEntry *entries = g_new0(GOptionEntry, G_N_ELEMENTS(options) + 2);
    size_t n = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        const option *o = &options[i];
        if (!(o->stages & (1u << kind)))
            continue;
        char *env = env_name(o->name);
        char *help =
            g_strdup_printf("%s (default: %s; env %s)", o->help, o->default_value ? o->default_value : "unset", env);
        g_free(env);
        g_ptr_array_add(help_texts, help);
        /* A bare --NAME is "true"; --NAME=VALUE also takes "auto" or "false". */
        GOptionFlags flags = o->type == OPT_BOOL        ? G_OPTION_FLAG_NO_ARG
                             : o->type == OPT_AUTO_BOOL ? G_OPTION_FLAG_OPTIONAL_ARG
                                                        : 0;
        entries[n++] = (GOptionEntry){.long_name = o->name,
                                      .flags = flags,
                                      .arg = G_OPTION_ARG_CALLBACK,
                                      .arg_data = (gpointer)collect_flag,
                                      .description = help,
                                      .arg_description = o->arg};
    }
    entries[n++] = (GOptionEntry){
        .long_name = "config",
        .arg = G_OPTION_ARG_CALLBACK,
        .arg_data = (gpointer)collect_flag,
        .description = "GKeyFile with a [stagewise] group of these settings (env STAGEWISE_CONFIG)",
        .arg_description = "FILE",
    };
    return entries;
}

gboolean sw_settings_load(sw_settings *s, sw_stage_kind kind, int *argc, char ***argv, GError **error)
{
    memset(s, 0, sizeof *s);
    GHashTable *flags = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    GPtrArray *help_texts = g_ptr_array_new_with_free_func(g_free);
    GOptionEntry *entries = option_entries(kind, help_texts);
    char *summary = g_strdup_printf("Serves the %s of a Ludwig TorchScript export over the Open Inference "
                                    "Protocol (gRPC). Every setting can also come from the environment or a "
                                    "config file; flags win.",
                                    sw_stage_kind_name(kind));
    GOptionContext *ctx = g_option_context_new(NULL);
    g_option_context_set_summary(ctx, summary);
    GOptionGroup *group = g_option_group_new(NULL, NULL, NULL, flags, NULL);
    g_option_group_add_entries(group, entries);
    g_option_context_set_main_group(ctx, group);
    GError *local = NULL;
    gboolean ok = g_option_context_parse(ctx, argc, argv, &local);
    if (!ok) {
        g_set_error_literal(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, local->message);
        g_error_free(local);
    }
    GKeyFile *kf = ok ? load_config_file(flags, error) : NULL;
    ok = kf && resolve(s, kind, flags, kf, error);
    if (kf)
        g_key_file_unref(kf);
    g_option_context_free(ctx);
    g_free(summary);
    g_free(entries);
    g_ptr_array_unref(help_texts);
    g_hash_table_unref(flags);
    return ok;
}

void sw_settings_clear(sw_settings *s)
{
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++)
        if (options[i].type == OPT_STRING)
            g_clear_pointer((char **)((char *)s + options[i].offset), g_free);
}
