// Tensor geometry, data access and autograd entry points. Views are in
// engine/ops/view.cpp, conversions in engine/ops/copy.cpp, printing in engine/print.cpp.
#include "engine/tensor.h"

#include <limits>
#include <sstream>

#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"

namespace zae {

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    ZAE_CHECK(s >= 0, "negative size ", s, " in shape ", shape_str(shape));
    ZAE_CHECK(s == 0 || n <= std::numeric_limits<int64_t>::max() / s, "shape ", shape_str(shape),
              " has more elements than fit in int64");
    n *= s;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

Tensor Tensor::empty(const Shape& shape, TensorOptions opts) {
  ZAE_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "tensors have at most ", kMaxDims, " dims, got shape ",
            shape_str(shape));
  int64_t n = shape_numel(shape);
  size_t elem = itemsize(opts.dtype);
  ZAE_CHECK(n == 0 || static_cast<uint64_t>(n) <= std::numeric_limits<size_t>::max() / elem, "shape ",
            shape_str(shape), " is too large to allocate");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = make_storage(static_cast<size_t>(n) * elem, opts.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = opts.dtype;
  Tensor t(std::move(impl));
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor Tensor::make_view(Storage storage, Shape shape, Shape strides, int64_t offset, DType dtype) {
  ZAE_CHECK(shape.size() == strides.size(), "view: shape ", shape_str(shape), " and strides ", shape_str(strides),
            " differ in rank");
  ZAE_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "tensors have at most ", kMaxDims,
            " dims, got shape ", shape_str(shape));
  ZAE_CHECK(offset >= 0, "view: negative storage offset ", offset);
  // Bounds: the lowest and highest element addressed must lie in the storage.
  int64_t n = shape_numel(shape);
  if (n > 0) {
    int64_t lo = offset, hi = offset;
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t span = (shape[d] - 1) * strides[d];
      (span < 0 ? lo : hi) += span;
    }
    int64_t capacity = static_cast<int64_t>(storage->nbytes() / itemsize(dtype));
    ZAE_CHECK(lo >= 0 && hi < capacity, "view of shape ", shape_str(shape), ", strides ", shape_str(strides),
              ", offset ", offset, " reaches outside its storage of ", capacity, " elements");
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::wrap_dim(int64_t d, const char* op) const {
  int64_t n = dim();
  int64_t lo = n == 0 ? -1 : -n, hi = n == 0 ? 0 : n - 1;
  ZAE_CHECK(d >= lo && d <= hi, op, ": dim ", d, " is out of range for a tensor of shape ", shape_str(shape()),
            " (expected in [", lo, ", ", hi, "])");
  return d < 0 ? d + std::max<int64_t>(n, 1) : d;
}

int64_t Tensor::size(int64_t d) const { return shape()[static_cast<size_t>(wrap_dim(d, "size"))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[static_cast<size_t>(wrap_dim(d, "stride"))]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element to place (as PyTorch); empty() of [3, 0, 2] is contiguous
  int64_t expect = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * static_cast<int64_t>(element_size());
}

double Tensor::item() const {
  ZAE_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " has ", numel(),
            " elements; item() needs exactly one");
  Tensor c = device().is_cpu() ? *this : to(Device::cpu());
  return dispatch_all(c.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return static_cast<double>(*static_cast<const T*>(c.raw_data()));
  });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu(), dtype_of<T>()).contiguous();
  const T* p = static_cast<const T*>(c.raw_data());
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;
template std::vector<Half> Tensor::to_vector<Half>() const;
template std::vector<BFloat16> Tensor::to_vector<BFloat16>() const;

Tensor& Tensor::requires_grad_(bool on) {
  ZAE_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors can require gradients, got dtype ",
            dtype());
  ZAE_CHECK(is_leaf() || on, "requires_grad_(false) on a non-leaf tensor (produced by ", impl().grad_fn->name(),
            "); use detach() instead");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(impl().grad); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined()) {
    ZAE_CHECK(g.shape() == shape(), "set_grad: gradient of shape ", shape_str(g.shape()),
              " for a tensor of shape ", shape_str(shape()));
    ZAE_CHECK(g.device() == device(), "set_grad: gradient on ", g.device(), " for a tensor on ", device());
  }
  impl().grad = g.impl_ptr();
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph);
}

Tensor Tensor::detach() const {
  Tensor out = make_view(impl().storage, shape(), strides(), storage_offset(), dtype());
  return out;
}

void Tensor::set_data(const Tensor& src) {
  ZAE_CHECK(src.defined(), "set_data: source tensor is undefined");
  ZAE_CHECK(is_leaf(), "set_data: only leaf tensors can change their data (this one was produced by ",
            grad_fn() ? grad_fn()->name() : std::string("?"), ")");
  ZAE_CHECK(!requires_grad() || is_floating(src.dtype()), "set_data: a tensor that requires grad cannot take dtype ",
            src.dtype());
  TensorImpl& me = impl();
  const TensorImpl& other = src.impl();
  me.storage = other.storage;
  me.shape = other.shape;
  me.strides = other.strides;
  me.offset = other.offset;
  me.dtype = other.dtype;
}

Tensor& Tensor::set_name(std::string name) {
  impl().name = std::move(name);
  return *this;
}

}  // namespace zae
