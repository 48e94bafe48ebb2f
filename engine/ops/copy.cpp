// Conversions and copies: to(dtype/device), clone, contiguous, copy_.
#include "engine/ops/copy.h"

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/backend.h"
#include "engine/ops/iter.h"
#include "kernels/cpu/copy.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/launch.h"
#include "kernels/cuda/copy.h"
#endif

namespace zae {

namespace {
// Same-device copy with conversion, on the CPU or on the CUDA device that holds both.
void copy_same_device(const Tensor& dst, const Tensor& src) {
  auto it = make_iter<2>({&dst, &src}, "copy");
  const Backend backend = elementwise_backend("copy", dst.device(), dst.dtype());
  dispatch_all(dst.dtype(), [&](auto dt) {
    using D = typename decltype(dt)::type;
    dispatch_all(src.dtype(), [&](auto st) {
      using S = typename decltype(st)::type;
      D* d = static_cast<D*>(dst.raw_data());
      const S* s = static_cast<const S*>(src.raw_data());
      if (backend == Backend::cpu) {
        kernels::cpu::copy_cast<D, S>(it, d, s);
      } else {
#ifdef ZAE_WITH_CUDA
        cuda::LaunchScope scope(dst.device());
        kernels::cuda::copy_cast<D, S>(it, d, s, scope.stream());
#endif
      }
    });
  });
}
}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  ZAE_CHECK(dst.defined() && src.defined(), "copy: undefined tensor");
  if (dst.numel() == 0) return;
  if (dst.storage() == src.storage()) {
    bool same_view = dst.shape() == src.shape() && dst.strides() == src.strides() &&
                     dst.storage_offset() == src.storage_offset() && dst.dtype() == src.dtype();
    if (same_view) return;
    // Overlapping source and destination: read everything before writing.
    Tensor staged = Tensor::empty(src.shape(), {.dtype = src.dtype(), .device = src.device()});
    copy_into(staged, src);
    copy_into(dst, staged);
    return;
  }
  if (dst.device() == src.device()) {
    copy_same_device(dst, src);
    return;
  }
  // Across devices: move dense bytes, converting on the CPU side.
  if (src.device().is_cpu()) {
    Tensor staged = (src.shape() == dst.shape() && src.dtype() == dst.dtype() && src.is_contiguous())
                        ? src
                        : Tensor::empty(dst.shape(), {.dtype = dst.dtype()});
    if (!staged.is_same(src)) copy_same_device(staged, src);
    if (dst.is_contiguous()) {
      copy_bytes(dst.raw_data(), dst.device(), staged.raw_data(), staged.device(), dst.nbytes());
    } else {
      Tensor dense = Tensor::empty(dst.shape(), {.dtype = dst.dtype(), .device = dst.device()});
      copy_bytes(dense.raw_data(), dense.device(), staged.raw_data(), staged.device(), dst.nbytes());
      copy_same_device(dst, dense);
    }
    return;
  }
  Tensor dense_src = src.is_contiguous() ? src : src.contiguous();
  Tensor host = Tensor::empty(src.shape(), {.dtype = src.dtype()});
  copy_bytes(host.raw_data(), host.device(), dense_src.raw_data(), dense_src.device(), host.nbytes());
  copy_into(dst, host);
}

Tensor dense_data(const Tensor& t) {
  if (!t.defined() || t.is_contiguous()) return t;
  Tensor out = Tensor::empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy_into(out, t);
  return out;
}

void check_inplace(const char* op, const Tensor& t, const Tensor& other) {
  ZAE_CHECK(t.defined(), op, ": undefined tensor");
  // A broadcast (stride 0) dim maps many elements to one address: the result of a write
  // would depend on the order of the writes (as in PyTorch, refuse it).
  for (int64_t d = 0; d < t.dim(); ++d)
    ZAE_CHECK(t.strides()[d] != 0 || t.shape()[d] <= 1, op, ": in-place write to a tensor of shape ",
              shape_str(t.shape()), " with strides ", shape_str(t.strides()),
              " where several elements share one memory location (an expanded view); clone() it first");
  if (!GradMode::is_enabled()) return;
  ZAE_CHECK(!t.requires_grad(), op, ": in-place write to a tensor that requires grad (shape ", shape_str(t.shape()),
            "); wrap parameter updates in NoGradGuard or use the out-of-place op");
  ZAE_CHECK(!other.defined() || !other.requires_grad(), op,
            ": in-place op with an operand that requires grad is not recorded by autograd; use the out-of-place op");
}

Tensor Tensor::to(Device device, DType dtype) const {
  if (device == this->device() && dtype == this->dtype()) return *this;
  Tensor out = Tensor::empty(shape(), {.dtype = dtype, .device = device});
  copy_into(out, *this);
  if (is_floating(dtype)) {
    DType src_dtype = this->dtype();
    Device src_device = this->device();
    autograd::record("ToCopyBackward", {*this}, out, {}, [src_dtype, src_device](const Tensor& g, const auto&) {
      return std::vector<Tensor>{g.to(src_device, src_dtype)};
    });
  }
  return out;
}
Tensor Tensor::to(DType dtype) const { return to(device(), dtype); }
Tensor Tensor::to(Device device) const { return to(device, dtype()); }

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), {.dtype = dtype(), .device = device()});
  copy_into(out, *this);
  autograd::record("CloneBackward", {*this}, out, {}, [](const Tensor& g, const auto&) {
    return std::vector<Tensor>{g};
  });
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace("copy_", *this, src);
  copy_into(*this, src);
  storage()->bump_version();
  return *this;
}

}  // namespace zae
