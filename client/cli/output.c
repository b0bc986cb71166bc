#include "output.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json_text.h"

struct cli_output {
    FILE *file;
    char *path; /* NULL for stdout */
    cli_format format;
    GPtrArray *names; /* the first batch's column names */
};

gboolean cli_format_choose(const char *name, const char *path, cli_format *format, GError **error)
{
    if (name == NULL) {
        gboolean jsonl = path && (cli_has_suffix(path, ".jsonl") || cli_has_suffix(path, ".ndjson"));
        *format = jsonl ? CLI_FORMAT_JSONL : CLI_FORMAT_CSV;
    } else if (strcmp(name, "csv") == 0) {
        *format = CLI_FORMAT_CSV;
    } else if (strcmp(name, "jsonl") == 0) {
        *format = CLI_FORMAT_JSONL;
    } else {
        g_set_error(error, CLI_ERROR, CLI_ERROR_USAGE, "--format must be csv or jsonl, not '%s'", name);
        return FALSE;
    }
    return TRUE;
}

cli_output *cli_output_open(const char *path, cli_format format, GError **error)
{
    gboolean to_stdout = path == NULL || strcmp(path, "-") == 0;
    FILE *file = to_stdout ? stdout : fopen(path, "wb");
    if (file == NULL) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s: cannot write: %s", path, g_strerror(errno));
        return NULL;
    }
    cli_output *out = g_new0(cli_output, 1);
    out->file = file;
    out->path = to_stdout ? NULL : g_strdup(path);
    out->format = format;
    return out;
}

/* ---- CSV ---------------------------------------------------------------- */

/* A field as written, quoted by libcsv only when it must be. */
static void csv_field(FILE *f, const char *text, size_t len, gboolean sole_column)
{
    /* A lone empty field would make a blank line, which readers skip. */
    gboolean quote = sole_column && len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = text[i] == ',' || text[i] == '"' || text[i] == '\n' || text[i] == '\r';
    if (quote)
        csv_fwrite(f, text, len);
    else
        fwrite(text, 1, len, f);
}

static void csv_header(cli_output *out)
{
    for (guint c = 0; c < out->names->len; c++) {
        const char *name = g_ptr_array_index(out->names, c);
        if (c)
            fputc(',', out->file);
        csv_field(out->file, name, strlen(name), out->names->len == 1);
    }
    fputc('\n', out->file);
}

static void csv_rows(cli_output *out, const stagewise_result *result)
{
    size_t n_columns = stagewise_result_columns(result);
    for (size_t r = 0; r < stagewise_result_rows(result); r++) {
        for (size_t c = 0; c < n_columns; c++) {
            char *text = stagewise_result_cell_text(result, c, r);
            if (c)
                fputc(',', out->file);
            csv_field(out->file, text, strlen(text), n_columns == 1);
            free(text);
        }
        fputc('\n', out->file);
    }
}

/* ---- JSON lines ------------------------------------------------------------ */

/* Cell text of numbers and vectors, with the NaN, Infinity and -Infinity
 * it may hold as null: JSON has no such numbers (pandas writes null too). */
static void json_numbers(GString *out, const char *text)
{
    for (const char *p = text; *p;) {
        if (*p == 'N' || *p == 'I' || (*p == '-' && p[1] == 'I')) {
            g_string_append(out, "null");
            for (p++; g_ascii_isalpha(*p); p++)
                ;
        } else {
            g_string_append_c(out, *p++);
        }
    }
}

static void json_value(GString *out, const stagewise_result *result, size_t c, size_t r)
{
    stagewise_column_type type = stagewise_result_column_type(result, c);
    if (type == STAGEWISE_COLUMN_STRING) {
        /* Strings come from the model's vocabularies; the writer mends bytes that are not UTF-8. */
        sw_json_append_string(out, stagewise_result_string(result, c, r));
        return;
    }
    char *text = stagewise_result_cell_text(result, c, r);
    if (type == STAGEWISE_COLUMN_LIST || type == STAGEWISE_COLUMN_BOOL)
        g_string_append(out, text); /* already JSON */
    else
        json_numbers(out, text);
    free(text);
}

static void jsonl_rows(cli_output *out, const stagewise_result *result)
{
    GString *line = g_string_new(NULL);
    for (size_t r = 0; r < stagewise_result_rows(result); r++) {
        g_string_assign(line, "{");
        for (size_t c = 0; c < stagewise_result_columns(result); c++) {
            if (c)
                g_string_append_c(line, ',');
            sw_json_append_string(line, stagewise_result_column_name(result, c));
            g_string_append_c(line, ':');
            json_value(line, result, c, r);
        }
        g_string_append(line, "}\n");
        fwrite(line->str, 1, line->len, out->file);
    }
    g_string_free(line, TRUE);
}

/* ---- batches --------------------------------------------------------------- */

/* The first batch fixes the columns; a later one that differs would
 * misalign them, which can only mean the server changed under us. */
static gboolean check_columns(cli_output *out, const stagewise_result *result, GError **error)
{
    size_t n = stagewise_result_columns(result);
    if (out->names == NULL) {
        out->names = g_ptr_array_new_with_free_func(g_free);
        for (size_t c = 0; c < n; c++)
            g_ptr_array_add(out->names, g_strdup(stagewise_result_column_name(result, c)));
        return TRUE;
    }
    gboolean same = n == out->names->len;
    for (size_t c = 0; c < n && same; c++)
        same = strcmp(g_ptr_array_index(out->names, c), stagewise_result_column_name(result, c)) == 0;
    if (!same)
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "the server's outputs changed between batches");
    return same;
}

gboolean cli_output_write(cli_output *out, const stagewise_result *result, GError **error)
{
    gboolean first = out->names == NULL;
    if (!check_columns(out, result, error))
        return FALSE;
    if (out->format == CLI_FORMAT_CSV) {
        if (first)
            csv_header(out);
        csv_rows(out, result);
    } else {
        jsonl_rows(out, result);
    }
    /* stdio keeps the error; a full disk fails here, not after every row is sent. */
    if (ferror(out->file)) {
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s: cannot write: %s", out->path ? out->path : "stdout",
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

gboolean cli_output_close(cli_output *out, gboolean keep, GError **error)
{
    int saved = 0;
    gboolean ok = fflush(out->file) == 0 && !ferror(out->file);
    if (!ok)
        saved = errno;
    if (out->path) {
        if (fclose(out->file) != 0 && ok) {
            saved = errno;
            ok = FALSE;
        }
        if (!keep || !ok)
            remove(out->path);
    }
    if (!ok && keep)
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s: cannot write: %s", out->path ? out->path : "stdout",
                    g_strerror(saved));
    if (out->names)
        g_ptr_array_unref(out->names);
    g_free(out->path);
    g_free(out);
    return ok || !keep;
}
