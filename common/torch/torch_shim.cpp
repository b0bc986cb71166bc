/* The C interface to libtorch (see torch_shim.h).
 *
 * Inside the shim failures are C++ exceptions: shim_error carries the gRPC
 * code chosen where the failure is understood, and anything libtorch throws
 * is classified by the entry point it escapes to (guarded()). Nothing is
 * thrown across the extern "C" functions. */
#include "torch_shim.h"

#include "clip.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "torch_internal.hpp"

namespace
{

using sw_shim::fail;
using sw_shim::quoted;
using sw_shim::shim_error;

/* Runs `body`, turning any exception into `error`: shim_errors keep their
 * code, anything else gets `code` and is prefixed with `context`. */
template <typename Body> bool guarded(GError **error, sw_code code, const std::string &context, Body &&body)
{
    try {
        body();
        return true;
    } catch (const shim_error &e) {
        g_set_error(error, SW_ERROR, e.code, "%s", e.what());
    } catch (const c10::OutOfMemoryError &e) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED, "%s: %s", context.c_str(), e.what_without_backtrace());
    } catch (const c10::Error &e) {
        g_set_error(error, SW_ERROR, code, "%s: %s", context.c_str(), e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        g_set_error(error, SW_ERROR, SW_CODE_RESOURCE_EXHAUSTED, "%s: out of memory", context.c_str());
    } catch (const std::exception &e) {
        g_set_error(error, SW_ERROR, code, "%s: %s", context.c_str(), e.what());
    } catch (...) {
        g_set_error(error, SW_ERROR, code, "%s: unknown C++ exception", context.c_str());
    }
    return false;
}

/* ---- devices ---- */

c10::Device parse_device(const std::string &name)
{
    c10::optional<c10::Device> parsed;
    try {
        parsed = c10::Device(name);
    } catch (const c10::Error &e) {
        fail(SW_CODE_FAILED_PRECONDITION, "invalid device " + quoted(name) + ": " + e.what_without_backtrace());
    }
    c10::Device device = *parsed;
    if (device.is_cpu())
        return device;
    if (!device.is_cuda())
        fail(SW_CODE_FAILED_PRECONDITION, "device " + quoted(name) + " is not supported: use cpu, cuda or cuda:N");
    /* is_available() alone cannot tell a CPU-only build from a machine
     * without a visible GPU; the two need different fixes. */
    if (!at::globalContext().hasCUDART())
        fail(SW_CODE_FAILED_PRECONDITION, "device " + quoted(name) + ": this build of libtorch has no CUDA support");
    if (!torch::cuda::is_available())
        fail(SW_CODE_FAILED_PRECONDITION, "device " + quoted(name) + ": no CUDA device is visible");
    size_t count = torch::cuda::device_count();
    if (device.has_index() && static_cast<size_t>(device.index()) >= count)
        fail(SW_CODE_FAILED_PRECONDITION,
             "CUDA device " + std::to_string(device.index()) + " not found (" + std::to_string(count) + " visible)");
    return device;
}

/* ---- loading ---- */

std::unique_ptr<sw_torch_module> load_module(const std::string &path, c10::Device device)
{
    std::string context = "cannot load TorchScript module " + quoted(path);
    /* libtorch reports a missing file as "errno 2 on fopen: ," */
    if (!g_file_test(path.c_str(), G_FILE_TEST_EXISTS))
        fail(SW_CODE_FAILED_PRECONDITION, context + ": no such file");
    torch::jit::Module module = torch::jit::load(path, device);
    module.eval();
    c10::optional<torch::jit::Method> forward = module.find_method("forward");
    if (!forward)
        fail(SW_CODE_FAILED_PRECONDITION, context + ": it has no forward method");

    const c10::FunctionSchema &schema = forward->function().getSchema();
    std::ostringstream printed;
    printed << schema;
    /* arguments()[0] is self. */
    const auto &args = schema.arguments();
    c10::DictTypePtr dict = args.size() == 2 ? args[1].type()->cast<c10::DictType>() : nullptr;
    if (!dict || dict->getKeyType()->kind() != c10::TypeKind::StringType)
        fail(SW_CODE_FAILED_PRECONDITION, context +
                                              ": forward must take one Dict(str, ...) "
                                              "argument, its schema is " +
                                              printed.str());

    c10::optional<c10::Stream> stream;
    if (device.is_cuda())
        stream = c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device);
    return std::unique_ptr<sw_torch_module>(
        new sw_torch_module{module, *forward, device, stream, dict->getKeyType(), dict->getValueType(), printed.str()});
}

