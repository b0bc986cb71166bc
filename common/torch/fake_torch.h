/* The fake torch backend's own additions, for tests that link
 * sw_torch_fake instead of stagewise_torch (fake_torch.c describes its
 * modules). Not part of the sw_torch_* interface. */
#ifndef SW_FAKE_TORCH_H
#define SW_FAKE_TORCH_H

#include <glib.h>

#include "torch_shim.h"

G_BEGIN_DECLS

/* forward calls the module has run, and the most rows one of them got:
 * what a batching test needs to see that requests were run together.
 * Thread-safe snapshots. */
int sw_fake_torch_forward_calls(const sw_torch_module *module);
/* forward calls begun, counted before the module's sleep: a test sees
 * that a call is running while it still runs. */
int sw_fake_torch_forward_started(const sw_torch_module *module);
int64_t sw_fake_torch_max_rows(const sw_torch_module *module);

/* Writes a module description to `path` (see fake_torch.c for the keys);
 * `lines` is the body of its [module] group, "key=value" per line. */
gboolean sw_fake_torch_write(const char *path, const char *lines, GError **error);

G_END_DECLS

#endif
