// Tests of add_layer_norm (engine/ops/add_layer_norm.cpp) against the composed ops
// add + layer_norm:
// - forward: sum and out bitwise equal to add then layer_norm in float64, float32 and
//   bfloat16 (the kernel rounds sum first, then normalises it exactly as layer_norm does),
//   with and without affine, odd sizes, several normalized dims, empty batches;
// - backward: gradients of x, residual, weight and bias against the composed graph in
//   float64 (1e-12) and float32, with the upstream gradient into sum only, out only and
//   both; sum fed to a second add_layer_norm (the GPT-2 residual chain); x == residual;
// - float64 central-difference gradchecks (both outputs, and each alone; non-contiguous
//   inputs); bf16 against a float32 reference; autocast runs it in float32;
// - no graph without grad; a second backward without retain_graph fails, with it the
//   gradients double; every user error names the values involved.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace zae::test {
namespace {

Tensor random(const Shape& shape, DType dt, uint64_t seed, double lo = -2.0, double hi = 2.0) {
  return uniform_tensor(shape, dt, seed, lo, hi);
}

struct Case {
  Shape shape;
  Shape normalized;
  bool affine;
  bool bias;
};

const std::vector<Case> kCases = {
    {{4, 16}, {16}, true, true},   {{7, 13}, {13}, true, true},       {{1, 1}, {1}, true, true},
    {{3, 5, 9}, {9}, false, false}, {{2, 3, 4, 5}, {4, 5}, true, true}, {{5, 33}, {33}, true, false},
    {{0, 8}, {8}, true, true},
};

std::string name(const Case& c) { return shape_str(c.shape) + " over " + shape_str(c.normalized); }

TEST(AddLayerNorm, ForwardIsBitwiseAddThenLayerNorm) {
  NoGradGuard no_grad;
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16})
    for (const Case& c : kCases) {
      Tensor x = random(c.shape, dt, 1), r = random(c.shape, dt, 2);
      Tensor w = c.affine ? random(c.normalized, dt, 3, 0.5, 1.5) : Tensor();
      Tensor b = c.bias ? random(c.normalized, dt, 4) : Tensor();
      AddLayerNormResult got = add_layer_norm(x, r, c.normalized, w, b, 1e-5);
      Tensor sum = add(x, r);
      Tensor want = layer_norm(sum, c.normalized, w, b, 1e-5);
      EXPECT_TRUE(same_bits(got.sum, sum)) << name(c) << " " << dt;
      EXPECT_TRUE(same_bits(got.out, want)) << name(c) << " " << dt;
    }
}

// Gradients of (x, residual, weight, bias) of sum_k <sum, gs> + <out, go> for the fused
// op or the composed ops; gs / go undefined = that output gets no gradient.
std::vector<Tensor> grads_of(bool fused, const Tensor& x0, const Tensor& r0, const Tensor& w0, const Tensor& b0,
                             const Shape& normalized, const Tensor& gs, const Tensor& go) {
  Tensor x = x0.detach().requires_grad_(true), r = r0.detach().requires_grad_(true);
  Tensor w = w0.defined() ? w0.detach().requires_grad_(true) : Tensor();
  Tensor b = b0.defined() ? b0.detach().requires_grad_(true) : Tensor();
  Tensor sum, out;
  if (fused) {
    AddLayerNormResult res = add_layer_norm(x, r, normalized, w, b);
    sum = res.sum;
    out = res.out;
  } else {
    sum = add(x, r);
    out = layer_norm(sum, normalized, w, b);
  }
  // One scalar root: the engine does not run a root's node that another root also reaches
  // (the composed sum feeds out), so sum and out are not passed as two roots here.
  Tensor loss;
  if (gs.defined()) loss = mul(sum, gs).sum();
  if (go.defined()) loss = loss.defined() ? add(loss, mul(out, go).sum()) : mul(out, go).sum();
  loss.backward();
  return {x.grad(), r.grad(), w.defined() ? w.grad() : Tensor(), b.defined() ? b.grad() : Tensor()};
}

