// Tensor's convenience methods and operators: thin forwards to the free ops, and
// the in-place ops (which write through the view and bump the version counter).
#include <cmath>

#include "engine/ops/binary.h"
#include "engine/ops/copy.h"
#include "engine/ops/elementwise_into.h"
#include "engine/ops/factory.h"
#include "engine/ops/iter.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/ops/unary.h"
#include "kernels/cpu/fill.h"

namespace zae {

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace("add_", *this, other);
  binary_into(BinaryOp::add, *this, *this, other, alpha, "add_");
  storage()->bump_version();
  return *this;
}
namespace {
// A scalar operand for an in-place op on `t`: integer tensors take only whole values.
Tensor inplace_scalar(const Tensor& t, double value, const char* op) {
  ZAE_CHECK(is_floating(t.dtype()) || value == std::floor(value), op, ": value ", value,
            " cannot be applied in place to a tensor of dtype ", t.dtype(), " (result would be truncated)");
  return scalar_tensor(value, {.dtype = t.dtype(), .device = t.device()});
}
}  // namespace

Tensor& Tensor::add_(double value) { return add_(inplace_scalar(*this, value, "add_")); }
Tensor& Tensor::sub_(const Tensor& other) { return add_(other, -1.0); }
Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace("mul_", *this, other);
  binary_into(BinaryOp::mul, *this, *this, other, 1.0, "mul_");
  storage()->bump_version();
  return *this;
}
Tensor& Tensor::mul_(double value) { return mul_(inplace_scalar(*this, value, "mul_")); }
Tensor& Tensor::div_(double value) {
  Tensor divisor = scalar_tensor(value, {.dtype = dtype(), .device = device()});
  check_inplace("div_", *this, divisor);
  binary_into(BinaryOp::div, *this, *this, divisor, 1.0, "div_");
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_inplace("fill_", *this);
  copy_into(*this, scalar_tensor(value, {.dtype = dtype(), .device = device()}));
  storage()->bump_version();
  return *this;
}
Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor Tensor::sum() const { return zae::sum(*this); }
Tensor Tensor::sum(const Shape& dims, bool keepdim) const { return zae::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return zae::mean(*this); }
Tensor Tensor::mean(const Shape& dims, bool keepdim) const { return zae::mean(*this, dims, keepdim); }
Tensor Tensor::matmul(const Tensor& other) const { return zae::matmul(*this, other); }
Tensor Tensor::pow(double exponent) const { return zae::pow(*this, exponent); }
Tensor Tensor::exp() const { return zae::exp(*this); }
Tensor Tensor::log() const { return zae::log(*this); }
Tensor Tensor::abs() const { return zae::abs(*this); }
Tensor Tensor::sqrt() const { return zae::sqrt(*this); }
Tensor Tensor::relu() const { return zae::relu(*this); }
Tensor Tensor::tanh() const { return zae::tanh(*this); }
Tensor Tensor::sigmoid() const { return zae::sigmoid(*this); }

Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return add(neg(b), a); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) {
  return div(scalar_tensor(a, {.dtype = is_floating(b.dtype()) ? b.dtype() : DType::float32, .device = b.device()}), b);
}

}  // namespace zae
