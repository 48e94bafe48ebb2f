// Tests of linear_gelu (engine/ops/linear_gelu.cpp) against the composed ops
// gelu(linear(x, W, b), GeluApprox::tanh):
// - forward and gradients (x, weight, bias) bitwise equal to the composed graph on the
//   CPU in float64 and float32, with and without bias, with and without recompute, 1-D,
//   2-D and 3-D inputs, non-contiguous x and a transposed weight; only some inputs
//   requiring grad;
// - float64 central-difference gradchecks (contiguous and transposed x);
// - bfloat16 autocast: low-dtype output near a float64 reference, float32 gradients;
// - recompute keeps less alive: the CPU allocator's cache counter sees the saved
//   pre-activation freed with the graph without recompute and nothing with it;
// - no graph in no-grad mode or without inputs that require grad;
// - every user error names the values involved;
// - GPT-2 with recompute_gelu gives bitwise the same loss and gradients as without.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "engine/autocast.h"
#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/unary.h"
#include "engine/zae.h"
#include "nn/gpt2.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace zae::test {
namespace {

Tensor random(const Shape& shape, DType dt, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  return uniform_tensor(shape, dt, seed, lo, hi);
}

Tensor composed(const Tensor& x, const Tensor& w, const Tensor& b) { return gelu(linear(x, w, b), GeluApprox::tanh); }

struct Case {
  Shape x_shape;  // (..., in)
  int64_t out;
  bool bias;
  bool x_transposed;  // x is the transpose of a contiguous base (first two dims swapped)
  bool w_transposed;  // weight is the transpose of a contiguous (in, out) base
};

const std::vector<Case> kCases = {
    {{5, 7}, 9, true, false, false},     {{5, 7}, 9, false, false, false},  {{3, 4, 16}, 33, true, false, false},
    {{3, 4, 16}, 33, false, true, false}, {{6, 8}, 5, true, true, true},    {{7}, 4, true, false, false},
    {{2, 3, 5, 6}, 3, true, false, false}, {{0, 4}, 3, true, false, false}, {{4, 1}, 1, true, false, false},
};

std::string name(const Case& c, DType dt, bool recompute) {
  return shape_str(c.x_shape) + " -> " + std::to_string(c.out) + (c.bias ? " bias" : " no-bias") +
         (c.x_transposed ? " x^T" : "") + (c.w_transposed ? " W^T" : "") + " " + std::string(dtype_name(dt)) +
         (recompute ? " recompute" : " save");
}

struct Leaves {
  Tensor x, w, b;  // leaves (or views of leaves) that require grad
  Tensor x_leaf, w_leaf;
};

Leaves make_leaves(const Case& c, DType dt, uint64_t seed) {
  Leaves l;
  const int64_t in = c.x_shape.back();
  Shape xb = c.x_shape;
  if (c.x_transposed) std::swap(xb[0], xb[1]);
  l.x_leaf = random(xb, dt, seed).requires_grad_();
  l.x = c.x_transposed ? l.x_leaf.transpose(0, 1) : l.x_leaf;
  const double ws = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(in, 1)));
  l.w_leaf = random(c.w_transposed ? Shape{in, c.out} : Shape{c.out, in}, dt, seed + 1, -ws, ws).requires_grad_();
  l.w = c.w_transposed ? l.w_leaf.t() : l.w_leaf;
  if (c.bias) l.b = random({c.out}, dt, seed + 2, -0.5, 0.5).requires_grad_();
  return l;
}

// Output and the gradients of <y, g> with respect to x_leaf, w_leaf, b.
struct Result {
  Tensor y, dx, dw, db;
};

Result run_case(const Leaves& l, bool fused, bool recompute, uint64_t seed) {
  Result r;
  r.y = fused ? linear_gelu(l.x, l.w, l.b, {.recompute = recompute}) : composed(l.x, l.w, l.b);
  Tensor g = random(r.y.shape(), r.y.dtype(), seed);
  std::vector<Tensor> inputs = {l.x_leaf, l.w_leaf};
  if (l.b.defined()) inputs.push_back(l.b);
  std::vector<Tensor> grads = autograd::grad({r.y}, inputs, {g});
  r.dx = grads[0];
  r.dw = grads[1];
  if (l.b.defined()) r.db = grads[2];
  return r;
}

