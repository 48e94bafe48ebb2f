// Tests for the nn functional ops cross_entropy, embedding, dropout and one_hot.
// cross_entropy: every combination of ignore_index / label_smoothing / class
// weights / reduction on 2-D and 4-D logits against a float64 reference built from
// log_softmax in plain loops, and its gradient against float64 central differences.
// embedding: rows, repeated indices, padding_idx (also negative), int32 indices and
// a bit-exact determinism check of the weight gradient. dropout: the zero fraction,
// the scale, the exact Philox mask rule, replay from (seed, offset), eval identity,
// p == 1, and grad = mask * scale. one_hot: values, inference of num_classes.
// Every user error is checked for the values its message must name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "kernels/philox.h"
#include "tests/support/test_util.h"

namespace {

using zae::test::expect_throws_with;

using namespace zae;

Tensor randn_f64(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, {.dtype = DType::float64}, &g);
}

void expect_near_vec(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

// ------------------------------------------------------------------ cross_entropy

struct CeCase {
  Shape shape;  // logits (N, C, d1, ...)
  bool weighted;
  int64_t ignore_index;
  double smoothing;
  Reduction reduction;
  DType target_dtype;
};

std::string describe(const CeCase& c) {
  std::string r = c.reduction == Reduction::none ? "none" : c.reduction == Reduction::mean ? "mean" : "sum";
  return shape_str(c.shape) + (c.weighted ? " weighted" : "") + " ignore=" + std::to_string(c.ignore_index) +
         " eps=" + std::to_string(c.smoothing) + " reduction=" + r;
}

// Per-row losses (none) or the reduced value, from log_softmax in double.
// x has logits' layout (N, C, S) flattened; target (N, S); rows are r = n * S + s.
std::vector<double> ref_cross_entropy(const std::vector<double>& x, const std::vector<int64_t>& target,
                                      const std::vector<double>& w, int64_t n, int64_t classes, int64_t spatial,
                                      int64_t ignore, double eps, Reduction red) {
  std::vector<double> loss;
  double total = 0.0, wsum = 0.0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t s = 0; s < spatial; ++s) {
      auto at = [&](int64_t c) { return x[(b * classes + c) * spatial + s]; };
      int64_t t = target[b * spatial + s];
      if (t == ignore) {
        loss.push_back(0.0);
        continue;
      }
      double m = -INFINITY;
      for (int64_t c = 0; c < classes; ++c) m = std::max(m, at(c));
      double z = 0.0;
      for (int64_t c = 0; c < classes; ++c) z += std::exp(at(c) - m);
      double lse = m + std::log(z);
      auto wc = [&](int64_t c) { return w.empty() ? 1.0 : w[c]; };
      double nll = -wc(t) * (at(t) - lse);
      double smooth = 0.0;
      for (int64_t c = 0; c < classes; ++c) smooth -= wc(c) * (at(c) - lse);
      double l = (1.0 - eps) * nll + eps / static_cast<double>(classes) * smooth;
      loss.push_back(l);
      total += l;
      wsum += wc(t);
    }
  if (red == Reduction::none) return loss;
  if (red == Reduction::sum) return {total};
  return {total / wsum};
}

std::vector<CeCase> all_cases() {
  std::vector<CeCase> cases;
  int k = 0;
  for (Shape shape : {Shape{5, 4}, Shape{2, 3, 2, 2}})
    for (bool weighted : {false, true})
      for (int64_t ignore : {-100, 1})
        for (double eps : {0.0, 0.1, 1.0})
          for (Reduction red : {Reduction::none, Reduction::mean, Reduction::sum})
            cases.push_back({shape, weighted, ignore, eps, red, (k++ % 2) ? DType::int32 : DType::int64});
  return cases;
}

struct CeInputs {
  Tensor logits, target, weight;
  int64_t n, classes, spatial;
};

