// Tests for matmul and linear (engine/ops/linalg.cpp): forward against plain float64
// loops for every rank combination, broadcast batch dims, non-contiguous operands
// (transposed, sliced, permuted, expanded) and float32/float64/bfloat16/float16;
// error messages; backward against float64 central differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/tensor.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace {

using zae::test::expect_throws_with;

using zae::DType;
using zae::Shape;
using zae::Tensor;

// A dense float64 copy of a tensor: shape and row-major values.
struct Dense {
  Shape shape;
  std::vector<double> v;
};
Dense dense_of(const Tensor& t) { return {t.shape(), t.to_vector<double>()}; }

Tensor randn(const Shape& s, DType dt = DType::float64) { return zae::randn(s, {.dtype = dt}); }

// torch.matmul in plain loops: 1-D operands promoted and squeezed, batch dims broadcast.
Dense ref_matmul(const Dense& A, const Dense& B) {
  Shape as = A.shape, bs = B.shape;
  const bool drop_m = as.size() == 1, drop_n = bs.size() == 1;
  if (drop_m) as.insert(as.begin(), 1);
  if (drop_n) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  Shape ba(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const size_t nb = std::max(ba.size(), bb.size());
  ba.insert(ba.begin(), nb - ba.size(), 1);
  bb.insert(bb.begin(), nb - bb.size(), 1);
  Shape batch(nb);
  int64_t total = 1;
  for (size_t i = 0; i < nb; ++i) total *= (batch[i] = std::max(ba[i], bb[i]));
  Dense out{batch, std::vector<double>(total * m * n, 0.0)};
  if (!drop_m) out.shape.push_back(m);
  if (!drop_n) out.shape.push_back(n);
  for (int64_t bi = 0; bi < total; ++bi) {
    int64_t rem = bi, ia = 0, ib = 0, sa = 1, sb = 1;
    for (size_t d = nb; d-- > 0;) {
      const int64_t i = rem % batch[d];
      rem /= batch[d];
      ia += (ba[d] == 1 ? 0 : i) * sa;
      ib += (bb[d] == 1 ? 0 : i) * sb;
      sa *= ba[d];
      sb *= bb[d];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += A.v[(ia * m + i) * k + p] * B.v[(ib * k + p) * n + j];
        out.v[(bi * m + i) * n + j] = s;
      }
  }
  return out;
}

// y = x W^T + b in plain loops; x (..., in), w (out, in), b (out) or empty.
Dense ref_linear(const Dense& x, const Dense& w, const Dense* b) {
  const int64_t in = w.shape[1], out = w.shape[0];
  const int64_t rows = static_cast<int64_t>(x.v.size()) / std::max<int64_t>(in, 1);
  Dense y{x.shape, std::vector<double>(rows * out)};
  y.shape.back() = out;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? b->v[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += x.v[r * in + i] * w.v[o * in + i];
      y.v[r * out + o] = s;
    }
  return y;
}

double tolerance(DType dt) {
  switch (dt) {
    case DType::float64: return 1e-12;
    case DType::float32: return 1e-5;
    default: return 2e-2;  // bfloat16 / float16: one rounding of the output plus float accumulation
  }
}

void expect_matches(const Tensor& actual, const Dense& ref, double tol) {
  ASSERT_EQ(actual.shape(), ref.shape);
  std::vector<double> got = actual.to_vector<double>();
  ASSERT_EQ(got.size(), ref.v.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], ref.v[i], tol * (1.0 + std::abs(ref.v[i]))) << "element " << i;
}

// Checks that matmul(a, b) equals the float64 loop product of the (rounded) inputs.
void check_matmul(const Tensor& a, const Tensor& b) {
  Tensor out = zae::matmul(a, b);
  EXPECT_EQ(out.dtype(), a.dtype());
  expect_matches(out, ref_matmul(dense_of(a), dense_of(b)), tolerance(a.dtype()));
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
// matmul forward
// ---------------------------------------------------------------------------------

TEST(Matmul, AllRankCombinations) {
  zae::manual_seed(1);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{5}, {5}},          {{4}, {4, 3}},       {{3, 4}, {4}},          {{3, 4}, {4, 5}},
      {{2, 3, 4}, {4, 5}}, {{3, 4}, {2, 4, 5}}, {{4}, {2, 4, 5}},       {{2, 3, 4}, {4}},
      {{2, 3, 4}, {2, 4, 5}}, {{2, 1, 3, 4}, {5, 4, 6}}, {{1, 3, 4}, {2, 2, 4, 6}}, {{1, 1}, {1, 1}},
  };
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(zae::shape_str(sa) + " x " + zae::shape_str(sb));
    for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16})
      check_matmul(randn(sa, dt), randn(sb, dt));
  }
}

