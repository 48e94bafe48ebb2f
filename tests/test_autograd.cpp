// The autograd engine: gradient accumulation, graph retention, error cases
// (with messages that name the problem), detach / NoGradGuard, version checks
// on saved tensors, autograd::grad, broadcasting, diamonds, deep chains and
// dtype conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "engine/ops/unary.h"
#include "engine/tensor.h"
#include "support/test_util.h"

namespace {

using zae::DType;
using zae::Shape;
using zae::Tensor;

using zae::test::expect_throws_with;

void expect_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_TRUE(t.defined());
  std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

Tensor leaf(std::initializer_list<double> v, const Shape& shape = {}) {
  return zae::tensor(v, shape, {.dtype = DType::float64, .requires_grad = true});
}

// ---- accumulation -------------------------------------------------------------

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1, 2, 3});
  (x * x).sum().backward();
  expect_values(x.grad(), {2, 4, 6});
  EXPECT_EQ(x.grad().dtype(), DType::float64);
  EXPECT_EQ(x.grad().shape(), (Shape{3}));
  EXPECT_FALSE(x.grad().requires_grad());
  Tensor first = x.grad();
  (x * 3.0).sum().backward();
  expect_values(x.grad(), {5, 7, 9});  // += across calls
  // Zeroing the gradient (as an optimizer's zero_grad does) restarts the sum.
  x.set_grad(Tensor());
  (x * 3.0).sum().backward();
  expect_values(x.grad(), {3, 3, 3});
  (void)first;
}

TEST(Autograd, AccumulatedGradientDoesNotAliasTheIncomingGradient) {
  // The first gradient reaching a leaf is the root's ones tensor or a view of an upstream
  // buffer; the leaf must own a copy so that later accumulation cannot corrupt either.
  Tensor x = leaf({1, 2});
  Tensor y = leaf({5, 6});
  Tensor s = (x + y).sum();
  s.backward(Tensor(), true);
  expect_values(x.grad(), {1, 1});
  expect_values(y.grad(), {1, 1});
  EXPECT_FALSE(x.grad().storage() == y.grad().storage());
  s.backward();
  expect_values(x.grad(), {2, 2});
  expect_values(y.grad(), {2, 2});
}

TEST(Autograd, SharedSubexpressionGradientsAreSummed) {
  Tensor x = leaf({0.5, -1.5});
  Tensor y = x * x + x;  // x reaches the sum through three edges
  y.sum().backward();
  expect_values(x.grad(), {2 * 0.5 + 1, 2 * -1.5 + 1});
  Tensor z = leaf({2.0});
  Tensor w = z * z * z;  // z^3
  w.backward();
  expect_values(z.grad(), {12.0});
}

TEST(Autograd, DiamondGraph) {
  Tensor x = leaf({0.3, -0.7, 1.1});
  Tensor a = x * 2.0;
  Tensor b = a.exp();
  Tensor c = a * 3.0;
  Tensor d = b + c;
  d.sum().backward();
  std::vector<double> xv = {0.3, -0.7, 1.1};
  std::vector<double> want;
  for (double v : xv) want.push_back(2.0 * (std::exp(2.0 * v) + 3.0));
  expect_values(x.grad(), want, 1e-12);
  // The intermediate nodes are not leaves and keep no .grad.
  EXPECT_FALSE(a.is_leaf());
  EXPECT_FALSE(a.grad().defined());
}

// ---- retain_graph ---------------------------------------------------------------

TEST(Autograd, RetainGraphAllowsASecondBackward) {
  Tensor x = leaf({1.0, 2.0});
  Tensor loss = x.exp().sum();
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward(Tensor(), /*retain_graph=*/true);
  expect_values(x.grad(), {2 * std::exp(1.0), 2 * std::exp(2.0)});
  loss.backward();  // the last one may free the graph
  expect_values(x.grad(), {3 * std::exp(1.0), 3 * std::exp(2.0)});
  expect_throws_with([&] { loss.backward(); }, {"retain_graph", "second time"});
}

