/* The settings of a stage server, from flags, environment and a config file.
 *
 * Every setting is one row of the table in settings.c (name, type, default,
 * bounds, help): the same row gives the flag --NAME, the environment
 * variable STAGEWISE_NAME (dashes as underscores, upper case) and the key
 * NAME in the [stagewise] group of the GKeyFile given by --config (or
 * STAGEWISE_CONFIG). Flags win over the environment, which wins over the
 * file, which wins over the default. Read once, on the main thread, before
 * anything else starts. */
#ifndef SW_SETTINGS_H
#define SW_SETTINGS_H

#include <glib.h>

#include "feature_spec.h"

G_BEGIN_DECLS

/* An on/off setting's value when the server chooses it at start-up. */
#define SW_SETTING_AUTO (-1)

typedef struct sw_settings {
    char *model_dir;
    char *listen;
    char *name;
    char *device;
    char *next;
    int threads;
    int inline_max_rows;
    int inline_when_busy; /* TRUE, FALSE or SW_SETTING_AUTO */
    int torch_threads;
    int max_message_mb;
    int drain_timeout_s;
    int max_rows;
    int max_concurrent;
    int max_request_memory_mb;
    int max_streams_per_connection;
    int keepalive_time_s;
    int keepalive_timeout_s;
    int max_connection_age_s;
    char *tls_cert;
    char *tls_key;
    char *tls_client_ca;
    char *next_tls_ca;
    char *next_tls_cert;
    char *next_tls_key;
    char *auth_token_file;
    char *next_auth_token_file;
    char *log_level;
    char *log_format;
    gboolean access_log;
    char *metrics_listen;
    char *http_listen;
    int max_batch_size;
    int max_queue_delay_us;
    int max_queue_size;
    int instances;
    int max_image_pixels;
    int max_image_mb;
    int max_audio_mb;
    int max_audio_samples;
} sw_settings;

/* Fills `settings` for the server of `kind` from `argv` (consumed options
 * are removed), the environment and the config file. FALSE with an
 * INVALID_ARGUMENT error naming the setting and its source; `--help` prints
 * help and exits. Clear with sw_settings_clear() either way. */
gboolean sw_settings_load(sw_settings *settings, sw_stage_kind kind, int *argc, char ***argv, GError **error);
void sw_settings_clear(sw_settings *settings);

G_END_DECLS

#endif
