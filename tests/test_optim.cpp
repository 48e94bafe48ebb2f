// nn/optim: SGD, Adam, AdamW, RMSprop and Adagrad against PyTorch trajectories
// (tests/fixtures/gen_optim.py: 20 steps on pred = (X @ W^T) * s + b, loss =
// mean((pred - Y)^2), in float64 and float32), plus the Optimizer base: param groups,
// options, lr writes, skipped parameters, state_dict round trips and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "nn/optim/adagrad.h"
#include "nn/optim/adam.h"
#include "nn/optim/rmsprop.h"
#include "nn/optim/sgd.h"
#include "tests/support/fixture.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::expect_throws_with;
using OptPtr = std::unique_ptr<optim::Optimizer>;

// ---------------------------------------------------------------------------------
// The reference problem and the configuration table (mirrors gen_optim.py's CONFIGS).

struct Params {
  Tensor W, s, b;
  std::vector<Tensor> all() const { return {W, s, b}; }
};

struct Config {
  std::string name;
  std::string file;  // fixture: optim_<file>
  std::function<OptPtr(const Params&)> make;
  bool skip_b = false;              // b's gradient is dropped on odd steps
  int lr_change_step = -1;          // before this step, group lr_change_group gets lr_change_value
  size_t lr_change_group = 0;
  double lr_change_value = 0.0;
};

template <class O, class Opts>
std::function<OptPtr(const Params&)> one_group(Opts opts) {
  return [opts](const Params& p) -> OptPtr { return std::make_unique<O>(p.all(), opts); };
}

std::vector<Config> configs() {
  using namespace optim;
  std::vector<Config> c;
  // SGD
  c.push_back({"sgd_plain", "sgd", one_group<SGD>(SGDOptions{.lr = 0.05})});
  c.push_back({"sgd_momentum", "sgd", one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9})});
  c.push_back({"sgd_dampening", "sgd", one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.3})});
  c.push_back({"sgd_nesterov", "sgd", one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true})});
  c.push_back({"sgd_weight_decay", "sgd",
               one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.5, .weight_decay = 0.1})});
  c.push_back({"sgd_maximize", "sgd", one_group<SGD>(SGDOptions{.lr = 0.01, .momentum = 0.3, .maximize = true})});
  c.push_back({"sgd_groups", "sgd",
               [](const Params& p) -> OptPtr {
                 return std::make_unique<SGD>(std::vector<ParamGroup>{{{p.W}, {{"lr", 0.1}}}, {{p.s, p.b}, {}}},
                                              SGDOptions{.lr = 0.01, .momentum = 0.9});
               },
               false, 10, 1, 0.05});
  c.push_back({"sgd_skip", "sgd", one_group<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9}), true});
  // Adam / AdamW
  c.push_back({"adam_default", "adam", one_group<Adam>(AdamOptions{.lr = 0.02})});
  c.push_back({"adam_weight_decay", "adam", one_group<Adam>(AdamOptions{.lr = 0.02, .weight_decay = 0.1})});
  c.push_back({"adam_amsgrad", "adam",
               one_group<Adam>(AdamOptions{.lr = 0.02, .beta1 = 0.8, .beta2 = 0.9, .amsgrad = true})});
  c.push_back({"adam_maximize", "adam", one_group<Adam>(AdamOptions{.lr = 0.02, .eps = 1e-6, .maximize = true})});
  c.push_back({"adam_groups", "adam",
               [](const Params& p) -> OptPtr {
                 return std::make_unique<Adam>(
                     std::vector<ParamGroup>{{{p.W, p.b}, {{"lr", 0.05}, {"weight_decay", 0.05}}},
                                             {{p.s}, {{"beta1", 0.5}, {"beta2", 0.99}}}},
                     AdamOptions{.lr = 0.02});
               },
               false, 10, 0, 0.01});
  c.push_back({"adam_skip", "adam", one_group<Adam>(AdamOptions{.lr = 0.02}), true});
  c.push_back({"adamw_default", "adam", one_group<AdamW>(AdamWOptions{.lr = 0.02})});
  c.push_back({"adamw_amsgrad", "adam",
               one_group<AdamW>(AdamWOptions{.lr = 0.02, .weight_decay = 0.1, .amsgrad = true})});
  // RMSprop
  c.push_back({"rmsprop_default", "rmsprop", one_group<RMSprop>(RMSpropOptions{.lr = 0.01})});
  c.push_back({"rmsprop_momentum", "rmsprop", one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.9})});
  c.push_back({"rmsprop_centered", "rmsprop",
               one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .centered = true})});
  c.push_back(
      {"rmsprop_centered_momentum", "rmsprop",
       one_group<RMSprop>(RMSpropOptions{.lr = 0.005, .momentum = 0.5, .centered = true, .maximize = true})});
  c.push_back({"rmsprop_weight_decay", "rmsprop",
               one_group<RMSprop>(RMSpropOptions{.lr = 0.01, .eps = 1e-4, .weight_decay = 0.1})});
  // Adagrad
  c.push_back({"adagrad_default", "adagrad", one_group<Adagrad>(AdagradOptions{.lr = 0.1})});
  c.push_back({"adagrad_lr_decay", "adagrad", one_group<Adagrad>(AdagradOptions{.lr = 0.1, .lr_decay = 0.1})});
  c.push_back({"adagrad_weight_decay", "adagrad",
               one_group<Adagrad>(AdagradOptions{.lr = 0.1, .weight_decay = 0.1, .maximize = true})});
  c.push_back({"adagrad_initial_accumulator", "adagrad",
               one_group<Adagrad>(AdagradOptions{.lr = 0.1, .initial_accumulator_value = 0.5, .eps = 1e-6})});
  c.push_back({"adagrad_skip", "adagrad", one_group<Adagrad>(AdagradOptions{.lr = 0.1, .lr_decay = 0.05}), true});
  return c;
}

