/* A data file (CSV or JSON lines), read whole into named columns of text cells, and the
 * readers that fill it.
 *
 * Read whole, not streamed: every cell is checked before the first batch is
 * sent, so a typo in row 40,000 fails the command without having written
 * half an output. A cell is what a DataFrame cell would hold, as text: the
 * CSV field as written, or a JSON value rendered as text; NULL is missing
 * (JSON null, a key an object lacks, and with sw_table_read_csv_as_pandas a
 * CSV field pandas reads as NaN). Ludwig's predict turns missing cells into
 * "nan" for string features and NaN for numbers.
 *
 * Shared by the `stagewise` CLI and stagewise-bench; no gRPC, no
 * libstagewise. Not thread-safe: one table per thread. */
#ifndef SW_TABLE_H
#define SW_TABLE_H

#include <glib.h>

/* Errors of the readers: the file cannot be read, or its contents are not
 * a table (the message names the row or line). */
#define SW_TABLE_ERROR (sw_table_error_quark())
typedef enum sw_table_error_code { SW_TABLE_ERROR_READ } sw_table_error_code;
GQuark sw_table_error_quark(void);

typedef struct sw_table sw_table;

sw_table *sw_table_new(void);
void sw_table_free(sw_table *table);

size_t sw_table_rows(const sw_table *table);
size_t sw_table_columns(const sw_table *table);
const char *sw_table_column_name(const sw_table *table, size_t column);
/* The index of the column named `name`: -1 when there is none, -2 when
 * several columns have that name (a CSV header may repeat one). */
long sw_table_find(const sw_table *table, const char *name);
/* The column's cells, one per row; borrowed from the table. */
const char *const *sw_table_cells(const sw_table *table, size_t column);

/* Adds a column (its cells in earlier rows are missing); returns its index. */
size_t sw_table_add_column(sw_table *table, const char *name);
/* Sets a cell of the row being built: `len` bytes of `text` are copied;
 * NULL text is a missing value. Each column at most once per row. */
void sw_table_set(sw_table *table, size_t column, const char *text, size_t len);
/* Ends the row being built: columns it did not set are missing in it.
 * `line` is where the row sits in its file, 0 when rows are not lines. */
void sw_table_end_row(sw_table *table, size_t line);

/* How error messages name a row (0-based index): "row 3" counts data rows
 * from 1 as a user reads them (a CSV's header is not a row); when rows
 * are lines of the file (JSON lines) it is "line 3". Newly allocated. */
char *sw_table_row_label(const sw_table *table, size_t row);

/* Whether `len` bytes of `text` are, exactly, a value pandas' read_csv reads
 * as NaN by default (pandas 2's STR_NA_VALUES; pandas 1, which Ludwig 0.8
 * also runs on, lacks "None"): "", "#N/A", "#N/A N/A", "#NA", "-1.#IND",
 * "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
 * "NULL", "NaN", "None", "n/a", "nan", "null". Case and spaces count, as
 * they do for pandas ("Na", " NA" are text). */
gboolean sw_table_is_missing_text(const char *text, size_t len);

/* The readers: a new table, or NULL with an error naming the row.
 * sw_table_read_csv keeps every field as written ("" is an empty string);
 * sw_table_read_csv_as_pandas reads as pandas' read_csv does by default:
 * every field sw_table_is_missing_text accepts, quoted or not (pandas does
 * not tell them apart), is a missing cell. The JSON-lines reader makes only
 * null and absent keys missing, as read_json(lines=True) keeps strings. */
sw_table *sw_table_read_csv(const char *path, GError **error);
sw_table *sw_table_read_csv_as_pandas(const char *path, GError **error);
sw_table *sw_table_read_jsonl(const char *path, GError **error);

#endif
