// The index family on CUDA (ctest label gpu): gather, index_select, scatter_add,
// embedding and one_hot run on CUDA and on the CPU from the same random inputs, forward
// and backward. Selections must match exactly; accumulations must match the CPU bit for
// bit in deterministic mode (zae::set_deterministic) and within tolerance with atomics
// (float32 1e-4 relative for these long sums, float64 1e-12, bfloat16 1e-2, float16
// 1e-3, each with an absolute floor of that tolerance times the largest magnitude).
// Sizes include 1, 7, 1023 and (1 << 20) + 3; inputs and indices include non-contiguous
// views; out-of-range indices must raise the CPU's errors and leave the device usable.
// The cache is poisoned (freed blocks filled with 0xff) before each CUDA call, so a
// kernel that leaves an output element unwritten shows up. GPU tests skip cleanly
// where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::expect_throws_with;

const Device kCuda = Device::cuda();

/// Frees a few 0xff-filled blocks into the caching allocator so later allocations reuse them.
void poison_cache() {
  for (int64_t bytes : {int64_t{1} << 10, int64_t{1} << 16, int64_t{1} << 20, int64_t{9} << 20})
    (void)full({bytes}, 255.0, {.dtype = DType::uint8, .device = kCuda});
}

Tensor indices(const Shape& shape, int64_t high, DType dt, uint64_t seed) {
  Generator gen(seed);
  return randint(0, high, shape, {.dtype = DType::int64}, &gen).to(dt);
}

double tolerance(DType dt) {
  // Integers: exact.
  return test::tolerance_for(dt, {.float64 = 1e-12, .float32 = 1e-4, .bfloat16 = 1e-2, .float16 = 1e-3});
}

/// got (on CUDA) equals want (CPU) exactly (rtol = 0) or within rtol * (|want| + max|want|).
::testing::AssertionResult matches(const Tensor& got, const Tensor& want, double rtol = 0.0) {
  if (!got.device().is_cuda()) return ::testing::AssertionFailure() << "result on " << got.device();
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "got " << shape_str(got.shape()) << " " << got.dtype() << ", want "
                                         << shape_str(want.shape()) << " " << want.dtype();
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    const bool same = g[i] == w[i] || (std::isnan(g[i]) && std::isnan(w[i]));
    const bool ok = same || (rtol > 0 && std::abs(g[i] - w[i]) <= rtol * (std::abs(w[i]) + scale));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << w.size() << " differ; first at " << first << ": cuda "
                                       << g[first] << " vs cpu " << w[first] << " (rtol " << rtol << ")";
}

// ---- flag ----------------------------------------------------------------------------------

TEST(Deterministic, OffByDefaultAndGuardRestores) {
  EXPECT_FALSE(deterministic());
  {
    DeterministicGuard on(true);
    EXPECT_TRUE(deterministic());
    {
      DeterministicGuard off(false);
      EXPECT_FALSE(deterministic());
    }
    EXPECT_TRUE(deterministic());
  }
  EXPECT_FALSE(deterministic());
}

// ---- gather ----------------------------------------------------------------------------------

struct GatherCase {
  Shape x_shape;
  int64_t dim;
  Shape index_shape;
  bool permute_x = false;      // x is a permuted (non-contiguous) view
  bool permute_index = false;  // index is a permuted view
};

const std::vector<GatherCase> kGatherCases = {
    {{1}, 0, {1}},
    {{7}, 0, {5}},
    {{1023}, 0, {(1 << 20) + 3}},
    {{(1 << 20) + 3}, 0, {1023}},
    {{1023, 3}, 0, {1023, 3}},
    {{3, 1023}, 1, {2, 7}},
    {{4, 5, 6}, 1, {4, 9, 6}, true, false},
    {{6, 5, 4}, -1, {6, 5, 3}, false, true},
};

Tensor permuted(const Tensor& t) {
  Shape dims(static_cast<size_t>(t.dim()));
  for (int64_t d = 0; d < t.dim(); ++d) dims[d] = t.dim() - 1 - d;
  return t.permute(dims);
}

/// The same values on the CPU and on CUDA; with `view`, both are reversed-dims views of
/// contiguous tensors on their own device (so the CUDA op sees a strided input).
struct Twin {
  Tensor cpu, dev;
};

