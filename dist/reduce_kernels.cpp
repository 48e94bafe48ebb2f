#include "dist/reduce_kernels.h"

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/error.h"

namespace zae::dist::detail {
namespace {

template <class T>
void sum_kernel(void* out_, const void* a_, const void* b_, size_t n) {
  T* out = static_cast<T*>(out_);
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  if constexpr (std::is_integral_v<T>) {
    // Integers wrap around on overflow (computed unsigned: no undefined behaviour).
    using U = std::make_unsigned_t<T>;
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<U>(static_cast<U>(a[i]) + static_cast<U>(b[i])));
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }
}

// max: a when a > b or a is NaN, else b (so a NaN in either operand wins).
template <class T>
void max_kernel(void* out_, const void* a_, const void* b_, size_t n) {
  T* out = static_cast<T*>(out_);
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>)
      out[i] = (a[i] > b[i] || a[i] != a[i]) ? a[i] : b[i];
    else
      out[i] = a[i] > b[i] ? a[i] : b[i];
  }
}

template <class T>
void min_kernel(void* out_, const void* a_, const void* b_, size_t n) {
  T* out = static_cast<T*>(out_);
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>)
      out[i] = (a[i] < b[i] || a[i] != a[i]) ? a[i] : b[i];
    else
      out[i] = a[i] < b[i] ? a[i] : b[i];
  }
}

template <class T>
ReduceFn kernel_for(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return &sum_kernel<T>;
    case ReduceOp::min: return &min_kernel<T>;
    case ReduceOp::max: return &max_kernel<T>;
  }
  return nullptr;
}

}  // namespace

bool is_native_reduce_dtype(DType dtype) {
  switch (dtype) {
    case DType::float32:
    case DType::float64:
    case DType::int32:
    case DType::int64:
    case DType::uint8: return true;
    default: return false;
  }
}

ReduceFn cpu_reduce_fn(DType dtype, ReduceOp op, const char* op_name) {
  ReduceFn fn = nullptr;
  switch (dtype) {
    case DType::float32: fn = kernel_for<float>(op); break;
    case DType::float64: fn = kernel_for<double>(op); break;
    case DType::int32: fn = kernel_for<int32_t>(op); break;
    case DType::int64: fn = kernel_for<int64_t>(op); break;
    case DType::uint8: fn = kernel_for<uint8_t>(op); break;
    default:
      ZAE_FAIL(op_name, ": no CPU reduce kernel for dtype ", dtype,
               " (native: float32, float64, int32, int64, uint8)");
  }
  ZAE_CHECK(fn != nullptr, op_name, ": unknown ReduceOp code ", static_cast<int>(op));
  return fn;
}

void cpu_divide_inplace(DType dtype, void* data, size_t n, double divisor, const char* op_name) {
  if (dtype == DType::float32) {
    float* p = static_cast<float*>(data);
    const auto d = static_cast<float>(divisor);
    for (size_t i = 0; i < n; ++i) p[i] /= d;
  } else if (dtype == DType::float64) {
    double* p = static_cast<double*>(data);
    for (size_t i = 0; i < n; ++i) p[i] /= divisor;
  } else {
    ZAE_FAIL(op_name, ": averaging needs a floating dtype, got ", dtype);
  }
}

}  // namespace zae::dist::detail
