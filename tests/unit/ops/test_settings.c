/* Server settings: defaults, and flags over the environment over the config
 * file over the default, with errors that name the setting and where its
 * value came from. */
#include <string.h>

#include "settings.h"
#include "sw_error.h"
#include "unit_support.h"

/* An environment variable set for one test and put back as it was. */
typedef struct env_guard {
    char *name;
    char *old; /* NULL: was unset */
} env_guard;

static env_guard env_set(const char *name, const char *value)
{
    env_guard g = {g_strdup(name), g_strdup(g_getenv(name))};
    if (value)
        g_setenv(name, value, TRUE);
    else
        g_unsetenv(name);
    return g;
}

static void env_restore(env_guard *g)
{
    if (g->old)
        g_setenv(g->name, g->old, TRUE);
    else
        g_unsetenv(g->name);
    g_free(g->name);
    g_free(g->old);
}

/* sw_settings_load over a copy of `args` (NULL-terminated, without the
 * program name); `*rest` (if not NULL) gets what was left in argv. */
static gboolean load(sw_settings *s, sw_stage_kind kind, const char *const *args, char ***rest, GError **error)
{
    int argc = 1;
    while (args[argc - 1])
        argc++;
    char **argv = g_new0(char *, argc + 1);
    /* Our own copies, so a test can see that what is left is untouched and
     * the parser only reorders pointers. */
    char **owned = g_new0(char *, argc + 1);
    owned[0] = g_strdup("stagewise-test");
    for (int i = 1; i < argc; i++)
        owned[i] = g_strdup(args[i - 1]);
    memcpy(argv, owned, sizeof(char *) * (size_t)argc);
    char **argv_in = argv;
    gboolean ok = sw_settings_load(s, kind, &argc, &argv, error);
    if (rest) {
        *rest = g_new0(char *, argc + 1);
        for (int i = 0; i < argc; i++)
            (*rest)[i] = g_strdup(argv[i]);
    }
    g_assert_true(argv == argv_in);
    g_free(argv);
    g_strfreev(owned);
    return ok;
}

static sw_settings load_ok(sw_stage_kind kind, const char *const *args)
{
    sw_settings s;
    GError *error = NULL;
    g_assert_true(load(&s, kind, args, NULL, &error));
    g_assert_no_error(error);
    return s;
}