TEST(Autograd, SecondBackwardWithoutRetainGraphErrors) {
  Tensor x = leaf({1.0, 2.0});
  Tensor loss = (x * x).sum();
  loss.backward();
  expect_throws_with([&] { loss.backward(); }, {"retain_graph"});
  // As in PyTorch, a graph whose nodes saved nothing (views only) has nothing to free:
  // a second backward runs again and accumulates.
  Tensor y = leaf({1.0, 2.0, 3.0, 4.0});
  Tensor v = y.view({2, 2});
  v.backward(zae::ones({2, 2}, {.dtype = DType::float64}));
  expect_values(y.grad(), {1, 1, 1, 1});
  v.backward(zae::ones({2, 2}, {.dtype = DType::float64}));
  expect_values(y.grad(), {2, 2, 2, 2});
}

// ---- backward errors ---------------------------------------------------------------

TEST(Autograd, NonScalarBackwardNeedsAGradientAndNamesTheShape) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = x * 2.0;
  expect_throws_with([&] { y.backward(); }, {"backward", "[2, 3]", "gradient"});
  // Wrong gradient shape.
  expect_throws_with([&] { y.backward(zae::ones({3, 2}, {.dtype = DType::float64})); }, {"[3, 2]", "[2, 3]"});
}

TEST(Autograd, ExplicitGradientArgument) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  Tensor y = x * x;
  y.backward(zae::tensor({1.0, 0.5, -1.0, 2.0}, {2, 2}, {.dtype = DType::float64}));
  expect_values(x.grad(), {2 * 1 * 1.0, 2 * 2 * 0.5, 2 * 3 * -1.0, 2 * 4 * 2.0});
  // A float32 gradient for a float64 output is converted.
  Tensor z = leaf({1.0, 2.0});
  (z * 3.0).backward(zae::tensor({1.0, 2.0}, {2}, {.dtype = DType::float32}));
  expect_values(z.grad(), {3.0, 6.0});
  // Several roots at once.
  Tensor a = leaf({1.0});
  Tensor r1 = a * 2.0, r2 = a * 5.0;
  zae::autograd::backward({r1, r2}, {Tensor(), zae::tensor({2.0}, {1}, {.dtype = DType::float64})});
  expect_values(a.grad(), {2.0 + 10.0});
}

TEST(Autograd, BackwardOnATensorThatDoesNotRequireGradErrors) {
  Tensor x = zae::tensor({1.0, 2.0});
  Tensor y = (x * 2.0).sum();
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  expect_throws_with([&] { y.backward(); }, {"does not require grad"});
  expect_throws_with([&] { Tensor().backward(); }, {"undefined"});
}

TEST(Autograd, RequiresGradOnlyForFloatingLeaves) {
  Tensor i = zae::tensor({1, 2}, {2}, {.dtype = DType::int64});
  expect_throws_with([&] { i.requires_grad_(); }, {"requires_grad_", "int64"});
  expect_throws_with([&] { zae::tensor({1, 0}, {2}, {.dtype = DType::bool_}).requires_grad_(); }, {"bool"});
  EXPECT_NO_THROW(i.requires_grad_(false));
  Tensor x = leaf({1.0});
  Tensor y = x * 2.0;
  expect_throws_with([&] { y.requires_grad_(false); }, {"requires_grad_(false)", "non-leaf", "detach"});
  Tensor h = zae::zeros({2}, {.dtype = DType::float16});
  h.requires_grad_();
  EXPECT_TRUE(h.requires_grad());
}

// ---- cutting the graph ---------------------------------------------------------------

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = leaf({1.0, 2.0});
  Tensor y = x * 3.0;
  Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_TRUE(d.storage() == y.storage()) << "detach shares storage";
  Tensor z = (d * x).sum();  // gradient reaches x only through the direct edge
  z.backward();
  expect_values(x.grad(), {3.0, 6.0});
  Tensor only_detached = (d * 2.0).sum();
  EXPECT_FALSE(only_detached.requires_grad());
}