TEST(LinearGelu, BitwiseEqualToComposedOpsFloat64AndFloat32) {
  int checked = 0;
  for (DType dt : {DType::float64, DType::float32})
    for (const Case& c : kCases)
      for (bool recompute : {false, true}) {
        SCOPED_TRACE(name(c, dt, recompute));
        Leaves l = make_leaves(c, dt, 11);
        Result want = run_case(l, false, recompute, 99);
        Result got = run_case(l, true, recompute, 99);
        EXPECT_TRUE(same_bits(got.y, want.y)) << "y differs by " << max_abs_diff(got.y, want.y);
        EXPECT_TRUE(same_bits(got.dx, want.dx)) << "dx differs by " << max_abs_diff(got.dx, want.dx);
        EXPECT_TRUE(same_bits(got.dw, want.dw)) << "dw differs by " << max_abs_diff(got.dw, want.dw);
        EXPECT_TRUE(same_bits(got.db, want.db));
        EXPECT_EQ(got.y.dtype(), dt);
        ++checked;
      }
  EXPECT_EQ(checked, 2 * 2 * static_cast<int>(kCases.size()));
}

TEST(LinearGelu, MatchesAnIndependentFloat64Reference) {
  // y = gelu_tanh(x W^T + b) written out element by element, no engine op involved.
  const int64_t rows = 6, in = 5, out = 4;
  Tensor x = random({rows, in}, DType::float64, 3), w = random({out, in}, DType::float64, 4),
         b = random({out}, DType::float64, 5);
  const std::vector<double> vx = x.to_vector<double>(), vw = w.to_vector<double>(), vb = b.to_vector<double>();
  std::vector<double> want(rows * out);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < out; ++j) {
      double h = vb[j];
      for (int64_t k = 0; k < in; ++k) h += vx[i * in + k] * vw[j * in + k];
      want[i * out + j] = 0.5 * h * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (h + 0.044715 * h * h * h)));
    }
  for (bool recompute : {false, true}) expect_close(linear_gelu(x, w, b, {.recompute = recompute}), want, 1e-12, 1e-12);
}

TEST(LinearGelu, PartialRequiresGrad) {
  // Only x, only the weight, only the bias: the node saves what the others need.
  for (bool recompute : {false, true})
    for (int which = 0; which < 3; ++which) {
      SCOPED_TRACE(std::to_string(which) + (recompute ? " recompute" : ""));
      Tensor x = random({4, 3, 6}, DType::float64, 21), w = random({5, 6}, DType::float64, 22),
             b = random({5}, DType::float64, 23);
      Tensor leaf = which == 0 ? x : which == 1 ? w : b;
      leaf.requires_grad_();
      Tensor g = random({4, 3, 5}, DType::float64, 24);
      Tensor got = autograd::grad({linear_gelu(x, w, b, {.recompute = recompute})}, {leaf}, {g})[0];
      Tensor want = autograd::grad({composed(x, w, b)}, {leaf}, {g})[0];
      EXPECT_TRUE(same_bits(got, want)) << max_abs_diff(got, want);
    }
}

TEST(LinearGelu, Gradcheck) {
  for (bool recompute : {false, true})
    for (Variant v : {Variant::contiguous, Variant::transposed})
      for (bool bias : {true, false}) {
        SCOPED_TRACE(std::string(variant_name(v)) + (recompute ? " recompute" : "") + (bias ? " bias" : ""));
        InputSpec xs, ws, bs;
        xs.shape = {2, 3, 4};
        xs.variant = v;
        ws.shape = {5, 4};
        ws.variant = v;
        bs.shape = {5};
        std::vector<Tensor> in;
        in.reserve(3);
        in.push_back(make_input(xs, 1));
        in.push_back(make_input(ws, 2));
        if (bias) in.push_back(make_input(bs, 3));
        GradcheckResult r = gradcheck(
            [recompute, bias](const std::vector<Tensor>& t) {
              return linear_gelu(t[0], t[1], bias ? t[2] : Tensor(), {.recompute = recompute});
            },
            in);
        EXPECT_TRUE(r.ok()) << r.report << " " << r.error;
      }
}

