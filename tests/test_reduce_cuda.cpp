// CUDA reductions (ctest label gpu) against their CPU twins on the same random inputs:
// sum, mean, var, amax/amin, max/min (values + indices), argmax/argmin, logsumexp and
// norm (p = 2, 1, inf, 3) over all dims, one dim, several (non-adjacent) dims, with and
// without keepdim; float32 / float64 / bfloat16 / float16, and the integer dtypes for
// sums and extrema (many ties: the first index must win on both devices); sizes 1, 7,
// 1023, 2^20 + 3, tall narrow columns and a full sum of 2^26 elements (the split,
// two-pass paths); contiguous, transposed and sliced inputs; NaN / inf handling; and
// gradients through autograd on both devices. CUDA outputs come from a caching
// allocator whose same-size blocks were filled with NaN (or a sentinel) first, so an
// element a kernel fails to write shows up. Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::cuda_matches_cpu;
using test::poison_cuda_like;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr DType kIntegral[] = {DType::int32, DType::int64, DType::uint8, DType::bool_};

/// Relative tolerance of a CUDA result against the CPU one (k: reduced extent).
double rtol_for(DType dt, int64_t k) {
  // Integers and indices: exact.
  return test::tolerance_for(
      dt, {.float64 = 1e-10, .float32 = k > 4096 ? 1e-4 : 1e-5, .bfloat16 = 1e-2, .float16 = 1e-3});
}

enum class Layout { contiguous, transposed, sliced };

/// The same values as a CPU and a CUDA tensor of `shape` in `layout`; with `grad` the
/// bases (leaves) require grad.
struct Inputs {
  Tensor cpu_base, cuda_base, cpu, cuda;
};

Inputs make_inputs(const Shape& shape, DType dt, uint64_t seed, Layout layout, bool grad) {
  const int64_t n = static_cast<int64_t>(shape.size());
  Shape base_shape = shape;
  if (layout == Layout::transposed) std::swap(base_shape[n - 2], base_shape[n - 1]);
  if (layout == Layout::sliced) base_shape[n - 1] *= 2;
  Inputs in;
  in.cpu_base = test::random_tensor(base_shape, dt, seed);
  in.cuda_base = in.cpu_base.to(Device::cuda());
  if (grad) {
    in.cpu_base.requires_grad_();
    in.cuda_base.requires_grad_();
  }
  auto view = [&](const Tensor& b) {
    if (layout == Layout::transposed) return b.transpose(n - 2, n - 1);
    if (layout == Layout::sliced) return b.slice(n - 1, 0, base_shape[n - 1], 2);
    return b;
  };
  in.cpu = view(in.cpu_base);
  in.cuda = view(in.cuda_base);
  return in;
}

using OpFn = std::function<std::vector<Tensor>(const Tensor&)>;

struct Op {
  std::string name;
  OpFn fn;
  bool grad = true;  // compare gradients (floating inputs only)
};

/// Runs op on both devices and compares every output; with grad, also the gradients of
/// sum(out[0] * w) for a random w. Ops that throw on the CPU must throw on CUDA.
void check_op(const Op& op, const Shape& shape, DType dt, Layout layout, int64_t k, uint64_t seed) {
  SCOPED_TRACE(op.name + " " + std::string(dtype_name(dt)) + " shape " + shape_str(shape) + " layout " +
               std::to_string(static_cast<int>(layout)));
  const bool grad = op.grad && is_floating(dt);
  Inputs in = make_inputs(shape, dt, seed, layout, grad);
  std::vector<Tensor> want;
  try {
    want = op.fn(in.cpu);
  } catch (const Error&) {
    EXPECT_THROW(op.fn(in.cuda), Error) << "the CPU rejects this case";
    return;
  }
  for (const Tensor& w : want) poison_cuda_like(w);
  const std::vector<Tensor> got = op.fn(in.cuda);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(cuda_matches_cpu(got[i], want[i], rtol_for(want[i].dtype(), k))) << "output " << i;
  if (!grad || want[0].numel() == 0) return;
  Tensor w = test::random_tensor(want[0].shape(), dt, seed + 1);
  (want[0] * w).sum().backward();
  (got[0] * w.to(Device::cuda())).sum().backward();
  ASSERT_EQ(in.cuda_base.grad().defined(), in.cpu_base.grad().defined());
  if (in.cpu_base.grad().defined()) {
    EXPECT_TRUE(cuda_matches_cpu(in.cuda_base.grad(), in.cpu_base.grad(), 2 * rtol_for(dt, k))) << "gradient";
  }
}

