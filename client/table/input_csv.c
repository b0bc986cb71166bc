/* CSV input: a header row naming the columns, then one row per record.
 *
 * libcsv does the quoting: quoted fields may hold commas, doubled quotes and
 * newlines; rows may end in LF, CRLF or CR. Options:
 *  - CSV_STRICT: a stray quote (`ab"c`, `"ab"c`) is an error, not a guess;
 *  - CSV_STRICT_FINI: a quoted field still open at the end of the file is
 *    an error, not a silently truncated last row;
 *  - no space trimming: libcsv strips spaces around unquoted fields by
 *    default, but cells are taken as written (pandas keeps them too).
 * Blank lines are skipped, as pandas' read_csv does. Read as pandas, fields
 * it reads as NaN (the empty one, "NA", "null", ...) are missing cells:
 * Ludwig's predict sends them as "nan", which the preprocessor fills, where
 * the text as written ("") would be taken as a value. */
#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "table.h"

typedef struct csv_reader {
    sw_table *table;
    gboolean in_header; /* the first record names the columns */
    gboolean pandas_na; /* fields pandas reads as NaN are missing cells */
    size_t field;       /* fields seen so far in the current record */
    GError *error;      /* the first error; later callbacks do nothing */
} csv_reader;

static int no_spaces(unsigned char c)
{
    (void)c;
    return 0;
}

static void on_field(void *text, size_t len, void *data)
{
    csv_reader *r = data;
    if (r->error)
        return;
    /* Empty fields may come as NULL; they are empty strings all the same. */
    const char *s = text ? text : "";
    if (r->in_header) {
        char *name = g_strndup(s, len);
        sw_table_add_column(r->table, name);
        g_free(name);
    } else if (r->field < sw_table_columns(r->table)) {
        gboolean missing = r->pandas_na && sw_table_is_missing_text(s, len);
        sw_table_set(r->table, r->field, missing ? NULL : s, len);
    }
    r->field++;
}

static void on_record_end(int terminator, void *data)
{
    (void)terminator;
    csv_reader *r = data;
    if (r->error)
        return;
    size_t expected = sw_table_columns(r->table);
    if (r->in_header) {
        r->in_header = FALSE;
    } else if (r->field != expected) {
        g_set_error(&r->error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "row %zu has %zu field%s, the header has %zu",
                    sw_table_rows(r->table) + 1, r->field, r->field == 1 ? "" : "s", expected);
    } else {
        sw_table_end_row(r->table, 0);
    }
    r->field = 0;
}

/* Where the parser stopped, for its own errors. */
static char *position(const csv_reader *r)
{
    return r->in_header ? g_strdup("the header") : g_strdup_printf("row %zu", sw_table_rows(r->table) + 1);
}

static void set_parse_error(csv_reader *r, struct csv_parser *p, gboolean at_end)
{
    char *where = position(r);
    if (csv_error(p) == CSV_EPARSE)
        g_set_error(&r->error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ,
                    at_end ? "%s: a quoted field is still open at the end of the file"
                           : "%s: malformed quoting (a quote inside an unquoted field, or text after a closing quote)",
                    where);
    else
        g_set_error(&r->error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "%s: %s", where, csv_strerror(csv_error(p)));
    g_free(where);
}

/* Feeds the file to the parser block by block. */
static void parse_stream(csv_reader *r, struct csv_parser *p, FILE *f)
{
    char block[64 * 1024];
    gboolean first = TRUE;
    size_t n;
    while (r->error == NULL && (n = fread(block, 1, sizeof block, f)) > 0) {
        const char *data = block;
        /* Spreadsheets write a UTF-8 byte order mark; it is not part of the first column's name. */
        if (first && n >= 3 && memcmp(block, "\xEF\xBB\xBF", 3) == 0) {
            data += 3;
            n -= 3;
        }
        first = FALSE;
        if (csv_parse(p, data, n, on_field, on_record_end, r) != n && r->error == NULL)
            set_parse_error(r, p, FALSE);
    }
    if (r->error == NULL && ferror(f))
        g_set_error(&r->error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "cannot read: %s", g_strerror(errno));
    if (r->error == NULL && csv_fini(p, on_field, on_record_end, r) != 0 && r->error == NULL)
        set_parse_error(r, p, TRUE);
}

static sw_table *read_csv(const char *path, gboolean pandas_na, GError **error)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        g_set_error(error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "cannot open: %s", g_strerror(errno));
        return NULL;
    }
    struct csv_parser p;
    csv_init(&p, CSV_STRICT | CSV_STRICT_FINI);
    csv_set_space_func(&p, no_spaces);
    csv_reader r = {.table = sw_table_new(), .in_header = TRUE, .pandas_na = pandas_na};
    parse_stream(&r, &p, f);
    csv_free(&p);
    fclose(f);
    if (r.error == NULL && sw_table_columns(r.table) == 0)
        g_set_error(&r.error, SW_TABLE_ERROR, SW_TABLE_ERROR_READ, "the file is empty: a CSV input needs a header row");
    if (r.error) {
        g_propagate_error(error, r.error);
        sw_table_free(r.table);
        return NULL;
    }
    return r.table;
}

sw_table *sw_table_read_csv(const char *path, GError **error)
{
    return read_csv(path, FALSE, error);
}

sw_table *sw_table_read_csv_as_pandas(const char *path, GError **error)
{
    return read_csv(path, TRUE, error);
}
