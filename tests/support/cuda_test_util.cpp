// Shared CUDA-test helpers; see cuda_test_util.h.
#include "tests/support/cuda_test_util.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/ops/factory.h"
#include "tests/support/test_util.h"

namespace zae::test {

double tolerance_for(DType dt, const DTypeTolerance& tol) {
  switch (dt) {
    case DType::float64: return tol.float64;
    case DType::float32: return tol.float32;
    case DType::bfloat16: return tol.bfloat16;
    case DType::float16: return tol.float16;
    default: return tol.integral;
  }
}

::testing::AssertionResult cuda_matches_cpu(const Tensor& got, const Tensor& want, double rtol) {
  if (!got.defined() || !want.defined())
    return ::testing::AssertionFailure() << "undefined tensor (cuda " << got.defined() << ", cpu " << want.defined()
                                         << ")";
  if (!got.device().is_cuda()) return ::testing::AssertionFailure() << "result is on " << got.device();
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape()) << ", cpu " << shape_str(want.shape());
  if (got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "dtype " << got.dtype() << ", cpu " << want.dtype();
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 1.0;
  for (double v : w)
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < w.size(); ++i) {
    const bool ok = std::isnan(w[i])   ? std::isnan(g[i])
                    : std::isinf(w[i]) ? g[i] == w[i]
                                       : std::abs(g[i] - w[i]) <= rtol * (scale + std::abs(w[i]));
    if (!ok)
      return ::testing::AssertionFailure() << "element " << i << " of " << w.size() << ": cuda " << g[i] << ", cpu "
                                           << w[i] << " (rtol " << rtol << ", scale " << scale << ")";
  }
  return ::testing::AssertionSuccess();
}

void poison_cuda_like(const Tensor& cpu_result) {
  if (cpu_result.numel() == 0 || cpu_result.dtype() == DType::bool_) return;
  Tensor p = Tensor::empty(cpu_result.shape(), {.dtype = cpu_result.dtype(), .device = Device::cuda()});
  p.fill_(is_floating(cpu_result.dtype()) ? std::numeric_limits<double>::quiet_NaN() : 77.0);
}

LeafPair random_leaf_pair(const Shape& shape, DType dt, uint64_t seed, double scale, double shift) {
  LeafPair l;
  l.cpu = (random_tensor(shape, dt, seed) * scale + shift).detach();
  l.cuda = l.cpu.to(Device::cuda());
  l.cpu.requires_grad_();
  l.cuda.requires_grad_();
  return l;
}

void backward_both_weighted(const Tensor& out_cpu, const Tensor& out_cuda, uint64_t seed) {
  Tensor w = random_tensor(out_cpu.shape(), out_cpu.dtype(), seed);
  (out_cpu * w).sum().backward();
  (out_cuda * w.to(Device::cuda())).sum().backward();
}

}  // namespace zae::test
