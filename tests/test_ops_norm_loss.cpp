// Tests of the functional batch_norm, group_norm (engine/ops/batch_norm.h,
// group_norm.h) and losses (engine/ops/loss.h):
// - float64 central-difference gradchecks, one table row per op and configuration,
//   each under the layouts contiguous / transposed / sliced (and expanded where the
//   statistics stay well conditioned), listed as GradCheck/NormLoss.grad/<row>_<layout>;
// - forward values and running-statistic updates against plain float64 loops;
// - 16-bit forward, empty batches, and every user error's message.
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/group_norm.h"
#include "engine/ops/loss.h"
#include "engine/ops/unary.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace zae::test {
namespace {

using Xs = std::vector<Tensor>;

InputSpec spec(Shape s, Domain d, bool requires_grad) {
  InputSpec in;
  in.shape = std::move(s);
  in.domain = d;
  in.requires_grad = requires_grad;
  return in;
}
InputSpec U(Shape s) { return spec(std::move(s), Domain::uniform, true); }
InputSpec P(Shape s, bool grad = true) { return spec(std::move(s), Domain::positive, grad); }
InputSpec Const(Shape s) { return spec(std::move(s), Domain::uniform, false); }
InputSpec Idx(Shape s, int64_t high) {
  InputSpec in = spec(std::move(s), Domain::index, false);
  in.high = high;
  return in;
}
InputSpec IdxV(Shape s, std::vector<double> v) {
  InputSpec in = spec(std::move(s), Domain::index, false);
  in.values = std::move(v);
  return in;
}

struct GradRow {
  std::string name;
  std::vector<InputSpec> ins;
  GradFn fn;
  bool expanded = false;  ///< also check the expanded layout of input 0
};

const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

std::vector<GradRow> grad_rows() {
  std::vector<GradRow> rows;
  // ---- batch_norm: training (batch statistics), with and without affine and running stats.
  rows.push_back({"bn_train_2d", {U({6, 4}), U({4}), U({4})}, [](const Xs& in) {
                    return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
                  }});
  rows.push_back({"bn_train_3d_stats",
                  {U({3, 4, 5}), U({4}), U({4})},
                  [](const Xs& in) {
                    Tensor rm = zeros({4}, {.dtype = DType::float64}), rv = ones({4}, {.dtype = DType::float64});
                    return batch_norm(in[0], rm, rv, in[1], in[2], true, 0.1, 1e-5);
                  },
                  true});
  rows.push_back({"bn_train_4d",
                  {U({3, 2, 3, 4}), U({2}), U({2})},
                  [](const Xs& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-3); },
                  true});
  rows.push_back({"bn_train_noaffine_4d",
                  {U({2, 3, 2, 3})},
                  [](const Xs& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                  true});
  rows.push_back({"bn_train_weight_only", {U({5, 3}), U({3})}, [](const Xs& in) {
                    return batch_norm(in[0], Tensor(), Tensor(), in[1], Tensor(), true);
                  }});
  // ---- batch_norm: eval (running statistics are constants).
  rows.push_back({"bn_eval_3d",
                  {U({3, 4, 5}), U({4}), U({4}), Const({4}), P({4}, false)},
                  [](const Xs& in) { return batch_norm(in[0], in[3], in[4], in[1], in[2], false, 0.1, 1e-5); },
                  true});
  rows.push_back({"bn_eval_noaffine_2d",
                  {U({4, 3}), Const({3}), P({3}, false)},
                  [](const Xs& in) { return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), false, 0.1, 1e-5); },
                  true});
  // ---- group_norm.
  rows.push_back({"gn_4d",
                  {U({2, 6, 3, 3}), U({6}), U({6})},
                  [](const Xs& in) { return group_norm(in[0], 3, in[1], in[2], 1e-5); },
                  true});
  rows.push_back(
      {"gn_2d", {U({4, 6}), U({6}), U({6})}, [](const Xs& in) { return group_norm(in[0], 2, in[1], in[2]); }});
  rows.push_back({"gn_noaffine_3d", {U({2, 4, 5})}, [](const Xs& in) { return group_norm(in[0], 2); }, true});
  rows.push_back({"gn_one_group", {U({2, 4, 3}), U({4}), U({4})}, [](const Xs& in) {
                    return group_norm(in[0], 1, in[1], in[2], 1e-3);
                  }});
  rows.push_back({"gn_instance",
                  {U({2, 3, 2, 3}), U({3}), U({3})},
                  [](const Xs& in) { return group_norm(in[0], 3, in[1], in[2]); },
                  true});
  // ---- losses, under every reduction.
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    const std::string s = reduction_name(r);
    rows.push_back(
        {"nll_" + s, {U({5, 4}), Idx({5}, 4)}, [r](const Xs& in) { return nll_loss(in[0], in[1], {.reduction = r}); }});
    rows.push_back({"nll_weight_ignore_" + s,
                    {U({6, 4}), IdxV({6}, {0, 3, -100, 1, 3, 2}), P({4}, false)},
                    [r](const Xs& in) { return nll_loss(in[0], in[1], {.reduction = r, .weight = in[2]}); }});
    rows.push_back(
        {"nll_kdim_ignore1_" + s,
         {U({2, 4, 3}), IdxV({2, 3}, {1, 0, 3, 2, 1, 1}), P({4}, false)},
         [r](const Xs& in) { return nll_loss(in[0], in[1], {.ignore_index = 1, .reduction = r, .weight = in[2]}); },
         true});
    rows.push_back({"mse_" + s, {U({4, 5}), U({4, 5})}, [r](const Xs& in) { return mse_loss(in[0], in[1], r); }, true});
    rows.push_back({"l1_" + s, {U({4, 5}), U({4, 5})}, [r](const Xs& in) { return l1_loss(in[0], in[1], r); }});
    for (double beta : {1.0, 0.5, 0.0}) {
      rows.push_back({"smooth_l1_beta" + std::to_string(static_cast<int>(beta * 10)) + "_" + s,
                      {U({4, 5}), U({4, 5})},
                      [r, beta](const Xs& in) { return smooth_l1_loss(in[0], in[1], r, beta); }});
    }
    // Targets in [0, 1]: an affine map of U[-1.5, 1.5] (its gradient is checked through the map).
    rows.push_back({"bce_" + s, {U({4, 5}), U({4, 5})}, [r](const Xs& in) {
                      return binary_cross_entropy_with_logits(in[0] * 2.0, (in[1] + 1.5) / 3.0, {.reduction = r});
                    }});
    rows.push_back({"bce_weight_posw_" + s,
                    {U({3, 5}), U({3, 5}), P({5}, false), P({3, 5}, false)},
                    [r](const Xs& in) {
                      return binary_cross_entropy_with_logits(in[0] * 2.0, (in[1] + 1.5) / 3.0,
                                                              {.reduction = r, .weight = in[3], .pos_weight = in[2]});
                    },
                    true});
    rows.push_back({"bce_posw_" + s, {U({4, 5}), U({4, 5}), P({5}, false)}, [r](const Xs& in) {
                      return binary_cross_entropy_with_logits(in[0], (in[1] + 1.5) / 3.0,
                                                              {.reduction = r, .pos_weight = in[2] * 2.0});
                    }});
  }
  return rows;
}

