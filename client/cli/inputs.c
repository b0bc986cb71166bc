#include "inputs.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* How a feature's cells travel (see inputs.h). */
typedef enum column_kind { KIND_STRINGS, KIND_NUMBERS, KIND_INTEGERS, KIND_FILES } column_kind;

typedef struct feature_column {
    const stagewise_feature *feature; /* borrowed from the model */
    column_kind kind;
    double *numbers;            /* KIND_NUMBERS: one per row, NaN missing */
    int64_t *integers;          /* KIND_INTEGERS: one per row */
    const char *const *strings; /* KIND_STRINGS: borrowed from the table, NULL missing */
    char **paths;               /* KIND_FILES: the file each row names, resolved */
} feature_column;

struct cli_inputs {
    GArray *columns; /* feature_column, in the model's input order */
    const sw_table *table;
    size_t n_rows;
};

static column_kind kind_of(const char *type)
{
    if (strcmp(type, "number") == 0)
        return KIND_NUMBERS;
    /* Ludwig's predict passes h3 columns on as pandas holds them: int64. */
    if (strcmp(type, "h3") == 0)
        return KIND_INTEGERS;
    if (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0)
        return KIND_FILES;
    return KIND_STRINGS;
}

/* A cell trimmed of the spaces around it, as a length. */
static const char *trimmed(const char *cell, size_t *len)
{
    const char *start = cell + strspn(cell, " \t\r\n");
    *len = strlen(start);
    while (*len > 0 && g_ascii_isspace(start[*len - 1]))
        (*len)--;
    return start;
}

/* A cell as a number: FALSE when it is not one. Spaces around it are fine,
 * and so is any spelling pandas reads as NaN (JSON lines keep "NA" as text,
 * where a CSV cell would already be missing). */
static gboolean parse_number(const char *cell, double *out)
{
    if (cell == NULL) {
        *out = NAN;
        return TRUE;
    }
    size_t len = 0;
    const char *start = trimmed(cell, &len);
    if (sw_table_is_missing_text(start, len)) {
        *out = NAN;
        return TRUE;
    }
    /* g_ascii_strtod: a '.' decimal point whatever the locale. */
    char *end = NULL;
    *out = g_ascii_strtod(start, &end);
    return end == start + len;
}

/* A decimal 64-bit integer, spaces around it allowed. */
static gboolean parse_integer(const char *cell, int64_t *out)
{
    size_t len = 0;
    const char *start = trimmed(cell, &len);
    if (len == 0 || !(g_ascii_isdigit(start[0]) || ((start[0] == '-' || start[0] == '+') && len > 1)))
        return FALSE;
    char *end = NULL;
    errno = 0;
    *out = g_ascii_strtoll(start, &end, 10);
    return errno == 0 && end == start + len;
}

static char *feature_label(const stagewise_feature *f)
{
    return g_strdup_printf("column '%s' (feature '%s', %s)", f->column, f->name, f->type);
}

/* Fails with "<row>, <feature label>: <why>", `why` formatted. */
static gboolean G_GNUC_PRINTF(5, 6)
    cell_error(GError **error, const feature_column *fc, const sw_table *table, size_t row, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    char *why = g_strdup_vprintf(format, ap);
    va_end(ap);
    char *where = sw_table_row_label(table, row), *what = feature_label(fc->feature);
    g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s, %s: %s", where, what, why);
    g_free(where);
    g_free(what);
    g_free(why);
    return FALSE;
}

static gboolean convert_numbers(feature_column *fc, const sw_table *table, const char *const *cells, GError **error)
{
    size_t n = sw_table_rows(table);
    fc->numbers = g_new(double, n ? n : 1);
    for (size_t r = 0; r < n; r++)
        if (!parse_number(cells[r], &fc->numbers[r]))
            return cell_error(error, fc, table, r, "cannot read '%.40s' as a number", cells[r]);
    return TRUE;
}