CeInputs make_inputs(const CeCase& c, uint64_t seed) {
  CeInputs in;
  in.n = c.shape[0];
  in.classes = c.shape[1];
  in.spatial = 1;
  Shape tshape{c.shape[0]};
  for (size_t d = 2; d < c.shape.size(); ++d) {
    in.spatial *= c.shape[d];
    tshape.push_back(c.shape[d]);
  }
  in.logits = randn_f64(c.shape, seed);
  std::vector<int64_t> t(static_cast<size_t>(in.n * in.spatial));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int64_t>((i * 5 + seed) % in.classes);
  t[0] = c.ignore_index == 1 ? 1 : -100;  // at least one ignored row in every case
  Tensor tt = tensor<int64_t>(t, tshape);
  in.target = c.target_dtype == DType::int64 ? tt : tt.to(DType::int32);
  if (c.weighted) {
    std::vector<double> w(static_cast<size_t>(in.classes));
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5 + 0.25 * static_cast<double>(i);
    in.weight = tensor<double>(w, {in.classes});
  }
  return in;
}

TEST(CrossEntropy, ForwardMatchesLogSoftmaxReferenceAllCombinations) {
  uint64_t seed = 100;
  for (const CeCase& c : all_cases()) {
    CeInputs in = make_inputs(c, seed++);
    CrossEntropyOptions opts{
        .ignore_index = c.ignore_index, .label_smoothing = c.smoothing, .reduction = c.reduction, .weight = in.weight};
    Tensor out = cross_entropy(in.logits, in.target, opts);
    std::vector<double> want =
        ref_cross_entropy(in.logits.to_vector<double>(), in.target.to_vector<int64_t>(),
                          in.weight.defined() ? in.weight.to_vector<double>() : std::vector<double>{}, in.n, in.classes,
                          in.spatial, c.ignore_index, c.smoothing, c.reduction);
    if (c.reduction == Reduction::none) {
      Shape tshape = in.target.shape();
      EXPECT_EQ(out.shape(), tshape) << describe(c);
    } else {
      EXPECT_EQ(out.dim(), 0) << describe(c);
    }
    EXPECT_EQ(out.dtype(), DType::float64);
    SCOPED_TRACE(describe(c));
    expect_near_vec(out.to_vector<double>(), want, 1e-12);
  }
}

TEST(CrossEntropy, GradientMatchesCentralDifferences) {
  uint64_t seed = 300;
  for (const CeCase& c : all_cases()) {
    SCOPED_TRACE(describe(c));
    CeInputs in = make_inputs(c, seed++);
    CrossEntropyOptions opts{
        .ignore_index = c.ignore_index, .label_smoothing = c.smoothing, .reduction = c.reduction, .weight = in.weight};
    // f(x) = sum_r v_r loss_r (none) or the reduced loss; v random.
    Tensor v = c.reduction == Reduction::none ? randn_f64(in.target.shape(), seed + 1000) : Tensor();
    std::vector<double> vv = v.defined() ? v.to_vector<double>() : std::vector<double>{1.0};
    auto f = [&](const Tensor& logits) {
      NoGradGuard no_grad;
      std::vector<double> l = cross_entropy(logits, in.target, opts).to_vector<double>();
      double s = 0.0;
      for (size_t i = 0; i < l.size(); ++i) s += vv[i] * l[i];
      return s;
    };
    Tensor x = in.logits.detach().clone().requires_grad_();
    Tensor out = cross_entropy(x, in.target, opts);
    if (v.defined())
      out.backward(v);
    else
      out.backward();
    std::vector<double> grad = x.grad().to_vector<double>();
    std::vector<double> xv = in.logits.to_vector<double>();
    const double h = 1e-6;
    for (size_t i = 0; i < xv.size(); ++i) {
      std::vector<double> plus = xv, minus = xv;
      plus[i] += h;
      minus[i] -= h;
      double num = (f(tensor<double>(plus, c.shape)) - f(tensor<double>(minus, c.shape))) / (2 * h);
      EXPECT_NEAR(grad[i], num, 1e-6) << "element " << i;
    }
  }
}

TEST(CrossEntropy, AllIgnoredMeanIsNaNAndGradientZero) {
  Tensor x = randn_f64({3, 4}, 7).requires_grad_();
  Tensor t = tensor<int64_t>({-100, -100, -100}, {3});
  Tensor loss = cross_entropy(x, t);
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
  EXPECT_EQ(cross_entropy(x, t, {.reduction = Reduction::sum, .weight = {}}).item(), 0.0);
}

