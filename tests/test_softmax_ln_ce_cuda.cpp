// CUDA softmax / log_softmax, layer_norm, cross_entropy and nll_loss (ctest label gpu)
// against their CPU twins on the same random inputs, forward and backward (gradients
// through autograd on both devices): short rows (warp per row), long rows (block per
// row), softmax over inner dims (strided lanes), non-contiguous inputs, NaN / inf rows;
// layer_norm with and without the affine parameters, one or several normalized dims,
// many rows (the chunked dweight / dbias sums, checked bitwise deterministic) and no
// rows; cross_entropy with ignore_index, label smoothing, class weights, every
// reduction, int32 / int64 targets, (N, C, d1, ...) logits and the all-ignored mean
// (NaN); bad targets are a clear error on CUDA. float32 / float64 / bfloat16 / float16.
// Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/loss.h"
#include "engine/ops/nn.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::backward_both_weighted;
using test::cuda_matches_cpu;
using test::LeafPair;
using test::poison_cuda_like;
using test::random_leaf_pair;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

double rtol_for(DType dt) { return test::tolerance_for(dt, test::kRowReductionTolerance); }

// ---- softmax ---------------------------------------------------------------------------

struct SoftmaxCase {
  Shape shape;
  int64_t dim;
  bool transposed = false;  // the input is the transpose (last two dims) of a contiguous base
};

TEST(SoftmaxCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const SoftmaxCase cases[] = {
      {{1}, 0},
      {{7}, 0},
      {{3, 1023}, 1},
      {{5, 1025}, -1},
      {{2, 50257}, 1},
      {{1000, 33}, 1},
      {{4, 7, 33}, 1},
      {{4, 7, 33}, 0},
      {{2, 3, 4, 5}, 2},
      {{33, 65}, 1, true},
      {{65, 33}, 0, true},
      {{(1 << 20) + 3}, 0},
      {{6, 1}, 1},
  };
  uint64_t seed = 1;
  for (const SoftmaxCase& c : cases)
    for (DType dt : test::kFloatingDTypes)
      for (bool log : {false, true}) {
        SCOPED_TRACE(std::string(log ? "log_softmax " : "softmax ") + std::string(dtype_name(dt)) + " shape " +
                     shape_str(c.shape) + " dim " + std::to_string(c.dim) + (c.transposed ? " transposed" : ""));
        Shape base_shape = c.shape;
        if (c.transposed) std::swap(base_shape[0], base_shape[1]);
        LeafPair x = random_leaf_pair(base_shape, dt, ++seed, 3.0);
        Tensor in_cpu = c.transposed ? x.cpu.t() : x.cpu;
        Tensor in_cuda = c.transposed ? x.cuda.t() : x.cuda;
        auto fn = [&](const Tensor& t) { return log ? log_softmax(t, c.dim) : softmax(t, c.dim); };
        Tensor want = fn(in_cpu);
        poison_cuda_like(want);
        Tensor got = fn(in_cuda);
        EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
        backward_both_weighted(want, got, ++seed);
        EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 2 * rtol_for(dt))) << "gradient";
      }
}

TEST(SoftmaxCuda, NanAndInfinityRowsMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  // Rows: plain, a NaN, all -inf, a +inf, -inf among numbers.
  const std::vector<double> v = {1,     2,     3, 4,    1, kNaN, 3,     4,   -kInf, -kInf,
                                 -kInf, -kInf, 1, kInf, 2, 3,    -kInf, 0.5, -kInf, 2};
  for (DType dt : test::kFloatingDTypes) {
    Tensor cpu = tensor(v, {5, 4}).to(dt);
    Tensor dev = cpu.to(Device::cuda());
    for (int64_t dim : {0, 1}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " dim " + std::to_string(dim));
      EXPECT_TRUE(cuda_matches_cpu(softmax(dev, dim), softmax(cpu, dim), rtol_for(dt)));
      EXPECT_TRUE(cuda_matches_cpu(log_softmax(dev, dim), log_softmax(cpu, dim), rtol_for(dt)));
    }
  }
}

// ---- layer_norm ------------------------------------------------------------------------

struct LayerNormCase {
  Shape shape;
  Shape normalized;
  bool weight = true, bias = true, transposed = false;
};