static gboolean convert_integers(feature_column *fc, const sw_table *table, const char *const *cells, GError **error)
{
    size_t n = sw_table_rows(table);
    fc->integers = g_new(int64_t, n ? n : 1);
    for (size_t r = 0; r < n; r++) {
        /* pandas would make the column float64 and round every index past
         * 2^53; INT64 has no NaN for the preprocessor to fill. */
        if (cells[r] == NULL)
            return cell_error(error, fc, table, r,
                              "the cell is missing, and an h3 cell must hold an integer; fill it in the file");
        if (!parse_integer(cells[r], &fc->integers[r]))
            return cell_error(error, fc, table, r, "cannot read '%.40s' as a 64-bit integer (decimal digits)",
                              cells[r]);
    }
    return TRUE;
}

/* Strings cross the wire as UTF-8; say which cell is not, in the user's terms. */
static gboolean check_strings(feature_column *fc, const sw_table *table, const char *const *cells, GError **error)
{
    fc->strings = cells;
    for (size_t r = 0; r < sw_table_rows(table); r++)
        if (cells[r] != NULL && !g_utf8_validate(cells[r], -1, NULL))
            return cell_error(error, fc, table, r, "not valid UTF-8");
    return TRUE;
}

/* "scheme://...": RFC 3986's scheme is a letter, then letters, digits, '+', '-' or '.'. */
static gboolean is_url(const char *text)
{
    if (!g_ascii_isalpha(text[0]))
        return FALSE;
    size_t i = 1;
    while (g_ascii_isalnum(text[i]) || text[i] == '+' || text[i] == '-' || text[i] == '.')
        i++;
    return strncmp(text + i, "://", 3) == 0;
}

/* Image and audio cells name files: each is found now, read batch by batch. */
static gboolean resolve_files(feature_column *fc, const sw_table *table, const char *const *cells, const char *base_dir,
                              GError **error)
{
    size_t n = sw_table_rows(table);
    fc->paths = g_new0(char *, n + 1);
    for (size_t r = 0; r < n; r++) {
        const char *cell = cells[r];
        if (cell == NULL)
            return cell_error(error, fc, table, r, "the cell is missing; an %s cell must name a file",
                              fc->feature->type);
        if (!g_utf8_validate(cell, -1, NULL))
            return cell_error(error, fc, table, r, "the file name is not valid UTF-8");
        /* Fetching is not the client's to do: a URL would make predictions
         * depend on the network, and credentials or redirects on the host. */
        if (is_url(cell))
            return cell_error(error, fc, table, r,
                              "'%.200s' is a URL; stagewise reads %s files from local paths only "
                              "(download it and name the file)",
                              cell, fc->feature->type);
        char *path = g_path_is_absolute(cell) ? g_strdup(cell) : g_build_filename(base_dir, cell, NULL);
        fc->paths[r] = path;
        GStatBuf st;
        if (g_stat(path, &st) != 0)
            return cell_error(error, fc, table, r, "cannot read '%.200s': %s", path, g_strerror(errno));
        if (!S_ISREG(st.st_mode))
            return cell_error(error, fc, table, r, "'%.200s' is not a file", path);
    }
    return TRUE;
}

/* Every feature whose column the table lacks (or names twice), in one
 * message, so one run shows all that must be fixed. */
static gboolean check_columns(const stagewise_model *model, const sw_table *table, GError **error)
{
    GString *problems = g_string_new(NULL);
    for (size_t i = 0; i < stagewise_model_input_count(model); i++) {
        const stagewise_feature *f = stagewise_model_input(model, i);
        long found = sw_table_find(table, f->column);
        if (found >= 0)
            continue;
        g_string_append_printf(problems, "%s%s column '%s' for feature '%s' (%s)", problems->len ? ";" : "",
                               found == -1 ? " no" : " more than one", f->column, f->name, f->type);
    }
    gboolean ok = problems->len == 0;
    if (!ok)
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "the input has%s", problems->str);
    g_string_free(problems, TRUE);
    return ok;
}

static void clear_feature_column(feature_column *fc)
{
    g_free(fc->numbers);
    g_free(fc->integers);
    g_strfreev(fc->paths);
}