const Config& config(const std::string& name) {
  static const std::vector<Config> all = configs();
  for (const Config& c : all)
    if (c.name == name) return c;
  throw std::runtime_error("no config " + name);
}

struct Problem {
  Tensor X, Y;
  Params init;
};

Problem problem(DType dt) {
  static const test::Fixture f = test::load_fixture("optim_problem");
  auto leaf = [&](const char* k) { return f.at(k).to(dt).clone().requires_grad_(); };
  return {f.at("X").to(dt), f.at("Y").to(dt), {leaf("W0"), leaf("s0"), leaf("b0")}};
}

Params clone_params(const Params& p) {
  auto c = [](const Tensor& t) { return t.detach().clone().requires_grad_(); };
  return {c(p.W), c(p.s), c(p.b)};
}

/// Forward + backward of the reference loss at the current parameters.
void compute_grads(const Problem& pr, const Params& p) {
  Tensor pred = matmul(pr.X, p.W.t()) * p.s + p.b;
  Tensor loss = (pred - pr.Y).pow(2.0).mean();
  loss.backward();
}

/// Runs steps [from, to) of config c on p with optimizer opt; calls `each(k)` after step k.
void run_steps(const Config& c, const Problem& pr, const Params& p, optim::Optimizer& opt, int from, int to,
               const std::function<void(int)>& each = {}) {
  for (int k = from; k < to; ++k) {
    if (k == c.lr_change_step) opt.set_lr(c.lr_change_value, c.lr_change_group);
    opt.zero_grad();
    compute_grads(pr, p);
    if (c.skip_b && k % 2 == 1) {
      Tensor b = p.b;
      b.set_grad(Tensor());
    }
    opt.step();
    if (each) each(k);
  }
}

// ---------------------------------------------------------------------------------
// Conformance: every configuration, float64 and float32, every step.

struct Worst {
  double rel = 0, abs = 0;
};

class Trajectory : public ::testing::TestWithParam<std::string> {};

