/* Conversions between sw_value and TorchScript values, both ways, without
 * copying where the element types allow. */
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/script.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "torch_internal.hpp"

namespace sw_shim
{
namespace
{

/* ---- inputs: sw_value -> IValue ---- */

at::ScalarType direct_scalar_type(sw_dtype dtype)
{
    switch (dtype) {
    case SW_DTYPE_BOOL: return at::kBool;
    case SW_DTYPE_UINT8: return at::kByte;
    case SW_DTYPE_INT8: return at::kChar;
    case SW_DTYPE_INT16: return at::kShort;
    case SW_DTYPE_INT32: return at::kInt;
    case SW_DTYPE_INT64: return at::kLong;
    case SW_DTYPE_FP16: return at::kHalf;
    case SW_DTYPE_BF16: return at::kBFloat16;
    case SW_DTYPE_FP32: return at::kFloat;
    case SW_DTYPE_FP64: return at::kDouble;
    default: return at::ScalarType::Undefined;
    }
}

/* The checks the sw_tensor constructors assert, repeated because a wrong
 * size here would let libtorch read past the buffer. */
int64_t checked_element_count(const sw_tensor &t, const std::string &name)
{
    int64_t count = 0;
    GError *shape_error = nullptr;
    if (!sw_shape_element_count(t.ndim, t.shape, name.c_str(), &count, &shape_error)) {
        std::string message = shape_error->message;
        g_error_free(shape_error);
        fail(SW_CODE_INVALID_ARGUMENT, message);
    }
    size_t elem = sw_dtype_size(t.dtype);
    if (t.data == nullptr || g_bytes_get_size(t.data) != static_cast<size_t>(count) * elem)
        fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(name) + ": data size does not match its shape");
    return count;
}

std::vector<int64_t> sizes_of(const sw_tensor &t)
{
    return std::vector<int64_t>(t.shape, t.shape + t.ndim);
}

/* Shares the GBytes buffer with libtorch: the tensor's storage holds a
 * reference, so an output aliasing the input outlives the caller's value.
 * Misaligned buffers (slices of a message) are copied: ATen kernels may
 * assume natural alignment. */
at::Tensor wrap_buffer(const sw_tensor &t, at::ScalarType type)
{
    gsize nbytes = 0;
    const void *data = g_bytes_get_data(t.data, &nbytes);
    auto options = at::TensorOptions().dtype(type);
    if (nbytes == 0)
        return at::empty(sizes_of(t), options);
    if (reinterpret_cast<uintptr_t>(data) % sw_dtype_size(t.dtype) != 0) {
        at::Tensor copy = at::empty(sizes_of(t), options);
        std::memcpy(copy.data_ptr(), data, nbytes);
        return copy;
    }
    GBytes *ref = g_bytes_ref(t.data);
    return torch::from_blob(
        const_cast<void *>(data), sizes_of(t), [ref](void *) { g_bytes_unref(ref); }, options);
}

/* Element i of a possibly misaligned buffer. */
template <typename T> T load_element(const void *data, int64_t i)
{
    T v;
    std::memcpy(&v, static_cast<const unsigned char *>(data) + i * sizeof(T), sizeof v);
    return v;
}

/* Unsigned types libtorch 1.13 lacks become the next wider signed type. */
template <typename From, typename To> at::Tensor widen_copy(const sw_tensor &t, int64_t count, at::ScalarType type)
{
    at::Tensor out = at::empty(sizes_of(t), at::TensorOptions().dtype(type));
    const void *src = g_bytes_get_data(t.data, nullptr);
    To *dst = out.data_ptr<To>();
    for (int64_t i = 0; i < count; i++)
        dst[i] = static_cast<To>(load_element<From>(src, i));
    return out;
}

/* UINT64 values that fit INT64 have the same bits, so the buffer is shared. */
at::Tensor uint64_as_int64(const sw_tensor &t, int64_t count, const std::string &name)
{
    const void *src = g_bytes_get_data(t.data, nullptr);
    for (int64_t i = 0; i < count; i++)
        if (load_element<uint64_t>(src, i) > static_cast<uint64_t>(INT64_MAX))
            fail(SW_CODE_INVALID_ARGUMENT,
                 "input " + quoted(name) + ": UINT64 element " + std::to_string(i) + " does not fit INT64");
    return wrap_buffer(t, at::kLong);
}

/* A bool tensor holding bytes other than 0 and 1 is undefined behaviour in
 * ATen; such input is normalised (nonzero is true) on a copy. */
at::Tensor bool_tensor(const sw_tensor &t, int64_t count)
{
    const auto *src = static_cast<const uint8_t *>(g_bytes_get_data(t.data, nullptr));
    bool clean = true;
    for (int64_t i = 0; i < count && clean; i++)
        clean = src[i] <= 1;
    if (clean)
        return wrap_buffer(t, at::kBool);
    at::Tensor out = at::empty(sizes_of(t), at::TensorOptions().dtype(at::kBool));
    bool *dst = out.data_ptr<bool>();
    for (int64_t i = 0; i < count; i++)
        dst[i] = src[i] != 0;
    return out;
}

/* Only a copy from page-locked memory runs asynchronously; from ordinary
 * memory the driver blocks the caller while it stages the data itself.
 * Inputs already in a pinned buffer (sw_torch_module_new_host_buffer) go
 * straight out; the rest are staged through libtorch's caching pinned
 * allocator, which keeps the staging block until the copy has finished. A
 * buffer of ours is only known to libtorch as a plain pointer, so nothing
 * would hold it for the copy: forward waits for its stream before returning
 * (stream_drain), and the caller frees inputs only after that. */
at::Tensor copy_to_device(const at::Tensor &host, c10::Device device)
{
    at::Tensor source = host;
    if (!host.is_pinned()) {
        source = at::empty(host.sizes(), host.options().pinned_memory(true));
        source.copy_(host);
    }
    return source.to(device, source.scalar_type(), /*non_blocking=*/true);
}

at::Tensor tensor_from_sw(const sw_tensor *t, const std::string &name, c10::Device device)
{
    if (t == nullptr)
        fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(name) + " has no tensor");
    if (!sw_dtype_is_numeric(t->dtype))
        fail(SW_CODE_INVALID_ARGUMENT,
             "input " + quoted(name) + ": a " + sw_dtype_name(t->dtype) + " tensor cannot be a TorchScript Tensor");
    int64_t count = checked_element_count(*t, name);
    at::Tensor out;
    switch (t->dtype) {
    case SW_DTYPE_BOOL: out = bool_tensor(*t, count); break;
    case SW_DTYPE_UINT16: out = widen_copy<uint16_t, int32_t>(*t, count, at::kInt); break;
    case SW_DTYPE_UINT32: out = widen_copy<uint32_t, int64_t>(*t, count, at::kLong); break;
    case SW_DTYPE_UINT64: out = uint64_as_int64(*t, count, name); break;
    default: out = wrap_buffer(*t, direct_scalar_type(t->dtype)); break;
    }
    return device.is_cpu() ? out : copy_to_device(out, device);
}