cli_inputs *cli_inputs_new(const stagewise_model *model, const sw_table *table, const char *input_path, GError **error)
{
    if (!check_columns(model, table, error))
        return NULL;
    cli_inputs *in = g_new0(cli_inputs, 1);
    in->table = table;
    in->n_rows = sw_table_rows(table);
    in->columns = g_array_new(FALSE, TRUE, sizeof(feature_column));
    g_array_set_clear_func(in->columns, (GDestroyNotify)clear_feature_column);
    char *base_dir = g_path_get_dirname(input_path);
    gboolean ok = TRUE;
    for (size_t i = 0; i < stagewise_model_input_count(model) && ok; i++) {
        feature_column fc = {.feature = stagewise_model_input(model, i)};
        fc.kind = kind_of(fc.feature->type);
        const char *const *cells = sw_table_cells(table, (size_t)sw_table_find(table, fc.feature->column));
        switch (fc.kind) {
        case KIND_NUMBERS: ok = convert_numbers(&fc, table, cells, error); break;
        case KIND_INTEGERS: ok = convert_integers(&fc, table, cells, error); break;
        case KIND_FILES: ok = resolve_files(&fc, table, cells, base_dir, error); break;
        case KIND_STRINGS: ok = check_strings(&fc, table, cells, error); break;
        }
        g_array_append_val(in->columns, fc);
    }
    g_free(base_dir);
    if (!ok) {
        cli_inputs_free(in);
        return NULL;
    }
    return in;
}

size_t cli_inputs_rows(const cli_inputs *in)
{
    return in->n_rows;
}

/* The files of rows [first, first + count), read whole. */
static int add_files(const cli_inputs *in, const feature_column *fc, stagewise_rows *rows, size_t first, size_t count,
                     stagewise_error **lib_error, GError **error)
{
    char **contents = g_new0(char *, count ? count : 1);
    size_t *lengths = g_new0(size_t, count ? count : 1);
    int rc = 0;
    for (size_t r = 0; r < count && rc == 0; r++) {
        GError *read_error = NULL;
        gsize len = 0;
        if (g_file_get_contents(fc->paths[first + r], &contents[r], &len, &read_error)) {
            lengths[r] = len;
            continue;
        }
        cell_error(error, fc, in->table, first + r, "%s", read_error->message);
        g_error_free(read_error);
        rc = -2;
    }
    if (rc == 0)
        rc = stagewise_rows_add_bytes(rows, fc->feature->name, (const void *const *)contents, lengths, lib_error);
    for (size_t r = 0; r < count; r++)
        g_free(contents[r]);
    g_free(contents);
    g_free(lengths);
    return rc;
}

stagewise_rows *cli_inputs_batch(const cli_inputs *in, size_t first, size_t count, GError **error)
{
    stagewise_rows *rows = stagewise_rows_new(count);
    for (guint i = 0; i < in->columns->len; i++) {
        const feature_column *fc = &g_array_index(in->columns, feature_column, i);
        const char *name = fc->feature->name;
        stagewise_error *lib_error = NULL;
        int rc = 0;
        switch (fc->kind) {
        case KIND_NUMBERS: rc = stagewise_rows_add_numbers(rows, name, fc->numbers + first, &lib_error); break;
        case KIND_INTEGERS: rc = stagewise_rows_add_integers(rows, name, fc->integers + first, &lib_error); break;
        case KIND_FILES: rc = add_files(in, fc, rows, first, count, &lib_error, error); break;
        case KIND_STRINGS: rc = stagewise_rows_add_strings(rows, name, fc->strings + first, &lib_error); break;
        }
        if (rc == -1)
            cli_error_take_stagewise(error, lib_error);
        if (rc != 0) {
            stagewise_rows_free(rows);
            return NULL;
        }
    }
    return rows;
}

void cli_inputs_free(cli_inputs *in)
{
    if (in == NULL)
        return;
    g_array_unref(in->columns);
    g_free(in);
}