void check_trajectory(const Config& c, DType dt, double rtol, double atol, Worst& worst) {
  const test::Fixture f = test::load_fixture("optim_" + c.file);
  const std::string tag = dt == DType::float64 ? "f64" : "f32";
  Problem pr = problem(dt);
  Params p = pr.init;
  OptPtr opt = c.make(p);
  const std::vector<std::pair<std::string, Tensor>> named = {{"W", p.W}, {"s", p.s}, {"b", p.b}};
  run_steps(c, pr, p, *opt, 0, 20, [&](int k) {
    for (const auto& [n, t] : named) {
      std::vector<double> want = f.at(c.name + "." + tag + "." + n).select(0, k).to_vector<double>();
      std::vector<double> got = t.to_vector<double>();
      for (size_t i = 0; i < want.size(); ++i) {
        double err = std::abs(got[i] - want[i]);
        worst.abs = std::max(worst.abs, err);
        worst.rel = std::max(worst.rel, err / std::max(std::abs(want[i]), 1e-3));
      }
      EXPECT_TRUE(test::all_close(t, want, rtol, atol)) << c.name << " " << tag << " step " << k + 1 << " " << n;
    }
  });
}

TEST_P(Trajectory, Float64MatchesPyTorch) {
  Worst w;
  check_trajectory(config(GetParam()), DType::float64, 1e-10, 1e-12, w);
  RecordProperty("max_rel_err", std::to_string(w.rel));
  std::printf("[%s] float64 max abs err %.3g, max rel err %.3g\n", GetParam().c_str(), w.abs, w.rel);
}

TEST_P(Trajectory, Float32MatchesPyTorch) {
  Worst w;
  check_trajectory(config(GetParam()), DType::float32, 1e-5, 1e-6, w);
  std::printf("[%s] float32 max abs err %.3g, max rel err %.3g\n", GetParam().c_str(), w.abs, w.rel);
}

