/* The input file, read whole into named columns of text cells, and the
 * readers that fill it.
 *
 * Read whole, not streamed: every cell is checked before the first batch is
 * sent, so a typo in row 40,000 fails the command without having written
 * half an output. A cell is what a DataFrame cell would hold, as text: the
 * CSV field as written, or a JSON value rendered as text; NULL is missing
 * (JSON null, or a key an object lacks). */
#ifndef SW_CLI_TABLE_H
#define SW_CLI_TABLE_H

#include <glib.h>

typedef struct cli_table cli_table;

cli_table *cli_table_new(void);
void cli_table_free(cli_table *table);

size_t cli_table_rows(const cli_table *table);
size_t cli_table_columns(const cli_table *table);
const char *cli_table_column_name(const cli_table *table, size_t column);
/* The index of the column named `name`: -1 when there is none, -2 when
 * several columns have that name (a CSV header may repeat one). */
long cli_table_find(const cli_table *table, const char *name);
/* The column's cells, one per row; borrowed from the table. */
const char *const *cli_table_cells(const cli_table *table, size_t column);

/* Adds a column (its cells in earlier rows are missing); returns its index. */
size_t cli_table_add_column(cli_table *table, const char *name);
/* Sets a cell of the row being built: `len` bytes of `text` are copied;
 * NULL text is a missing value. Each column at most once per row. */
void cli_table_set(cli_table *table, size_t column, const char *text, size_t len);
/* Ends the row being built: columns it did not set are missing in it.
 * `line` is where the row sits in its file, 0 when rows are not lines. */
void cli_table_end_row(cli_table *table, size_t line);

/* How error messages name a row (0-based index): "row 3" counts data rows
 * from 1 as a user reads them (a CSV's header is not a row); when rows
 * are lines of the file (JSON lines) it is "line 3". Newly allocated. */
char *cli_table_row_label(const cli_table *table, size_t row);

/* The readers: a new table, or NULL with an error naming the row. */
cli_table *cli_csv_read(const char *path, GError **error);
cli_table *cli_jsonl_read(const char *path, GError **error);

#endif