Twin twin(const Shape& shape, bool view, const std::function<Tensor(const Shape&)>& make) {
  if (!view) {
    Tensor t = make(shape);
    return {t, t.to(kCuda)};
  }
  Tensor base = make(Shape(shape.rbegin(), shape.rend()));
  return {permuted(base), permuted(base.to(kCuda))};
}

TEST(GatherCuda, ForwardMatchesCpuEveryDtype) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const GatherCase& c : kGatherCases)
    for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16, DType::int64, DType::int32,
                     DType::uint8, DType::bool_})
      for (DType it : {DType::int64, DType::int32}) {
        Twin x = twin(c.x_shape, c.permute_x, [&](const Shape& s) { return test::random_tensor(s, dt, 1); });
        const int64_t dim = c.dim < 0 ? c.dim + x.cpu.dim() : c.dim;
        Twin idx = twin(c.index_shape, c.permute_index,
                        [&](const Shape& s) { return indices(s, x.cpu.shape()[dim], it, 2); });
        Tensor want = gather(x.cpu, c.dim, idx.cpu);
        poison_cache();
        EXPECT_TRUE(matches(gather(x.dev, c.dim, idx.dev), want))
            << shape_str(c.x_shape) << " dim " << c.dim << " " << dt << " " << it;
      }
}

TEST(GatherCuda, BackwardMatchesCpuInBothModes) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const GatherCase& c : kGatherCases)
    for (DType dt : {DType::float32, DType::float64})
      for (bool det : {true, false}) {
        DeterministicGuard mode(det);
        Twin x = twin(c.x_shape, c.permute_x, [&](const Shape& s) { return test::random_tensor(s, dt, 3); });
        const int64_t dim = c.dim < 0 ? c.dim + x.cpu.dim() : c.dim;
        Tensor idx = indices(c.index_shape, x.cpu.shape()[dim], DType::int64, 4);
        Tensor g = test::random_tensor(c.index_shape, dt, 5);
        Tensor xc = x.cpu.detach().requires_grad_();
        gather(xc, c.dim, idx).backward(g);
        Tensor xd = x.dev.detach().requires_grad_();
        poison_cache();
        gather(xd, c.dim, idx.to(kCuda)).backward(g.to(kCuda));
        EXPECT_TRUE(matches(xd.grad(), xc.grad(), det ? 0.0 : tolerance(dt)))
            << shape_str(c.x_shape) << " dim " << c.dim << " " << dt << (det ? " deterministic" : " atomic");
      }
}

// ---- index_select ----------------------------------------------------------------------------

TEST(IndexSelectCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  struct Case {
    Shape x_shape;
    int64_t dim;
    int64_t n;
    bool permute_x;
  };
  const std::vector<Case> cases = {{{1}, 0, 1, false},         {{7, 3}, 0, 1023, false}, {{1023, 5}, 1, 7, false},
                                   {{4, 1023}, 0, 9, true},    {{3, 4, 5}, 1, 6, true},  {{1023}, 0, (1 << 20) + 3, false}};
  for (const Case& c : cases)
    for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16})
      for (DType it : {DType::int64, DType::int32})
        for (bool det : {true, false}) {
          DeterministicGuard mode(det);
          Twin x = twin(c.x_shape, c.permute_x, [&](const Shape& s) { return test::random_tensor(s, dt, 6); });
          Tensor idx = indices({c.n}, x.cpu.shape()[c.dim], it, 7);
          Tensor xc = x.cpu.detach().requires_grad_();
          Tensor want = index_select(xc, c.dim, idx);
          Tensor g = test::random_tensor(want.shape(), dt, 8);
          want.backward(g);
          Tensor xd = x.dev.detach().requires_grad_();
          poison_cache();
          Tensor got = index_select(xd, c.dim, idx.to(kCuda));
          const std::string what = shape_str(c.x_shape) + " dim " + std::to_string(c.dim) + " " +
                                   std::string(dtype_name(dt)) + (det ? " deterministic" : " atomic");
          EXPECT_TRUE(matches(got, want.detach())) << what;
          got.backward(g.to(kCuda));
          EXPECT_TRUE(matches(xd.grad(), xc.grad(), det ? 0.0 : tolerance(dt))) << what;
        }
}

// ---- scatter_add -------------------------------------------------------------------------------

