// Tests for softmax / log_softmax (engine/ops/softmax.cpp) and layer_norm
// (engine/ops/layer_norm.cpp): forward against plain float64 loops over first,
// middle and last dims, stability on large logits, non-contiguous inputs, 16-bit
// dtypes, error messages, and backward against float64 central differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/tensor.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace {

using zae::test::expect_throws_with;

using zae::DType;
using zae::Shape;
using zae::Tensor;

struct Dense {
  Shape shape;
  std::vector<double> v;
};
Dense dense_of(const Tensor& t) { return {t.shape(), t.to_vector<double>()}; }

Tensor randn(const Shape& s, DType dt = DType::float64) { return zae::randn(s, {.dtype = dt}); }

// softmax / log_softmax along dim in plain float64 loops.
Dense ref_softmax(const Dense& x, int64_t dim, bool log) {
  const int64_t nd = static_cast<int64_t>(x.shape.size());
  if (dim < 0) dim += nd;
  int64_t outer = 1, K = nd == 0 ? 1 : x.shape[dim], inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= x.shape[i];
  for (int64_t i = dim + 1; i < nd; ++i) inner *= x.shape[i];
  Dense y{x.shape, std::vector<double>(x.v.size())};
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return (o * K + k) * inner + i; };
      double mx = -std::numeric_limits<double>::infinity(), s = 0;
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, x.v[at(k)]);
      for (int64_t k = 0; k < K; ++k) s += std::exp(x.v[at(k)] - mx);
      for (int64_t k = 0; k < K; ++k)
        y.v[at(k)] = log ? x.v[at(k)] - mx - std::log(s) : std::exp(x.v[at(k)] - mx) / s;
    }
  return y;
}

// layer_norm over the last N elements in plain float64 loops (biased variance).
Dense ref_layer_norm(const Dense& x, int64_t N, const Dense* w, const Dense* b, double eps) {
  Dense y{x.shape, std::vector<double>(x.v.size())};
  const int64_t M = static_cast<int64_t>(x.v.size()) / N;
  for (int64_t r = 0; r < M; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < N; ++j) mean += x.v[r * N + j];
    mean /= static_cast<double>(N);
    for (int64_t j = 0; j < N; ++j) var += (x.v[r * N + j] - mean) * (x.v[r * N + j] - mean);
    var /= static_cast<double>(N);
    for (int64_t j = 0; j < N; ++j) {
      double v = (x.v[r * N + j] - mean) / std::sqrt(var + eps);
      if (w) v *= w->v[j];
      if (b) v += b->v[j];
      y.v[r * N + j] = v;
    }
  }
  return y;
}

double tolerance(DType dt) {
  switch (dt) {
    case DType::float64: return 1e-12;
    case DType::float32: return 1e-5;
    default: return 1e-2;  // bfloat16 / float16: one rounding of the output
  }
}

void expect_matches(const Tensor& actual, const Dense& ref, double tol) {
  ASSERT_EQ(actual.shape(), ref.shape);
  std::vector<double> got = actual.to_vector<double>();
  ASSERT_EQ(got.size(), ref.v.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], ref.v[i], tol * (1.0 + std::abs(ref.v[i]))) << "element " << i;
}

// Float64 gradient check of f at `inputs` (made leaves that require grad) through
// the shared harness: tolerance tol both absolute and relative.
void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                     double eps = 1e-6, double tol = 1e-7) {
  for (Tensor& t : inputs) t.requires_grad_(true);
  zae::test::GradcheckOptions opts;
  opts.eps = eps;
  opts.atol = tol;
  opts.rtol = tol;
  zae::test::GradcheckResult r = zae::test::gradcheck(f, std::move(inputs), opts);
  EXPECT_TRUE(r.ok()) << r.report << r.error;
}

// ---------------------------------------------------------------------------------
// softmax / log_softmax forward
// ---------------------------------------------------------------------------------

TEST(Softmax, MatchesReferenceOverEveryDim) {
  zae::manual_seed(11);
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    Tensor x = randn({3, 4, 5}, dt);
    Dense dx = dense_of(x);
    for (int64_t dim : {0, 1, 2, -1}) {
      SCOPED_TRACE(std::string(zae::dtype_name(dt)) + " dim " + std::to_string(dim));
      expect_matches(zae::softmax(x, dim), ref_softmax(dx, dim, false), tolerance(dt));
      expect_matches(zae::log_softmax(x, dim), ref_softmax(dx, dim, true), tolerance(dt));
    }
  }
}

