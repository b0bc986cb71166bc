/* The C interface to libtorch: the only door from C into C++.
 *
 * Servers load a TorchScript module and call its `forward` with named values;
 * nothing C++ (types, exceptions) crosses this header. Every failure, including
 * a TorchScript exception raised inside `forward`, comes back as a GError in
 * the SW_ERROR domain carrying TorchScript's own message.
 *
 * A module may be called from many threads at once: forward holds no lock.
 *
 * Two backends implement it; a program links one. torch_shim.cpp and
 * torch_values.cpp wrap libtorch (the servers, the bench); fake_torch.c is
 * plain C over tiny deterministic modules (the unit tests), so every layer
 * above this one is tested without libtorch. */
#ifndef SW_TORCH_SHIM_H
#define SW_TORCH_SHIM_H

#include <glib.h>

#include "tensor.h"

G_BEGIN_DECLS

/* The libtorch backend is a shared library built with hidden symbols: only
 * this API is exported, so one built against another libtorch (a CUDA one)
 * drops in. */
#define SW_TORCH_API __attribute__((visibility("default")))

typedef struct sw_torch_module sw_torch_module;

/* Intra-op threads per forward call (at::set_num_threads); <= 0 leaves
 * libtorch's default. Call once at start-up, before any forward. */
SW_TORCH_API void sw_torch_set_num_threads(int intra_op_threads);

/* TRUE when `device` ("cpu", "cuda", "cuda:1") can run modules in this build;
 * otherwise FALSE with a FAILED_PRECONDITION error saying why (for example a
 * CPU-only libtorch asked for CUDA). */
SW_TORCH_API gboolean sw_torch_device_check(const char *device, GError **error);

/* Loads the TorchScript file at `path` onto `device` ("cpu" when NULL) in
 * eval mode, whatever device it was saved from. Each module loaded on a GPU
 * gets its own CUDA stream, so loading a file N times gives N copies that run
 * concurrently. Returns NULL and sets `error` on failure. Free with
 * sw_torch_module_free(). */
SW_TORCH_API sw_torch_module *sw_torch_module_load(const char *path, const char *device, GError **error);
SW_TORCH_API void sw_torch_module_free(sw_torch_module *module);

/* New writable host memory of `size` bytes for inputs to `module`, to be
 * filled before it is shared: page-locked (pinned) when the module is on a
 * GPU, so the copy to the device runs asynchronously without staging;
 * ordinary memory otherwise. Free with g_bytes_unref(). */
SW_TORCH_API GBytes *sw_torch_module_new_host_buffer(sw_torch_module *module, size_t size);

/* The schema of forward as TorchScript prints it ("forward(...) -> ..."). Newly
 * allocated; g_free() it. */
SW_TORCH_API char *sw_torch_module_schema(const sw_torch_module *module);

/* Calls forward with one dict argument built from `inputs` (name -> value),
 * its key and value types taken from the method's schema, so the
 * preprocessor's Dict(str, Union(...)) and the Dict(str, Tensor) of the other
 * stages both work. Values map as:
 *   SW_VALUE_TENSOR       -> Tensor (wraps the tensor's buffer without copying
 *                            when the element type allows; the buffer is kept
 *                            alive by any output that aliases it)
 *   SW_VALUE_STRINGS      -> List[str]
 *   SW_VALUE_TENSOR_LIST  -> List[Tensor]
 *   SW_VALUE_AUDIO_LIST   -> List[Tuple[Tensor, int]] (waveform, sample rate)
 * Inputs are copied to the module's device through pinned memory, on the
 * module's own stream; forward runs in inference mode.
 *
 * Returns a new array of sw_value (free with g_ptr_array_unref), one per key
 * of the returned dict in its order: Tensor -> TENSOR (on the CPU, contiguous),
 * List[str] -> STRINGS, List[List[str]] -> STRING_LISTS, List[Tensor] ->
 * TENSOR_LIST. On failure returns NULL: TorchScript exceptions raised by the
 * module are INVALID_ARGUMENT, other failures INTERNAL. `inputs` are borrowed. */
SW_TORCH_API GPtrArray *sw_torch_module_forward(sw_torch_module *module, sw_value *const *inputs, size_t n_inputs,
                                                GError **error);

G_END_DECLS

#endif
