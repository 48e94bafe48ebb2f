// unary_into / binary_into: the non-recording elementwise primitives. They validate
// (defined operands, one device, supported dtype), convert inputs to the compute
// dtype, build the broadcast iterator and dispatch once to a CPU or CUDA kernel.
// Invariants: the compute dtype is out's dtype (bool-out comparisons compute in
// promote_types(a, b)); an input that shares memory with `out` without being the
// very same view is read completely before `out` is written (the result is staged);
// `out` must not have internal overlap (a stride 0 on a dim of size > 1).
#include "engine/ops/elementwise_into.h"

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/ops/backend.h"
#include "engine/ops/copy.h"
#include "engine/ops/iter.h"
#include "kernels/cpu/binary.h"
#include "kernels/cpu/unary.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/launch.h"
#include "kernels/cuda/binary.h"
#include "kernels/cuda/unary.h"
#endif

namespace zae {

namespace {

namespace kc = kernels::cpu;

constexpr kc::UnaryKind to_kind(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return kc::UnaryKind::neg;
    case UnaryOp::abs: return kc::UnaryKind::abs;
    case UnaryOp::exp: return kc::UnaryKind::exp;
    case UnaryOp::log: return kc::UnaryKind::log;
    case UnaryOp::sqrt: return kc::UnaryKind::sqrt;
    case UnaryOp::rsqrt: return kc::UnaryKind::rsqrt;
    case UnaryOp::sin: return kc::UnaryKind::sin;
    case UnaryOp::cos: return kc::UnaryKind::cos;
    case UnaryOp::tanh: return kc::UnaryKind::tanh;
    case UnaryOp::sigmoid: return kc::UnaryKind::sigmoid;
    case UnaryOp::relu: return kc::UnaryKind::relu;
    case UnaryOp::gelu: return kc::UnaryKind::gelu;
    case UnaryOp::gelu_tanh: return kc::UnaryKind::gelu_tanh;
    case UnaryOp::silu: return kc::UnaryKind::silu;
    case UnaryOp::sign: return kc::UnaryKind::sign;
    case UnaryOp::gelu_grad: return kc::UnaryKind::gelu_grad;
    case UnaryOp::gelu_tanh_grad: return kc::UnaryKind::gelu_tanh_grad;
    case UnaryOp::silu_grad: return kc::UnaryKind::silu_grad;
    case UnaryOp::sigmoid_grad_from_out: return kc::UnaryKind::sigmoid_grad_from_out;
    case UnaryOp::tanh_grad_from_out: return kc::UnaryKind::tanh_grad_from_out;
  }
  return kc::UnaryKind::neg;
}

bool is_comparison(BinaryOp op) { return static_cast<int>(op) >= static_cast<int>(BinaryOp::eq); }

constexpr kc::BinaryKind to_kind(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return kc::BinaryKind::add;
    case BinaryOp::sub: return kc::BinaryKind::sub;
    case BinaryOp::mul: return kc::BinaryKind::mul;
    case BinaryOp::div: return kc::BinaryKind::div;
    case BinaryOp::maximum: return kc::BinaryKind::maximum;
    case BinaryOp::minimum: return kc::BinaryKind::minimum;
    default: return kc::BinaryKind::pow;
  }
}

constexpr kc::CompareKind to_compare(BinaryOp op) {
  switch (op) {
    case BinaryOp::eq: return kc::CompareKind::eq;
    case BinaryOp::ne: return kc::CompareKind::ne;
    case BinaryOp::lt: return kc::CompareKind::lt;
    case BinaryOp::le: return kc::CompareKind::le;
    case BinaryOp::gt: return kc::CompareKind::gt;
    default: return kc::CompareKind::ge;
  }
}

void check_same_device(const char* op_name, const Tensor& x, const char* x_role, const Tensor& y,
                       const char* y_role) {
  ZAE_CHECK(x.device() == y.device(), op_name, ": expected all tensors on one device, got ", x_role, " on ",
            x.device(), " and ", y_role, " on ", y.device());
}

// An output must not write one memory location through two indices.
void check_no_internal_overlap(const char* op_name, const Tensor& out) {
  for (int64_t d = 0; d < out.dim(); ++d)
    ZAE_CHECK(out.shape()[d] <= 1 || out.strides()[d] != 0, op_name, ": the output (shape ", shape_str(out.shape()),
              ", strides ", shape_str(out.strides()),
              ") has several elements at one memory location (an expanded view); write into a contiguous tensor");
}

bool same_view(const Tensor& x, const Tensor& y) {
  return x.storage() == y.storage() && x.shape() == y.shape() && x.strides() == y.strides() &&
         x.storage_offset() == y.storage_offset() && x.dtype() == y.dtype();
}

// `t` in dtype `dt` (a fresh tensor of t's shape when a conversion is needed; never recorded).
Tensor as_dtype(const Tensor& t, DType dt) {
  if (t.dtype() == dt) return t;
  Tensor c = Tensor::empty(t.shape(), {.dtype = dt, .device = t.device()});
  copy_into(c, t);
  return c;
}

// True when an input shares memory with `out` without being the same view: the result must be staged.
bool needs_staging(const Tensor& out, const Tensor& in) {
  return in.storage() == out.storage() && !same_view(in, out);
}

template <class A>
A alpha_as(double alpha) {
  if constexpr (std::is_floating_point_v<A>)
    return static_cast<A>(alpha);
  else
    return static_cast<A>(static_cast<int64_t>(alpha));
}