TEST(LinearGelu, Bfloat16AutocastIsCloseToFloat64) {
  Tensor x = random({3, 8, 32}, DType::float32, 31).requires_grad_();
  Tensor w = random({48, 32}, DType::float32, 32, -0.2, 0.2).requires_grad_();
  Tensor b = random({48}, DType::float32, 33, -0.5, 0.5).requires_grad_();
  Tensor x64 = x.detach().to(DType::float64).requires_grad_(), w64 = w.detach().to(DType::float64).requires_grad_(),
         b64 = b.detach().to(DType::float64).requires_grad_();
  Tensor g = random({3, 8, 48}, DType::float32, 34);
  Tensor want = composed(x64, w64, b64);
  std::vector<Tensor> want_grads = autograd::grad({want}, {x64, w64, b64}, {g.to(DType::float64)});
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "save");
    Tensor y;
    {
      autocast::Guard guard(DType::bfloat16);
      y = linear_gelu(x, w, b, {.recompute = recompute});
    }
    EXPECT_EQ(y.dtype(), DType::bfloat16);
    EXPECT_LE(max_abs_diff(y, want), 3e-2 * std::max(1.0, max_abs(want)));
    std::vector<Tensor> grads = autograd::grad({y}, {x, w, b}, {g.to(DType::bfloat16)});
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(grads[i].dtype(), DType::float32) << i;
      EXPECT_LE(max_abs_diff(grads[i], want_grads[i]), 4e-2 * std::max(1.0, max_abs(want_grads[i]))) << i;
    }
  }
}

TEST(LinearGelu, RecomputeKeepsThePreActivationOutOfTheGraph) {
  // The allocator caches freed blocks >= 1 MiB and counts them: drop the graph while
  // keeping the output alive, and what the graph alone kept alive lands in the cache.
  const size_t old_limit = cpu_cache_stats().limit_bytes;
  cpu_set_cache_limit(size_t{512} << 20);
  const int64_t rows = 512, in = 16, out = 1024;  // h: 2 MiB of float32
  Tensor x = random({rows, in}, DType::float32, 41).requires_grad_();
  Tensor w = random({out, in}, DType::float32, 42).requires_grad_();
  Tensor b = random({out}, DType::float32, 43).requires_grad_();
  const size_t h_bytes = static_cast<size_t>(rows * out) * sizeof(float);
  auto freed_with_graph = [&](bool fused, bool recompute) {
    cpu_empty_cache();
    Tensor keep;
    size_t before = 0;
    {
      Tensor y = fused ? linear_gelu(x, w, b, {.recompute = recompute}) : composed(x, w, b);
      EXPECT_TRUE(y.requires_grad());
      keep = y.detach();
      before = cpu_cache_stats().cached_bytes;
    }
    return cpu_cache_stats().cached_bytes - before;
  };
  const size_t composed_freed = freed_with_graph(false, false);
  const size_t saved_freed = freed_with_graph(true, false);
  const size_t recompute_freed = freed_with_graph(true, true);
  cpu_empty_cache();
  cpu_set_cache_limit(old_limit);
  EXPECT_GE(composed_freed, h_bytes);  // the composed graph keeps h (gelu's input)
  EXPECT_GE(saved_freed, h_bytes);
  EXPECT_LT(saved_freed, 2 * h_bytes);
  EXPECT_EQ(recompute_freed, 0u);
}

TEST(LinearGelu, NoGraphWithoutGrad) {
  Tensor x = random({4, 6}, DType::float32, 51).requires_grad_(), w = random({3, 6}, DType::float32, 52),
         b = random({3}, DType::float32, 53);
  Tensor want;
  {
    NoGradGuard no_grad;
    want = composed(x, w, b);
    for (bool recompute : {false, true}) {
      Tensor y = linear_gelu(x, w, b, {.recompute = recompute});
      EXPECT_FALSE(y.requires_grad());
      EXPECT_EQ(y.grad_fn(), nullptr);
      EXPECT_TRUE(same_bits(y, want));
    }
  }
  Tensor y = linear_gelu(x.detach(), w, b);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(same_bits(y, want));
  Tensor yg = linear_gelu(x, w, b);
  ASSERT_NE(yg.grad_fn(), nullptr);
  EXPECT_EQ(yg.grad_fn()->name(), "LinearGeluBackward");
  EXPECT_EQ(linear_gelu(x, w, b, {.recompute = true}).grad_fn()->name(), "LinearGeluRecomputeBackward");
}