TEST(Softmax, ManyLanesAndLongRows) {
  zae::manual_seed(12);
  // inner = 70 spans two lane chunks; K = 300 rows are long; both layouts.
  const std::vector<std::pair<Shape, int64_t>> cases = {{{2, 3, 70}, 1}, {{2, 300, 3}, 1}, {{4, 300}, 1}};
  for (const auto& [shape, dim] : cases) {
    Tensor x = randn(shape, DType::float32);
    Dense dx = dense_of(x);
    expect_matches(zae::softmax(x, dim), ref_softmax(dx, dim, false), 1e-5);
    expect_matches(zae::log_softmax(x, dim), ref_softmax(dx, dim, true), 1e-5);
  }
}

TEST(Softmax, RowsSumToOne) {
  zae::manual_seed(13);
  Tensor y = zae::softmax(randn({6, 33}, DType::float32), 1);
  std::vector<float> v = y.to_vector<float>();
  for (int r = 0; r < 6; ++r) {
    double s = 0;
    for (int j = 0; j < 33; ++j) {
      EXPECT_GE(v[r * 33 + j], 0.0f);
      s += v[r * 33 + j];
    }
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
}

TEST(Softmax, LargeLogitsAreStable) {
  for (DType dt : {DType::float32, DType::bfloat16}) {
    Tensor x = zae::tensor({1000.0, 1001.0, 1002.0, -1000.0, 0.0, 1000.0}, {2, 3}, {.dtype = dt});
    Dense dx = dense_of(x);
    Tensor y = zae::softmax(x, 1), ly = zae::log_softmax(x, 1);
    for (double v : y.to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
    for (double v : ly.to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
    expect_matches(y, ref_softmax(dx, 1, false), tolerance(dt));
    expect_matches(ly, ref_softmax(dx, 1, true), tolerance(dt));
    if (dt == DType::float32) {  // bfloat16 rounds 1000, 1001, 1002 to one value
      EXPECT_NEAR(y.to_vector<double>()[2], 1.0 / (1.0 + std::exp(-1.0) + std::exp(-2.0)), 1e-6);
    }
  }
}

TEST(Softmax, NonContiguousInput) {
  zae::manual_seed(14);
  Tensor xt = randn({5, 4}).t();                     // (4, 5) transposed
  Tensor xs = randn({3, 10}).slice(1, 0, 10, 2);     // (3, 5) column stride 2
  for (const Tensor& x : {xt, xs}) {
    Dense dx = dense_of(x);
    for (int64_t dim : {0, 1}) {
      expect_matches(zae::softmax(x, dim), ref_softmax(dx, dim, false), 1e-12);
      expect_matches(zae::log_softmax(x, dim), ref_softmax(dx, dim, true), 1e-12);
    }
  }
}

TEST(Softmax, ZeroDimAndEmpty) {
  Tensor s = zae::scalar_tensor(3.0, {.dtype = DType::float64});
  EXPECT_DOUBLE_EQ(zae::softmax(s, 0).item(), 1.0);
  EXPECT_DOUBLE_EQ(zae::log_softmax(s, -1).item(), 0.0);
  EXPECT_EQ(zae::softmax(randn({0, 3}), 1).shape(), (Shape{0, 3}));
  EXPECT_EQ(zae::log_softmax(randn({2, 0}), 1).shape(), (Shape{2, 0}));
}

TEST(Softmax, Errors) {
  expect_throws_with([] { zae::softmax(randn({2, 3}), 2); }, {"softmax", "dim 2", "[2, 3]"});
  expect_throws_with([] { zae::log_softmax(randn({2, 3}), -3); }, {"log_softmax", "dim -3"});
  expect_throws_with([] { zae::softmax(zae::ones({2, 3}, {.dtype = DType::int64}), 1); },
               {"softmax", "int64", "not supported"});
  expect_throws_with([] { zae::softmax(Tensor(), 0); }, {"softmax", "undefined"});
}

// ---------------------------------------------------------------------------------
// softmax / log_softmax backward
// ---------------------------------------------------------------------------------

TEST(SoftmaxBackward, FiniteDifferences) {
  zae::manual_seed(15);
  for (int64_t dim : {0, 1, 2}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    check_gradients([dim](const std::vector<Tensor>& in) { return zae::softmax(in[0], dim); }, {randn({2, 3, 4})});
    check_gradients([dim](const std::vector<Tensor>& in) { return zae::log_softmax(in[0], dim); }, {randn({2, 3, 4})});
  }
  // Non-contiguous input inside the graph.
  check_gradients([](const std::vector<Tensor>& in) { return zae::softmax(in[0].t(), 1); }, {randn({4, 3})});
  check_gradients([](const std::vector<Tensor>& in) { return zae::log_softmax(in[0].t(), 0); }, {randn({4, 3})});
}

TEST(SoftmaxBackward, SixteenBitMatchesFloat64) {
  zae::manual_seed(16);
  Tensor x64 = randn({3, 5, 4});
  Tensor g64 = randn({3, 5, 4});
  for (bool log : {false, true}) {
    for (int64_t dim : {1, 2}) {
      Tensor a = x64.detach().clone(), b = x64.to(DType::bfloat16);
      a.requires_grad_(true);
      b.requires_grad_(true);
      (log ? zae::log_softmax(a, dim) : zae::softmax(a, dim)).backward(g64);
      (log ? zae::log_softmax(b, dim) : zae::softmax(b, dim)).backward(g64.to(DType::bfloat16));
      EXPECT_EQ(b.grad().dtype(), DType::bfloat16);
      expect_matches(b.grad(), dense_of(a.grad()), 3e-2);
    }
  }
}

// ---------------------------------------------------------------------------------
// layer_norm forward
// ---------------------------------------------------------------------------------

TEST(LayerNorm, MatchesReference) {
  zae::manual_seed(21);
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(zae::dtype_name(dt));
    Tensor x = randn({2, 3, 8}, dt);
    Dense dx = dense_of(x);
    Tensor w = randn({8}, dt), b = randn({8}, dt);
    Dense dw = dense_of(w), db = dense_of(b);
    expect_matches(zae::layer_norm(x, {8}), ref_layer_norm(dx, 8, nullptr, nullptr, 1e-5), tolerance(dt));
    expect_matches(zae::layer_norm(x, {8}, w, b), ref_layer_norm(dx, 8, &dw, &db, 1e-5), tolerance(dt));
    expect_matches(zae::layer_norm(x, {8}, w), ref_layer_norm(dx, 8, &dw, nullptr, 1e-5), tolerance(dt));
    expect_matches(zae::layer_norm(x, {8}, Tensor(), b, 1e-3), ref_layer_norm(dx, 8, nullptr, &db, 1e-3),
                   tolerance(dt));
    // normalized_shape of two dims: (T, C).
    Tensor w2 = randn({3, 8}, dt), b2 = randn({3, 8}, dt);
    Dense dw2 = dense_of(w2), db2 = dense_of(b2);
    expect_matches(zae::layer_norm(x, {3, 8}, w2, b2), ref_layer_norm(dx, 24, &dw2, &db2, 1e-5), tolerance(dt));
  }
}

TEST(LayerNorm, NormalisedRowsAndEpsInsideSqrt) {
  zae::manual_seed(22);
  Tensor y = zae::layer_norm(randn({4, 16}), {16}, Tensor(), Tensor(), 0.0);
  std::vector<double> v = y.to_vector<double>();
  for (int r = 0; r < 4; ++r) {
    double mean = 0, var = 0;
    for (int j = 0; j < 16; ++j) mean += v[r * 16 + j] / 16;
    for (int j = 0; j < 16; ++j) var += (v[r * 16 + j] - mean) * (v[r * 16 + j] - mean) / 16;  // biased
    EXPECT_NEAR(mean, 0.0, 1e-12);
    EXPECT_NEAR(var, 1.0, 1e-12);
  }
  // A tiny spread: eps dominates the denominator (sqrt(var + eps), not sqrt(var) + eps).
  Tensor t = zae::tensor({0.0, 1e-3}, {1, 2}, {.dtype = DType::float64});
  std::vector<double> tv = zae::layer_norm(t, {2}, Tensor(), Tensor(), 1e-5).to_vector<double>();
  EXPECT_NEAR(tv[1], 5e-4 / std::sqrt(2.5e-7 + 1e-5), 1e-12);
  // A constant row normalises to zero.
  Tensor c = zae::full({1, 4}, 5.0, {.dtype = DType::float64});
  for (double val : zae::layer_norm(c, {4}).to_vector<double>()) EXPECT_EQ(val, 0.0);
}

TEST(LayerNorm, NonContiguousInput) {
  zae::manual_seed(23);
  Tensor x = randn({8, 3, 2}).permute({1, 2, 0});  // (3, 2, 8), last dim strided
  Tensor w = randn({16}).slice(0, 0, 16, 2);       // (8), stride 2
  Dense dw = dense_of(w);
  expect_matches(zae::layer_norm(x, {8}, w), ref_layer_norm(dense_of(x), 8, &dw, nullptr, 1e-5), 1e-12);
}

TEST(LayerNorm, IsOneNode) {
  Tensor x = randn({2, 4}), w = randn({4}), b = randn({4});
  x.requires_grad_(true);
  Tensor y = zae::layer_norm(x, {4}, w, b);
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_EQ(y.grad_fn()->name(), "LayerNormBackward");
  EXPECT_EQ(y.grad_fn()->next_edges.size(), 3u);
}

TEST(LayerNorm, Errors) {
  expect_throws_with([] { zae::layer_norm(randn({2, 8}), {8}, randn({4})); },
               {"layer_norm", "weight has shape [4]", "normalized_shape is [8]"});
  expect_throws_with([] { zae::layer_norm(randn({2, 8}), {8}, Tensor(), randn({2, 4})); }, {"layer_norm", "bias", "[2, 4]"});
  expect_throws_with([] { zae::layer_norm(randn({2, 8}), {2}); }, {"layer_norm", "[2, 8]", "does not end with", "[2]"});
  expect_throws_with([] { zae::layer_norm(randn({8}), {2, 8}); }, {"layer_norm", "[8]", "[2, 8]"});
  expect_throws_with([] { zae::layer_norm(randn({2, 8}), {}); }, {"layer_norm", "at least one dim"});
  expect_throws_with([] { zae::layer_norm(randn({2, 8}), {8}, randn({8}, DType::float32)); },
               {"layer_norm", "weight", "float32", "float64"});
  expect_throws_with([] { zae::layer_norm(zae::ones({2, 8}, {.dtype = DType::int64}), {8}); },
               {"layer_norm", "int64", "not supported"});
}

// ---------------------------------------------------------------------------------
// layer_norm backward
// ---------------------------------------------------------------------------------

TEST(LayerNormBackward, FiniteDifferences) {
  zae::manual_seed(24);
  check_gradients([](const std::vector<Tensor>& in) { return zae::layer_norm(in[0], {4}, in[1], in[2]); },
                  {randn({2, 3, 4}), randn({4}), randn({4})});
  check_gradients([](const std::vector<Tensor>& in) { return zae::layer_norm(in[0], {3, 4}, in[1], in[2]); },
                  {randn({2, 3, 4}), randn({3, 4}), randn({3, 4})});
  check_gradients([](const std::vector<Tensor>& in) { return zae::layer_norm(in[0], {4}); }, {randn({3, 4})});
  check_gradients([](const std::vector<Tensor>& in) { return zae::layer_norm(in[0], {5}, in[1]); },
                  {randn({2, 5}), randn({5})});
  check_gradients([](const std::vector<Tensor>& in) { return zae::layer_norm(in[0], {5}, Tensor(), in[1], 1e-2); },
                  {randn({2, 5}), randn({5})});
  // Non-contiguous input inside the graph.
  check_gradients([](const std::vector<Tensor>& in) { return zae::layer_norm(in[0].t(), {3}, in[1], in[2]); },
                  {randn({3, 4}), randn({3}), randn({3})});
}

TEST(LayerNormBackward, ManyRowsSixteenBitMatchesFloat64) {
  zae::manual_seed(25);
  // 200 rows of 300: several row chunks in the backward's column reduction.
  Tensor x64 = randn({200, 300}), w64 = randn({300}), b64 = randn({300}), g64 = randn({200, 300});
  for (DType dt : {DType::float32, DType::bfloat16}) {
    SCOPED_TRACE(zae::dtype_name(dt));
    Tensor xa = x64.detach().clone(), wa = w64.detach().clone(), ba = b64.detach().clone();
    Tensor xb = x64.to(dt), wb = w64.to(dt), bb = b64.to(dt);
    for (Tensor* t : {&xa, &wa, &ba, &xb, &wb, &bb}) t->requires_grad_(true);
    zae::layer_norm(xa, {300}, wa, ba).backward(g64);
    zae::layer_norm(xb, {300}, wb, bb).backward(g64.to(dt));
    // Gradients of the rounded inputs: compare loosely for 16-bit (inputs differ by rounding).
    const double tol = dt == DType::float32 ? 1e-4 : 5e-2;
    expect_matches(xb.grad(), dense_of(xa.grad()), tol);
    Dense dwa = dense_of(wa.grad()), dba = dense_of(ba.grad());
    // Column sums over 200 rows: scale the tolerance by sqrt(rows).
    expect_matches(wb.grad(), dwa, tol * 15);
    expect_matches(bb.grad(), dba, tol * 15);
  }
}

}  // namespace