TEST(LayerNormCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const LayerNormCase cases[] = {
      {{1, 1}, {1}},
      {{5, 7}, {7}},
      {{3, 768}, {768}, true, false},
      {{64, 1023}, {1023}},
      {{2, 4097}, {4097}, false, false},
      {{3000, 64}, {64}},
      {{4, 6, 10}, {6, 10}},
      {{33, 65}, {65}, true, true, true},
      {{0, 8}, {8}},
      {{7}, {7}, false, true},
  };
  uint64_t seed = 300;
  for (const LayerNormCase& c : cases)
    for (DType dt : test::kFloatingDTypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " shape " + shape_str(c.shape) + " normalized " +
                   shape_str(c.normalized) + (c.weight ? " weight" : "") + (c.bias ? " bias" : "") +
                   (c.transposed ? " transposed" : ""));
      Shape base_shape = c.shape;
      if (c.transposed) std::swap(base_shape[0], base_shape[1]);
      LeafPair x = random_leaf_pair(base_shape, dt, ++seed, 2.0, 0.5);
      LeafPair w = random_leaf_pair(c.normalized, dt, ++seed, 0.5, 1.0);
      LeafPair b = random_leaf_pair(c.normalized, dt, ++seed);
      Tensor in_cpu = c.transposed ? x.cpu.t() : x.cpu;
      Tensor in_cuda = c.transposed ? x.cuda.t() : x.cuda;
      Tensor want = layer_norm(in_cpu, c.normalized, c.weight ? w.cpu : Tensor(), c.bias ? b.cpu : Tensor(), 1e-5);
      poison_cuda_like(want);
      Tensor got = layer_norm(in_cuda, c.normalized, c.weight ? w.cuda : Tensor(), c.bias ? b.cuda : Tensor(), 1e-5);
      EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
      backward_both_weighted(want, got, ++seed);
      EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 4 * rtol_for(dt))) << "d_x";
      if (c.weight) {
        EXPECT_TRUE(cuda_matches_cpu(w.cuda.grad(), w.cpu.grad(), 4 * rtol_for(dt))) << "d_weight";
      }
      if (c.bias) {
        EXPECT_TRUE(cuda_matches_cpu(b.cuda.grad(), b.cpu.grad(), 4 * rtol_for(dt))) << "d_bias";
      }
    }
}

TEST(LayerNormCuda, WeightAndBiasGradientsAreDeterministic) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = test::random_tensor({4099, 300}, DType::float32, 7).to(Device::cuda());
  Tensor g = test::random_tensor({4099, 300}, DType::float32, 8).to(Device::cuda());
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Tensor w = ones({300}, {.device = Device::cuda()}).requires_grad_();
    Tensor b = zeros({300}, {.device = Device::cuda()}).requires_grad_();
    layer_norm(x, {300}, w, b).backward(g);
    std::vector<float> bits = w.grad().to_vector<float>();
    const std::vector<float> db = b.grad().to_vector<float>();
    bits.insert(bits.end(), db.begin(), db.end());
    runs.push_back(bits);
  }
  EXPECT_EQ(runs[0], runs[1]) << "two identical backward passes must give the same bits";
}

// ---- cross_entropy and nll_loss --------------------------------------------------------

/// Targets of `shape` for `classes` classes: (i * 7 + 3) % classes, with every
/// `ignore_every`-th entry (when > 0; 1: all) set to ignore_index.
Tensor targets(const Shape& shape, int64_t classes, int64_t ignore_every, int64_t ignore_index, DType dt) {
  std::vector<int64_t> t(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < t.size(); ++i) {
    const bool ignored = ignore_every > 0 && static_cast<int64_t>(i) % ignore_every == ignore_every - 1;
    t[i] = ignored ? ignore_index : static_cast<int64_t>(i * 7 + 3) % classes;
  }
  return tensor(t, {static_cast<int64_t>(t.size())}).reshape(shape).to(dt);
}

struct CeCase {
  Shape logits;  // (C), (N, C) or (N, C, d1, ...)
  int64_t ignore_every = 0;
  double smoothing = 0.0;
  bool weight = false;
  Reduction reduction = Reduction::mean;
  DType target_dtype = DType::int64;
};