struct GradParam {
  GradRow row;
  Variant variant;
};

std::vector<GradParam> grad_params() {
  std::vector<GradParam> out;
  for (const GradRow& r : grad_rows()) {
    for (Variant v : {Variant::contiguous, Variant::transposed, Variant::sliced})
      if (v == Variant::contiguous || variant_applies(r.ins[0].shape, v)) out.push_back({r, v});
    if (r.expanded) out.push_back({r, Variant::expanded});
  }
  return out;
}

void PrintTo(const GradParam& p, std::ostream* os) { *os << p.row.name << " (" << variant_name(p.variant) << ")"; }

class NormLoss : public ::testing::TestWithParam<GradParam> {};

TEST_P(NormLoss, grad) {
  const GradParam& p = GetParam();
  const uint64_t seed = std::hash<std::string>{}(p.row.name) & 0xffffffffu;
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < p.row.ins.size(); ++i) {
    InputSpec spec = p.row.ins[i];
    // Every differentiable input takes the layout where it applies (expanded: input 0 only).
    const bool applies = spec.requires_grad && spec.domain != Domain::index && variant_applies(spec.shape, p.variant);
    if (applies && (p.variant != Variant::expanded || i == 0)) spec.variant = p.variant;
    inputs.push_back(make_input(spec, seed + i));
  }
  GradcheckResult r = gradcheck(p.row.fn, inputs);
  EXPECT_GT(r.elements_checked, 0);
  EXPECT_TRUE(r.ok()) << p.row.name << " (" << variant_name(p.variant) << "): " << r.report << r.error;
}