void compare_backward(DType dt, double tol) {
  for (const Case& c : kCases) {
    Tensor x = random(c.shape, dt, 11), r = random(c.shape, dt, 12);
    Tensor w = c.affine ? random(c.normalized, dt, 13, 0.5, 1.5) : Tensor();
    Tensor b = c.bias ? random(c.normalized, dt, 14) : Tensor();
    Tensor gs = random(c.shape, dt, 15), go = random(c.shape, dt, 16);
    const char* which[] = {"sum only", "out only", "both"};
    for (int mode = 0; mode < 3; ++mode) {
      Tensor s = mode != 1 ? gs : Tensor(), o = mode != 0 ? go : Tensor();
      std::vector<Tensor> got = grads_of(true, x, r, w, b, c.normalized, s, o);
      std::vector<Tensor> want = grads_of(false, x, r, w, b, c.normalized, s, o);
      const char* labels[] = {"d_x", "d_residual", "d_weight", "d_bias"};
      for (size_t i = 0; i < 4; ++i) {
        const std::string what = name(c) + " " + which[mode] + " " + labels[i];
        ASSERT_EQ(got[i].defined(), want[i].defined()) << what;
        if (!want[i].defined()) continue;
        ASSERT_EQ(got[i].shape(), want[i].shape()) << what;
        ASSERT_EQ(got[i].dtype(), want[i].dtype()) << what;
        EXPECT_LE(max_abs_diff(got[i], want[i]), tol * (1.0 + max_abs(want[i]))) << what;
      }
    }
  }
}

TEST(AddLayerNorm, BackwardMatchesComposedFloat64) { compare_backward(DType::float64, 1e-12); }
TEST(AddLayerNorm, BackwardMatchesComposedFloat32) { compare_backward(DType::float32, 2e-6); }

TEST(AddLayerNorm, GradientIsNotSilentlyDroppedForEitherOutput) {
  // Upstream gradient into out only must change d_x relative to sum only, and vice versa.
  Tensor x = random({3, 8}, DType::float64, 21), r = random({3, 8}, DType::float64, 22);
  Tensor g = random({3, 8}, DType::float64, 23);
  std::vector<Tensor> s = grads_of(true, x, r, {}, {}, {8}, g, {});
  std::vector<Tensor> o = grads_of(true, x, r, {}, {}, {8}, {}, g);
  std::vector<Tensor> both = grads_of(true, x, r, {}, {}, {8}, g, g);
  EXPECT_LE(max_abs_diff(s[0], g), 0.0);  // sum only: d_x = g exactly
  EXPECT_GT(max_abs_diff(o[0], g), 1e-3);
  EXPECT_LE(max_abs_diff(both[0], add(s[0], o[0])), 1e-12);
  EXPECT_LE(max_abs_diff(both[1], both[0]), 0.0);
}

TEST(AddLayerNorm, ResidualChainLikeGpt2MatchesComposed) {
  // h1, a = add_layer_norm(x, y1); h2, b = add_layer_norm(h1, f(a)); loss uses h2 and b.
  const Shape shape{4, 6, 10};
  Tensor x0 = random(shape, DType::float64, 31), y0 = random(shape, DType::float64, 32);
  Tensor w0 = random({10}, DType::float64, 33, 0.5, 1.5), b0 = random({10}, DType::float64, 34);
  Tensor g = random(shape, DType::float64, 35);
  auto run = [&](bool fused) {
    Tensor x = x0.detach().requires_grad_(true), y = y0.detach().requires_grad_(true);
    Tensor w = w0.detach().requires_grad_(true), b = b0.detach().requires_grad_(true);
    auto aln = [&](const Tensor& p, const Tensor& q) {
      if (fused) return add_layer_norm(p, q, {10}, w, b);
      Tensor s = add(p, q);
      return AddLayerNormResult{s, layer_norm(s, {10}, w, b)};
    };
    AddLayerNormResult first = aln(x, y);
    AddLayerNormResult second = aln(first.sum, mul(first.out, first.out));
    Tensor loss = add(mul(second.sum, g).sum(), mul(second.out, second.out).sum());
    loss.backward();
    return std::vector<Tensor>{loss.detach(), x.grad(), y.grad(), w.grad(), b.grad()};
  };
  std::vector<Tensor> got = run(true), want = run(false);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(max_abs_diff(got[i], want[i]), 1e-12 * (1.0 + max_abs(want[i]))) << "tensor " << i;
}