TEST(Autograd, NoGradGuardStopsRecording) {
  Tensor x = leaf({1.0, 2.0});
  Tensor y;
  {
    zae::NoGradGuard no_grad;
    EXPECT_FALSE(zae::GradMode::is_enabled());
    y = x * 2.0 + x.exp();
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    Tensor v = x.view({2, 1});
    EXPECT_FALSE(v.requires_grad());
    {
      zae::EnableGradGuard enable;
      EXPECT_TRUE((x * 2.0).requires_grad()) << "EnableGradGuard re-enables recording";
    }
    EXPECT_FALSE(zae::GradMode::is_enabled());
  }
  EXPECT_TRUE(zae::GradMode::is_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
  expect_throws_with([&] { y.sum().backward(); }, {"does not require grad"});
}

// ---- in-place and version checks -------------------------------------------------------

TEST(Autograd, InPlaceModificationOfASavedTensorIsDetected) {
  Tensor x = leaf({1.0, 2.0});
  Tensor w = zae::tensor({3.0, 4.0}, {2}, {.dtype = DType::float64});  // does not require grad
  Tensor y = (x * w).sum();  // mul saves w for x's gradient
  w.add_(1.0);               // allowed: w does not require grad
  expect_throws_with([&] { y.backward(); }, {"in-place", "version", "[2]"});

  // An op that saves its output: exp. Modify the output under NoGradGuard.
  Tensor a = leaf({0.5});
  Tensor e = a.exp();
  {
    zae::NoGradGuard no_grad;
    e.mul_(2.0);
  }
  expect_throws_with([&] { e.sum().backward(); }, {"modified by an in-place operation", "version"});

  // A write to another view of the same storage is detected too.
  Tensor base = zae::tensor({1.0, 2.0, 3.0, 4.0}, {4}, {.dtype = DType::float64});
  Tensor b = leaf({1.0, 1.0});
  Tensor z = (b * base.narrow(0, 0, 2)).sum();
  base.narrow(0, 2, 2).fill_(0.0);
  expect_throws_with([&] { z.backward(); }, {"in-place"});
}

TEST(Autograd, UnmodifiedSavedTensorStillWorksAfterUnrelatedWrites) {
  Tensor x = leaf({1.0, 2.0});
  Tensor w = zae::tensor({3.0, 4.0}, {2}, {.dtype = DType::float64});
  Tensor y = (x * w).sum();
  Tensor other = zae::zeros({2}, {.dtype = DType::float64});
  other.add_(1.0);  // a different storage: no effect on y's graph
  y.backward();
  expect_values(x.grad(), {3.0, 4.0});
}

TEST(Autograd, InPlaceOnALeafThatRequiresGradErrors) {
  Tensor x = leaf({1.0, 2.0});
  expect_throws_with([&] { x.add_(1.0); }, {"add_", "requires grad", "NoGradGuard"});
  expect_throws_with([&] { x.mul_(2.0); }, {"mul_", "requires grad"});
  expect_throws_with([&] { x.zero_(); }, {"requires grad"});
  expect_throws_with([&] { x.copy_(zae::zeros({2}, {.dtype = DType::float64})); }, {"copy_", "requires grad"});
  Tensor y = x * 2.0;  // a non-leaf that requires grad
  expect_throws_with([&] { y.add_(1.0); }, {"requires grad"});
  {
    zae::NoGradGuard no_grad;  // an optimizer step
    x.add_(zae::tensor({0.5, 0.5}, {2}, {.dtype = DType::float64}), -2.0);
  }
  expect_values(x, {0.0, 1.0});
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
}

// ---- autograd::grad -----------------------------------------------------------------

TEST(Autograd, GradWithRespectToChosenInputs) {
  Tensor x = leaf({1.0, -2.0});
  Tensor h = x * 2.0;  // non-leaf
  Tensor y = (h * h).sum();
  std::vector<Tensor> g = zae::autograd::grad({y}, {h, x}, {}, /*retain_graph=*/true);
  ASSERT_EQ(g.size(), 2u);
  expect_values(g[0], {4.0, -8.0});    // dy/dh = 2h
  expect_values(g[1], {8.0, -16.0});   // dy/dx = 8x
  EXPECT_FALSE(x.grad().defined()) << "grad() leaves .grad untouched";
  EXPECT_FALSE(g[0].requires_grad());
  // Only one input, the leaf.
  std::vector<Tensor> gx = zae::autograd::grad({y}, {x});
  expect_values(gx[0], {8.0, -16.0});
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, GradAllowUnused) {
  Tensor x = leaf({1.0, 2.0});
  Tensor unused = leaf({5.0});
  Tensor y = (x * x).sum();
  expect_throws_with([&] { zae::autograd::grad({y}, {x, unused}, {}, true); }, {"input 1", "allow_unused"});
  std::vector<Tensor> g = zae::autograd::grad({y}, {x, unused}, {}, true, /*allow_unused=*/true);
  expect_values(g[0], {2.0, 4.0});
  EXPECT_FALSE(g[1].defined());
  expect_throws_with([&] { zae::autograd::grad({y}, {zae::tensor({1.0})}, {}, true); }, {"does not require grad"});
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(unused.grad().defined());
  // The same input twice is rejected, for leaves and non-leaves alike.
  expect_throws_with([&] { zae::autograd::grad({y}, {x, x}, {}, true); }, {"input 1", "listed twice"});
  Tensor h = x * 2.0;
  Tensor z = (h * h).sum();
  expect_throws_with([&] { zae::autograd::grad({z}, {h, h}, {}, true); }, {"input 1", "listed twice"});
}

TEST(Autograd, GradWithExplicitOutputGradient) {
  Tensor x = leaf({1.0, 2.0, 3.0});
  Tensor y = x * x;
  std::vector<Tensor> g =
      zae::autograd::grad({y}, {x}, {zae::tensor({1.0, 0.0, -1.0}, {3}, {.dtype = DType::float64})});
  expect_values(g[0], {2.0, 0.0, -6.0});
}

// ---- broadcasting and shapes ----------------------------------------------------------

TEST(Autograd, BroadcastGradientsAreReducedToInputShapes) {
  Tensor a = leaf({1, 2, 3}, {3, 1});
  Tensor b = leaf({10, 20, 30, 40}, {1, 4});
  Tensor c = leaf({0.5});  // 1-element, broadcast over everything
  Tensor s = zae::scalar_tensor(2.0, {.dtype = DType::float64, .requires_grad = true});  // 0-dim
  Tensor y = a * b + c * s;  // (3, 4)
  y.sum().backward();
  ASSERT_EQ(a.grad().shape(), (Shape{3, 1}));
  ASSERT_EQ(b.grad().shape(), (Shape{1, 4}));
  ASSERT_EQ(c.grad().shape(), (Shape{1}));
  ASSERT_EQ(s.grad().shape(), (Shape{}));
  expect_values(a.grad(), {100, 100, 100});  // sum of b
  expect_values(b.grad(), {6, 6, 6, 6});     // sum of a
  expect_values(c.grad(), {24.0});           // 12 elements * s
  expect_values(s.grad(), {6.0});            // 12 elements * c
  // Leading broadcast dims.
  Tensor v = leaf({1, 2}, {2});
  Tensor m = zae::ones({3, 2}, {.dtype = DType::float64});
  (m * v).sum().backward();
  ASSERT_EQ(v.grad().shape(), (Shape{2}));
  expect_values(v.grad(), {3, 3});
}

TEST(Autograd, ViewGradientsFlowBackToTheBaseShape) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = x.t().reshape({6}).narrow(0, 1, 4).unsqueeze(0).expand({2, 4});
  // y = [[4, 2, 5, 3], [4, 2, 5, 3]]
  y.backward(zae::tensor({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}, {.dtype = DType::float64}));
  // x.t() flattened is [1, 4, 2, 5, 3, 6]; narrow picks positions 1..4 = x[1][0], x[0][1], x[1][1], x[0][2].
  expect_values(x.grad(), {0, 2 + 6, 4 + 8, 1 + 5, 3 + 7, 0});
  Tensor z = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  z.slice(1, 0, 3, 2).select(0, -1).backward(zae::tensor({1.0, 2.0}, {2}, {.dtype = DType::float64}));
  expect_values(z.grad(), {0, 0, 0, 1, 0, 2});
}