void run_unary(kc::UnaryKind kind, const Tensor& out, const Tensor& a, const char* op_name) {
  auto it = make_iter<2>({&out, &a}, op_name);
  const Backend backend = elementwise_backend(op_name, out.device(), out.dtype());
  dispatch_numeric(out.dtype(), op_name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>) {
      T* o = static_cast<T*>(out.raw_data());
      const T* x = static_cast<const T*>(a.raw_data());
      if (backend == Backend::cpu) {
        kc::unary<T>(kind, it, o, x);
      } else {
#ifdef ZAE_WITH_CUDA
        cuda::LaunchScope scope(out.device());
        kernels::cuda::unary<T>(kind, it, o, x, scope.stream());
#endif
      }
    }
  });
}

void run_binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                const char* op_name) {
  auto it = make_iter<3>({&out, &a, &b}, op_name);
  const Backend backend = elementwise_backend(op_name, out.device(), out.dtype());
  if (is_comparison(op)) {
    dispatch_all(a.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      bool* o = static_cast<bool*>(out.raw_data());
      const T* x = static_cast<const T*>(a.raw_data());
      const T* y = static_cast<const T*>(b.raw_data());
      if (backend == Backend::cpu) {
        kc::compare<T>(to_compare(op), it, o, x, y);
      } else {
#ifdef ZAE_WITH_CUDA
        cuda::LaunchScope scope(out.device());
        kernels::cuda::compare<T>(to_compare(op), it, o, x, y, scope.stream());
#endif
      }
    });
    return;
  }
  dispatch_numeric(out.dtype(), op_name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>) {
      T* o = static_cast<T*>(out.raw_data());
      const T* x = static_cast<const T*>(a.raw_data());
      const T* y = static_cast<const T*>(b.raw_data());
      if (backend == Backend::cpu) {
        kc::binary<T>(to_kind(op), it, o, x, y, alpha_as<acc_t<T>>(alpha));
      } else {
#ifdef ZAE_WITH_CUDA
        cuda::LaunchScope scope(out.device());
        kernels::cuda::binary<T>(to_kind(op), it, o, x, y, alpha_as<acc_t<T>>(alpha), scope.stream());
#endif
      }
    }
  });
}

}  // namespace

void unary_into(UnaryOp op, const Tensor& out, const Tensor& a, const char* op_name) {
  ZAE_CHECK(out.defined() && a.defined(), op_name, ": undefined tensor");
  check_same_device(op_name, out, "the output", a, "the input");
  elementwise_backend(op_name, out.device(), out.dtype());
  const DType dt = out.dtype();
  const kc::UnaryKind kind = to_kind(op);
  ZAE_CHECK(dt != DType::bool_, op_name, ": dtype bool is not supported");
  ZAE_CHECK(is_floating(dt) || kc::unary_supports_integers(kind), op_name, ": dtype ", dt,
            " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
  ZAE_CHECK(is_floating(dt) || !is_floating(a.dtype()), op_name, ": cannot write a result of dtype ", a.dtype(),
            " into an output of dtype ", dt);
  check_no_internal_overlap(op_name, out);
  if (out.numel() == 0) {
    make_iter<2>({&out, &a}, op_name);  // still validates the shapes
    return;
  }
  Tensor ac = as_dtype(a, dt);
  if (needs_staging(out, ac)) {
    Tensor staged = Tensor::empty(out.shape(), {.dtype = dt, .device = out.device()});
    run_unary(kind, staged, ac, op_name);
    copy_into(out, staged);
    return;
  }
  run_unary(kind, out, ac, op_name);
}

void binary_into(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                 const char* op_name) {
  ZAE_CHECK(out.defined() && a.defined() && b.defined(), op_name, ": undefined tensor");
  check_same_device(op_name, a, "the first operand", b, "the second operand");
  check_same_device(op_name, out, "the output", a, "the inputs");
  elementwise_backend(op_name, out.device(), out.dtype());
  const DType promoted = promote_types(a.dtype(), b.dtype());
  DType dt = promoted;  // compute dtype
  if (is_comparison(op)) {
    ZAE_CHECK(out.dtype() == DType::bool_, op_name, ": comparison output must be bool, got dtype ", out.dtype());
  } else {
    dt = out.dtype();
    ZAE_CHECK(dt != DType::bool_, op_name, ": dtype bool is not supported (operands ", a.dtype(), " and ",
              b.dtype(), ")");
    ZAE_CHECK(is_floating(dt) || !is_floating(promoted), op_name, ": result dtype ", promoted,
              " cannot be written into an output of dtype ", dt);
    ZAE_CHECK(op != BinaryOp::div || is_floating(dt), op_name, ": division needs a floating output, got dtype ", dt,
              " (integer division produces float32)");
    ZAE_CHECK(is_floating(dt) || std::trunc(alpha) == alpha, op_name, ": alpha ", alpha,
              " must be an integer for dtype ", dt);
  }
  check_no_internal_overlap(op_name, out);
  if (out.numel() == 0) {
    make_iter<3>({&out, &a, &b}, op_name);  // still validates the shapes
    return;
  }
  Tensor ac = as_dtype(a, dt);
  Tensor bc = as_dtype(b, dt);
  if (needs_staging(out, ac) || needs_staging(out, bc)) {
    Tensor staged = Tensor::empty(out.shape(), {.dtype = out.dtype(), .device = out.device()});
    run_binary(op, staged, ac, bc, alpha, op_name);
    copy_into(out, staged);
    return;
  }
  run_binary(op, out, ac, bc, alpha, op_name);
}

}  // namespace zae