TEST(CrossEntropy, UnbatchedNonContiguousAndLowPrecision) {
  // (C) logits with a 0-dim target.
  Tensor x1 = randn_f64({5}, 8);
  Tensor t1 = tensor<int64_t>({3}, {1}).reshape({});
  auto want1 = ref_cross_entropy(x1.to_vector<double>(), {3}, {}, 1, 5, 1, -100, 0.0, Reduction::none);
  Tensor o1 = cross_entropy(x1, t1, {.reduction = Reduction::none, .weight = {}});
  EXPECT_EQ(o1.dim(), 0);
  EXPECT_NEAR(o1.item(), want1[0], 1e-12);
  // Non-contiguous (N, C) logits: a transposed (C, N) tensor.
  Tensor xt = randn_f64({4, 6}, 9).t();  // (6, 4)
  Tensor t = tensor<int64_t>({0, 3, 2, 1, 1, 3}, {6});
  auto want = ref_cross_entropy(xt.contiguous().to_vector<double>(), t.to_vector<int64_t>(), {}, 6, 4, 1, -100, 0.2,
                                Reduction::mean);
  EXPECT_NEAR(cross_entropy(xt, t, {.label_smoothing = 0.2, .weight = {}}).item(), want[0], 1e-12);
  // float32 / bfloat16 / float16 logits against the float64 reference.
  for (auto [dt, tol] :
       {std::pair{DType::float32, 1e-5}, std::pair{DType::bfloat16, 3e-2}, std::pair{DType::float16, 5e-3}}) {
    Tensor xl = xt.contiguous().to(dt);
    auto want_l =
        ref_cross_entropy(xl.to_vector<double>(), t.to_vector<int64_t>(), {}, 6, 4, 1, -100, 0.2, Reduction::none);
    Tensor ol = cross_entropy(xl, t, {.label_smoothing = 0.2, .reduction = Reduction::none, .weight = {}});
    EXPECT_EQ(ol.dtype(), dt);
    expect_near_vec(ol.to_vector<double>(), want_l, tol);
  }
}

TEST(CrossEntropy, Errors) {
  Tensor x = randn_f64({3, 4}, 10);
  expect_throws_with([&] { cross_entropy(x, tensor<int64_t>({0, 7, 1}, {3})); }, {"cross_entropy", "target 7", "4 classes"});
  expect_throws_with(
      [&] {
        cross_entropy(x, tensor<int64_t>({0, -1, 1}, {3}));
      },
      {"cross_entropy", "target -1", "4 classes"});
  expect_throws_with([&] { cross_entropy(x, tensor<int64_t>({0, 1}, {2})); }, {"cross_entropy", "[2]", "[3, 4]", "[3]"});
  expect_throws_with(
      [&] {
        cross_entropy(x, tensor<int64_t>({0, 1, 2}, {3}), {.label_smoothing = 1.5, .weight = {}});
      },
      {"cross_entropy", "label_smoothing", "1.5"});
  expect_throws_with(
      [&] {
        cross_entropy(x, tensor<int64_t>({0, 1, 2}, {3}), {.weight = tensor({1.0, 2.0}, {2})});
      },
      {"cross_entropy", "weight", "[2]", "4 classes"});
  expect_throws_with([&] { cross_entropy(x, tensor({0.0, 1.0, 2.0}, {3})); }, {"cross_entropy", "float32", "class indices"});
  expect_throws_with(
      [&] {
        cross_entropy(tensor<int64_t>({1, 2}, {1, 2}), tensor<int64_t>({0}, {1}));
      },
      {"cross_entropy", "int64"});
}

// ------------------------------------------------------------------ embedding

TEST(Embedding, RowsAndGradientWithRepeatsAndPadding) {
  Tensor w = randn_f64({5, 3}, 11).requires_grad_();
  std::vector<int64_t> iv = {1, 2, 1, 4, 1, 0};
  for (DType dt : {DType::int64, DType::int32}) {
    for (std::optional<int64_t> pad :
         {std::optional<int64_t>{}, std::optional<int64_t>{1}, std::optional<int64_t>{-4}}) {
      w.set_grad(Tensor());
      Tensor idx = tensor<int64_t>(iv, {2, 3});
      if (dt == DType::int32) idx = idx.to(DType::int32);
      Tensor out = embedding(idx, w, pad);
      EXPECT_EQ(out.shape(), (Shape{2, 3, 3}));
      std::vector<double> wv = w.to_vector<double>(), ov = out.to_vector<double>();
      for (size_t i = 0; i < iv.size(); ++i)
        for (int d = 0; d < 3; ++d) EXPECT_EQ(ov[i * 3 + d], wv[iv[i] * 3 + d]);
      Tensor g = randn_f64({2, 3, 3}, 12);
      out.backward(g);
      std::vector<double> gv = g.to_vector<double>(), want(15, 0.0);
      for (size_t i = 0; i < iv.size(); ++i)
        if (!pad || iv[i] != 1)
          for (int d = 0; d < 3; ++d) want[iv[i] * 3 + d] += gv[i * 3 + d];
      expect_near_vec(w.grad().to_vector<double>(), want, 1e-12);
    }
  }
}