INSTANTIATE_TEST_SUITE_P(GradCheck, NormLoss, ::testing::ValuesIn(grad_params()),
                         [](const ::testing::TestParamInfo<GradParam>& info) {
                           return info.param.row.name + "_" + variant_name(info.param.variant);
                         });

// ---- forward values and running statistics against float64 loops ---------------------------

struct Channels {
  std::vector<double> mean, var_biased;
};

// Per-channel statistics of x (N, C, S) in row-major order.
Channels channel_stats(const std::vector<double>& x, int64_t N, int64_t C, int64_t S) {
  Channels st{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  const double M = static_cast<double>(N * S);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) st.mean[c] += x[(n * C + c) * S + s] / M;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const double d = x[(n * C + c) * S + s] - st.mean[c];
        st.var_biased[c] += d * d / M;
      }
  return st;
}

std::vector<double> ref_batch_norm(const std::vector<double>& x, int64_t N, int64_t C, int64_t S,
                                   const std::vector<double>& mean, const std::vector<double>& var,
                                   const std::vector<double>& w, const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = (n * C + c) * S + s;
        y[i] = (x[i] - mean[c]) / std::sqrt(var[c] + eps) * w[c] + b[c];
      }
  return y;
}

TEST(BatchNormOp, TrainingForwardAndRunningStatsMatchLoops) {
  const int64_t N = 4, C = 3, S = 5;
  for (DType dt : {DType::float64, DType::float32}) {
    Tensor x = random_tensor({N, C, S}, DType::float64, 7) * 2.0 + 0.5;
    Tensor w = random_tensor({C}, DType::float64, 8), b = random_tensor({C}, DType::float64, 9);
    Tensor rm = random_tensor({C}, DType::float64, 10), rv = rand({C}, {.dtype = DType::float64}) + 0.5;
    std::vector<double> xv = x.to_vector<double>(), rm0 = rm.to_vector<double>(), rv0 = rv.to_vector<double>();
    Tensor rm_t = rm.to(dt), rv_t = rv.to(dt);
    Tensor y = batch_norm(x.to(dt), rm_t, rv_t, w.to(dt), b.to(dt), true, 0.2, 1e-5);
    Channels st = channel_stats(xv, N, C, S);
    const double tol = dt == DType::float64 ? 1e-12 : 1e-5;
    expect_close(
        y, ref_batch_norm(xv, N, C, S, st.mean, st.var_biased, w.to_vector<double>(), b.to_vector<double>(), 1e-5), tol,
        tol);
    std::vector<double> want_m(C), want_v(C);
    for (int64_t c = 0; c < C; ++c) {
      want_m[c] = 0.8 * rm0[c] + 0.2 * st.mean[c];
      want_v[c] = 0.8 * rv0[c] + 0.2 * st.var_biased[c] * N * S / (N * S - 1.0);  // unbiased
    }
    expect_close(rm_t, want_m, tol, tol);
    expect_close(rv_t, want_v, tol, tol);
    EXPECT_EQ(rm_t.dtype(), dt);
  }
}

TEST(BatchNormOp, EvalUsesRunningStatsAndLeavesThemAlone) {
  const int64_t N = 3, C = 2, S = 4;
  Tensor x = random_tensor({N, C, 2, 2}, DType::float64, 11);
  Tensor rm = tensor({0.3, -0.2}, {C}, {.dtype = DType::float64}),
         rv = tensor({1.5, 0.7}, {C}, {.dtype = DType::float64});
  Tensor w = tensor({1.2, 0.8}, {C}, {.dtype = DType::float64}),
         b = tensor({0.1, -0.4}, {C}, {.dtype = DType::float64});
  const uint64_t version = rm.version();
  Tensor y = batch_norm(x, rm, rv, w, b, false, 0.1, 1e-3);
  expect_close(y,
               ref_batch_norm(x.to_vector<double>(), N, C, S, {0.3, -0.2}, {1.5, 0.7}, {1.2, 0.8}, {0.1, -0.4}, 1e-3),
               1e-12, 1e-12);
  expect_close(rm, {0.3, -0.2}, 0, 0);
  expect_close(rv, {1.5, 0.7}, 0, 0);
  EXPECT_EQ(rm.version(), version);
}

