// LR schedulers: zae-engine's WarmUp / CosineAnnealing / SchedulerChain against their
// formulas (computed here, independently, per step and group), the PyTorch schedulers
// against torch.optim.lr_scheduler sequences (tests/fixtures/gen_sched.py, 1e-12
// relative), exact state_dict round trips mid-schedule, and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "engine/ops/factory.h"
#include "nn/optim/adagrad.h"
#include "nn/optim/adam.h"
#include "nn/optim/sgd.h"
#include "nn/sched/chain.h"
#include "nn/sched/cosine.h"
#include "nn/sched/decay.h"
#include "nn/sched/linear_lr.h"
#include "nn/sched/one_cycle.h"
#include "nn/sched/plateau.h"
#include "nn/sched/warmup.h"
#include "tests/support/fixture.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

using sched::Scheduler;
using Opt = std::shared_ptr<optim::Optimizer>;
using Matrix = std::vector<std::vector<double>>;  // [step][group]

const std::vector<double> kLrs = {0.1, 0.05, 0.2};  // the fixtures' group lrs

std::vector<optim::ParamGroup> groups_with(const std::vector<double>& lrs) {
  std::vector<optim::ParamGroup> groups;
  for (double lr : lrs) groups.push_back({{zeros({2}).requires_grad_()}, {{"lr", lr}}});
  return groups;
}
Opt make_sgd(const std::vector<double>& lrs = kLrs) {
  return std::make_shared<optim::SGD>(groups_with(lrs), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
}
Opt make_adam(const std::vector<double>& lrs = kLrs) {
  return std::make_shared<optim::Adam>(groups_with(lrs), optim::AdamOptions{.lr = 0.1});
}
std::vector<double> lrs_of(const optim::Optimizer& o) {
  std::vector<double> v;
  for (size_t g = 0; g < o.num_groups(); ++g) v.push_back(o.lr(g));
  return v;
}
std::vector<double> momenta_of(const optim::Optimizer& o) {
  const std::string key = o.defaults().count("beta1") ? "beta1" : "momentum";
  std::vector<double> v;
  for (size_t g = 0; g < o.num_groups(); ++g) v.push_back(o.option(key, g));
  return v;
}
bool close(double a, double b, double rtol) { return std::abs(a - b) <= 1e-300 + rtol * std::abs(b); }

// Steps `s` (with metrics when given) and records the optimizer's lrs and momenta at 0..steps.
std::pair<Matrix, Matrix> trajectory(Scheduler& s, int steps, const std::vector<double>& metric = {}) {
  Matrix lrs{lrs_of(*s.optimizer())}, mom{momenta_of(*s.optimizer())};
  for (int i = 0; i < steps; ++i) {
    if (metric.empty()) s.step(); else s.step(metric[i]);
    lrs.push_back(lrs_of(*s.optimizer()));
    mom.push_back(momenta_of(*s.optimizer()));
    EXPECT_EQ(s.get_last_lr(), lrs.back());
    EXPECT_EQ(s.last_step(), i + 1);
  }
  return {lrs, mom};
}

// Compares element-wise; returns the worst relative error.
double expect_matrix(const Matrix& got, const Matrix& want, double rtol, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double worst = 0.0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    EXPECT_EQ(got[i].size(), want[i].size()) << what;
    for (size_t g = 0; g < std::min(got[i].size(), want[i].size()); ++g) {
      EXPECT_TRUE(close(got[i][g], want[i][g], rtol))
          << what << " step " << i << " group " << g << ": got " << got[i][g] << ", want " << want[i][g];
      if (want[i][g] != 0.0) worst = std::max(worst, std::abs(got[i][g] - want[i][g]) / std::abs(want[i][g]));
    }
  }
  return worst;
}

// ---- zae-engine's schedulers against their formulas ------------------------------------