TEST(Matmul, DotIsZeroDim) {
  Tensor a = zae::tensor({1.0, 2.0, 3.0}, {}, {.dtype = DType::float64});
  Tensor b = zae::tensor({4.0, -5.0, 6.0}, {}, {.dtype = DType::float64});
  Tensor d = zae::matmul(a, b);
  EXPECT_EQ(d.dim(), 0);
  EXPECT_DOUBLE_EQ(d.item(), 12.0);
}

TEST(Matmul, NonContiguousOperands) {
  zae::manual_seed(2);
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16}) {
    SCOPED_TRACE(zae::dtype_name(dt));
    Tensor at = randn({4, 3}, dt).t();                           // (3, 4) transposed: trans flag
    Tensor bt = randn({5, 4}, dt).t();                           // (4, 5) transposed
    Tensor bs = randn({4, 10}, dt).slice(1, 0, 10, 2);           // (4, 5) column stride 2: copied
    Tensor asub = randn({6, 8}, dt).slice(0, 1, 4).slice(1, 2, 6);  // (3, 4) sub-matrix, row stride 8
    check_matmul(at, bt);
    check_matmul(at, bs);
    check_matmul(asub, bt);
    check_matmul(randn({2, 4, 3}, dt).transpose(-1, -2), randn({2, 4, 5}, dt));      // batched trans
    check_matmul(randn({3, 2, 4}, dt).permute({1, 0, 2}), randn({4, 5}, dt));         // interleaved batches
    check_matmul(randn({1, 3, 4}, dt).expand({5, 3, 4}), randn({5, 4, 2}, dt));       // stride-0 batch
    check_matmul(randn({3, 2, 4, 6}, dt).permute({1, 0, 2, 3}), randn({2, 1, 6, 5}, dt));  // unmergeable batch
    check_matmul(randn({8}, dt).slice(0, 0, 8, 2), randn({3, 4, 2}, dt));             // strided vector
    check_matmul(randn({3, 4}, dt), randn({8}, dt).slice(0, 1, 8, 2));
    check_matmul(randn({4, 1}, dt).expand({4, 3}), randn({3, 2}, dt));                // stride-0 columns
  }
}

TEST(Matmul, EmptyOperands) {
  Tensor out = zae::matmul(randn({0, 3}), randn({3, 4}));
  EXPECT_EQ(out.shape(), (Shape{0, 4}));
  Tensor zeros_k = zae::matmul(randn({3, 0}), randn({0, 4}));
  EXPECT_EQ(zeros_k.shape(), (Shape{3, 4}));
  for (double v : zeros_k.to_vector<double>()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(zae::matmul(randn({2, 0, 3, 4}), randn({4, 5})).shape(), (Shape{2, 0, 3, 5}));
}

TEST(Matmul, Errors) {
  expect_throws_with([] { zae::matmul(randn({2, 3}), randn({4, 5})); },
               {"matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 != 4)"});
  expect_throws_with([] { zae::matmul(randn({3}), randn({4})); }, {"[3]", "[4]", "3 != 4"});
  expect_throws_with([] { zae::matmul(randn({2, 3}, DType::float32), randn({3, 4})); },
               {"matmul", "dtype mismatch", "float32", "float64"});
  expect_throws_with([] { zae::matmul(zae::scalar_tensor(2.0, {.dtype = DType::float64}), randn({3})); },
               {"matmul", "at least 1 dimension", "[]", "[3]"});
  expect_throws_with([] { zae::matmul(randn({2, 3, 4}), randn({3, 4, 5})); },
               {"matmul", "[2]", "[3]", "cannot be broadcast"});
  Tensor ints = zae::ones({2, 2}, {.dtype = DType::int64});
  expect_throws_with([&] { zae::matmul(ints, ints); }, {"matmul", "int64", "not supported"});
  expect_throws_with([] { zae::matmul(Tensor(), randn({3})); }, {"matmul", "undefined"});
}

TEST(Matmul, DeviceMismatch) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor a = randn({2, 3});
  Tensor b = randn({3, 4}).to(zae::Device::cuda());
  expect_throws_with([&] { zae::matmul(a, b); }, {"matmul", "device mismatch", "cpu", "cuda"});
}

