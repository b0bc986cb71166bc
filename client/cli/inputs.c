#include "inputs.h"

#include <math.h>
#include <string.h>

#include "cli.h"

typedef struct feature_column {
    const stagewise_feature *feature; /* borrowed from the model */
    double *numbers;                  /* number features: one per row, NaN missing */
    const char *const *strings;       /* the others: borrowed from the table, NULL missing */
} feature_column;

struct cli_inputs {
    GArray *columns; /* feature_column, in the model's input order */
    size_t n_rows;
};

/* Cells pandas' read_csv reads as missing, beyond the empty one; only
 * number features treat them so, as strings are taken as written. */
static gboolean missing_number(const char *text, size_t len)
{
    static const char *const tokens[] = {"NA", "N/A", "n/a", "NULL", "null", "None", "<NA>", "#N/A", "-NaN", "-nan"};
    if (len == 0)
        return TRUE;
    for (size_t i = 0; i < G_N_ELEMENTS(tokens); i++)
        if (strlen(tokens[i]) == len && memcmp(tokens[i], text, len) == 0)
            return TRUE;
    return FALSE;
}

/* A cell as a number: FALSE when it is not one. Spaces around it are fine. */
static gboolean parse_number(const char *cell, double *out)
{
    if (cell == NULL) {
        *out = NAN;
        return TRUE;
    }
    const char *start = cell + strspn(cell, " \t\r\n");
    size_t len = strlen(start);
    while (len > 0 && g_ascii_isspace(start[len - 1]))
        len--;
    if (missing_number(start, len)) {
        *out = NAN;
        return TRUE;
    }
    /* g_ascii_strtod: a '.' decimal point whatever the locale. */
    char *end = NULL;
    *out = g_ascii_strtod(start, &end);
    return end == start + len;
}

static char *feature_label(const stagewise_feature *f)
{
    return g_strdup_printf("column '%s' (feature '%s', %s)", f->column, f->name, f->type);
}

static gboolean convert_numbers(feature_column *fc, const sw_table *table, const char *const *cells, GError **error)
{
    size_t n = sw_table_rows(table);
    fc->numbers = g_new(double, n ? n : 1);
    for (size_t r = 0; r < n; r++) {
        if (parse_number(cells[r], &fc->numbers[r]))
            continue;
        char *row = sw_table_row_label(table, r), *what = feature_label(fc->feature);
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s, %s: cannot read '%.40s' as a number", row, what, cells[r]);
        g_free(row);
        g_free(what);
        return FALSE;
    }
    return TRUE;
}

/* Strings cross the wire as UTF-8; say which cell is not, in the user's terms. */
static gboolean check_strings(feature_column *fc, const sw_table *table, const char *const *cells, GError **error)
{
    fc->strings = cells;
    for (size_t r = 0; r < sw_table_rows(table); r++) {
        if (cells[r] == NULL || g_utf8_validate(cells[r], -1, NULL))
            continue;
        char *row = sw_table_row_label(table, r), *what = feature_label(fc->feature);
        g_set_error(error, CLI_ERROR, CLI_ERROR_FAILED, "%s, %s: not valid UTF-8", row, what);
        g_free(row);
        g_free(what);
        return FALSE;
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
}

cli_inputs *cli_inputs_new(const stagewise_model *model, const sw_table *table, GError **error)
{
    if (!check_columns(model, table, error))
        return NULL;
    cli_inputs *in = g_new0(cli_inputs, 1);
    in->n_rows = sw_table_rows(table);
    in->columns = g_array_new(FALSE, TRUE, sizeof(feature_column));
    g_array_set_clear_func(in->columns, (GDestroyNotify)clear_feature_column);
    for (size_t i = 0; i < stagewise_model_input_count(model); i++) {
        feature_column fc = {.feature = stagewise_model_input(model, i)};
        const char *const *cells = sw_table_cells(table, (size_t)sw_table_find(table, fc.feature->column));
        gboolean ok = strcmp(fc.feature->type, "number") == 0 ? convert_numbers(&fc, table, cells, error)
                                                              : check_strings(&fc, table, cells, error);
        g_array_append_val(in->columns, fc);
        if (!ok) {
            cli_inputs_free(in);
            return NULL;
        }
    }
    return in;
}

size_t cli_inputs_rows(const cli_inputs *in)
{
    return in->n_rows;
}

stagewise_rows *cli_inputs_batch(const cli_inputs *in, size_t first, size_t count, GError **error)
{
    stagewise_rows *rows = stagewise_rows_new(count);
    for (guint i = 0; i < in->columns->len; i++) {
        const feature_column *fc = &g_array_index(in->columns, feature_column, i);
        stagewise_error *lib_error = NULL;
        int rc = fc->numbers ? stagewise_rows_add_numbers(rows, fc->feature->name, fc->numbers + first, &lib_error)
                             : stagewise_rows_add_strings(rows, fc->feature->name, fc->strings + first, &lib_error);
        if (rc != 0) {
            cli_error_take_stagewise(error, lib_error);
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