// ---- deep graphs ---------------------------------------------------------------------------

TEST(Autograd, LongChainDoesNotOverflowTheStack) {
  // The engine walks the graph iteratively; a recursive walk (or a recursive
  // destruction of the node chain) would overflow the stack on deep graphs.
  constexpr int kDepth = 10000;
  Tensor x = leaf({1.0});
  Tensor y = x;
  for (int i = 0; i < kDepth; ++i) y = y * 1.0001;
  y.backward();
  expect_values(x.grad(), {std::pow(1.0001, kDepth)}, 1e-9);

  // View-only chains: no arithmetic, just nodes.
  Tensor z = leaf({1.0, 2.0});
  Tensor v = z;
  for (int i = 0; i < kDepth; ++i) v = v.unsqueeze(0).squeeze(0);
  v.backward(zae::ones({2}, {.dtype = DType::float64}));
  expect_values(z.grad(), {1.0, 1.0});
}

TEST(Autograd, DeepGraphCanBeReleasedWithoutBackward) {
  // A graph that is never back-propagated (e.g. a running loss summed without detach)
  // is freed when its last tensor goes away. Node destruction must be iterative:
  // a recursive ~shared_ptr chain overflows an 8 MiB stack at this depth.
  Tensor x = leaf({1.0});
  {
    Tensor y = x;
    for (int i = 0; i < 300000; ++i) y = y + 1.0;
    EXPECT_TRUE(y.requires_grad());
  }
  EXPECT_TRUE(x.requires_grad());
}