TEST(BatchNormOp, CumulativeMomentumAveragesBatches) {
  // momentum = 1 / k on the k-th batch leaves the plain average of the batch statistics.
  const int64_t N = 5, C = 2;
  Tensor rm = zeros({C}, {.dtype = DType::float64}), rv = ones({C}, {.dtype = DType::float64});
  std::vector<double> sum_m(C, 0.0), sum_v(C, 0.0);
  for (int k = 1; k <= 3; ++k) {
    Tensor x = random_tensor({N, C}, DType::float64, 20 + k);
    Channels st = channel_stats(x.to_vector<double>(), N, C, 1);
    for (int64_t c = 0; c < C; ++c) {
      sum_m[c] += st.mean[c];
      sum_v[c] += st.var_biased[c] * N / (N - 1.0);
    }
    batch_norm(x, rm, rv, Tensor(), Tensor(), true, 1.0 / k);
  }
  expect_close(rm, {sum_m[0] / 3, sum_m[1] / 3}, 1e-12, 1e-14);
  expect_close(rv, {sum_v[0] / 3, sum_v[1] / 3}, 1e-12, 1e-14);
}

TEST(BatchNormOp, SixteenBitForwardAndEmptyBatch) {
  Tensor x = random_tensor({6, 3, 4}, DType::float64, 30);
  Tensor ref = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  for (DType dt : {DType::float16, DType::bfloat16}) {
    Tensor rm = zeros({3}), rv = ones({3});  // float32 running stats with 16-bit input
    Tensor y = batch_norm(x.to(dt), rm, rv, Tensor(), Tensor(), true);
    EXPECT_EQ(y.dtype(), dt);
    expect_close(y, ref.to_vector<double>(), 3e-2, 3e-2);
    EXPECT_GT(std::fabs(rm.to_vector<double>()[0]), 0.0);
  }
  // An empty batch gives an empty output, zero parameter gradients and unchanged stats.
  Tensor rm = zeros({3}, {.dtype = DType::float64}), rv = ones({3}, {.dtype = DType::float64});
  Tensor w = ones({3}, {.dtype = DType::float64, .requires_grad = true});
  Tensor e = zeros({0, 3, 2}, {.dtype = DType::float64, .requires_grad = true});
  Tensor y = batch_norm(e, rm, rv, w, Tensor(), true);
  EXPECT_EQ(y.shape(), (Shape{0, 3, 2}));
  y.sum().backward();
  expect_close(w.grad(), {0, 0, 0}, 0, 0);
  expect_close(rm, {0, 0, 0}, 0, 0);
  expect_close(rv, {1, 1, 1}, 0, 0);
}

TEST(GroupNormOp, ForwardMatchesLoops) {
  const int64_t N = 2, C = 6, S = 5, G = 3, K = C / G;
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16}) {
    Tensor x = random_tensor({N, C, S}, DType::float64, 40) * 3.0 + 1.0;
    Tensor w = random_tensor({C}, DType::float64, 41), b = random_tensor({C}, DType::float64, 42);
    std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
    std::vector<double> want(xv.size());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t base = (n * C + g * K) * S, D = K * S;
        double m = 0, v = 0;
        for (int64_t i = 0; i < D; ++i) m += xv[base + i] / D;
        for (int64_t i = 0; i < D; ++i) v += (xv[base + i] - m) * (xv[base + i] - m) / D;
        for (int64_t i = 0; i < D; ++i) {
          const int64_t c = g * K + i / S;
          want[base + i] = (xv[base + i] - m) / std::sqrt(v + 1e-5) * wv[c] + bv[c];
        }
      }
    const double tol = dt == DType::float64 ? 1e-12 : dt == DType::float32 ? 1e-5 : 5e-2;
    Tensor y = group_norm(x.to(dt), G, w.to(dt), b.to(dt));
    EXPECT_EQ(y.dtype(), dt);
    expect_close(y, want, tol, tol);
  }
}

