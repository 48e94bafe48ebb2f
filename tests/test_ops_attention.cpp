// scaled_dot_product_attention (fused flash attention, CPU kernels) against the composed
// reference softmax(mask(scale q k^T)) v built from matmul, masked_fill and softmax:
// outputs and gradients in float64 (tight) and float32, causal and not, sequence lengths
// crossing the 64-row tiles (1, 7, 33, 130), head dims 8 and 64, Tq != Tk, leading dims
// other than (B, H), non-contiguous inputs, a custom scale; a float64 central-difference
// gradcheck; bfloat16 / float16 directly and under autocast; bitwise-equal results on 1
// and 3 threads; the error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/autocast.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"
#include "kernels/cpu/thread_pool.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::random_tensor;

// The composed path (what nn::CausalSelfAttention did before the fused op).
Tensor composed(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  Tensor att = mul(matmul(q, k.transpose(-2, -1)), scale);  // (..., Tq, Tk)
  if (causal) {
    Tensor pos = arange(q.size(-2), {.dtype = DType::int64});
    Tensor future = gt(pos.unsqueeze(0), pos.unsqueeze(1));  // j > i
    att = masked_fill(att, future, -std::numeric_limits<double>::infinity());
  }
  return matmul(softmax(att, -1), v);
}

// max |got - want| / max(1, max |want|), both read as float64.
double rel_err(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 1.0, err = 0.0;
  for (double x : w) scale = std::max(scale, std::abs(x));
  for (size_t i = 0; i < g.size() && i < w.size(); ++i) {
    const double e = std::abs(g[i] - w[i]);
    err = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(err, e);
  }
  return err / scale;
}

Tensor leaf(const Shape& shape, DType dt, uint64_t seed) { return random_tensor(shape, dt, seed).requires_grad_(); }

struct Grads {
  Tensor out, dq, dk, dv;
};

// Output and gradients of sum(f(q, k, v) * w) for fresh leaves of the given shapes.
template <class F>
Grads run(F f, const Shape& qs, const Shape& ks, DType dt, uint64_t seed) {
  Tensor q = leaf(qs, dt, seed), k = leaf(ks, dt, seed + 1), v = leaf(ks, dt, seed + 2);
  Tensor out = f(q, k, v);
  Tensor w = random_tensor(out.shape(), out.dtype(), seed + 3);
  sum(mul(out, w)).backward();
  return {out, q.grad(), k.grad(), v.grad()};
}

void compare(const Shape& qs, const Shape& ks, bool causal, DType dt, double tol, double scale = 0.0) {
  const double s = scale != 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(qs.back()));
  AttentionOptions opts{.causal = causal};
  if (scale != 0.0) opts.scale = scale;
  const Grads fused = run([&](auto& q, auto& k, auto& v) { return scaled_dot_product_attention(q, k, v, opts); },
                          qs, ks, dt, 11);
  const Grads ref = run([&](auto& q, auto& k, auto& v) { return composed(q, k, v, causal, s); }, qs, ks, dt, 11);
  SCOPED_TRACE(testing::Message() << "q " << shape_str(qs) << " k " << shape_str(ks) << " causal " << causal
                                  << " dtype " << dt);
  EXPECT_EQ(fused.out.dtype(), dt);
  EXPECT_LE(rel_err(fused.out, ref.out), tol);
  EXPECT_LE(rel_err(fused.dq, ref.dq), tol);
  EXPECT_LE(rel_err(fused.dk, ref.dk), tol);
  EXPECT_LE(rel_err(fused.dv, ref.dv), tol);
}

TEST(Attention, MatchesComposedFloat64) {
  for (bool causal : {false, true})
    for (int64_t t : {1, 7, 33, 130})
      for (int64_t d : {8, 64}) compare({2, 3, t, d}, {2, 3, t, d}, causal, DType::float64, 1e-12);
}

TEST(Attention, MatchesComposedFloat32) {
  for (bool causal : {false, true})
    for (int64_t t : {7, 130}) compare({2, 2, t, 64}, {2, 2, t, 64}, causal, DType::float32, 1e-5);
}

TEST(Attention, QueriesAndKeysOfDifferentLengths) {
  compare({2, 2, 5, 16}, {2, 2, 70, 16}, false, DType::float64, 1e-12);
  compare({1, 3, 130, 8}, {1, 3, 9, 8}, false, DType::float64, 1e-12);
  compare({1, 2, 66, 24}, {1, 2, 129, 24}, false, DType::float32, 1e-5);
}

TEST(Attention, OtherLeadingDimsAndCustomScale) {
  compare({3, 17, 8}, {3, 17, 8}, true, DType::float64, 1e-12, 0.3);      // (H, T, D)
  compare({2, 1, 2, 9, 8}, {2, 1, 2, 9, 8}, false, DType::float64, 1e-12);  // (B, G, H, T, D)
  compare({1, 2, 40, 8}, {1, 2, 40, 8}, false, DType::float64, 1e-12, 2.5);
}