// ---- dtype conversion --------------------------------------------------------------------

TEST(Autograd, ToDTypeGradientFlowsBackInTheSourceDType) {
  Tensor x = zae::tensor({1.5, -2.0}, {2}, {.dtype = DType::float32, .requires_grad = true});
  Tensor y = x.to(DType::float64);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_NE(y.grad_fn(), nullptr);
  (y * y).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), DType::float32);
  expect_values(x.grad(), {3.0, -4.0});

  Tensor h = zae::tensor({0.5, 0.25}, {2}, {.dtype = DType::float64, .requires_grad = true});
  Tensor hh = h.to(DType::float16);
  hh.backward(zae::tensor({1.0, 2.0}, {2}, {.dtype = DType::float16}));
  EXPECT_EQ(h.grad().dtype(), DType::float64);
  expect_values(h.grad(), {1.0, 2.0});

  // Conversion to an integer dtype is not differentiable: the result does not require grad.
  Tensor i = x.to(DType::int32);
  EXPECT_FALSE(i.requires_grad());
}

TEST(Autograd, CloneAndContiguousPassGradientsThrough) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  Tensor c = x.t().contiguous();
  EXPECT_TRUE(c.requires_grad());
  c.backward(zae::tensor({1, 2, 3, 4}, {2, 2}, {.dtype = DType::float64}));
  expect_values(x.grad(), {1, 3, 2, 4});
  Tensor k = leaf({2.0});
  (k.clone() * k).backward();
  expect_values(k.grad(), {4.0});
}

}  // namespace

// autograd::grad runs only the nodes on paths to the requested inputs, so the part of
// the graph below a requested non-leaf stays intact for later passes.
TEST(Autograd, GradStopsAtRequestedNonLeafInputs) {
  Tensor a = leaf({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3});
  Tensor v = (a * a).permute({1, 0});  // MulBackward (saves a) below PermuteBackward
  for (int pass = 0; pass < 2; ++pass) {
    Tensor out = (v * 2.0).sum();
    std::vector<Tensor> g = zae::autograd::grad({out}, {v});
    expect_values(g[0], {2, 2, 2, 2, 2, 2});
  }
  EXPECT_FALSE(a.grad().defined());
  // The graph below v was never run, so a full backward still works.
  (v.sum()).backward();
  expect_values(a.grad(), {2, 4, 6, 8, 10, 12});
}

// backward({a, b}) where root b is computed from root a: a's node must run once, after b's
// gradient reached it (it used to be marked queued up front and was never run).
TEST(Autograd, RootThatAnotherRootDependsOnStillRuns) {
  Tensor x = zae::tensor({1.0, 2.0, 3.0}, {3}, {.dtype = DType::float64, .requires_grad = true});
  Tensor a = x * x;      // da/dx = 2x
  Tensor b = a * 3.0;    // db/dx = 6x
  zae::autograd::backward({a, b}, {zae::ones_like(a), zae::ones_like(b)});
  ASSERT_TRUE(x.grad().defined());
  for (int64_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(x.grad().data<double>()[i], 8.0 * (i + 1.0)) << i;
}