/* Offsets must stay inside the payload for sw_tensor_bytes_element. */
void check_strings(const sw_tensor *t, const std::string &name)
{
    if (t == nullptr || t->dtype != SW_DTYPE_BYTES || t->ndim != 1)
        fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(name) + ": a string list must be a 1-D BYTES tensor");
    size_t size = t->data ? g_bytes_get_size(t->data) : 0;
    int64_t n = t->shape[0];
    bool ok = n >= 0 && t->offsets != nullptr && t->offsets[n] == size;
    for (int64_t i = 0; ok && i < n; i++)
        ok = t->offsets[i] <= t->offsets[i + 1];
    if (!ok)
        fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(name) + ": malformed BYTES tensor");
}

c10::IValue strings_from_sw(const sw_tensor *t, const std::string &name)
{
    check_strings(t, name);
    c10::List<std::string> list;
    list.reserve(static_cast<size_t>(t->shape[0]));
    for (int64_t i = 0; i < t->shape[0]; i++) {
        size_t len = 0;
        const char *s = sw_tensor_bytes_element(t, static_cast<size_t>(i), &len);
        list.push_back(std::string(s, len));
    }
    return c10::IValue(std::move(list));
}

c10::IValue tensor_list_from_sw(const GPtrArray *items, const std::string &name, c10::Device device)
{
    if (items == nullptr)
        fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(name) + " has no items");
    c10::List<at::Tensor> list;
    list.reserve(items->len);
    for (guint i = 0; i < items->len; i++) {
        std::string item = name + "[" + std::to_string(i) + "]";
        list.push_back(tensor_from_sw(static_cast<const sw_tensor *>(items->pdata[i]), item, device));
    }
    return c10::IValue(std::move(list));
}