/* ---- calling forward ---- */

/* Waits, on leaving a forward call however it leaves, for everything queued
 * on the module's stream: input copies from the caller's buffers included. */
struct stream_drain {
    c10::optional<c10::Stream> stream;
    explicit stream_drain(c10::optional<c10::Stream> s) : stream(s)
    {
    }
    stream_drain(const stream_drain &) = delete;
    stream_drain &operator=(const stream_drain &) = delete;
    ~stream_drain()
    {
        if (!stream)
            return;
        try {
            c10::impl::VirtualGuardImpl(stream->device_type()).synchronizeStream(*stream);
        } catch (const std::exception &e) {
            g_warning("waiting for the device stream failed: %s", e.what());
        }
    }
};

/* The interpreter's message is "The following operation failed in the
 * TorchScript interpreter.", tracebacks (serialized code, then original
 * code) whose frame lines are indented, then the unindented
 * "ErrorClass: message". Clients need only the last part; the whole text
 * goes to the debug log. */
std::string readable_forward_error(const std::string &what)
{
    size_t pos = what.rfind("Traceback of TorchScript");
    if (pos != std::string::npos) {
        pos = what.find('\n', pos);
        while (pos != std::string::npos && pos + 1 < what.size() &&
               (what[pos + 1] == ' ' || what[pos + 1] == '\t' || what[pos + 1] == '\n'))
            pos = what.find('\n', pos + 1);
    }
    std::string text = pos == std::string::npos ? what : what.substr(pos + 1);
    /* raise ValueError(...) reports its class as "builtins.ValueError". */
    static const std::string builtins = "builtins.";
    if (text.compare(0, builtins.size(), builtins) == 0)
        text.erase(0, builtins.size());
    size_t end = text.find_last_not_of(" \t\r\n");
    return end == std::string::npos ? what : text.substr(0, end + 1);
}

/* Modules quote the values they refuse, and those are client data: each
 * quoted run is cut to SW_CLIP_BYTES (on a character boundary, marked), so
 * a 20 KB token does not come back in the status. */
std::string clip_quoted_runs(const std::string &text)
{
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        char quote = text[i];
        out += quote;
        i++;
        if (quote != '\'' && quote != '"')
            continue;
        size_t close = text.find(quote, i);
        size_t end = close == std::string::npos ? text.size() : close;
        size_t keep = end - i;
        if (keep > SW_CLIP_BYTES) {
            keep = SW_CLIP_BYTES;
            while (keep > 0 && (static_cast<unsigned char>(text[i + keep]) & 0xC0) == 0x80)
                keep--;
            out.append(text, i, keep);
            out += SW_CLIP_MARK;
        } else {
            out.append(text, i, keep);
        }
        if (close == std::string::npos)
            break;
        out += quote;
        i = close + 1;
    }
    return out;
}

/* Module failures are the caller's input (INVALID_ARGUMENT), except running
 * out of memory, which a client may retry. The interpreter rethrows every
 * error as a std::runtime_error, so only the text tells them apart. */
[[noreturn]] void fail_forward(const std::string &what)
{
    g_debug("TorchScript forward failed: %s", what.c_str());
    std::string text = clip_quoted_runs(readable_forward_error(what));
    bool oom = text.find("out of memory") != std::string::npos || text.find("not enough memory") != std::string::npos;
    fail(oom ? SW_CODE_RESOURCE_EXHAUSTED : SW_CODE_INVALID_ARGUMENT, "forward failed: " + text);
}