std::vector<std::string> config_names() {
  std::vector<std::string> out;
  for (const Config& c : configs()) out.push_back(c.name);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Optim, Trajectory, ::testing::ValuesIn(config_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// ---------------------------------------------------------------------------------
// state_dict round trip: 10 steps, save, load into a fresh optimizer on fresh copies of
// the parameters, 10 more steps == 20 straight, bit for bit.

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, SaveAfterTenLoadContinueEqualsTwentyStraight) {
  const Config& c = config(GetParam());
  for (DType dt : {DType::float64, DType::float32}) {
    Problem pr = problem(dt);
    Params straight = clone_params(pr.init);
    OptPtr a = c.make(straight);
    run_steps(c, pr, straight, *a, 0, 20);

    Params first = clone_params(pr.init);
    OptPtr b = c.make(first);
    run_steps(c, pr, first, *b, 0, 10);
    optim::OptimizerState saved = b->state_dict();

    Params resumed = clone_params(first);
    OptPtr r = c.make(resumed);
    for (size_t g = 0; g < r->num_groups(); ++g) r->set_lr(123.0, g);  // overwritten by the load
    r->load_state_dict(saved);
    for (size_t g = 0; g < r->num_groups(); ++g) EXPECT_EQ(r->lr(g), b->lr(g));
    // The loaded buffers are copies: stepping the original must not move them.
    run_steps(c, pr, resumed, *r, 10, 20);
    for (auto [x, y] : {std::pair{straight.W, resumed.W}, {straight.s, resumed.s}, {straight.b, resumed.b}})
      EXPECT_EQ(x.to_vector<double>(), y.to_vector<double>()) << c.name << " " << dt;
    run_steps(c, pr, first, *b, 10, 20);
    EXPECT_EQ(first.W.to_vector<double>(), straight.W.to_vector<double>());
  }
}

INSTANTIATE_TEST_SUITE_P(Optim, RoundTrip,
                         ::testing::Values("sgd_groups", "sgd_skip", "adam_amsgrad", "adam_skip", "adamw_default",
                                           "rmsprop_centered_momentum", "adagrad_initial_accumulator", "adagrad_skip"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// ---------------------------------------------------------------------------------
// The base class.

Tensor leaf(std::vector<double> v, const Shape& shape, DType dt = DType::float64) {
  return tensor(v, shape, {.dtype = dt}).requires_grad_();
}

TEST(Optimizer, OptionsMapDefaultsAndGroups) {
  Tensor a = leaf({1, 2}, {2}), b = leaf({3}, {1});
  optim::SGD opt({{{a}, {{"lr", 0.1}}}, {{b}, {}}}, {.lr = 0.01, .momentum = 0.9});
  EXPECT_EQ(opt.name(), "SGD");
  ASSERT_EQ(opt.num_groups(), 2u);
  EXPECT_EQ(opt.lr(0), 0.1);
  EXPECT_EQ(opt.lr(1), 0.01);
  EXPECT_EQ(opt.option("momentum", 0), 0.9);
  EXPECT_EQ(opt.option("nesterov", 1), 0.0);
  EXPECT_EQ(opt.group(0).options.size(), 9u);  // every key, defaults filled in
  EXPECT_EQ(opt.parameters().size(), 2u);
  EXPECT_TRUE(opt.parameters()[1].is_same(b));

  optim::AdamW adamw(std::vector<Tensor>{a, b}, {.lr = 3e-4, .weight_decay = 0.1});
  EXPECT_EQ(adamw.name(), "AdamW");
  EXPECT_EQ(adamw.lr(), 3e-4);
  EXPECT_EQ(adamw.option("weight_decay"), 0.1);
  EXPECT_EQ(adamw.option("beta2"), 0.999);
  optim::AdamW adamw_default(std::vector<Tensor>{a});
  EXPECT_EQ(adamw_default.option("weight_decay"), 1e-2);
  optim::Adam adam(std::vector<Tensor>{a});
  EXPECT_EQ(adam.option("weight_decay"), 0.0);
  EXPECT_EQ(adam.lr(), 1e-3);
  EXPECT_EQ(optim::RMSprop(std::vector<Tensor>{a}).option("alpha"), 0.99);
  EXPECT_EQ(optim::Adagrad(std::vector<Tensor>{a}).option("eps"), 1e-10);

  // The spellings of the docs: a module's parameter list, and groups of named lists.
  auto model_parameters = [&] { return std::vector<Tensor>{a, b}; };
  optim::AdamW from_list(model_parameters(), {.lr = 3e-4, .weight_decay = 0.1});
  EXPECT_EQ(from_list.option("weight_decay"), 0.1);
  std::vector<Tensor> params_a{a}, params_b{b};
  optim::SGD grouped({{params_a, {{"lr", 0.1}}}, {params_b, {}}}, {.lr = 0.01, .momentum = 0.9});
  EXPECT_EQ(grouped.lr(0), 0.1);
  EXPECT_EQ(grouped.lr(1), 0.01);
  EXPECT_EQ(grouped.option("momentum", 1), 0.9);

  Tensor c = leaf({4, 5, 6}, {3});
  opt.add_param_group({{c}, {{"momentum", 0.0}}});
  EXPECT_EQ(opt.num_groups(), 3u);
  EXPECT_EQ(opt.lr(2), 0.01);
  EXPECT_EQ(opt.option("momentum", 2), 0.0);
}

TEST(Optimizer, LrWriteTakesEffect) {
  Tensor p = leaf({1.0, -2.0}, {2});
  optim::SGD opt(std::vector<Tensor>{p}, {.lr = 0.5});
  p.set_grad(tensor({0.25, 1.0}, {2}, {.dtype = DType::float64}));
  opt.set_lr(0.0);
  opt.step();
  test::expect_close(p, {1.0, -2.0}, 0, 0);
  opt.set_lr(0.1);
  EXPECT_EQ(opt.lr(), 0.1);
  opt.step();
  test::expect_close(p, {1.0 - 0.1 * 0.25, -2.0 - 0.1 * 1.0}, 0, 0);
  opt.set_option("weight_decay", 1.0);
  opt.step();  // d = g + p
  test::expect_close(p, {0.975 - 0.1 * (0.25 + 0.975), -2.1 - 0.1 * (1.0 - 2.1)}, 1e-15, 0);
}

TEST(Optimizer, SkipsParametersWithoutGradient) {
  Tensor a = leaf({1, 2}, {2}), b = leaf({3, 4}, {2});
  optim::Adam opt(std::vector<Tensor>{a, b}, {.lr = 0.1});
  a.set_grad(tensor({1.0, -1.0}, {2}, {.dtype = DType::float64}));
  const uint64_t vb = b.version();
  opt.step();
  // First Adam step moves by lr * sign(g) (up to eps).
  test::expect_close(a, {0.9, 2.1}, 1e-7);
  test::expect_close(b, {3, 4}, 0, 0);
  EXPECT_EQ(b.version(), vb);
  EXPECT_TRUE(opt.state(b).empty());
  EXPECT_EQ(opt.state(a).at("step").item(), 1.0);
  EXPECT_EQ(opt.state(a).at("step").dtype(), DType::float64);
  EXPECT_EQ(opt.state(a).at("exp_avg").shape(), (Shape{2}));
  EXPECT_FALSE(opt.state(a).count("max_exp_avg_sq"));
  EXPECT_EQ(opt.state_dict().state.size(), 1u);
}

TEST(Optimizer, StepBumpsVersionAndRecordsNoGraph) {
  Tensor p = leaf({1, 2}, {2});
  optim::RMSprop opt(std::vector<Tensor>{p});
  p.set_grad(tensor({1.0, 1.0}, {2}, {.dtype = DType::float64}));
  const uint64_t v = p.version();
  opt.step();
  EXPECT_GT(p.version(), v);
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(GradMode::is_enabled());
}

TEST(Optimizer, ZeroGrad) {
  Tensor a = leaf({1, 2}, {2});
  optim::SGD opt(std::vector<Tensor>{a});
  a.set_grad(tensor({1.0, 1.0}, {2}, {.dtype = DType::float64}));
  opt.zero_grad(false);
  ASSERT_TRUE(a.grad().defined());
  test::expect_close(a.grad(), {0, 0}, 0, 0);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optimizer, StridedParameterIsUpdatedInPlace) {
  // A leaf that is a transposed view: the step works on a dense copy and writes it back.
  Tensor base = tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3}, {.dtype = DType::float64});
  Tensor p = base.t();  // (3, 2), strides (1, 3)
  p.requires_grad_();
  ASSERT_FALSE(p.is_contiguous());
  optim::SGD opt(std::vector<Tensor>{p}, {.lr = 0.5, .momentum = 0.9});
  Tensor g = tensor({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {3, 2}, {.dtype = DType::float64});
  p.set_grad(g);
  opt.step();  // p (row-major 1 4 2 5 3 6) -= 0.5 g
  const std::vector<double> p1 = {0.95, 3.9, 1.85, 4.8, 2.75, 5.7};
  test::expect_close(p, p1, 1e-15, 0);
  test::expect_close(base, {0.95, 1.85, 2.75, 3.9, 4.8, 5.7}, 1e-15, 0);
  p.set_grad(g.t().contiguous().t());  // a strided gradient too
  opt.step();                          // buf = 0.9 g + g = 1.9 g: p -= 0.95 g
  std::vector<double> p2 = p1, gv = g.to_vector<double>();
  for (size_t i = 0; i < p2.size(); ++i) p2[i] -= 0.95 * gv[i];
  test::expect_close(p, p2, 1e-15, 1e-15);
}

// Adam on several tensors large enough to be split across threads, including an empty one,
// against a scalar float64 reference of the same formulas.
TEST(Optimizer, MultiTensorChunkingMatchesScalarReference) {
  std::vector<Shape> shapes = {{40000}, {0}, {7}, {300, 101}, {1}};
  std::vector<Tensor> params, ref;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Generator gen(100 + i);
    Tensor t = randn(shapes[i], {.dtype = DType::float64}, &gen);
    params.push_back(t.clone().requires_grad_());
    ref.push_back(t.clone());
  }
  const double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.05;
  optim::Adam opt(params, {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd, .amsgrad = true});
  std::vector<std::vector<double>> m(shapes.size()), v(shapes.size()), vmax(shapes.size()), p(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    p[i] = ref[i].to_vector<double>();
    m[i].assign(p[i].size(), 0.0);
    v[i] = m[i];
    vmax[i] = m[i];
  }
  for (int step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      Generator gen(1000 * step + i);
      Tensor g = randn(shapes[i], {.dtype = DType::float64}, &gen);
      params[i].set_grad(g);
      std::vector<double> gv = g.to_vector<double>();
      const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
      for (size_t j = 0; j < gv.size(); ++j) {
        double gi = gv[j] + wd * p[i][j];
        m[i][j] = m[i][j] * b1 + (1 - b1) * gi;
        v[i][j] = v[i][j] * b2 + (1 - b2) * gi * gi;
        vmax[i][j] = std::max(vmax[i][j], v[i][j]);
        p[i][j] -= lr / bc1 * (m[i][j] / (std::sqrt(vmax[i][j]) / std::sqrt(bc2) + eps));
      }
    }
    opt.step();
  }
  for (size_t i = 0; i < shapes.size(); ++i) test::expect_close(params[i], p[i], 1e-12, 1e-14);
}