std::vector<Op> multi_dim_ops(const Shape& dims, bool keepdim) {
  auto one = [](Tensor t) { return std::vector<Tensor>{std::move(t)}; };
  return {
      {"sum", [=](const Tensor& x) { return one(sum(x, dims, keepdim)); }, true},
      {"mean", [=](const Tensor& x) { return one(mean(x, dims, keepdim)); }},
      {"var", [=](const Tensor& x) { return one(var(x, dims, 1, keepdim)); }},
      {"var_biased", [=](const Tensor& x) { return one(var(x, dims, 0, keepdim)); }},
      {"amax", [=](const Tensor& x) { return one(amax(x, dims, keepdim)); }, true},
      {"amin", [=](const Tensor& x) { return one(amin(x, dims, keepdim)); }, true},
      {"logsumexp", [=](const Tensor& x) { return one(logsumexp(x, dims, keepdim)); }},
      {"norm2", [=](const Tensor& x) { return one(norm(x, 2.0, dims, keepdim)); }},
      {"norm1", [=](const Tensor& x) { return one(norm(x, 1.0, dims, keepdim)); }},
      {"norm_inf", [=](const Tensor& x) { return one(norm(x, kInf, dims, keepdim)); }},
      {"norm3", [=](const Tensor& x) { return one(norm(x, 3.0, dims, keepdim)); }},
  };
}

std::vector<Op> one_dim_ops(int64_t dim, bool keepdim) {
  auto pair = [](std::pair<Tensor, Tensor> p) { return std::vector<Tensor>{p.first, p.second}; };
  return {
      {"max", [=](const Tensor& x) { return pair(max(x, dim, keepdim)); }, true},
      {"min", [=](const Tensor& x) { return pair(min(x, dim, keepdim)); }, true},
      {"argmax", [=](const Tensor& x) { return std::vector<Tensor>{argmax(x, dim, keepdim)}; }, false},
      {"argmin", [=](const Tensor& x) { return std::vector<Tensor>{argmin(x, dim, keepdim)}; }, false},
  };
}

struct Case {
  Shape shape;
  Shape dims;  // empty: all
  bool keepdim = false;
  Layout layout = Layout::contiguous;
};

int64_t reduced_extent(const Case& c) {
  int64_t k = 1;
  if (c.dims.empty()) return shape_numel(c.shape);
  for (int64_t d : c.dims) k *= c.shape[static_cast<size_t>(d < 0 ? d + static_cast<int64_t>(c.shape.size()) : d)];
  return k;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      {{1}, {}, false},
      {{7}, {0}, true},
      {{1023}, {}, false},
      {{(1 << 20) + 3}, {}, false},  // one long row: k split over blocks
      {{4, 7, 33}, {1}, false},      // columns (inner 33)
      {{4, 7, 33}, {0, 2}, true},    // non-adjacent dims: permuted copy
      {{4, 7, 33}, {-1}, false},
      {{64, 1023}, {1}, false},       // rows
      {{64, 1023}, {0}, false},       // wide columns
      {{3, 5000, 2}, {1}, false},     // tall narrow columns: k split over blocks
      {{2, 3, 4099}, {0, 1}, false},  // short columns, many outputs
      {{33, 65}, {0}, false, Layout::transposed},
      {{33, 65}, {1}, true, Layout::transposed},
      {{16, 40}, {1}, false, Layout::sliced},
      {{5, 0, 3}, {1}, false},  // empty reduction: identities, or an error on both devices
  };
  return table;
}

TEST(ReduceCuda, FloatingMatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  for (const Case& c : cases())
    for (DType dt : test::kFloatingDTypes)
      for (const Op& op : multi_dim_ops(c.dims, c.keepdim))
        check_op(op, c.shape, dt, c.layout, reduced_extent(c), ++seed);
}

TEST(ReduceCuda, AlongOneDimMatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 5000;
  for (const Case& c : cases()) {
    if (c.dims.size() != 1) continue;
    for (DType dt : test::kFloatingDTypes)
      for (const Op& op : one_dim_ops(c.dims[0], c.keepdim))
        check_op(op, c.shape, dt, c.layout, reduced_extent(c), ++seed);
    for (DType dt : kIntegral)
      for (const Op& op : one_dim_ops(c.dims[0], c.keepdim))
        check_op(op, c.shape, dt, c.layout, reduced_extent(c), ++seed);
  }
}

TEST(ReduceCuda, IntegralSumsAndExtremaMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 9000;
  for (const Case& c : cases())
    for (DType dt : kIntegral)
      for (const Op& op : multi_dim_ops(c.dims, c.keepdim))
        if (op.name == "sum" || op.name == "amax" || op.name == "amin")
          check_op(op, c.shape, dt, c.layout, reduced_extent(c), ++seed);
}