TEST(AddLayerNorm, SameTensorAsBothAddends) {
  Tensor h0 = random({5, 7}, DType::float64, 41), g = random({5, 7}, DType::float64, 42);
  Tensor h = h0.detach().requires_grad_(true);
  AddLayerNormResult res = add_layer_norm(h, h, {7});
  autograd::backward({res.sum, res.out}, {g, g});
  Tensor h2 = h0.detach().requires_grad_(true);
  Tensor s = add(h2, h2);
  add(mul(s, g).sum(), mul(layer_norm(s, {7}), g).sum()).backward();
  EXPECT_LE(max_abs_diff(h.grad(), h2.grad()), 1e-12);
}

GradcheckOptions tight() {
  GradcheckOptions o;
  o.atol = 1e-7;
  o.rtol = 1e-6;
  return o;
}

TEST(AddLayerNorm, GradcheckBothOutputs) {
  for (const Case& c : kCases) {
    if (shape_numel(c.shape) == 0) continue;
    std::vector<Tensor> in;
    in.reserve(4);
    in.push_back(random(c.shape, DType::float64, 51).requires_grad_(true));
    in.push_back(random(c.shape, DType::float64, 52).requires_grad_(true));
    if (c.affine) in.push_back(random(c.normalized, DType::float64, 53, 0.5, 1.5).requires_grad_(true));
    if (c.bias) in.push_back(random(c.normalized, DType::float64, 54).requires_grad_(true));
    const Case cc = c;
    auto f = [cc](const std::vector<Tensor>& v) {
      AddLayerNormResult res = add_layer_norm(v[0], v[1], cc.normalized, cc.affine ? v[2] : Tensor(),
                                              cc.bias ? v[cc.affine ? 3 : 2] : Tensor());
      return std::vector<Tensor>{res.sum, res.out};
    };
    GradcheckResult both = gradcheck_multi(f, in, tight());
    EXPECT_TRUE(both.ok()) << name(c) << "\n" << both.report << both.error;
    GradcheckResult sum_only =
        gradcheck([f](const std::vector<Tensor>& v) { return f(v)[0]; }, in, tight());
    EXPECT_TRUE(sum_only.ok()) << name(c) << "\n" << sum_only.report << sum_only.error;
    GradcheckResult out_only =
        gradcheck([f](const std::vector<Tensor>& v) { return f(v)[1]; }, in, tight());
    EXPECT_TRUE(out_only.ok()) << name(c) << "\n" << out_only.report << out_only.error;
  }
}

TEST(AddLayerNorm, GradcheckNonContiguousInputs) {
  Tensor xb = random({6, 5}, DType::float64, 61), rb = random({6, 5}, DType::float64, 62);
  Tensor w = random({5}, DType::float64, 63, 0.5, 1.5).requires_grad_(true);
  for (Variant vx : {Variant::transposed, Variant::sliced})
    for (Variant vr : {Variant::contiguous, Variant::transposed}) {
      std::vector<Tensor> in = {make_variant(xb, vx), make_variant(rb, vr), w};
      auto f = [](const std::vector<Tensor>& v) {
        AddLayerNormResult res = add_layer_norm(v[0], v[1], {5}, v[2]);
        return std::vector<Tensor>{res.sum, res.out};
      };
      GradcheckResult res = gradcheck_multi(f, in, tight());
      EXPECT_TRUE(res.ok()) << variant_name(vx) << "/" << variant_name(vr) << "\n" << res.report << res.error;
    }
}

TEST(AddLayerNorm, Bfloat16AgainstFloat32) {
  const Shape shape{9, 24};
  Tensor x = random(shape, DType::bfloat16, 71), r = random(shape, DType::bfloat16, 72);
  Tensor w = random({24}, DType::bfloat16, 73, 0.5, 1.5), b = random({24}, DType::bfloat16, 74);
  Tensor gs = random(shape, DType::bfloat16, 75), go = random(shape, DType::bfloat16, 76);
  std::vector<Tensor> got = grads_of(true, x, r, w, b, {24}, gs, go);
  auto f32 = [](const Tensor& t) { return t.to(DType::float32); };
  std::vector<Tensor> want = grads_of(false, f32(x), f32(r), f32(w), f32(b), {24}, f32(gs), f32(go));
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i].dtype(), DType::bfloat16);
    // bf16 keeps 8 bits; sums over the 9 rows for dweight / dbias round once.
    EXPECT_LE(max_abs_diff(got[i], want[i]), 2e-2 * (1.0 + max_abs(want[i]))) << "gradient " << i;
  }
}

