#include "log.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "json_text.h"

static sw_log_level min_level = SW_LOG_INFO;
static gboolean json_format;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

static gboolean level_from_name(const char *name, sw_log_level *out)
{
    for (int i = 0; name && i < (int)G_N_ELEMENTS(level_names); i++) {
        if (g_ascii_strcasecmp(name, level_names[i]) == 0) {
            *out = (sw_log_level)i;
            return TRUE;
        }
    }
    return FALSE;
}

void sw_log_init_from_env(void)
{
    level_from_name(g_getenv("STAGEWISE_LOG_LEVEL"), &min_level);
}

gboolean sw_log_configure(const char *level, const char *format)
{
    /* Both checked before either applies: a refused call changes nothing. */
    sw_log_level new_level = min_level;
    if (level && !level_from_name(level, &new_level))
        return FALSE;
    if (format && strcmp(format, "json") != 0 && strcmp(format, "kv") != 0)
        return FALSE;
    min_level = new_level;
    if (format)
        json_format = strcmp(format, "json") == 0;
    return TRUE;
}

char *sw_log_quote(const char *text)
{
    GString *out = g_string_new(NULL);
    sw_json_append_string(out, text);
    return g_string_free(out, FALSE);
}

/* Reads a quoted value starting after its opening quote, undoing
 * sw_log_quote; returns where parsing stopped. */
static const char *read_quoted(const char *p, GString *value)
{
    while (*p && *p != '"') {
        if (*p != '\\' || p[1] == '\0') {
            g_string_append_c(value, *p++);
            continue;
        }
        p++;
        switch (*p) {
        case 'n':
            g_string_append_c(value, '\n');
            p++;
            break;
        case 'r':
            g_string_append_c(value, '\r');
            p++;
            break;
        case 't':
            g_string_append_c(value, '\t');
            p++;
            break;
        case 'u': {
            unsigned code = 0;
            int k = 1;
            for (; k <= 4 && g_ascii_isxdigit(p[k]); k++)
                code = code * 16 + (unsigned)g_ascii_xdigit_value(p[k]);
            g_string_append_unichar(value, code);
            p += k;
            break;
        }
        default: g_string_append_c(value, *p++); break;
        }
    }
    return *p == '"' ? p + 1 : p;
}

/* key=value pairs (values optionally quoted by sw_log_quote) into a JSON
 * object. */
static char *kv_to_json(const char *ts, const char *level, const char *msg)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ts");
    json_builder_add_string_value(b, ts);
    json_builder_set_member_name(b, "level");
    json_builder_add_string_value(b, level);
    const char *p = msg;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        char *key = g_strndup(p, (gsize)(eq - p));
        const char *v = eq + 1;
        GString *value = g_string_new(NULL);
        if (*v == '"') {
            p = read_quoted(v + 1, value);
        } else {
            const char *end = strchr(v, ' ');
            end = end ? end : v + strlen(v);
            g_string_append_len(value, v, end - v);
            p = end;
        }
        json_builder_set_member_name(b, key);
        json_builder_add_string_value(b, value->str);
        g_free(key);
        g_string_free(value, TRUE);
    }
    json_builder_end_object(b);
    JsonNode *root = json_builder_get_root(b);
    char *out = json_to_string(root, FALSE);
    json_node_unref(root);
    g_object_unref(b);
    return out;
}

void sw_log(sw_log_level level, const char *format, ...)
{
    if (level < min_level)
        return;
    GDateTime *now = g_date_time_new_now_utc();
    char *ts = g_date_time_format_iso8601(now);
    va_list ap;
    va_start(ap, format);
    char *msg = g_strdup_vprintf(format, ap);
    va_end(ap);
    char *line = json_format ? kv_to_json(ts, level_names[level], msg)
                             : g_strdup_printf("ts=%s level=%s %s", ts, level_names[level], msg);
    /* One write per line keeps lines whole across threads. */
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    g_free(line);
    g_free(msg);
    g_free(ts);
    g_date_time_unref(now);
}