// k = last_step + 1 (upstream's _step_count); past T the final value holds.
double warmup_formula(double base, double eta, int64_t k, int64_t t) {
  return eta + (base - eta) * static_cast<double>(std::min(k, t)) / static_cast<double>(t);
}
double cosine_formula(double base, double eta, int64_t k, int64_t t) {
  const double x = static_cast<double>(std::min(k, t)) / static_cast<double>(t);
  return eta + (base - eta) * (1.0 + std::cos(std::numbers::pi * x)) / 2.0;
}

TEST(SchedZae, WarmUpAndCosineFollowTheirFormulas) {
  using Formula = std::function<double(double, double, int64_t, int64_t)>;
  int cases = 0;
  for (int64_t t : {1, 2, 5, 16}) {
    for (double eta : {0.0, 0.01}) {
      for (int kind = 0; kind < 2; ++kind) {
        Opt opt = make_sgd();
        std::unique_ptr<Scheduler> s;
        if (kind == 0) s = std::make_unique<sched::WarmUpScheduler>(opt, t, eta);
        else s = std::make_unique<sched::CosineAnnealingScheduler>(opt, t, eta);
        const Formula f = kind == 0 ? Formula(warmup_formula) : Formula(cosine_formula);
        EXPECT_EQ(s->total_iters(), t);
        EXPECT_EQ(s->base_lrs(), kLrs);
        Matrix want;
        for (int64_t n = 0; n <= t + 3; ++n) {
          want.push_back({});
          for (double base : kLrs) want.back().push_back(f(base, eta, n + 1, t));
        }
        auto [got, mom] = trajectory(*s, static_cast<int>(t + 3));
        expect_matrix(got, want, 1e-15, s->name() + " T=" + std::to_string(t));
        for (int64_t n = 0; n <= t + 3; ++n) EXPECT_EQ(s->lr_at(n), got[n]);
        // The T-th lr (after T - 1 steps) is the end value exactly: base for warm-up, eta_min for cosine.
        for (size_t g = 0; g < kLrs.size(); ++g) EXPECT_DOUBLE_EQ(got[t - 1][g], kind == 0 ? kLrs[g] : eta);
        for (const auto& m : mom) EXPECT_EQ(m, std::vector<double>(3, 0.9));  // momentum untouched
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 16);
}

TEST(SchedZae, UpstreamStepCountingDocumentedValues) {
  // Upstream's WarmUp(T = 4) on lr 1 writes 0.25 in the constructor, then 0.5, 0.75, 1.0
  // (and 1.25, 1.5, ... where we hold 1.0); its cosine writes 0.854, 0.5, 0.146, 0.
  Opt opt = make_sgd({1.0});
  sched::WarmUpScheduler w(opt, 4);
  auto [lrs, mom] = trajectory(w, 6);
  expect_matrix(lrs, {{0.25}, {0.5}, {0.75}, {1.0}, {1.0}, {1.0}, {1.0}}, 0.0, "warm-up");
  Opt opt2 = make_sgd({1.0});
  sched::CosineAnnealingScheduler c(opt2, 4);
  auto [clrs, cmom] = trajectory(c, 4);
  expect_matrix(clrs, {{0.5 + 0.5 * std::cos(std::numbers::pi / 4)}, {0.5}, {0.5 + 0.5 * std::cos(3 * std::numbers::pi / 4)},
                       {0.0}, {0.0}}, 1e-15, "cosine");
}

TEST(SchedZae, ChainRunsEachScheduleInTurnOnTheFirstBaseLrs) {
  Opt opt = make_sgd();
  auto w = std::make_shared<sched::WarmUpScheduler>(opt, 4, 0.001);
  auto c1 = std::make_shared<sched::CosineAnnealingScheduler>(opt, 6, 0.002);
  auto c2 = std::make_shared<sched::CosineAnnealingScheduler>(opt, 3);
  EXPECT_NE(c1->base_lrs(), kLrs);  // built after the warm-up wrote its first lr
  sched::SchedulerChain chain({w, c1, c2});
  EXPECT_EQ(chain.total_iters(), 13);
  EXPECT_EQ(c1->base_lrs(), kLrs);  // rebased, as PyTorch's initial_lr
  EXPECT_EQ(c2->base_lrs(), kLrs);
  Matrix want;
  for (int64_t n = 0; n <= 13 + 3; ++n) {
    want.push_back({});
    for (double base : kLrs) {
      if (n < 4) want.back().push_back(warmup_formula(base, 0.001, n + 1, 4));
      else if (n < 10) want.back().push_back(cosine_formula(base, 0.002, n - 4 + 1, 6));
      else want.back().push_back(cosine_formula(base, 0.0, n - 10 + 1, 3));
    }
  }
  auto [got, mom] = trajectory(chain, 16);
  expect_matrix(got, want, 1e-15, "chain");
  EXPECT_EQ(chain.index_at(3), 0u);
  EXPECT_EQ(chain.index_at(4), 1u);
  EXPECT_EQ(chain.index_at(12), 2u);
  EXPECT_EQ(chain.index_at(100), 2u);
  EXPECT_EQ(w->last_step(), 3);  // each scheduler ran its own steps
  EXPECT_EQ(c1->last_step(), 5);
  EXPECT_EQ(c2->last_step(), 6);  // the last one keeps going (holding its end value)
  for (int64_t n = 0; n <= 16; ++n) EXPECT_EQ(chain.lr_at(n), got[n]);
}

TEST(SchedZae, ChainOfPyTorchSchedulesAndNestedChains) {
  // LinearLR warm-up into OneCycleLR (which keeps its own lrs) inside a nested chain.
  Opt opt = make_sgd();
  auto lin = std::make_shared<sched::LinearLR>(opt, sched::LinearLR::Options{.start_factor = 0.5, .total_iters = 3});
  auto one = std::make_shared<sched::OneCycleLR>(opt, sched::OneCycleLR::Options{.max_lr = {1.0}, .total_steps = 10});
  auto inner = std::make_shared<sched::SchedulerChain>(std::vector<std::shared_ptr<Scheduler>>{lin, one});
  auto tail = std::make_shared<sched::WarmUpScheduler>(opt, 2);
  sched::SchedulerChain outer({inner, tail});
  EXPECT_EQ(outer.total_iters(), 15);
  Opt ref = make_sgd();
  sched::OneCycleLR one_ref(ref, {.max_lr = {1.0}, .total_steps = 10});
  auto [got, mom] = trajectory(outer, 14);
  for (int n = 0; n < 3; ++n)
    for (size_t g = 0; g < 3; ++g) EXPECT_DOUBLE_EQ(got[n][g], kLrs[g] * (0.5 + 0.5 * n / 3.0));
  for (int n = 3; n < 13; ++n) EXPECT_EQ(got[n], one_ref.lr_at(n - 3));
  for (int n = 13; n < 15; ++n)
    for (size_t g = 0; g < 3; ++g) EXPECT_DOUBLE_EQ(got[n][g], warmup_formula(kLrs[g], 0.0, n - 13 + 1, 2));
  EXPECT_EQ(mom[5], one_ref.momentum_at(2));  // OneCycle cycles the momentum while it runs
  EXPECT_EQ(mom[14], one_ref.momentum_at(9));  // and it stays where OneCycle left it
}

// ---- PyTorch conformance ----------------------------------------------------------------

Matrix rows(const Tensor& t) {
  Tensor c = t.contiguous();
  const double* p = c.data<double>();
  Matrix m(static_cast<size_t>(c.size(0)), std::vector<double>(static_cast<size_t>(c.size(1))));
  for (size_t i = 0; i < m.size(); ++i)
    for (size_t j = 0; j < m[i].size(); ++j) m[i][j] = p[i * m[i].size() + j];
  return m;
}

struct Config {
  std::string name;
  std::function<std::shared_ptr<Scheduler>(Opt)> make;
  bool adam = false;
};

std::vector<Config> torch_configs() {
  using sched::AnnealStrategy, sched::PlateauMode, sched::ThresholdMode;
  using OC = sched::OneCycleLR::Options;
  using PL = sched::ReduceLROnPlateau::Options;
  auto one = [](OC o) { return [o](Opt opt) { return std::make_shared<sched::OneCycleLR>(opt, o); }; };
  auto plateau = [](PL o) { return [o](Opt opt) { return std::make_shared<sched::ReduceLROnPlateau>(opt, o); }; };
  auto linear = [](sched::LinearLR::Options o) { return [o](Opt opt) { return std::make_shared<sched::LinearLR>(opt, o); }; };
  return {
      {"step_lr", [](Opt o) { return std::make_shared<sched::StepLR>(o, 7, 0.5); }},
      {"step_lr_default", [](Opt o) { return std::make_shared<sched::StepLR>(o, 3); }},
      {"multistep", [](Opt o) { return std::make_shared<sched::MultiStepLR>(o, std::vector<int64_t>{5, 12, 30}, 0.3); }},
      {"exponential", [](Opt o) { return std::make_shared<sched::ExponentialLR>(o, 0.93); }},
      {"linear_default", [](Opt o) { return std::make_shared<sched::LinearLR>(o); }},
      {"linear_up", linear({.start_factor = 0.25, .end_factor = 0.8, .total_iters = 13})},
      {"linear_down", linear({.start_factor = 1.0, .end_factor = 0.1, .total_iters = 20})},
      {"onecycle_cos", one({.max_lr = {0.5, 0.2, 1.0}, .total_steps = 40})},
      {"onecycle_linear", one({.max_lr = {0.4}, .total_steps = 40, .pct_start = 0.25,
                               .anneal_strategy = AnnealStrategy::linear, .base_momentum = 0.8, .max_momentum = 0.9,
                               .div_factor = 10.0, .final_div_factor = 100.0})},
      {"onecycle_three_phase", one({.max_lr = {0.5, 0.2, 1.0}, .total_steps = 40, .three_phase = true})},
      {"onecycle_three_phase_linear", one({.max_lr = {0.3}, .epochs = 4, .steps_per_epoch = 10, .pct_start = 0.4,
                                           .anneal_strategy = AnnealStrategy::linear, .cycle_momentum = false,
                                           .three_phase = true})},
      {"onecycle_adam", one({.max_lr = {0.01}, .total_steps = 40, .pct_start = 0.2}), true},
      {"plateau_min_rel", plateau({.factor = 0.5, .patience = 2, .threshold = 0.01})},
      {"plateau_min_abs_cooldown", plateau({.factor = 0.3, .patience = 1, .threshold = 0.005,
                                            .threshold_mode = ThresholdMode::abs, .cooldown = 3})},
      {"plateau_max_rel", plateau({.mode = PlateauMode::max, .patience = 3})},
      {"plateau_max_abs_floor", plateau({.mode = PlateauMode::max, .factor = 0.5, .patience = 0, .threshold = 0.02,
                                         .threshold_mode = ThresholdMode::abs, .cooldown = 1,
                                         .min_lr = {0.02, 0.01, 0.0}, .eps = 1e-3})},
      {"plateau_min_default", plateau({})},
  };
}

std::vector<double> metric_of(const test::Fixture& fx, const std::string& name) {
  if (!fx.has(name + ".metric")) return {};
  Tensor m = fx.at(name + ".metric").contiguous();
  return std::vector<double>(m.data<double>(), m.data<double>() + m.numel());
}

TEST(SchedTorch, LrAndMomentumSequencesMatchPyTorch) {
  const test::Fixture fx = test::load_fixture("sched");
  int compared = 0;
  for (const Config& c : torch_configs()) {
    SCOPED_TRACE(c.name);
    Opt opt = c.adam ? make_adam() : make_sgd();
    auto s = c.make(opt);
    Matrix want_lr = rows(fx.at(c.name + ".lr")), want_mom = rows(fx.at(c.name + ".momentum"));
    auto [lrs, mom] = trajectory(*s, static_cast<int>(want_lr.size()) - 1, metric_of(fx, c.name));
    if (c.name.rfind("onecycle", 0) == 0) {
      // The step() to n = total_steps (= 40) holds the final values where PyTorch
      // extrapolates the last phase (to a negative lr with linear annealing).
      EXPECT_EQ(lrs.back(), lrs[lrs.size() - 2]);
      EXPECT_EQ(mom.back(), mom[mom.size() - 2]);
      lrs.pop_back(), mom.pop_back();
      want_lr.pop_back(), want_mom.pop_back();
    }
    const double e_lr = expect_matrix(lrs, want_lr, 1e-12, c.name + " lr");
    const double e_mom = expect_matrix(mom, want_mom, 1e-12, c.name + " momentum");
    std::printf("  %-28s %zu lrs x 3 groups: worst relative error lr %.2e, momentum %.2e\n", c.name.c_str(),
                lrs.size(), e_lr, e_mom);
    ++compared;
  }
  EXPECT_EQ(compared, 17);
}

// ---- state_dict round trips --------------------------------------------------------------

TEST(SchedState, ResumedMidScheduleContinuesIdentically) {
  const test::Fixture fx = test::load_fixture("sched");
  std::vector<Config> configs = torch_configs();
  configs.push_back({"warmup", [](Opt o) { return std::make_shared<sched::WarmUpScheduler>(o, 25, 0.001); }});
  configs.push_back({"cosine", [](Opt o) { return std::make_shared<sched::CosineAnnealingScheduler>(o, 30, 0.01); }});
  configs.push_back({"chain", [](Opt o) {
                       auto w = std::make_shared<sched::WarmUpScheduler>(o, 10);
                       auto c = std::make_shared<sched::CosineAnnealingScheduler>(o, 20, 0.001);
                       auto one = std::make_shared<sched::OneCycleLR>(o, sched::OneCycleLR::Options{.max_lr = {0.3},
                                                                                                  .total_steps = 12});
                       return std::make_shared<sched::SchedulerChain>(std::vector<std::shared_ptr<Scheduler>>{w, c, one});
                     }});
  for (const Config& c : configs) {
    SCOPED_TRACE(c.name);
    const std::vector<double> metric = metric_of(fx, c.name);
    Opt full_opt = c.adam ? make_adam() : make_sgd();
    auto full = c.make(full_opt);
    auto [want, want_mom] = trajectory(*full, 40, metric);

    Opt first_opt = c.adam ? make_adam() : make_sgd();
    auto first = c.make(first_opt);
    for (int i = 0; i < 17; ++i) metric.empty() ? first->step() : first->step(metric[i]);
    const sched::SchedulerState saved = first->state_dict();
    const sched::SchedulerState restored = sched::SchedulerState::unflatten(saved.flatten());
    EXPECT_EQ(restored.flatten(), saved.flatten());

    Opt opt = c.adam ? make_adam() : make_sgd();  // fresh: lrs and momenta back at their start
    auto resumed = c.make(opt);
    resumed->load_state_dict(restored);
    EXPECT_EQ(resumed->last_step(), 17);
    EXPECT_EQ(lrs_of(*opt), want[17]);
    EXPECT_EQ(momenta_of(*opt), want_mom[17]);
    for (int i = 17; i < 40; ++i) {
      metric.empty() ? resumed->step() : resumed->step(metric[i]);
      EXPECT_EQ(lrs_of(*opt), want[i + 1]) << "step " << i + 1;
      EXPECT_EQ(momenta_of(*opt), want_mom[i + 1]) << "step " << i + 1;
    }
    EXPECT_EQ(resumed->state_dict(), full->state_dict());
  }
}

TEST(SchedState, MismatchedStatesAreErrorsAndChangeNothing) {
  Opt opt = make_sgd();
  sched::StepLR s(opt, 3);
  s.step();
  const auto before = s.state_dict();
  sched::SchedulerState other = sched::ExponentialLR(make_sgd(), 0.5).state_dict();
  test::expect_throws_with([&] { s.load_state_dict(other); }, {"StepLR", "state is of a ExponentialLR"});
  auto two_groups = sched::StepLR(make_sgd({0.1, 0.2}), 3).state_dict();
  test::expect_throws_with([&] { s.load_state_dict(two_groups); }, {"StepLR", "2 base lrs", "3 parameter groups"});
  auto bad = before;
  bad.scalars["best"] = 1.0;
  test::expect_throws_with([&] { s.load_state_dict(bad); }, {"unexpected scalar 'best'"});
  bad = before;
  bad.last_lrs[1] = -1.0;
  test::expect_throws_with([&] { s.load_state_dict(bad); }, {"must be finite and >= 0"});
  EXPECT_EQ(s.state_dict(), before);

  sched::OneCycleLR one(make_sgd(), {.max_lr = {1.0}, .total_steps = 5});
  auto past = one.state_dict();
  past.last_step = 6;
  test::expect_throws_with([&] { one.load_state_dict(past); }, {"OneCycleLR", "past total_steps = 5"});
  sched::ReduceLROnPlateau p(make_sgd());
  auto ps = p.state_dict();
  ps.scalars.erase("best");
  test::expect_throws_with([&] { p.load_state_dict(ps); }, {"ReduceLROnPlateau"});

  auto w = std::make_shared<sched::WarmUpScheduler>(opt, 3);
  sched::SchedulerChain chain({w, std::make_shared<sched::WarmUpScheduler>(opt, 2)});
  auto cs = chain.state_dict();
  ASSERT_EQ(cs.children.size(), 2u);
  cs.children.pop_back();
  test::expect_throws_with([&] { chain.load_state_dict(cs); }, {"SchedulerChain", "1 chained schedulers", "has 2"});
  cs = chain.state_dict();
  cs.children[0].name = "StepLR";
  test::expect_throws_with([&] { chain.load_state_dict(cs); }, {"WarmUpScheduler", "state is of a StepLR"});

  test::expect_throws_with([] { sched::SchedulerState::unflatten({{"last_step", {1.5}}}); }, {"non-negative integer"});
  test::expect_throws_with([] { sched::SchedulerState::unflatten({{"last_step", {1}}, {"base_lrs", {}}, {"last_lrs", {}}, {"x", {}}}); },
                           {"unexpected key 'x'"});
  test::expect_throws_with(
      [] {
        sched::SchedulerState::unflatten({{"last_step", {1}}, {"base_lrs", {}}, {"last_lrs", {}},
                                          {"children.1.last_step", {0}}, {"children.1.base_lrs", {}},
                                          {"children.1.last_lrs", {}}});
      },
      {"child 0 is missing"});
}

// ---- behaviour at the edges and argument errors ----------------------------------------------

TEST(SchedEdges, OneCyclePastTheEndAndMomentumKeys) {
  Opt opt = make_sgd();
  sched::OneCycleLR s(opt, {.max_lr = {1.0}, .total_steps = 6});
  for (int i = 0; i < 6; ++i) s.step();  // PyTorch allows reaching total_steps
  const auto lrs = lrs_of(*opt);
  test::expect_throws_with([&] { s.step(); }, {"OneCycleLR", "tried to step 7 times", "total_steps = 6"});
  EXPECT_EQ(s.last_step(), 6);
  EXPECT_EQ(lrs_of(*opt), lrs);
  EXPECT_EQ(s.momentum_key(), "momentum");
  EXPECT_EQ(sched::OneCycleLR(make_adam(), {.max_lr = {1.0}, .total_steps = 6}).momentum_key(), "beta1");
  auto adagrad = std::make_shared<optim::Adagrad>(std::vector<Tensor>{zeros({2}).requires_grad_()});
  test::expect_throws_with([&] { sched::OneCycleLR(adagrad, {.max_lr = {1.0}, .total_steps = 6}); },
                           {"OneCycleLR", "'momentum' or 'beta1'", "Adagrad"});
  sched::OneCycleLR no_cycle(adagrad, {.max_lr = {1.0}, .total_steps = 6, .cycle_momentum = false});
  EXPECT_EQ(no_cycle.total_iters(), 6);
}

TEST(SchedEdges, MetricDrivenAndStepDrivenInterfaces) {
  Opt opt = make_sgd();
  sched::ReduceLROnPlateau p(opt);
  EXPECT_TRUE(p.needs_metric());
  EXPECT_FALSE(p.total_iters().has_value());
  EXPECT_EQ(p.get_last_lr(), kLrs);  // the constructor writes nothing
  test::expect_throws_with([&] { p.step(); }, {"ReduceLROnPlateau", "call step(metric)"});
  test::expect_throws_with([&] { p.lr_at(3); }, {"ReduceLROnPlateau", "not a function of the step count"});
  EXPECT_EQ(p.last_step(), 0);
  p.step(std::nan(""));  // NaN is a bad epoch, as in PyTorch
  EXPECT_EQ(p.num_bad_epochs(), 1);
  EXPECT_TRUE(std::isinf(p.best()));

  sched::WarmUpScheduler w(opt, 3);
  EXPECT_FALSE(w.needs_metric());
  test::expect_throws_with([&] { w.step(0.5); }, {"WarmUpScheduler", "step(metric = 0.5)", "call step()"});
  EXPECT_FALSE(sched::StepLR(opt, 2).total_iters().has_value());
  EXPECT_EQ(sched::LinearLR(opt).total_iters(), 5);

  opt->add_param_group({{zeros({1}).requires_grad_()}, {{"lr", 0.3}}});
  test::expect_throws_with([&] { w.step(); }, {"WarmUpScheduler", "now has 4 parameter groups", "built for 3"});
  test::expect_throws_with([&] { p.step(1.0); }, {"ReduceLROnPlateau", "now has 4 parameter groups"});
  EXPECT_EQ(p.last_step(), 1);
}

TEST(SchedErrors, BadArgumentsAreClearErrors) {
  using E = std::vector<std::string>;
  Opt opt = make_sgd();
  std::vector<std::pair<std::function<void()>, E>> cases = {
      {[&] { sched::WarmUpScheduler(opt, 0); }, {"WarmUpScheduler", "total_iters must be > 0, got 0"}},
      {[&] { sched::WarmUpScheduler(opt, -3); }, {"WarmUpScheduler", "got -3"}},
      {[&] { sched::WarmUpScheduler(opt, 5, -0.1); }, {"WarmUpScheduler", "eta_min", "-0.1"}},
      {[&] { sched::CosineAnnealingScheduler(opt, 0); }, {"CosineAnnealingScheduler", "total_iters must be > 0"}},
      {[&] { sched::CosineAnnealingScheduler(opt, 4, NAN); }, {"CosineAnnealingScheduler", "eta_min"}},
      {[&] { sched::WarmUpScheduler(nullptr, 4); }, {"WarmUpScheduler", "optimizer is null"}},
      {[&] { sched::StepLR(opt, 0); }, {"StepLR", "step_size must be > 0"}},
      {[&] { sched::StepLR(opt, 2, 0.0); }, {"StepLR", "gamma must be finite and > 0, got 0"}},
      {[&] { sched::ExponentialLR(opt, -0.5); }, {"ExponentialLR", "gamma", "-0.5"}},
      {[&] { sched::MultiStepLR(opt, {3, 3}); }, {"MultiStepLR", "strictly increasing", "[3, 3]"}},
      {[&] { sched::MultiStepLR(opt, {5, 2}); }, {"MultiStepLR", "strictly increasing", "[5, 2]"}},
      {[&] { sched::MultiStepLR(opt, {-1, 2}); }, {"MultiStepLR", ">= 0"}},
      {[&] { sched::MultiStepLR(opt, {2, 4}, 0.0); }, {"MultiStepLR", "gamma"}},
      {[&] { sched::LinearLR(opt, {.start_factor = 0.0}); }, {"LinearLR", "start_factor must be in (0, 1]"}},
      {[&] { sched::LinearLR(opt, {.end_factor = 1.5}); }, {"LinearLR", "end_factor"}},
      {[&] { sched::LinearLR(opt, {.total_iters = 0}); }, {"LinearLR", "total_iters must be > 0"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}}); }, {"OneCycleLR", "needs total_steps > 0"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = -2}); }, {"OneCycleLR", "total_steps must be > 0"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = 8, .epochs = 2, .steps_per_epoch = 4}); },
       {"OneCycleLR", "not both"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0, 2.0}, .total_steps = 8}); }, {"OneCycleLR", "one per group (3)"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {-1.0}, .total_steps = 8}); }, {"OneCycleLR", "max_lr", "> 0"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = 8, .pct_start = 1.5}); }, {"OneCycleLR", "pct_start"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = 10, .pct_start = 0.1}); },
       {"OneCycleLR", "phase 0", "is empty"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = 8, .div_factor = 0.0}); }, {"OneCycleLR", "div_factor"}},
      {[&] { sched::OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = 8, .max_momentum = 1.0}); },
       {"OneCycleLR", "max_momentum must be in [0, 1)"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.factor = 1.0}); }, {"ReduceLROnPlateau", "factor must be in (0, 1), got 1"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.factor = 0.0}); }, {"ReduceLROnPlateau", "factor"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.patience = -1}); }, {"ReduceLROnPlateau", "patience"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.threshold = -1e-3}); }, {"ReduceLROnPlateau", "threshold"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.cooldown = -1}); }, {"ReduceLROnPlateau", "cooldown"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.min_lr = {0.0, 0.1}}); }, {"ReduceLROnPlateau", "min_lr", "per group (3)"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.min_lr = {-0.1}}); }, {"ReduceLROnPlateau", "min_lr", ">= 0"}},
      {[&] { sched::ReduceLROnPlateau(opt, {.eps = -1.0}); }, {"ReduceLROnPlateau", "eps"}},
      {[&] { sched::SchedulerChain({}); }, {"SchedulerChain", "at least one scheduler"}},
      {[&] { sched::SchedulerChain({std::make_shared<sched::WarmUpScheduler>(opt, 2), nullptr}); },
       {"SchedulerChain", "scheduler 1 is null"}},
      {[&] {
         sched::SchedulerChain({std::make_shared<sched::WarmUpScheduler>(opt, 2),
                                std::make_shared<sched::CosineAnnealingScheduler>(make_sgd(), 2)});
       },
       {"SchedulerChain", "same optimizer", "CosineAnnealingScheduler (scheduler 1)"}},
      {[&] { sched::SchedulerChain({std::make_shared<sched::StepLR>(opt, 2), std::make_shared<sched::WarmUpScheduler>(opt, 2)}); },
       {"SchedulerChain", "StepLR (scheduler 0) has no total_iters"}},
      {[&] { sched::SchedulerChain({std::make_shared<sched::ReduceLROnPlateau>(opt)}); },
       {"SchedulerChain", "ReduceLROnPlateau (scheduler 0) is metric-driven"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    test::expect_throws_with(cases[i].first, cases[i].second);
  }
  EXPECT_EQ(cases.size(), 38u);

  // A negative lr already in the optimizer is refused by the optimizer itself; a scheduler
  // never sees one. lr_at of a negative step is an error.
  test::expect_throws_with([&] { sched::WarmUpScheduler(opt, 3).lr_at(-1); }, {"lr_at", "-1"});
}

}  // namespace
}  // namespace zae