/* List[Tuple[Tensor, int]]: a waveform and its sample rate per row, as
 * Ludwig's audio preprocessor takes them. */
c10::IValue audio_list_from_sw(const sw_value &v, c10::Device device)
{
    const std::string name = v.name;
    if (v.items == nullptr || v.sample_rates == nullptr)
        fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(name) + " has no waveforms or no sample rates");
    c10::impl::GenericList list(c10::TupleType::create({c10::TensorType::get(), c10::IntType::get()}));
    list.reserve(v.items->len);
    for (guint i = 0; i < v.items->len; i++) {
        std::string item = name + "[" + std::to_string(i) + "]";
        at::Tensor wave = tensor_from_sw(static_cast<const sw_tensor *>(v.items->pdata[i]), item, device);
        list.push_back(c10::ivalue::Tuple::create({c10::IValue(wave), c10::IValue(v.sample_rates[i])}));
    }
    return c10::IValue(std::move(list));
}

c10::IValue value_from_sw(const sw_value &v, c10::Device device)
{
    switch (v.kind) {
    case SW_VALUE_TENSOR: return tensor_from_sw(v.tensor, v.name, device);
    case SW_VALUE_STRINGS: return strings_from_sw(v.tensor, v.name);
    case SW_VALUE_TENSOR_LIST: return tensor_list_from_sw(v.items, v.name, device);
    case SW_VALUE_AUDIO_LIST: return audio_list_from_sw(v, device);
    case SW_VALUE_STRING_LISTS: break;
    }
    fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(v.name) + ": List[List[str]] is not a supported input");
}

/* ---- outputs: IValue -> sw_value ---- */

sw_dtype dtype_from_scalar_type(at::ScalarType type)
{
    switch (type) {
    case at::kBool: return SW_DTYPE_BOOL;
    case at::kByte: return SW_DTYPE_UINT8;
    case at::kChar: return SW_DTYPE_INT8;
    case at::kShort: return SW_DTYPE_INT16;
    case at::kInt: return SW_DTYPE_INT32;
    case at::kLong: return SW_DTYPE_INT64;
    case at::kHalf: return SW_DTYPE_FP16;
    case at::kBFloat16: return SW_DTYPE_BF16;
    case at::kFloat: return SW_DTYPE_FP32;
    case at::kDouble: return SW_DTYPE_FP64;
    default: return SW_DTYPE_INVALID;
    }
}

struct tensor_deleter {
    void operator()(sw_tensor *t) const
    {
        sw_tensor_free(t);
    }
};
using tensor_ptr = std::unique_ptr<sw_tensor, tensor_deleter>;

struct array_deleter {
    void operator()(GPtrArray *a) const
    {
        g_ptr_array_unref(a);
    }
};
using array_ptr = std::unique_ptr<GPtrArray, array_deleter>;

void free_tensor_holder(gpointer holder)
{
    delete static_cast<at::Tensor *>(holder);
}

void free_sw_tensor(gpointer t)
{
    sw_tensor_free(static_cast<sw_tensor *>(t));
}