TEST(Embedding, ZeroDimIndicesAndNonContiguousWeight) {
  Tensor w = randn_f64({3, 4}, 13).t();  // (4, 3), non-contiguous
  Tensor out = embedding(tensor<int64_t>({2}, {1}).reshape({}), w);
  EXPECT_EQ(out.shape(), (Shape{3}));
  std::vector<double> wv = w.contiguous().to_vector<double>();
  expect_near_vec(out.to_vector<double>(), {wv[6], wv[7], wv[8]}, 0.0);
}

TEST(Embedding, DeterministicGradient) {
  const int64_t vocab = 7, width = 33, n = 20000;
  std::vector<int64_t> iv(n);
  for (int64_t i = 0; i < n; ++i) iv[i] = (i * 31 + i / 3) % vocab;
  Tensor idx = tensor<int64_t>(iv, {n});
  Generator gen(14);
  Tensor g = randn({n, width}, {}, &gen);
  std::vector<float> gv = g.to_vector<float>(), want(vocab * width, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < width; ++d) want[iv[i] * width + d] += gv[i * width + d];
  for (int rep = 0; rep < 2; ++rep) {
    Tensor w = zeros({vocab, width}).requires_grad_();
    embedding(idx, w).backward(g);
    EXPECT_EQ(w.grad().to_vector<float>(), want) << "repetition " << rep;
  }
}

TEST(Embedding, Errors) {
  Tensor w = randn_f64({5, 3}, 15);
  expect_throws_with([&] { embedding(tensor<int64_t>({0, 5}, {2}), w); }, {"embedding", "index 5", "5 embeddings"});
  expect_throws_with([&] { embedding(tensor<int64_t>({-1}, {1}), w); }, {"embedding", "index -1"});
  expect_throws_with([&] { embedding(tensor<int64_t>({0}, {1}), w, 5); }, {"embedding", "padding_idx 5", "[5, 3]"});
  expect_throws_with([&] { embedding(tensor<int64_t>({0}, {1}), randn_f64({5}, 16)); }, {"embedding", "2-D", "[5]"});
  expect_throws_with([&] { embedding(tensor({0.0}, {1}), w); }, {"embedding", "float32"});
}

// ------------------------------------------------------------------ dropout

TEST(Dropout, FractionScaleAndExactPhiloxMask) {
  const int64_t n = 100000;
  const double p = 0.3;
  Generator gen(1234, 10);
  Tensor x = ones({n});
  Tensor out = dropout(x, p, true, &gen);
  EXPECT_EQ(gen.offset(), 10 + philox::blocks_for(n, 4));
  std::vector<float> ov = out.to_vector<float>();
  int64_t zeros_count = 0;
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; ++i) {
    bool keep = philox::uniform_float(1234, 10, static_cast<uint64_t>(i)) >= static_cast<float>(p);
    ASSERT_EQ(ov[i], keep ? scale : 0.0f) << "element " << i;
    zeros_count += ov[i] == 0.0f;
  }
  EXPECT_NEAR(static_cast<double>(zeros_count) / n, p, 0.01);
}

TEST(Dropout, ReplaysFromSeedAndOffset) {
  Tensor x = randn_f64({64, 33}, 17);
  Generator a(99), b(99), c(99, 5);
  auto va = dropout(x, 0.5, true, &a).to_vector<double>();
  auto vb = dropout(x, 0.5, true, &b).to_vector<double>();
  auto vc = dropout(x, 0.5, true, &c).to_vector<double>();
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  // A second draw from the same generator gives a fresh mask.
  EXPECT_NE(dropout(x, 0.5, true, &a).to_vector<double>(), va);
}