c10::IValue call_forward(sw_torch_module &m, c10::IValue argument)
{
    try {
        /* Method::run rather than operator(), which checks the argument
         * against the schema again: build_argument made it from the
         * schema and checked every value. */
        torch::jit::Stack stack;
        stack.reserve(2);
        stack.push_back(std::move(argument));
        m.forward.run(stack);
        return std::move(stack.front());
    } catch (const c10::Error &e) {
        fail_forward(e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail_forward(e.what());
    }
}

} // namespace

/* ---- the C interface ---- */

extern "C" {

void sw_torch_set_num_threads(int intra_op_threads)
{
    if (intra_op_threads > 0) {
        try {
            at::set_num_threads(intra_op_threads);
        } catch (const std::exception &e) {
            g_warning("cannot set %d intra-op threads: %s", intra_op_threads, e.what());
        }
    }
    /* Servers already run one forward per request thread; inter-op
     * parallelism on top only oversubscribes the cores. libtorch refuses a
     * second call, or one after parallel work started. */
    static std::once_flag interop_once;
    std::call_once(interop_once, [] {
        try {
            at::set_num_interop_threads(1);
        } catch (const std::exception &e) {
            g_debug("cannot set inter-op threads: %s", e.what());
        }
    });
}

gboolean sw_torch_device_check(const char *device, GError **error)
{
    g_return_val_if_fail(device != NULL, FALSE);
    return guarded(error, SW_CODE_FAILED_PRECONDITION, std::string("device ") + device, [&] { parse_device(device); });
}

sw_torch_module *sw_torch_module_load(const char *path, const char *device, GError **error)
{
    g_return_val_if_fail(path != NULL, NULL);
    std::unique_ptr<sw_torch_module> module;
    std::string context = "cannot load TorchScript module " + quoted(path);
    guarded(error, SW_CODE_FAILED_PRECONDITION, context,
            [&] { module = load_module(path, parse_device(device ? device : "cpu")); });
    return module.release();
}

static void free_host_tensor(gpointer tensor)
{
    delete static_cast<at::Tensor *>(tensor);
}

GBytes *sw_torch_module_new_host_buffer(sw_torch_module *module, size_t size)
{
    g_return_val_if_fail(module != NULL, NULL);
    if (module->device.is_cuda() && size > 0) {
        try {
            auto *pinned = new at::Tensor(
                at::empty({static_cast<int64_t>(size)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true)));
            return g_bytes_new_with_free_func(pinned->data_ptr(), size, free_host_tensor, pinned);
        } catch (const std::exception &e) {
            /* Only slower: the input is staged when it is copied. */
            g_warning("cannot allocate %zu bytes of pinned memory: %s", size, e.what());
        }
    }
    return g_bytes_new_take(g_malloc(size), size);
}

void sw_torch_module_free(sw_torch_module *module)
{
    delete module;
}

char *sw_torch_module_schema(const sw_torch_module *module)
{
    g_return_val_if_fail(module != NULL, NULL);
    return g_strdup(module->schema.c_str());
}

GPtrArray *sw_torch_module_forward(sw_torch_module *module, sw_value *const *inputs, size_t n_inputs, GError **error)
{
    g_return_val_if_fail(module != NULL, NULL);
    g_return_val_if_fail(inputs != NULL || n_inputs == 0, NULL);
    GPtrArray *outputs = nullptr;
    guarded(error, SW_CODE_INTERNAL, "forward", [&] {
        /* Spans the conversions too, so the tensors they make skip autograd
         * bookkeeping like those forward makes. */
        c10::InferenceMode inference;
        c10::OptionalStreamGuard on_stream(module->stream);
        stream_drain drain{module->stream};
        c10::IValue result = call_forward(*module, sw_shim::build_argument(*module, inputs, n_inputs));
        outputs = sw_shim::outputs_to_sw(result);
    });
    return outputs;
}

} // extern "C"