TEST(CrossEntropyCuda, LossAndGradientMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const CeCase cases[] = {
      {{1, 1}},
      {{7, 7}, 3},
      {{64, 1023}, 5, 0.1, true},
      {{5, 5000}, 0, 0.0, false, Reduction::sum},
      {{300, 10}, 4, 0.2, false, Reduction::none, DType::int32},
      {{2, 5, 3, 4}, 3, 0.0, true, Reduction::mean},
      {{2, 5, 3, 4}, 0, 0.1, true, Reduction::none},
      {{11}, 0, 0.05, true, Reduction::mean, DType::int32},
      {{4, 2049}, 2, 0.0, false, Reduction::mean},
      {{6, 3}, 1, 0.0, false, Reduction::mean},  // every target ignored: NaN mean
  };
  uint64_t seed = 700;
  for (const CeCase& c : cases)
    for (DType dt : test::kFloatingDTypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " logits " + shape_str(c.logits) + " ignore_every " +
                   std::to_string(c.ignore_every) + " smoothing " + std::to_string(c.smoothing) +
                   (c.weight ? " weighted" : "") + " reduction " + std::to_string(static_cast<int>(c.reduction)));
      const int64_t classes = c.logits.size() == 1 ? c.logits[0] : c.logits[1];
      Shape tshape;
      for (size_t d = 0; d < c.logits.size(); ++d)
        if (d != (c.logits.size() == 1 ? 0 : 1)) tshape.push_back(c.logits[d]);
      LeafPair x = random_leaf_pair(c.logits, dt, ++seed, 2.0);
      Tensor t = targets(tshape, classes, c.ignore_every, -100, c.target_dtype);
      Tensor wt = c.weight ? (test::random_tensor({classes}, dt, ++seed).abs() + 0.5) : Tensor();
      CrossEntropyOptions cpu_opts{.label_smoothing = c.smoothing, .reduction = c.reduction, .weight = wt};
      CrossEntropyOptions cuda_opts = cpu_opts;
      if (c.weight) cuda_opts.weight = wt.to(Device::cuda());
      Tensor want = cross_entropy(x.cpu, t, cpu_opts);
      poison_cuda_like(want);
      Tensor got = cross_entropy(x.cuda, t.to(Device::cuda()), cuda_opts);
      EXPECT_TRUE(cuda_matches_cpu(got, want, 2 * rtol_for(dt)));
      backward_both_weighted(want, got, ++seed);
      EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 4 * rtol_for(dt))) << "d_logits";
    }
}

TEST(CrossEntropyCuda, BadTargetIsAClearError) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor logits = zeros({4, 5}, {.device = Device::cuda()});
  Tensor bad = tensor(std::vector<int64_t>{0, 4, 5, -100}, {4}).to(Device::cuda());
  test::expect_throws_with([&] { cross_entropy(logits, bad); },
                           {"cross_entropy", "target 5", "position 2", "5 classes"});
  Tensor negative = tensor(std::vector<int64_t>{0, -1, 1, 2}, {4}).to(DType::int32).to(Device::cuda());
  test::expect_throws_with([&] { cross_entropy(logits, negative); }, {"cross_entropy", "target -1", "position 1"});
  test::expect_throws_with([&] { nll_loss(logits, bad); }, {"nll_loss", "target 5", "position 2"});
}

TEST(NllLossCuda, MatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 900;
  for (DType dt : test::kFloatingDTypes)
    for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " reduction " + std::to_string(static_cast<int>(reduction)));
      LeafPair x = random_leaf_pair({40, 9}, dt, ++seed);
      Tensor t = targets({40}, 9, 4, -100, DType::int64);
      Tensor wt = test::random_tensor({9}, dt, ++seed).abs() + 0.5;
      Tensor want = nll_loss(log_softmax(x.cpu, 1), t, {.reduction = reduction, .weight = wt});
      Tensor got = nll_loss(log_softmax(x.cuda, 1), t.to(Device::cuda()),
                            {.reduction = reduction, .weight = wt.to(Device::cuda())});
      EXPECT_TRUE(cuda_matches_cpu(got, want, 2 * rtol_for(dt)));
      backward_both_weighted(want, got, ++seed);
      EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 4 * rtol_for(dt))) << "gradient";
    }
}

}  // namespace