TEST(LinearGelu, ErrorsNameTheValues) {
  Tensor x = random({4, 6}, DType::float32, 61), w = random({3, 6}, DType::float32, 62),
         b = random({3}, DType::float32, 63);
  expect_throws_with([&] { linear_gelu(x, random({3, 5}, DType::float32, 1), b); },
                     {"linear_gelu", "[4, 6]", "[3, 5]", "6 != 5"});
  expect_throws_with([&] { linear_gelu(x, random({6}, DType::float32, 1), b); }, {"linear_gelu", "2-D", "[6]"});
  expect_throws_with([&] { linear_gelu(x, w, random({4}, DType::float32, 1)); }, {"linear_gelu", "bias", "[3]", "[4]"});
  expect_throws_with([&] { linear_gelu(x, w.to(DType::float64), b); },
                     {"linear_gelu", "dtype mismatch", "float32", "float64"});
  expect_throws_with([&] { linear_gelu(x, w, b.to(DType::float64)); }, {"linear_gelu", "bias", "float64"});
  expect_throws_with([&] { linear_gelu(x.to(DType::int64), w.to(DType::int64), b.to(DType::int64)); },
                     {"linear_gelu", "int64", "floating"});
  expect_throws_with([&] { linear_gelu(Tensor(), w, b); }, {"linear_gelu", "undefined", "input"});
  expect_throws_with([&] { linear_gelu(x, Tensor(), b); }, {"linear_gelu", "undefined", "weight"});
  expect_throws_with([&] { linear_gelu(scalar_tensor(1.0), w, b); }, {"linear_gelu", "at least 1"});
}

// ---- GPT-2's MLP ------------------------------------------------------------------------

TEST(LinearGeluGpt2, RecomputeGivesBitwiseTheSameLossAndGradients) {
  nn::GPT2Config c;
  c.vocab_size = 64;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  std::vector<int64_t> ids(2 * 12), next(2 * 12);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<int64_t>((i * 7 + 3) % 64);
    next[i] = static_cast<int64_t>((i * 5 + 1) % 64);
  }
  Tensor idx = tensor<int64_t>(ids, {2, 12}), targets = tensor<int64_t>(next, {2, 12});
  std::vector<double> losses;
  std::vector<std::vector<std::pair<std::string, Tensor>>> params;
  for (bool recompute : {false, true}) {
    c.recompute_gelu = recompute;
    manual_seed(5);
    auto m = std::make_shared<nn::GPT2>(c);
    Tensor loss = m->loss(idx, targets);
    losses.push_back(loss.item());
    loss.backward();
    params.push_back(m->named_parameters());
  }
  EXPECT_EQ(losses[0], losses[1]);
  ASSERT_EQ(params[0].size(), params[1].size());
  int compared = 0;
  for (size_t i = 0; i < params[0].size(); ++i) {
    SCOPED_TRACE(params[0][i].first);
    EXPECT_EQ(params[0][i].first, params[1][i].first);
    EXPECT_TRUE(same_bits(params[0][i].second, params[1][i].second));
    ASSERT_TRUE(params[0][i].second.grad().defined());
    EXPECT_TRUE(same_bits(params[0][i].second.grad(), params[1][i].second.grad()))
        << max_abs_diff(params[0][i].second.grad(), params[1][i].second.grad());
    ++compared;
  }
  EXPECT_GT(compared, 10);
  // The GELU module is still registered (state-dict keys unchanged; it holds no parameters).
  bool has_gelu = false;
  manual_seed(5);
  auto m = std::make_shared<nn::GPT2>(c);
  for (const auto& [n, mod] : m->named_modules())
    if (n.size() >= 12 && n.compare(n.size() - 12, 12, "h.0.mlp.gelu") == 0) has_gelu = true;
  EXPECT_TRUE(has_gelu);
}

}  // namespace
}  // namespace zae::test