// ---------------------------------------------------------------------------------
// linear forward
// ---------------------------------------------------------------------------------

TEST(Linear, MatchesLoops) {
  zae::manual_seed(3);
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(zae::dtype_name(dt));
    Tensor w = randn({5, 4}, dt), b = randn({5}, dt);
    Dense dw = dense_of(w), db = dense_of(b);
    for (const Shape& xs : {Shape{4}, Shape{3, 4}, Shape{2, 3, 4}, Shape{2, 1, 3, 4}}) {
      SCOPED_TRACE(zae::shape_str(xs));
      Tensor x = randn(xs, dt);
      Dense dx = dense_of(x);
      expect_matches(zae::linear(x, w), ref_linear(dx, dw, nullptr), tolerance(dt));
      expect_matches(zae::linear(x, w, b), ref_linear(dx, dw, &db), tolerance(dt));
    }
  }
}

TEST(Linear, NonContiguousInputAndWeight) {
  zae::manual_seed(4);
  Tensor w = randn({4, 5}).t();                             // (5, 4), stored transposed
  Tensor x = randn({3, 2, 4}).transpose(0, 1);              // (2, 3, 4), batch dims swapped
  Tensor xs = randn({2, 3, 8}).slice(2, 0, 8, 2);           // (2, 3, 4), column stride 2
  Tensor b = randn({10}).slice(0, 0, 10, 2);                // (5), stride 2
  Dense dw = dense_of(w), db = dense_of(b);
  expect_matches(zae::linear(x, w, b), ref_linear(dense_of(x), dw, &db), 1e-12);
  expect_matches(zae::linear(xs, w, b), ref_linear(dense_of(xs), dw, &db), 1e-12);
}

TEST(Linear, IsOneNode) {
  Tensor x = randn({2, 3, 4}), w = randn({5, 4}), b = randn({5});
  w.requires_grad_(true);
  b.requires_grad_(true);
  Tensor y = zae::linear(x, w, b);
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_EQ(y.grad_fn()->name(), "LinearBackward");
  EXPECT_EQ(y.grad_fn()->next_edges.size(), 3u);
}

TEST(Linear, Errors) {
  expect_throws_with([] { zae::linear(randn({2, 3}), randn({4, 5})); },
               {"linear", "[2, 3]", "[4, 5]", "3 != 5"});
  expect_throws_with([] { zae::linear(randn({2, 3}), randn({3})); }, {"linear", "weight must be 2-D", "[3]"});
  expect_throws_with([] { zae::linear(randn({2, 3}), randn({4, 3}), randn({5})); }, {"linear", "bias", "[4]", "[5]"});
  expect_throws_with([] { zae::linear(randn({2, 3}), randn({4, 3}, DType::float32)); },
               {"linear", "dtype mismatch", "float64", "float32"});
  expect_throws_with([] { zae::linear(randn({2, 3}), randn({4, 3}), randn({4}, DType::float32)); },
               {"linear", "bias", "float32"});
  expect_throws_with([] { zae::linear(zae::scalar_tensor(1.0, {.dtype = DType::float64}), randn({4, 3})); },
               {"linear", "at least 1 dimension"});
}

// ---------------------------------------------------------------------------------
// backward: float64 central differences
// ---------------------------------------------------------------------------------

TEST(MatmulBackward, FiniteDifferences) {
  zae::manual_seed(5);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3}, {3}},          {{3}, {3, 4}},       {{2, 3}, {3}},       {{2, 3}, {3, 4}},
      {{2, 2, 3}, {3, 4}}, {{2, 2, 3}, {3}},    {{3}, {2, 3, 4}},    {{2, 2, 3}, {2, 3, 2}},
      {{2, 3}, {2, 3, 4}}, {{2, 1, 2, 3}, {3, 3, 2}},
  };
  auto mm = [](const std::vector<Tensor>& in) { return zae::matmul(in[0], in[1]); };
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(zae::shape_str(sa) + " x " + zae::shape_str(sb));
    check_gradients(mm, {randn(sa), randn(sb)});
  }
}