TEST(Dropout, NonContiguousInputUsesRowMajorPositions) {
  Tensor base = randn_f64({6, 5}, 18);
  Tensor x = base.t();  // (5, 6)
  Generator gen(7);
  std::vector<double> ov = dropout(x, 0.4, true, &gen).to_vector<double>();
  std::vector<double> xv = x.contiguous().to_vector<double>();
  for (size_t i = 0; i < xv.size(); ++i) {
    bool keep = philox::uniform_float(7, 0, i) >= 0.4f;
    EXPECT_DOUBLE_EQ(ov[i], keep ? xv[i] / 0.6 : 0.0) << "element " << i;
  }
}

TEST(Dropout, IdentityInEvalModeOrZeroP) {
  Tensor x = randn_f64({4, 4}, 19);
  EXPECT_TRUE(dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(dropout(x, 0.0, true).is_same(x));
}

TEST(Dropout, GradientIsMaskTimesScale) {
  std::vector<double> xv = randn_f64({50, 40}, 20).to_vector<double>();
  for (double& v : xv) v = std::abs(v) + 0.5;  // never zero: out == 0 marks a dropped element
  Tensor xl = tensor<double>(xv, {50, 40}).requires_grad_();
  Generator gen(21);
  Tensor out = dropout(xl, 0.25, true, &gen);
  Tensor g = randn_f64({50, 40}, 22);
  out.backward(g);
  std::vector<double> ov = out.to_vector<double>(), gv = g.to_vector<double>(), dx = xl.grad().to_vector<double>();
  for (size_t i = 0; i < ov.size(); ++i) EXPECT_DOUBLE_EQ(dx[i], ov[i] == 0.0 ? 0.0 : gv[i] / 0.75) << i;
}

TEST(Dropout, PEqualsOneGivesZerosAndZeroGradient) {
  Tensor x = randn_f64({3, 5}, 23).requires_grad_();
  Tensor out = dropout(x, 1.0, true);
  for (double v : out.to_vector<double>()) EXPECT_EQ(v, 0.0);
  out.backward(randn_f64({3, 5}, 24));
  for (double v : x.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(Dropout, Errors) {
  Tensor x = randn_f64({3}, 25);
  expect_throws_with([&] { dropout(x, 1.5); }, {"dropout", "[0, 1]", "1.5"});
  expect_throws_with([&] { dropout(x, -0.1); }, {"dropout", "-0.1"});
  expect_throws_with([&] { dropout(tensor<int64_t>({1, 2}, {2}), 0.5); }, {"dropout", "int64"});
}

// ------------------------------------------------------------------ one_hot

TEST(OneHot, ValuesAndInferredClasses) {
  for (DType dt : {DType::int64, DType::int32}) {
    Tensor idx = tensor<int64_t>({0, 2, 1, 0}, {2, 2});
    if (dt == DType::int32) idx = idx.to(DType::int32);
    Tensor out = one_hot(idx, 4);
    EXPECT_EQ(out.dtype(), DType::int64);
    EXPECT_EQ(out.shape(), (Shape{2, 2, 4}));
    EXPECT_EQ(out.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0}));
    Tensor inferred = one_hot(idx);
    EXPECT_EQ(inferred.shape(), (Shape{2, 2, 3}));
    EXPECT_EQ(inferred.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0}));
  }
  EXPECT_EQ(one_hot(tensor<int64_t>({}, {0}), 5).shape(), (Shape{0, 5}));
  EXPECT_FALSE(one_hot(tensor<int64_t>({1}, {1}), 2).requires_grad());
}

TEST(OneHot, Errors) {
  expect_throws_with([&] { one_hot(tensor<int64_t>({0, 3}, {2}), 3); }, {"one_hot", "index 3", "3 classes"});
  expect_throws_with([&] { one_hot(tensor<int64_t>({0, -2}, {2})); }, {"one_hot", "index -2"});
  expect_throws_with([&] { one_hot(tensor<int64_t>({}, {0})); }, {"one_hot", "empty", "num_classes"});
  expect_throws_with([&] { one_hot(tensor({1.0}, {1}), 2); }, {"one_hot", "float32"});
}

}  // namespace