TEST(Optimizer, MixedDtypesAndSixteenBitParameters) {
  Tensor d = leaf({1.0, 2.0}, {2});
  Tensor f = leaf({1.0, 2.0}, {2}, DType::float32);
  Tensor h = leaf({1.0, 2.0}, {2}, DType::bfloat16);
  optim::AdamW opt(std::vector<Tensor>{d, f, h}, {.lr = 0.125, .weight_decay = 0.0});
  for (const Tensor& t : {d, f, h}) {
    Tensor tt = t;
    tt.set_grad(tensor({0.5, -0.5}, {2}, {.dtype = DType::float64}).to(t.dtype()));
  }
  opt.step();
  for (const Tensor& t : {d, f, h}) test::expect_close(t, {0.875, 2.125}, 1e-6);
  EXPECT_EQ(opt.state(h).at("exp_avg").dtype(), DType::float32);  // 16-bit params keep float32 state
  EXPECT_EQ(opt.state(f).at("exp_avg").dtype(), DType::float32);
  EXPECT_EQ(opt.state(d).at("exp_avg").dtype(), DType::float64);
}

TEST(Optimizer, StateDictContentsAndHandles) {
  Problem pr = problem(DType::float64);
  Params p = clone_params(pr.init);
  optim::Adam opt(std::vector<optim::ParamGroup>{{{p.W}, {}}, {{p.s, p.b}, {{"amsgrad", 1.0}}}}, {.lr = 0.01});
  for (int k = 0; k < 3; ++k) {
    opt.zero_grad();
    compute_grads(pr, p);
    opt.step();
  }
  optim::OptimizerState sd = opt.state_dict();
  ASSERT_EQ(sd.groups.size(), 2u);
  EXPECT_EQ(sd.groups[0].params, (std::vector<int64_t>{0}));
  EXPECT_EQ(sd.groups[1].params, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(sd.groups[1].options.at("amsgrad"), 1.0);
  EXPECT_EQ(sd.groups[0].options.at("beta1"), 0.9);
  ASSERT_EQ(sd.state.size(), 3u);
  EXPECT_EQ(sd.state.at(0).size(), 3u);  // step, exp_avg, exp_avg_sq
  EXPECT_EQ(sd.state.at(2).size(), 4u);  // + max_exp_avg_sq
  EXPECT_EQ(sd.state.at(1).at("step").item(), 3.0);
  EXPECT_EQ(sd.state.at(0).at("exp_avg").shape(), (Shape{3, 4}));
  // Handles, like Module::state_dict.
  EXPECT_TRUE(sd.state.at(0).at("exp_avg").is_same(opt.state(p.W).at("exp_avg")));

  // Loading converts buffers to the state dtype of the parameters (here float32).
  Params f32{p.W.detach().to(DType::float32).requires_grad_(), p.s.detach().to(DType::float32).requires_grad_(),
             p.b.detach().to(DType::float32).requires_grad_()};
  optim::Adam other(std::vector<optim::ParamGroup>{{{f32.W}, {}}, {{f32.s, f32.b}, {}}});
  other.load_state_dict(sd);
  EXPECT_EQ(other.state(f32.b).at("max_exp_avg_sq").dtype(), DType::float32);
  EXPECT_EQ(other.option("amsgrad", 1), 1.0);
  EXPECT_EQ(other.lr(0), 0.01);
}

// ---------------------------------------------------------------------------------
// Errors: they name the optimizer, the key and the value, and change nothing.

TEST(OptimizerErrors, BadOptionValues) {
  Tensor p = leaf({1, 2}, {2});
  std::vector<Tensor> ps{p};
  expect_throws_with([&] { optim::SGD(ps, {.lr = -1.0}); }, {"SGD", "lr", "-1", ">= 0"});
  expect_throws_with([&] { optim::SGD(ps, {.lr = 0.1, .momentum = -0.5}); }, {"SGD", "momentum", "-0.5"});
  expect_throws_with([&] { optim::SGD(ps, {.lr = 0.1, .weight_decay = -1e-3}); }, {"SGD", "weight_decay", "-0.001"});
  expect_throws_with([&] { optim::SGD(ps, {.lr = 0.1, .nesterov = true}); }, {"SGD", "momentum", "nesterov"});
  expect_throws_with([&] { optim::SGD(ps, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
                     {"SGD", "dampening", "0.1", "nesterov"});
  expect_throws_with([&] { optim::Adam(ps, {.beta1 = 1.0}); }, {"Adam", "beta1", "1", "[0, 1)"});
  expect_throws_with([&] { optim::Adam(ps, {.beta2 = -0.1}); }, {"Adam", "beta2", "-0.1", "[0, 1)"});
  expect_throws_with([&] { optim::Adam(ps, {.eps = -1e-8}); }, {"Adam", "eps", "-1e-08"});
  expect_throws_with([&] { optim::AdamW(ps, {.weight_decay = -0.1}); }, {"AdamW", "weight_decay", "-0.1"});
  expect_throws_with([&] { optim::RMSprop(ps, {.alpha = -0.5}); }, {"RMSprop", "alpha", "-0.5"});
  expect_throws_with([&] { optim::RMSprop(ps, {.eps = -1.0}); }, {"RMSprop", "eps", "-1"});
  expect_throws_with([&] { optim::Adagrad(ps, {.lr_decay = -1.0}); }, {"Adagrad", "lr_decay", "-1"});
  expect_throws_with([&] { optim::Adagrad(ps, {.initial_accumulator_value = -2.0}); },
                     {"Adagrad", "initial_accumulator_value", "-2"});
  expect_throws_with([&] { optim::Adam(ps, {.lr = NAN}); }, {"Adam", "lr", "nan", "finite"});
  // Group maps: unknown keys and bad values name the group.
  expect_throws_with([&] { optim::Adam({{ps, {{"betas", 0.9}}}}); },
                     {"Adam", "unknown option 'betas'", "0.9", "param group 0", "beta1"});
  expect_throws_with([&] { optim::Adam({{ps, {{"amsgrad", 2.0}}}}); }, {"Adam", "amsgrad", "2", "0 or 1"});
  expect_throws_with([&] { optim::SGD({{ps, {{"lr", -0.1}}}}); }, {"SGD", "lr", "-0.1"});
}

TEST(OptimizerErrors, SetOptionAndLookups) {
  Tensor p = leaf({1, 2}, {2});
  optim::SGD opt(std::vector<Tensor>{p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  expect_throws_with([&] { opt.set_option("momentum", 0.0); }, {"SGD", "momentum", "nesterov"});
  EXPECT_EQ(opt.option("momentum"), 0.9);  // unchanged
  expect_throws_with([&] { opt.set_lr(-1.0); }, {"SGD", "lr", "-1"});
  EXPECT_EQ(opt.lr(), 0.1);
  expect_throws_with([&] { opt.set_option("beta1", 0.9); }, {"SGD", "unknown option 'beta1'", "0.9"});
  expect_throws_with([&] { opt.option("beta1"); }, {"SGD", "unknown option 'beta1'"});
  expect_throws_with([&] { opt.lr(3); }, {"SGD", "param group 3", "1 groups"});
  expect_throws_with([&] { opt.set_lr(0.1, 1); }, {"SGD", "param group 1"});
}

TEST(OptimizerErrors, BadParameters) {
  Tensor p = leaf({1, 2}, {2});
  expect_throws_with([&] { optim::SGD(std::vector<Tensor>{}); }, {"SGD", "empty parameter list"});
  expect_throws_with([&] { optim::SGD(std::vector<Tensor>{Tensor()}); }, {"SGD", "parameter 0", "undefined"});
  Tensor no_grad = tensor({1.0}, {1});
  expect_throws_with([&] { optim::Adam(std::vector<Tensor>{p, no_grad}); },
                     {"Adam", "parameter 1", "[1]", "does not require grad"});
  Tensor ints = tensor<int64_t>({1, 2}, {2});
  expect_throws_with([&] { optim::Adam(std::vector<Tensor>{ints}); }, {"Adam", "int64", "floating"});
  Tensor non_leaf = p * 2.0;
  expect_throws_with([&] { optim::SGD(std::vector<Tensor>{non_leaf}); }, {"SGD", "not a leaf"});
  expect_throws_with([&] { optim::SGD(std::vector<Tensor>{p, p}); }, {"SGD", "parameter 1", "more than once"});
  optim::SGD opt(std::vector<Tensor>{p});
  expect_throws_with([&] { opt.add_param_group({{p}, {}}); }, {"SGD", "param group 1", "more than once"});
  EXPECT_EQ(opt.num_groups(), 1u);
  expect_throws_with([&] { opt.add_param_group({{leaf({1}, {1})}, {{"momentum", -1.0}}}); },
                     {"SGD", "momentum", "-1"});
  EXPECT_EQ(opt.num_groups(), 1u);
}

TEST(OptimizerErrors, BadGradientChangesNothing) {
  Tensor a = leaf({1, 2}, {2}), b = leaf({3, 4}, {2});
  optim::Adam opt({{{a}, {}}, {{b}, {}}});
  a.set_grad(tensor({1.0, 1.0}, {2}, {.dtype = DType::float64}));
  b.set_grad(tensor({1.0, 1.0}, {2}, {.dtype = DType::float32}));
  expect_throws_with([&] { opt.step(); }, {"Adam", "gradient", "parameter 0 of param group 1", "float32", "float64"});
  test::expect_close(a, {1, 2}, 0, 0);  // group 0 was not updated either
  EXPECT_TRUE(opt.state(a).empty());
}

TEST(OptimizerErrors, LoadStateDictMismatchesChangeNothing) {
  Problem pr = problem(DType::float64);
  Params p = clone_params(pr.init);
  optim::SGD opt({{{p.W}, {}}, {{p.s, p.b}, {}}}, {.lr = 0.05, .momentum = 0.9});
  opt.zero_grad();
  compute_grads(pr, p);
  opt.step();
  const optim::OptimizerState good = opt.state_dict();
  const std::vector<double> buf_before = opt.state(p.W).at("momentum_buffer").to_vector<double>();
  const Tensor buf_handle = opt.state(p.W).at("momentum_buffer");

  auto expect_unchanged = [&] {
    EXPECT_EQ(opt.lr(0), 0.05);
    EXPECT_TRUE(opt.state(p.W).at("momentum_buffer").is_same(buf_handle));
    EXPECT_EQ(opt.state(p.W).at("momentum_buffer").to_vector<double>(), buf_before);
  };
  {
    optim::OptimizerState s = good;
    s.groups.pop_back();
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "1 param groups", "has 2"});
  }
  {
    optim::OptimizerState s = good;
    s.groups[1].params.pop_back();
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "param group 1", "1 parameters", "2 in the optimizer"});
  }
  {
    optim::OptimizerState s = good;
    s.groups[0].options["lr"] = 0.5;  // valid, but the bad buffer below must stop the whole load
    s.state[1]["momentum_buffer"] = zeros({4}, {.dtype = DType::float64});
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "momentum_buffer", "parameter 1", "[4]", "[3]"});
  }
  {
    optim::OptimizerState s = good;
    s.state[0]["exp_avg"] = zeros({3, 4}, {.dtype = DType::float64});
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "unknown state 'exp_avg'", "parameter 0"});
  }
  {
    optim::OptimizerState s = good;
    s.groups[1].options["beta1"] = 0.9;
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "unknown option 'beta1'", "param group 1"});
  }
  {
    optim::OptimizerState s = good;
    s.groups[0].options["lr"] = -3.0;
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "lr", "-3"});
  }
  {
    optim::OptimizerState s = good;
    s.state[7] = s.state[0];
    expect_throws_with([&] { opt.load_state_dict(s); }, {"SGD", "parameter index 7"});
  }
  expect_unchanged();
}

}  // namespace