TEST(Attention, NonContiguousInputs) {
  // GPT-2 passes (B, T, H, D) views transposed to (B, H, T, D), split out of one qkv tensor.
  const int64_t b = 2, t = 70, h = 3, d = 16;
  for (bool causal : {false, true}) {
    auto make = [&](uint64_t seed) {
      Tensor qkv = random_tensor({b, t, 3 * h * d}, DType::float64, seed).requires_grad_();
      return qkv;
    };
    auto heads = [&](const Tensor& qkv, int64_t i) {
      std::vector<Tensor> parts = split(qkv, h * d, 2);
      return parts[i].reshape({b, t, h, d}).transpose(1, 2);  // (B, H, T, D), non-contiguous
    };
    Tensor x1 = make(5), x2 = make(5);
    Tensor w = random_tensor({b, h, t, d}, DType::float64, 6);
    Tensor y1 = scaled_dot_product_attention(heads(x1, 0), heads(x1, 1), heads(x1, 2), {.causal = causal});
    Tensor y2 = composed(heads(x2, 0), heads(x2, 1), heads(x2, 2), causal, 0.25);
    EXPECT_FALSE(heads(x1, 0).is_contiguous());
    EXPECT_LE(rel_err(y1, y2), 1e-12);
    sum(mul(y1, w)).backward();
    sum(mul(y2, w)).backward();
    EXPECT_LE(rel_err(x1.grad(), x2.grad()), 1e-12);
  }
}

TEST(Attention, Gradcheck) {
  using Xs = std::vector<Tensor>;
  for (bool causal : {false, true}) {
    using test::make_variant;
    using test::Variant;
    std::vector<Tensor> in = {make_variant(random_tensor({1, 2, 5, 3}, DType::float64, 1), Variant::contiguous),
                              make_variant(random_tensor({1, 2, 5, 3}, DType::float64, 2), Variant::transposed),
                              make_variant(random_tensor({1, 2, 5, 3}, DType::float64, 3), Variant::sliced)};
    test::GradcheckResult r = test::gradcheck(
        [causal](const Xs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {.causal = causal}); }, in);
    EXPECT_TRUE(r.ok()) << r.report;
  }
  std::vector<Tensor> in = {test::make_variant(random_tensor({2, 4, 3}, DType::float64, 4), test::Variant::contiguous),
                            test::make_variant(random_tensor({2, 6, 3}, DType::float64, 5), test::Variant::contiguous),
                            test::make_variant(random_tensor({2, 6, 3}, DType::float64, 6), test::Variant::contiguous)};
  test::GradcheckResult r = test::gradcheck(
      [](const Xs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {.scale = 0.7}); }, in);
  EXPECT_TRUE(r.ok()) << r.report;
}

TEST(Attention, LowPrecisionDirect) {
  for (DType dt : {DType::bfloat16, DType::float16}) {
    for (bool causal : {false, true}) {
      const Shape s{2, 2, 33, 64};
      Tensor q = random_tensor(s, dt, 1), k = random_tensor(s, dt, 2), v = random_tensor(s, dt, 3);
      Tensor y = scaled_dot_product_attention(q, k, v, {.causal = causal});
      EXPECT_EQ(y.dtype(), dt);
      Tensor ref = composed(q.to(DType::float64), k.to(DType::float64), v.to(DType::float64), causal, 0.125);
      EXPECT_LE(rel_err(y, ref), 1e-2) << dt << " causal " << causal;
    }
  }
  // Gradients in bfloat16 against float64 gradients of the same (rounded) values.
  const Shape s{1, 2, 40, 32};
  auto fused = [](auto& q, auto& k, auto& v) { return scaled_dot_product_attention(q, k, v, {.causal = true}); };
  const Grads lo = run(fused, s, s, DType::bfloat16, 21);
  auto up = [](const Tensor& t) { return t.detach().to(DType::float64).requires_grad_(); };
  Tensor q = up(random_tensor(s, DType::bfloat16, 21)), k = up(random_tensor(s, DType::bfloat16, 22)),
         v = up(random_tensor(s, DType::bfloat16, 23));
  Tensor y = composed(q, k, v, true, 1.0 / std::sqrt(32.0));
  sum(mul(y, random_tensor(y.shape(), DType::bfloat16, 24).to(DType::float64))).backward();
  EXPECT_EQ(lo.dq.dtype(), DType::bfloat16);
  EXPECT_LE(rel_err(lo.out, y), 1e-2);
  EXPECT_LE(rel_err(lo.dq, q.grad()), 2e-2);
  EXPECT_LE(rel_err(lo.dk, k.grad()), 2e-2);
  EXPECT_LE(rel_err(lo.dv, v.grad()), 2e-2);
}