TEST(ReduceCuda, FlattenedArgExtremaMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Op ops[] = {
      {"argmax_all", [](const Tensor& x) { return std::vector<Tensor>{argmax(x)}; }, false},
      {"argmin_all", [](const Tensor& x) { return std::vector<Tensor>{argmin(x, std::nullopt, true)}; }, false},
  };
  uint64_t seed = 12000;
  for (const Shape& shape : {Shape{1}, Shape{7}, Shape{33, 65}, Shape{(1 << 20) + 3}})
    for (DType dt : {DType::float32, DType::bfloat16, DType::int32, DType::uint8})
      for (const Op& op : ops) check_op(op, shape, dt, Layout::contiguous, shape_numel(shape), ++seed);
  for (const Op& op : ops) check_op(op, {33, 65}, DType::float16, Layout::transposed, 33 * 65, ++seed);
}

TEST(ReduceCuda, NanAndInfinityMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  // Rows: a NaN in the middle, all -inf, +inf among numbers, -inf among numbers, NaN and +inf.
  const std::vector<double> v = {1, kNaN, 3,     2,   -kInf, -kInf, -kInf, -kInf, 1,    kInf,
                                 2, kInf, -kInf, 0.5, -kInf, 0.25,  kInf,  1,     kNaN, 2};
  for (DType dt : test::kFloatingDTypes) {
    Tensor cpu = tensor(v, {5, 4}).to(dt);
    Tensor dev = cpu.to(Device::cuda());
    for (int64_t dim : {0, 1}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " dim " + std::to_string(dim));
      EXPECT_TRUE(cuda_matches_cpu(amax(dev, {dim}), amax(cpu, {dim}), 0.0));
      EXPECT_TRUE(cuda_matches_cpu(amin(dev, {dim}), amin(cpu, {dim}), 0.0));
      EXPECT_TRUE(cuda_matches_cpu(argmax(dev, dim), argmax(cpu, dim), 0.0));
      EXPECT_TRUE(cuda_matches_cpu(argmin(dev, dim), argmin(cpu, dim), 0.0));
      EXPECT_TRUE(cuda_matches_cpu(logsumexp(dev, {dim}), logsumexp(cpu, {dim}), rtol_for(dt, 4)));
      EXPECT_TRUE(cuda_matches_cpu(sum(dev, {dim}), sum(cpu, {dim}), rtol_for(dt, 4)));
      EXPECT_TRUE(cuda_matches_cpu(norm(dev, kInf, {dim}), norm(cpu, kInf, {dim}), 0.0));
    }
  }
}

TEST(ReduceCuda, FullSumOf2To26IsDeterministicAndMatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const int64_t n = int64_t{1} << 26;
  Tensor cpu = test::random_tensor({n}, DType::float32, 77);
  Tensor dev = cpu.to(Device::cuda());
  Tensor first = sum(dev);
  EXPECT_TRUE(cuda_matches_cpu(first, sum(cpu), 1e-4));
  EXPECT_EQ(first.item(), sum(dev).item()) << "two runs of the same sum must give the same bits";
  EXPECT_TRUE(cuda_matches_cpu(mean(dev), mean(cpu), 1e-4));
  EXPECT_TRUE(cuda_matches_cpu(var(dev), var(cpu), 1e-4));
  EXPECT_TRUE(cuda_matches_cpu(argmax(dev), argmax(cpu), 0.0));
  EXPECT_TRUE(cuda_matches_cpu(norm(dev), norm(cpu), 1e-4));
  // A column sum with the same total size: (2^13, 2^13) over dim 0.
  Tensor sq_cpu = cpu.reshape({int64_t{1} << 13, int64_t{1} << 13});
  Tensor sq_dev = dev.reshape({int64_t{1} << 13, int64_t{1} << 13});
  EXPECT_TRUE(cuda_matches_cpu(sum(sq_dev, {0}), sum(sq_cpu, {0}), 1e-4));
  EXPECT_TRUE(cuda_matches_cpu(logsumexp(sq_dev, {1}), logsumexp(sq_cpu, {1}), 1e-4));
}

TEST(ReduceCuda, EmptyExtremumIsAnErrorOnCuda) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor dev = Tensor::empty({3, 0}, {.device = Device::cuda()});
  test::expect_throws_with([&] { amax(dev, {1}); }, {"amax", "zero elements"});
  test::expect_throws_with([&] { argmin(dev, 1); }, {"argmin", "zero elements"});
  EXPECT_TRUE(cuda_matches_cpu(sum(dev, {1}), zeros({3}), 0.0));
}

}  // namespace