TEST(LossOps, ValuesOnSmallInputs) {
  auto d = [](std::initializer_list<double> v, Shape s) { return tensor(v, s, {.dtype = DType::float64}); };
  Tensor x = d({1.0, -2.0, 0.5, 3.0}, {2, 2}), y = d({0.0, 1.0, 0.5, 1.0}, {2, 2});
  expect_close(mse_loss(x, y), {(1.0 + 9.0 + 0.0 + 4.0) / 4});
  expect_close(mse_loss(x, y, Reduction::sum), {14.0});
  expect_close(l1_loss(x, y, Reduction::none), {1.0, 3.0, 0.0, 2.0});
  expect_close(smooth_l1_loss(x, y, Reduction::none, 2.0), {0.25, 2.0, 0.0, 1.0});
  expect_close(smooth_l1_loss(x, y, Reduction::none, 0.0), {1.0, 3.0, 0.0, 2.0});
  // nll: weights [1, 2, 3], targets [2, ignored, 0]: (3 * 0.7 + 1 * 0.1) / (3 + 1).
  Tensor lp = d({-0.1, -0.2, -0.7, -0.3, -0.4, -0.5, -0.1, -0.8, -0.9}, {3, 3});
  Tensor t = tensor<int64_t>({2, -100, 0}, {3});
  Tensor w = d({1.0, 2.0, 3.0}, {3});
  expect_close(nll_loss(lp, t, {.weight = w}), {(3 * 0.7 + 0.1) / 4});
  expect_close(nll_loss(lp, t, {.reduction = Reduction::none, .weight = w}), {2.1, 0.0, 0.1});
  Tensor all_ignored = tensor<int64_t>({-100, -100, -100}, {3});
  EXPECT_TRUE(std::isnan(nll_loss(lp, all_ignored).item()));
  // Unbatched (C) input with a 0-dim target.
  expect_close(nll_loss(d({-0.1, -0.2, -0.7}, {3}), scalar_tensor(1, {.dtype = DType::int64})), {0.2});
  // bce: logits 0 give log 2 whatever the target; large logits stay finite.
  Tensor z = d({0.0, 0.0, 200.0, -200.0}, {4}), tz = d({0.0, 1.0, 0.0, 0.0}, {4});
  expect_close(binary_cross_entropy_with_logits(z, tz, {.reduction = Reduction::none}),
               {std::log(2.0), std::log(2.0), 200.0, 0.0}, 1e-12, 1e-12);
  expect_close(binary_cross_entropy_with_logits(z, tz, {.reduction = Reduction::none, .pos_weight = d({3.0}, {1})}),
               {std::log(2.0), 3 * std::log(2.0), 200.0, 0.0}, 1e-12, 1e-12);
}

TEST(LossOps, BceGradientIsExactAtZeroLogit) {
  // The closed-form backward gives sigmoid(0) - y = 0.5 - y (a composite of |x| and max(-x, 0) would not).
  Tensor x = zeros({2}, {.dtype = DType::float64, .requires_grad = true});
  Tensor y = tensor({0.0, 1.0}, {2}, {.dtype = DType::float64});
  binary_cross_entropy_with_logits(x, y, {.reduction = Reduction::sum}).backward();
  expect_close(x.grad(), {0.5, -0.5}, 1e-15, 1e-15);
}

// ---- errors ----------------------------------------------------------------------------------