static void expect_invalid(sw_stage_kind kind, const char *const *args, const char *part1, const char *part2)
{
    sw_settings s;
    GError *error = NULL;
    g_assert_false(load(&s, kind, args, NULL, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT);
    if (strstr(error->message, part1) == NULL || (part2 && strstr(error->message, part2) == NULL))
        g_error("message '%s' lacks '%s' or '%s'", error->message, part1, part2 ? part2 : "");
    g_error_free(error);
    sw_settings_clear(&s);
}

static char *write_config(const char *dir, const char *text)
{
    char *path = g_build_filename(dir, "stagewise.ini", NULL);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    return path;
}

static void test_defaults(void)
{
    sw_settings s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/models/m", NULL});
    g_assert_cmpstr(s.model_dir, ==, "/models/m");
    g_assert_cmpstr(s.listen, ==, "0.0.0.0:8001");
    g_assert_null(s.name);
    g_assert_cmpstr(s.device, ==, "cpu");
    g_assert_null(s.next);
    g_assert_cmpint(s.threads, ==, 4);
    g_assert_cmpint(s.torch_threads, ==, 1);
    g_assert_cmpint(s.max_message_mb, ==, 256);
    g_assert_cmpint(s.drain_timeout_s, ==, 30);
    g_assert_cmpint(s.max_rows, ==, 0);
    g_assert_cmpint(s.max_concurrent, ==, 0);
    g_assert_cmpint(s.max_request_memory_mb, ==, 1024);
    g_assert_cmpint(s.max_streams_per_connection, ==, 512);
    g_assert_cmpint(s.keepalive_time_s, ==, 60);
    g_assert_cmpint(s.keepalive_timeout_s, ==, 20);
    g_assert_cmpint(s.max_connection_age_s, ==, 0);
    g_assert_null(s.tls_cert);
    g_assert_null(s.tls_key);
    g_assert_null(s.auth_token_file);
    g_assert_null(s.next_auth_token_file);
    g_assert_cmpstr(s.log_level, ==, "info");
    g_assert_cmpstr(s.log_format, ==, "kv");
    g_assert_false(s.access_log);
    g_assert_cmpint(s.inline_when_busy, ==, SW_SETTING_AUTO);
    g_assert_null(s.metrics_listen);
    g_assert_null(s.http_listen);
    g_assert_cmpint(s.max_batch_size, ==, 0);
    g_assert_cmpint(s.max_queue_delay_us, ==, 0);
    g_assert_cmpint(s.max_queue_size, ==, 1024);
    g_assert_cmpint(s.instances, ==, 1);
    sw_settings_clear(&s);
    g_assert_null(s.model_dir);
    g_assert_null(s.listen);
    g_assert_null(s.log_level);
}

static void test_flags(void)
{
    char **rest = NULL;
    sw_settings s;
    GError *error = NULL;
    const char *const args[] = {
        "--model-dir",  "/m",          "positional", "--threads=8",          "--listen", "127.0.0.1:0",
        "--access-log", "--name",      "shop",       "--max-queue-delay-us", "250",      "--device",
        "cuda:1",       "--instances", "3",          "--inline-when-busy",   NULL};
    g_assert_true(load(&s, SW_STAGE_PREDICTOR, args, &rest, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(s.model_dir, ==, "/m");
    g_assert_cmpint(s.threads, ==, 8);
    g_assert_cmpstr(s.listen, ==, "127.0.0.1:0");
    g_assert_true(s.access_log);
    g_assert_cmpstr(s.name, ==, "shop");
    g_assert_cmpint(s.max_queue_delay_us, ==, 250);
    g_assert_cmpstr(s.device, ==, "cuda:1");
    g_assert_cmpint(s.instances, ==, 3);
    g_assert_cmpint(s.inline_when_busy, ==, TRUE);
    /* Consumed options are gone; the rest stays, in order. */
    g_assert_cmpuint(g_strv_length(rest), ==, 2);
    g_assert_cmpstr(rest[0], ==, "stagewise-test");
    g_assert_cmpstr(rest[1], ==, "positional");
    g_strfreev(rest);
    sw_settings_clear(&s);

    /* The REST port: off by default (above), from a flag or the environment. */
    s = load_ok(SW_STAGE_POSTPROCESSOR,
                (const char *const[]){"--model-dir", "/m", "--http-listen", "0.0.0.0:8080", NULL});
    g_assert_cmpstr(s.http_listen, ==, "0.0.0.0:8080");
    sw_settings_clear(&s);
    env_guard http_env = env_set("STAGEWISE_HTTP_LISTEN", "127.0.0.1:9000");
    s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", NULL});
    g_assert_cmpstr(s.http_listen, ==, "127.0.0.1:9000");
    sw_settings_clear(&s);
    env_restore(&http_env);

    /* TLS needs the certificate and the key together. */
    s = load_ok(SW_STAGE_PREPROCESSOR,
                (const char *const[]){"--model-dir", "/m", "--tls-cert", "c.pem", "--tls-key", "k.pem", NULL});
    g_assert_cmpstr(s.tls_cert, ==, "c.pem");
    g_assert_cmpstr(s.tls_key, ==, "k.pem");
    sw_settings_clear(&s);
    expect_invalid(SW_STAGE_PREPROCESSOR, (const char *const[]){"--model-dir", "/m", "--tls-cert", "c.pem", NULL},
                   "--tls-cert and --tls-key", NULL);
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--threads", "2", NULL}, "--model-dir is required", NULL);
}

/* One setting from each source in turn, the higher one present each time. */
static void test_precedence(void)
{
    char *dir = sw_test_dir_new();
    char *config = write_config(dir, "[stagewise]\nthreads=5\nlog-level=debug\nmodel-dir=/from/file\n"
                                     "max-queue-delay-us=7\n[other]\nthreads=99\n");
    env_guard threads_env = env_set("STAGEWISE_THREADS", "6");
    env_guard delay_env = env_set("STAGEWISE_MAX_QUEUE_DELAY_US", "8");

    sw_settings s = load_ok(SW_STAGE_PREDICTOR,
                            (const char *const[]){"--config", config, "--threads", "7", "--model-dir", "/f", NULL});
    g_assert_cmpint(s.threads, ==, 7);            /* flag */
    g_assert_cmpint(s.max_queue_delay_us, ==, 8); /* env: dashes become underscores */
    g_assert_cmpstr(s.log_level, ==, "debug");    /* config file */
    g_assert_cmpstr(s.model_dir, ==, "/f");
    g_assert_cmpint(s.keepalive_time_s, ==, 60); /* default */
    sw_settings_clear(&s);

    s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--config", config, NULL});
    g_assert_cmpint(s.threads, ==, 6);
    g_assert_cmpstr(s.model_dir, ==, "/from/file");
    sw_settings_clear(&s);

    env_restore(&threads_env);
    threads_env = env_set("STAGEWISE_THREADS", NULL);
    s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--config", config, NULL});
    g_assert_cmpint(s.threads, ==, 5); /* only the [stagewise] group counts */
    sw_settings_clear(&s);

    /* STAGEWISE_CONFIG names the file when no flag does. */
    env_guard config_env = env_set("STAGEWISE_CONFIG", config);
    s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){NULL});
    g_assert_cmpint(s.threads, ==, 5);
    g_assert_cmpstr(s.model_dir, ==, "/from/file");
    sw_settings_clear(&s);
    env_restore(&config_env);

    s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", NULL});
    g_assert_cmpint(s.threads, ==, 4);
    g_assert_cmpstr(s.log_level, ==, "info");
    g_assert_cmpint(s.max_queue_delay_us, ==, 8);
    sw_settings_clear(&s);

    /* On, off or auto: a bare flag is on; "=VALUE" and the environment say which. */
    static const struct {
        const char *flag, *env;
        int expected;
    } busy[] = {
        {"--inline-when-busy=false", NULL, FALSE}, {"--inline-when-busy=auto", "true", SW_SETTING_AUTO},
        {"--inline-when-busy=TRUE", NULL, TRUE},   {NULL, "false", FALSE},
        {NULL, "Auto", SW_SETTING_AUTO},           {"--inline-when-busy", "false", TRUE},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(busy); i++) {
        env_guard busy_env = env_set("STAGEWISE_INLINE_WHEN_BUSY", busy[i].env);
        s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", busy[i].flag, NULL});
        g_assert_cmpint(s.inline_when_busy, ==, busy[i].expected);
        sw_settings_clear(&s);
        env_restore(&busy_env);
    }

    /* Booleans from the environment. */
    env_guard log_env = env_set("STAGEWISE_ACCESS_LOG", "yes");
    s = load_ok(SW_STAGE_POSTPROCESSOR, (const char *const[]){"--model-dir", "/m", NULL});
    g_assert_true(s.access_log);
    sw_settings_clear(&s);
    env_restore(&log_env);
    log_env = env_set("STAGEWISE_ACCESS_LOG", "0");
    s = load_ok(SW_STAGE_POSTPROCESSOR, (const char *const[]){"--model-dir", "/m", NULL});
    g_assert_false(s.access_log);
    sw_settings_clear(&s);
    env_restore(&log_env);

    env_restore(&threads_env);
    env_restore(&delay_env);
    g_free(config);
    sw_test_dir_remove(dir);
}

/* --device and --instances belong to the predictor: the other stages have
 * no such flag and ignore the environment. */
static void test_predictor_only(void)
{
    env_guard device_env = env_set("STAGEWISE_DEVICE", "cuda");
    env_guard instances_env = env_set("STAGEWISE_INSTANCES", "4");
    sw_settings s = load_ok(SW_STAGE_PREPROCESSOR, (const char *const[]){"--model-dir", "/m", NULL});
    g_assert_cmpstr(s.device, ==, "cpu");
    g_assert_cmpint(s.instances, ==, 1);
    sw_settings_clear(&s);
    s = load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", NULL});
    g_assert_cmpstr(s.device, ==, "cuda");
    g_assert_cmpint(s.instances, ==, 4);
    sw_settings_clear(&s);
    env_restore(&device_env);
    env_restore(&instances_env);
    expect_invalid(SW_STAGE_POSTPROCESSOR, (const char *const[]){"--model-dir", "/m", "--device", "cuda", NULL},
                   "--device", NULL);
}

static void test_errors_name_setting_and_source(void)
{
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--threads", "0", NULL},
                   "flag: threads must be a whole number from 1 to 1024", "not '0'");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--threads", "1025", NULL}, "threads",
                   "'1025'");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--threads", "4x", NULL}, "threads",
                   "'4x'");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--max-rows", "2147483648", NULL},
                   "max-rows", "'2147483648'");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--instances", "65", NULL},
                   "instances must be a whole number from 1 to 64", NULL);

    env_guard g = env_set("STAGEWISE_KEEPALIVE_TIME", "-5");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", NULL},
                   "STAGEWISE_KEEPALIVE_TIME: keepalive-time", "'-5'");
    /* A flag hides a bad value underneath it. */
    sw_settings s =
        load_ok(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--keepalive-time", "9", NULL});
    g_assert_cmpint(s.keepalive_time_s, ==, 9);
    sw_settings_clear(&s);
    env_restore(&g);

    g = env_set("STAGEWISE_ACCESS_LOG", "maybe");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", NULL},
                   "STAGEWISE_ACCESS_LOG: access-log must be true or false", "'maybe'");
    env_restore(&g);
    g = env_set("STAGEWISE_INLINE_WHEN_BUSY", "sometimes");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", NULL},
                   "inline-when-busy must be auto, true or false", "'sometimes'");
    env_restore(&g);
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--inline-when-busy=2", NULL},
                   "flag: inline-when-busy must be auto, true or false", "'2'");

    char *dir = sw_test_dir_new();
    char *config = write_config(dir, "[stagewise]\nmax-queue-size=0\n");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--config", config, NULL},
                   "config file: max-queue-size", "'0'");
    g_free(config);
    config = g_build_filename(dir, "missing.ini", NULL);
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--config", config, NULL},
                   "config file", config);
    g_free(config);
    config = write_config(dir, "this is not a key file\n");
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--config", config, NULL},
                   "config file", config);
    g_free(config);
    sw_test_dir_remove(dir);

    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", "/m", "--bogus", NULL}, "--bogus", NULL);
    expect_invalid(SW_STAGE_PREDICTOR, (const char *const[]){"--model-dir", NULL}, "--model-dir", NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Settings read STAGEWISE_* variables: whatever the caller's shell has
     * must not leak into the expected defaults. This process only. */
    char **env = g_get_environ();
    for (char **e = env; *e; e++) {
        if (g_str_has_prefix(*e, "STAGEWISE_")) {
            char *name = g_strndup(*e, strcspn(*e, "="));
            g_unsetenv(name);
            g_free(name);
        }
    }
    g_strfreev(env);
    g_test_add_func("/settings/defaults", test_defaults);
    g_test_add_func("/settings/flags", test_flags);
    g_test_add_func("/settings/precedence", test_precedence);
    g_test_add_func("/settings/predictor-only", test_predictor_only);
    g_test_add_func("/settings/errors-name-setting-and-source", test_errors_name_setting_and_source);
    return g_test_run();
}