TEST(AddLayerNorm, AutocastRunsInFloat32) {
  Tensor x = random({3, 8}, DType::bfloat16, 81), r = random({3, 8}, DType::bfloat16, 82);
  Tensor w = random({8}, DType::float32, 83).requires_grad_(true);
  AddLayerNormResult res;
  {
    autocast::Guard guard(DType::bfloat16);
    res = add_layer_norm(x, r, {8}, w);
  }
  EXPECT_EQ(res.sum.dtype(), DType::float32);
  EXPECT_EQ(res.out.dtype(), DType::float32);
  Tensor want = layer_norm(add(x.to(DType::float32), r.to(DType::float32)), {8}, w.detach());
  EXPECT_LE(max_abs_diff(res.out, want), 0.0);
  res.out.sum().backward();
  EXPECT_EQ(w.grad().dtype(), DType::float32);
}

TEST(AddLayerNorm, NoGraphWithoutGradAndRetainGraph) {
  Tensor x = random({2, 4}, DType::float64, 91), r = random({2, 4}, DType::float64, 92);
  AddLayerNormResult plain = add_layer_norm(x, r, {4});
  EXPECT_FALSE(plain.sum.requires_grad());
  EXPECT_FALSE(plain.out.requires_grad());
  Tensor xg = x.detach().requires_grad_(true);
  {
    NoGradGuard no_grad;
    AddLayerNormResult res = add_layer_norm(xg, r, {4});
    EXPECT_FALSE(res.out.requires_grad());
  }
  AddLayerNormResult res = add_layer_norm(xg, r, {4});
  EXPECT_TRUE(res.sum.requires_grad());
  EXPECT_TRUE(res.out.requires_grad());
  Tensor loss = add(mul(res.out, res.out).sum(), res.sum.sum());
  loss.backward({}, /*retain_graph=*/true);
  const Tensor first = xg.grad().clone();
  loss.backward();
  EXPECT_LE(max_abs_diff(xg.grad(), mul(first, scalar_tensor(2.0, {.dtype = DType::float64}))), 1e-12);
  try {
    loss.backward();
    ADD_FAILURE() << "a third backward without retain_graph should fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("second time"), std::string::npos) << e.what();
  }
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(AddLayerNorm, UserErrorsNameTheValues) {
  Tensor x = random({2, 4}, DType::float32, 1), r = random({2, 4}, DType::float32, 2);
  expect_error([&] { add_layer_norm(x, random({2, 5}, DType::float32, 3), {4}); }, "residual has shape [2, 5]");
  expect_error([&] { add_layer_norm(x, random({1, 4}, DType::float32, 3), {4}); }, "no broadcasting");
  expect_error([&] { add_layer_norm(x, r.to(DType::float64), {4}); }, "residual has dtype float64");
  expect_error([&] { add_layer_norm(x, r, {5}); }, "does not end with normalized_shape [5]");
  expect_error([&] { add_layer_norm(x, r, {}); }, "at least one dim");
  expect_error([&] { add_layer_norm(x, r, {4}, random({3}, DType::float32, 4)); }, "weight has shape [3]");
  expect_error([&] { add_layer_norm(x, r, {4}, {}, random({4}, DType::float64, 4)); }, "bias has dtype float64");
  expect_error([&] { add_layer_norm(x, r, {4}, {}, {}, -1.0); }, "eps must be non-negative");
  expect_error([&] { add_layer_norm(Tensor(), r, {4}); }, "undefined input tensor x");
  expect_error([&] { add_layer_norm(x.to(DType::int32), r.to(DType::int32), {4}); }, "add_layer_norm");
}

}  // namespace
}  // namespace zae::test
