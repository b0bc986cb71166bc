/* What the files of the torch shim share: the module type, failures as
 * exceptions (converted to GError only at the extern "C" entry points), and
 * the conversions between sw_value and TorchScript values. C++ only; never
 * included from C. */
#ifndef SW_TORCH_INTERNAL_HPP
#define SW_TORCH_INTERNAL_HPP

#include <c10/core/Stream.h>
#include <torch/script.h>

#include <stdexcept>
#include <string>

#include "sw_error.h"
#include "torch_shim.h"

struct sw_torch_module {
    torch::jit::Module module;
    torch::jit::Method forward;
    c10::Device device;
    /* On a GPU each loaded copy runs on its own stream, so copies called
     * from different threads overlap instead of queueing on one. */
    c10::optional<c10::Stream> stream;
    c10::TypePtr key_type;   /* of forward's dict argument */
    c10::TypePtr value_type; /* of forward's dict argument */
    std::string schema;
};

namespace sw_shim
{

/* A failure whose gRPC code is already known. */
struct shim_error : std::runtime_error {
    sw_code code;
    shim_error(sw_code c, const std::string &message) : std::runtime_error(message), code(c)
    {
    }
};

[[noreturn]] inline void fail(sw_code code, const std::string &message)
{
    throw shim_error(code, message);
}

inline std::string quoted(const std::string &s)
{
    return "'" + s + "'";
}

/* The dict argument of forward built from `inputs` (borrowed): tensors
 * wrap their buffers where the dtype allows and are copied to the module's
 * device. Throws shim_error naming the input on a mismatch. */
c10::IValue build_argument(const sw_torch_module &m, sw_value *const *inputs, size_t n_inputs);

/* forward's returned dict as a new array of sw_value, sharing tensor
 * memory. Throws shim_error on types stagewise cannot represent. */
GPtrArray *outputs_to_sw(const c10::IValue &out);

} // namespace sw_shim

#endif
