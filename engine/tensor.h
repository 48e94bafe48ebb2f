// Tensor: a shared handle to a view (shape, strides, offset, dtype) of a Storage,
// plus its autograd state. Copying a Tensor copies the handle, not the data.
// Invariants: dim() <= 8; strides and storage_offset are in elements; a view
// never reads outside its storage; a default-constructed Tensor is undefined
// and every op rejects it with a clear error.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/storage.h"

namespace zae {

using Shape = std::vector<int64_t>;
inline constexpr int kMaxDims = 8;

namespace autograd {
class Node;
struct LeafHooks;
}

class Tensor;

/// The state behind a Tensor handle. Users go through Tensor.
struct TensorImpl {
  Storage storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  DType dtype = DType::float32;
  // Autograd state.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;      // null for leaves
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves: the node that adds into grad
  std::shared_ptr<autograd::LeafHooks> hooks;      // leaves: post-accumulate-grad hooks (engine/autograd/hooks.h)
  std::string name;                             // optional, shown in errors
};

/// Creation options: zae::zeros({2, 3}, {.dtype = DType::float64, .device = Device::cuda()}).
struct TensorOptions {
  DType dtype = DType::float32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

/// Contiguous (row-major) strides for a shape.
Shape contiguous_strides(const Shape& shape);
/// Product of sizes, checked for overflow.
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  /// A new contiguous, uninitialised tensor.
  static Tensor empty(const Shape& shape, TensorOptions opts = {});
  /// A view of `storage` with the given geometry (checked to stay in bounds).
  static Tensor make_view(Storage storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  // ---- geometry -----------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  /// Size of dim d (negative d counts from the end).
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t storage_offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t element_size() const { return itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  bool is_contiguous() const;
  const Storage& storage() const { return impl().storage; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  /// Maps a possibly negative dim to [0, dim()); errors name the op.
  int64_t wrap_dim(int64_t d, const char* op = "dim") const;

  // ---- data access (CPU) -------------------------------------------------
  /// Byte address of element 0 of this view.
  void* raw_data() const;
  /// Typed pointer to element 0; the dtype must be T's.
  template <class T>
  T* data() const {
    ZAE_CHECK(dtype() == dtype_of<T>(), "data<T>(): tensor has dtype ", dtype(), ", requested ", dtype_of<T>());
    return static_cast<T*>(raw_data());
  }
  /// The single value of a one-element tensor, converted to double (syncs a device).
  double item() const;
  template <class T>
  T item() const {
    return static_cast<T>(item());
  }
  /// All elements in row-major order converted to T (copies to the CPU if needed).
  template <class T>
  std::vector<T> to_vector() const;

  // ---- autograd ------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  /// Marks a leaf as needing a gradient; rejects non-floating dtypes and non-leaves.
  Tensor& requires_grad_(bool on = true);
  /// The accumulated gradient (undefined until a backward reaches this tensor).
  Tensor grad() const;
  void set_grad(const Tensor& g);
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  /// Back-propagates from this tensor. Without `gradient` the tensor must hold one element.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  /// A new handle on the same storage, cut from the graph.
  Tensor detach() const;
  uint64_t version() const { return impl().storage->version(); }
  /// Points this handle, and every copy of it, at `src`'s storage, geometry and dtype,
  /// keeping its autograd identity (a leaf stays the same leaf). Module::to and
  /// load paths use it so optimizers' handles stay valid. Leaves only.
  void set_data(const Tensor& src);
  Tensor& set_name(std::string name);
  const std::string& name() const { return impl().name; }

  // ---- views (share storage) --------------------------------------------
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  /// Transpose of a 2-D tensor (or swaps the last two dims).
  Tensor t() const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;

  // ---- conversion --------------------------------------------------------
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor to(Device device, DType dtype) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor clone() const;

  // ---- in-place (bump the version counter) ------------------------------
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& add_(double value);
  Tensor& sub_(const Tensor& other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double value);
  Tensor& div_(double value);
  Tensor& copy_(const Tensor& src);
  Tensor& zero_();
  Tensor& fill_(double value);

  // ---- common ops as methods -----------------------------------------------
  Tensor sum() const;
  Tensor sum(const Shape& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const Shape& dims, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;
  Tensor pow(double exponent) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor abs() const;
  Tensor sqrt() const;
  Tensor relu() const;
  Tensor tanh() const;
  Tensor sigmoid() const;

  /// PyTorch-style repr: values (elided when large), shape, dtype, device, grad_fn.
  std::string str() const;

  TensorImpl& impl() const {
    ZAE_CHECK(impl_ != nullptr, "operation on an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Arithmetic operators (autograd-aware; scalars broadcast).
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace zae