struct ScatterCase {
  Shape x_shape;
  int64_t dim;
  Shape index_shape;
  Shape src_shape;
  bool permute_src = false;
  bool many_duplicates = false;  // many sources per output element (16-bit atomics skipped)
};

const std::vector<ScatterCase> kScatterCases = {
    {{1}, 0, {1}, {1}},
    {{7}, 0, {7}, {9}},
    {{1023}, 0, {(1 << 20) + 3}, {(1 << 20) + 3}, false, true},
    {{(1 << 20) + 3}, 0, {1023}, {1023}},
    {{5, 1023}, 1, {5, 1023}, {5, 1023}},
    {{4, 6, 5}, 1, {4, 3, 5}, {5, 3, 6}, true},
    {{3, 7}, 0, {20, 7}, {20, 7}, false, true},
};

TEST(ScatterAddCuda, ForwardMatchesCpuInBothModes) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const ScatterCase& c : kScatterCases)
    for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16, DType::int32, DType::int64,
                     DType::uint8})
      for (DType it : {DType::int64, DType::int32})
        for (bool det : {true, false}) {
          const bool half = dt == DType::bfloat16 || dt == DType::float16;
          if (!det && half && c.many_duplicates) continue;  // the CPU rounds every add; atomics accumulate in float
          DeterministicGuard mode(det);
          Tensor x = test::random_tensor(c.x_shape, dt, 9);
          Twin src = twin(c.src_shape, c.permute_src, [&](const Shape& s) { return test::random_tensor(s, dt, 10); });
          Tensor idx = indices(c.index_shape, c.x_shape[c.dim], it, 11);
          Tensor want = scatter_add(x, c.dim, idx, src.cpu);
          poison_cache();
          Tensor got = scatter_add(x.to(kCuda), c.dim, idx.to(kCuda), src.dev);
          EXPECT_TRUE(matches(got, want, det ? 0.0 : tolerance(dt)))
              << shape_str(c.x_shape) << " dim " << c.dim << " " << dt << " " << it << (det ? " deterministic" : " atomic");
        }
}

TEST(ScatterAddCuda, BackwardMatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const ScatterCase& c : kScatterCases)
    for (DType dt : {DType::float32, DType::float64}) {
      Tensor x = test::random_tensor(c.x_shape, dt, 12), src = test::random_tensor(c.src_shape, dt, 13);
      Tensor idx = indices(c.index_shape, c.x_shape[c.dim], DType::int64, 14);
      Tensor g = test::random_tensor(c.x_shape, dt, 15);
      Tensor xc = x.detach().requires_grad_(), sc = src.detach().requires_grad_();
      scatter_add(xc, c.dim, idx, sc).backward(g);
      Tensor xd = x.to(kCuda).detach().requires_grad_(), sd = src.to(kCuda).detach().requires_grad_();
      poison_cache();
      scatter_add(xd, c.dim, idx.to(kCuda), sd).backward(g.to(kCuda));
      EXPECT_TRUE(matches(xd.grad(), xc.grad())) << shape_str(c.x_shape) << " " << dt << " d_x";
      EXPECT_TRUE(matches(sd.grad(), sc.grad())) << shape_str(c.x_shape) << " " << dt << " d_src";
    }
}

TEST(ScatterAddCuda, DeterministicRunsAreBitIdentical) {
  ZAE_SKIP_WITHOUT_CUDA();
  DeterministicGuard mode(true);
  const int64_t n = (1 << 20) + 3;
  Tensor x = zeros({7}).to(kCuda);
  Tensor src = test::random_tensor({n}, DType::float32, 16).to(kCuda);
  Tensor idx = indices({n}, 7, DType::int64, 17).to(kCuda);
  std::vector<float> first = scatter_add(x, 0, idx, src).to_vector<float>();
  for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(scatter_add(x, 0, idx, src).to_vector<float>(), first) << rep;
  EXPECT_EQ(scatter_add(x.cpu(), 0, idx.cpu(), src.cpu()).to_vector<float>(), first) << "the CPU's bits";
}

// ---- embedding ------------------------------------------------------------------------------------