TEST(Attention, AutocastRunsInTheLowDtype) {
  const Shape s{2, 2, 33, 16};
  Grads lo;
  {
    autocast::Guard guard(DType::bfloat16);
    lo = run([](auto& q, auto& k, auto& v) { return scaled_dot_product_attention(q, k, v, {.causal = true}); }, s,
             s, DType::float32, 31);
  }
  const Grads ref = run([](auto& q, auto& k, auto& v) { return composed(q, k, v, true, 0.25); }, s, s,
                        DType::float32, 31);
  EXPECT_EQ(lo.out.dtype(), DType::bfloat16);
  EXPECT_EQ(lo.dq.dtype(), DType::float32);  // gradients reach the float32 leaves through the casts
  EXPECT_LE(rel_err(lo.out, ref.out), 1e-2);
  EXPECT_LE(rel_err(lo.dq, ref.dq), 3e-2);
  EXPECT_LE(rel_err(lo.dk, ref.dk), 3e-2);
  EXPECT_LE(rel_err(lo.dv, ref.dv), 3e-2);
  // float64 is never touched by autocast.
  autocast::Guard guard(DType::bfloat16);
  Tensor x = random_tensor(s, DType::float64, 1);
  EXPECT_EQ(scaled_dot_product_attention(x, x, x).dtype(), DType::float64);
}

TEST(Attention, LongCausalRowsAreNormalised) {
  // Rows of v all ones: every output element is exactly the probability mass, 1.
  const Shape s{1, 1, 200, 8};
  Tensor q = random_tensor(s, DType::float32, 1), k = random_tensor(s, DType::float32, 2);
  Tensor v = full(s, 1.0, {.dtype = DType::float32});
  Tensor y = scaled_dot_product_attention(q, k, v, {.causal = true});
  for (double x : y.to_vector<double>()) ASSERT_NEAR(x, 1.0, 1e-5);
  // Row 0 sees only key 0: its output is v[0].
  Tensor v2 = random_tensor(s, DType::float32, 3);
  Tensor y2 = scaled_dot_product_attention(q, k, v2, {.causal = true});
  EXPECT_LE(rel_err(y2.select(2, 0), v2.select(2, 0)), 1e-6);
}

TEST(Attention, ResultsDoNotDependOnTheThreadCount) {
  const int saved = kernels::cpu::num_threads();
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 3}) {
    kernels::cpu::set_num_threads(threads);
    auto fused = [](auto& q, auto& k, auto& v) { return scaled_dot_product_attention(q, k, v, {.causal = true}); };
    const Grads g = run(fused, {2, 3, 130, 32}, {2, 3, 130, 32}, DType::float32, 41);
    std::vector<float> all;
    for (const Tensor& t : {g.out, g.dq, g.dk, g.dv}) {
      const std::vector<float> x = t.to_vector<float>();
      all.insert(all.end(), x.begin(), x.end());
    }
    runs.push_back(all);
  }
  kernels::cpu::set_num_threads(saved);
  EXPECT_TRUE(runs[0] == runs[1]);
}

TEST(Attention, Errors) {
  Tensor a = random_tensor({2, 3, 4, 8}), b = random_tensor({2, 3, 5, 8});
  test::expect_throws_with([&] { scaled_dot_product_attention(random_tensor({4, 8}), a, a); },
                           {"scaled_dot_product_attention", "rank >= 3", "[4, 8]"});
  Tensor d7 = random_tensor({2, 3, 4, 7}), h2 = random_tensor({2, 2, 4, 8});
  test::expect_throws_with([&] { scaled_dot_product_attention(a, d7, d7); },
                           {"scaled_dot_product_attention", "[2, 3, 4, 8]", "[2, 3, 4, 7]"});
  test::expect_throws_with([&] { scaled_dot_product_attention(a, h2, h2); }, {"must agree", "[2, 2, 4, 8]"});
  test::expect_throws_with([&] { scaled_dot_product_attention(a, a, b); }, {"same shape", "[2, 3, 5, 8]"});
  test::expect_throws_with([&] { scaled_dot_product_attention(a, a.to(DType::float64), a); },
                           {"dtype mismatch", "float32", "float64"});
  test::expect_throws_with([&] { scaled_dot_product_attention(a, b, b, {.causal = true}); },
                           {"causal", "[2, 3, 4, 8]", "[2, 3, 5, 8]"});
  Tensor none = random_tensor({2, 3, 0, 8});
  test::expect_throws_with([&] { scaled_dot_product_attention(a, none, none); }, {"at least one position"});
  Tensor ints = zeros({2, 3, 4, 8}, {.dtype = DType::int64});
  test::expect_throws_with([&] { scaled_dot_product_attention(ints, ints, ints); }, {"int64", "floating"});
  // No queries: an empty output.
  EXPECT_EQ(scaled_dot_product_attention(random_tensor({2, 3, 0, 8}), a, a).shape(), (Shape{2, 3, 0, 8}));
}

}  // namespace