/* The GBytes owns a reference to the tensor instead of a copy of its data. */
GBytes *bytes_sharing(const at::Tensor &t)
{
    size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (nbytes == 0)
        return g_bytes_new(nullptr, 0);
    auto *holder = new at::Tensor(t);
    return g_bytes_new_with_free_func(t.data_ptr(), nbytes, free_tensor_holder, holder);
}

tensor_ptr tensor_to_sw(const at::Tensor &t, const std::string &key)
{
    sw_dtype dtype = dtype_from_scalar_type(t.scalar_type());
    if (dtype == SW_DTYPE_INVALID)
        fail(SW_CODE_INTERNAL,
             "output " + quoted(key) + ": tensors of type " + c10::toString(t.scalar_type()) + " are not supported");
    if (t.layout() != at::kStrided)
        fail(SW_CODE_INTERNAL, "output " + quoted(key) + ": only strided tensors are supported");
    if (t.dim() > SW_MAX_DIMS)
        fail(SW_CODE_INTERNAL, "output " + quoted(key) + ": " + std::to_string(t.dim()) + " dimensions, at most " +
                                   std::to_string(SW_MAX_DIMS) + " are supported");
    at::Tensor cpu = t.to(at::kCPU).contiguous();
    int64_t shape[SW_MAX_DIMS] = {0};
    for (int64_t d = 0; d < cpu.dim(); d++)
        shape[d] = cpu.size(d);
    GBytes *bytes = bytes_sharing(cpu);
    tensor_ptr out(sw_tensor_new(dtype, static_cast<int>(cpu.dim()), shape, bytes));
    g_bytes_unref(bytes);
    return out;
}

enum class list_kind { strings, string_lists, tensors, unsupported };

/* A list's static element type decides, so empty lists convert too; List[Any]
 * carries none, so its first element decides (and the rest are checked). */
list_kind classify_list(const c10::List<c10::IValue> &list)
{
    c10::TypePtr element = list.elementType();
    if (element->kind() == c10::TypeKind::AnyType && !list.empty())
        element = list.get(0).type();
    switch (element->kind()) {
    case c10::TypeKind::StringType: return list_kind::strings;
    case c10::TypeKind::TensorType: return list_kind::tensors;
    case c10::TypeKind::ListType: {
        c10::TypePtr inner = element->expectRef<c10::ListType>().getElementType();
        return inner->kind() == c10::TypeKind::StringType ? list_kind::string_lists : list_kind::unsupported;
    }
    default: return list_kind::unsupported;
    }
}

[[noreturn]] void fail_element(const std::string &key, size_t i, const c10::IValue &v, const char *expected)
{
    fail(SW_CODE_INTERNAL,
         "output " + quoted(key) + ": element " + std::to_string(i) + " is " + v.tagKind() + ", expected " + expected);
}

tensor_ptr strings_to_sw(c10::ArrayRef<c10::IValue> elements, const std::string &key)
{
    std::vector<const char *> strings;
    std::vector<size_t> lens;
    strings.reserve(elements.size());
    lens.reserve(elements.size());
    for (size_t i = 0; i < elements.size(); i++) {
        if (!elements[i].isString())
            fail_element(key, i, elements[i], "str");
        const std::string &s = elements[i].toStringRef();
        strings.push_back(s.data());
        lens.push_back(s.size());
    }
    return tensor_ptr(sw_tensor_new_strings(strings.data(), lens.data(), strings.size()));
}

array_ptr rows_to_sw(c10::ArrayRef<c10::IValue> elements, const std::string &key, bool strings)
{
    array_ptr items(g_ptr_array_new_full(static_cast<guint>(elements.size()), free_sw_tensor));
    for (size_t i = 0; i < elements.size(); i++) {
        const c10::IValue &row = elements[i];
        tensor_ptr t;
        if (strings && row.isList())
            t = strings_to_sw(row.toListRef(), key + "[" + std::to_string(i) + "]");
        else if (!strings && row.isTensor())
            t = tensor_to_sw(row.toTensor(), key + "[" + std::to_string(i) + "]");
        else
            fail_element(key, i, row, strings ? "List[str]" : "Tensor");
        g_ptr_array_add(items.get(), t.release());
    }
    return items;
}