TEST(MatmulBackward, TransposedOperands) {
  zae::manual_seed(6);
  check_gradients([](const std::vector<Tensor>& in) { return zae::matmul(in[0].t(), in[1].transpose(-1, -2)); },
                  {randn({3, 2}), randn({2, 4, 3})});
}

TEST(LinearBackward, FiniteDifferences) {
  zae::manual_seed(7);
  auto with_bias = [](const std::vector<Tensor>& in) { return zae::linear(in[0], in[1], in[2]); };
  auto no_bias = [](const std::vector<Tensor>& in) { return zae::linear(in[0], in[1]); };
  for (const Shape& xs : {Shape{3}, Shape{2, 3}, Shape{2, 2, 3}}) {
    SCOPED_TRACE(zae::shape_str(xs));
    check_gradients(with_bias, {randn(xs), randn({4, 3}), randn({4})});
    check_gradients(no_bias, {randn(xs), randn({4, 3})});
  }
  // Non-contiguous input and weight inside the graph.
  check_gradients([](const std::vector<Tensor>& in) { return zae::linear(in[0].transpose(0, 1), in[1].t(), in[2]); },
                  {randn({3, 2, 3}), randn({3, 4}), randn({4})});
}

TEST(LinearBackward, OnlyWeightNeedsGrad) {
  Tensor x = randn({2, 3}), w = randn({4, 3});
  w.requires_grad_(true);
  Tensor y = zae::linear(x, w);
  y.backward(zae::ones({2, 4}, {.dtype = DType::float64}));
  // dW = g^T x with g = ones: every row of dW is the column sum of x.
  std::vector<double> xv = x.to_vector<double>(), gw = w.grad().to_vector<double>();
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t i = 0; i < 3; ++i) EXPECT_NEAR(gw[o * 3 + i], xv[i] + xv[3 + i], 1e-12);
  EXPECT_FALSE(x.grad().defined());
}

TEST(MatmulBackward, OnlyOneOperandNeedsGrad) {
  zae::manual_seed(8);
  Tensor a = randn({2, 3}), b = randn({3, 4});
  a.requires_grad_(true);
  zae::matmul(a, b).backward(zae::ones({2, 4}, {.dtype = DType::float64}));
  // d/da sum(a b) = ones (2, 4) b^T: every row is the row sums of b.
  std::vector<double> bv = b.to_vector<double>(), ga = a.grad().to_vector<double>();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t p = 0; p < 3; ++p)
      EXPECT_NEAR(ga[i * 3 + p], bv[p * 4] + bv[p * 4 + 1] + bv[p * 4 + 2] + bv[p * 4 + 3], 1e-12);
  EXPECT_FALSE(b.grad().defined());

  Tensor c = randn({3}), d = randn({2, 3, 4});
  d.requires_grad_(true);
  zae::matmul(c, d).backward(zae::ones({2, 4}, {.dtype = DType::float64}));
  std::vector<double> cv = c.to_vector<double>(), gd = d.grad().to_vector<double>();
  for (int64_t i = 0; i < 24; ++i) EXPECT_NEAR(gd[i], cv[(i / 4) % 3], 1e-12);
}

TEST(LinearBackward, OnlyInputNeedsGrad) {
  Tensor x = randn({2, 3}), w = randn({4, 3}), b = randn({4});
  x.requires_grad_(true);
  zae::linear(x, w, b).backward(zae::ones({2, 4}, {.dtype = DType::float64}));
  // dx = ones (2, 4) W: every row is the column sums of W.
  std::vector<double> wv = w.to_vector<double>(), gx = x.grad().to_vector<double>();
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t i = 0; i < 3; ++i) EXPECT_NEAR(gx[r * 3 + i], wv[i] + wv[3 + i] + wv[6 + i] + wv[9 + i], 1e-12);
}

}  // namespace