TEST(EmbeddingCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t vocab, width;
    Shape index_shape;
    std::optional<int64_t> pad;
  };
  const std::vector<Case> cases = {{1, 1, {1}, std::nullopt},        {7, 33, {5, 7}, 3},
                                   {1023, 4, {(1 << 20) + 3}, -1},    {1023, 129, {2, 1023}, std::nullopt},
                                   {7, 1023, {9}, 0}};
  for (const Case& c : cases)
    for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16})
      for (DType it : {DType::int64, DType::int32})
        for (bool det : {true, false}) {
          DeterministicGuard mode(det);
          Tensor w = test::random_tensor({c.vocab, c.width}, dt, 18);
          Tensor idx = indices(c.index_shape, c.vocab, it, 19);
          Tensor wc = w.detach().requires_grad_();
          Tensor want = embedding(idx, wc, c.pad);
          Tensor g = test::random_tensor(want.shape(), dt, 20);
          want.backward(g);
          Tensor wd = w.to(kCuda).detach().requires_grad_();
          poison_cache();
          Tensor got = embedding(idx.to(kCuda), wd, c.pad);
          const std::string what = "vocab " + std::to_string(c.vocab) + " width " + std::to_string(c.width) + " " +
                                   std::string(dtype_name(dt)) + (det ? " deterministic" : " atomic");
          EXPECT_TRUE(matches(got, want.detach())) << what;
          got.backward(g.to(kCuda));
          EXPECT_TRUE(matches(wd.grad(), wc.grad(), det ? 0.0 : tolerance(dt))) << what;
        }
}

// ---- one_hot ---------------------------------------------------------------------------------------

TEST(OneHotCuda, MatchesCpuGivenAndInferredClasses) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const Shape& shape : {Shape{1}, Shape{7}, Shape{33, 31}, Shape{(1 << 20) + 3}})
    for (DType it : {DType::int64, DType::int32}) {
      Tensor idx = indices(shape, shape.size() == 1 && shape[0] > 1000 ? 3 : 11, it, 21);
      poison_cache();
      EXPECT_TRUE(matches(one_hot(idx.to(kCuda)), one_hot(idx))) << shape_str(shape) << " inferred";
      EXPECT_TRUE(matches(one_hot(idx.to(kCuda), 12), one_hot(idx, 12))) << shape_str(shape) << " 12 classes";
    }
  EXPECT_EQ(one_hot(indices({0}, 1, DType::int64, 1).to(kCuda), 5).shape(), (Shape{0, 5}));
}

// ---- bounds ------------------------------------------------------------------------------------------

TEST(IndexCuda, OutOfRangeIndicesAreErrorsAndTheDeviceStaysUsable) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = test::random_tensor({3, 4}, DType::float32, 22).to(kCuda);
  Tensor bad_big = tensor<int64_t>({0, 1, 2, 0, 1, 2, 7, 1}, {2, 4}).to(kCuda);   // 7 at position 6
  Tensor bad_neg = tensor<int64_t>({0, -1, 2, 0, 1, 2, 0, 1}, {2, 4}).to(DType::int32).to(kCuda);
  expect_throws_with([&] { gather(x, 0, bad_big); }, {"gather", "index 7", "dim 0 with size 3", "position 6"});
  expect_throws_with([&] { gather(x, 0, bad_neg); }, {"gather", "index -1", "position 1"});
  expect_throws_with([&] { index_select(x, 1, tensor<int64_t>({3, 4}, {2}).to(kCuda)); },
                     {"index_select", "index 4", "dim 1 with size 4", "position 1"});
  expect_throws_with([&] { scatter_add(x, 0, bad_big, x.clone()); }, {"scatter_add", "index 7", "position 6"});
  Tensor w = test::random_tensor({5, 2}, DType::float32, 23).to(kCuda);
  expect_throws_with([&] { embedding(tensor<int64_t>({0, 5}, {2}).to(kCuda), w); },
                     {"embedding", "index 5", "position 1", "5 embeddings"});
  expect_throws_with([&] { one_hot(tensor<int64_t>({0, 3}, {2}).to(kCuda), 3); }, {"one_hot", "index 3", "3 classes"});
  expect_throws_with([&] { one_hot(tensor<int64_t>({0, -2}, {2}).to(kCuda)); }, {"one_hot", "index -2"});
  // Nothing was corrupted and no error is left pending: a valid call works.
  Tensor ok = tensor<int64_t>({2, 0, 1, 1}, {1, 4}).to(kCuda);
  EXPECT_TRUE(matches(gather(x, 0, ok), gather(x.cpu(), 0, ok.cpu())));
  cuda::synchronize();
}

}  // namespace