sw_value *value_to_sw(const std::string &key, const c10::IValue &v)
{
    if (v.isTensor())
        return sw_value_new_tensor(key.c_str(), SW_VALUE_TENSOR, tensor_to_sw(v.toTensor(), key).release());
    if (v.isList()) {
        c10::ArrayRef<c10::IValue> elements = v.toListRef();
        switch (classify_list(v.toList())) {
        case list_kind::strings:
            return sw_value_new_tensor(key.c_str(), SW_VALUE_STRINGS, strings_to_sw(elements, key).release());
        case list_kind::string_lists:
            return sw_value_new_list(key.c_str(), SW_VALUE_STRING_LISTS, rows_to_sw(elements, key, true).release());
        case list_kind::tensors:
            return sw_value_new_list(key.c_str(), SW_VALUE_TENSOR_LIST, rows_to_sw(elements, key, false).release());
        case list_kind::unsupported: break;
        }
    }
    fail(SW_CODE_INTERNAL,
         "output " + quoted(key) + ": values of type " + v.type()->annotation_str() + " are not supported");
}

} // namespace

/* The dict argument must carry forward's own key and value types: TorchScript
 * rejects a Dict(str, Tensor) where Dict(str, Union(...)) is declared. */
/* Whether `type` takes any tensor: Tensor itself (without a fixed dtype or
 * shape), Any, or a union or optional with such a member. */
bool takes_any_tensor(const c10::Type &type)
{
    switch (type.kind()) {
    case c10::AnyType::Kind: return true;
    case c10::TensorType::Kind: return type == *c10::TensorType::get();
    case c10::OptionalType::Kind:
    case c10::UnionType::Kind:
        for (const c10::TypePtr &member : type.containedTypes())
            if (takes_any_tensor(*member))
                return true;
        return false;
    default: return false;
    }
}

/* value.type()->isSubtypeOf(type), without building the type of a tensor
 * (shape, strides and all: a dozen allocations per input per call) when
 * `type` takes any tensor. */
bool conforms(const c10::IValue &value, const c10::Type &type)
{
    if (value.isTensor() && takes_any_tensor(type))
        return true;
    return value.type()->isSubtypeOf(type);
}

c10::IValue build_argument(const sw_torch_module &m, sw_value *const *inputs, size_t n_inputs)
{
    c10::impl::GenericDict dict(m.key_type, m.value_type);
    dict.reserve(n_inputs);
    for (size_t i = 0; i < n_inputs; i++) {
        const sw_value *v = inputs[i];
        if (v == nullptr || v->name == nullptr)
            fail(SW_CODE_INVALID_ARGUMENT, "input " + std::to_string(i) + " has no name");
        c10::IValue value = value_from_sw(*v, m.device);
        /* The interpreter checks only the dict's declared types, not its
         * values: a wrong value would fail deep inside forward, if at all. */
        if (!conforms(value, *m.value_type))
            fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(v->name) + " is a " + value.type()->annotation_str() +
                                               " but forward expects " + m.value_type->annotation_str());
        if (!dict.insert(std::string(v->name), std::move(value)).second)
            fail(SW_CODE_INVALID_ARGUMENT, "input " + quoted(v->name) + " is given twice");
    }
    return c10::IValue(std::move(dict));
}

GPtrArray *outputs_to_sw(const c10::IValue &out)
{
    if (!out.isGenericDict())
        fail(SW_CODE_INTERNAL, "forward returned a " + out.type()->annotation_str() + ", not a dict");
    array_ptr values(sw_value_array_new());
    for (const auto &entry : out.toGenericDict()) {
        if (!entry.key().isString())
            fail(SW_CODE_INTERNAL, "forward returned a dict key of type " + entry.key().type()->annotation_str());
        g_ptr_array_add(values.get(), value_to_sw(entry.key().toStringRef(), entry.value()));
    }
    return values.release();
}

} // namespace sw_shim
