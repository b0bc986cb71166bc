/* Helpers for the unit tests: temporary folders and a small Ludwig export
 * whose modules are fake torch modules (common/torch/fake_torch.c). */
#ifndef SW_UNIT_SUPPORT_H
#define SW_UNIT_SUPPORT_H

#include <glib.h>

/* A new empty folder under the system's temporary folder. Remove it (and
 * everything in it) with sw_test_dir_remove(), which also frees the path. */
char *sw_test_dir_new(void);
void sw_test_dir_remove(char *dir);

/* Writes an export into `dir`: the two JSON files describing
 *   inputs:  age (number, column "Age", fill 40), color (category),
 *            review (text, max_sequence_length 6), when (date, format
 *            "%Y-%m-%d", fill "2020-01-01")
 *   outputs: label (category, classes a b c), score (number)
 * and one fake module per stage whose [module] body is `preprocessor`,
 * `predictor` (written as inference_predictor-cpu.pt) and `postprocessor`
 * ("key=value" lines; NULL writes no file for that stage). Aborts the test
 * on failure. */
void sw_test_write_export(const char *dir, const char *preprocessor, const char *predictor, const char *postprocessor);

#endif