TEST(NormLossErrors, BatchNorm) {
  Tensor x = zeros({4, 3, 2});
  expect_throws_with([&] { batch_norm(x, Tensor(), Tensor(), ones({4}), Tensor(), true); },
                     {"batch_norm: weight has shape [4]", "input of shape [4, 3, 2] has 3 channels"});
  expect_throws_with([&] { batch_norm(x, zeros({2}), ones({2}), Tensor(), Tensor(), true); },
                     {"batch_norm: running_mean has shape [2]", "expected shape [3]"});
  expect_throws_with(
      [&] {
        batch_norm(zeros({1, 3}), zeros({3}), ones({3}), Tensor(), Tensor(), true);
      },
      {"Expected more than 1 value per channel when training, got input size [1, 3]"});
  expect_throws_with(
      [&] {
        batch_norm(zeros({1, 3, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      {"got input size [1, 3, 1]"});
  expect_throws_with([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
                     {"running_mean and running_var are required in eval mode"});
  expect_throws_with([&] { batch_norm(x, zeros({3}), Tensor(), Tensor(), Tensor(), true); },
                     {"running_mean is given but running_var is missing"});
  expect_throws_with([&] { batch_norm(zeros({4}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                     {"batch_norm: expected an input of shape (N, C)", "got [4]"});
  expect_throws_with([&] { batch_norm(x, Tensor(), Tensor(), ones({3}, {.dtype = DType::float64}), Tensor(), true); },
                     {"weight has dtype float64 but the input has dtype float32"});
  Tensor rm_grad = zeros({3}, {.requires_grad = true});
  expect_throws_with([&] { batch_norm(x, rm_grad, ones({3}), Tensor(), Tensor(), true); },
                     {"running statistics must not require grad (running_mean does)"});
  expect_throws_with(
      [&] {
        batch_norm(zeros({4, 3}, {.dtype = DType::int64}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      {"batch_norm: input dtype int64 is not supported"});
}

TEST(NormLossErrors, GroupNorm) {
  expect_throws_with(
      [] {
        group_norm(zeros({2, 6, 3}), 4);
      },
      {"group_norm: the 6 channels of the input of shape [2, 6, 3] cannot be divided into 4 groups"});
  expect_throws_with([] { group_norm(zeros({2, 6}), 0); }, {"num_groups must be positive, got 0"});
  expect_throws_with([] { group_norm(zeros({6}), 2); }, {"at least 2 dims, got [6]"});
  expect_throws_with(
      [] {
        group_norm(zeros({2, 6}), 2, ones({4}));
      },
      {"group_norm: weight has shape [4]", "has 6 channels"});
}

TEST(NormLossErrors, Losses) {
  Tensor x = zeros({4, 5});
  expect_throws_with([&] { mse_loss(x, zeros({5})); },
                     {"mse_loss: target of shape [5] does not match the input of shape [4, 5]"});
  expect_throws_with([&] { l1_loss(x, zeros({4, 1})); }, {"l1_loss: target of shape [4, 1]", "[4, 5]"});
  expect_throws_with(
      [&] {
        smooth_l1_loss(x, zeros({4, 5}, {.dtype = DType::float64}));
      },
      {"smooth_l1_loss: target dtype float64 does not match the input dtype float32"});
  expect_throws_with([&] { smooth_l1_loss(x, x, Reduction::mean, -1.0); },
                     {"smooth_l1_loss: beta must be non-negative, got -1"});
  expect_throws_with(
      [&] { binary_cross_entropy_with_logits(x, zeros({4})); },
      {"binary_cross_entropy_with_logits: target of shape [4] does not match the input of shape [4, 5]"});
  expect_throws_with([&] { binary_cross_entropy_with_logits(x, x, {.pos_weight = ones({3})}); },
                     {"pos_weight of shape [3] cannot be broadcast to the input of shape [4, 5]"});
  expect_throws_with(
      [&] {
        binary_cross_entropy_with_logits(x, x, {.weight = ones({2, 4, 5})});
      },
      {"weight of shape [2, 4, 5] cannot be broadcast"});
  Tensor t = tensor<int64_t>({0, 7, 1, 2}, {4});
  expect_throws_with([&] { nll_loss(x, t); }, {"nll_loss: target 7 at flat position 1 is out of bounds for 5 classes"});
  expect_throws_with(
      [&] {
        nll_loss(x, tensor<int64_t>({0, 1}, {2}));
      },
      {"nll_loss: target of shape [2] does not match the input of shape [4, 5]", "expected target shape [4]"});
  expect_throws_with([&] { nll_loss(x, zeros({4})); }, {"nll_loss: target dtype float32 is not supported"});
  expect_throws_with(
      [&] {
        nll_loss(x, tensor<int64_t>({0, 1, 2, 3}, {4}), {.weight = ones({4})});
      },
      {"nll_loss: weight of shape [4] does not match the 5 classes"});
}

}  // namespace
}  // namespace zae::test
