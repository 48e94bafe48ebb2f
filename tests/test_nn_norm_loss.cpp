// Conformance of the normalisation layers (nn/normalization.h) and loss modules
// (nn/loss.h) with PyTorch, from the fixtures written by
// tests/fixtures/gen_norm_loss.py: every case is run in float64 (forward, running statistics and every
// gradient within 1e-12 relative) and in float32 (forward and running statistics
// within 1e-5 relative; gradients within 1e-4). Each fixture case carries its
// configuration as "key=value ..." metadata, so the tests are driven by the data and
// check that the expected number of cases ran. Also: printing, state-dict keys,
// buffers, mode handling and the modules' error messages.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"
#include "engine/ops/reduce.h"
#include "nn/loss.h"
#include "nn/normalization.h"
#include "tests/support/fixture.h"
#include "tests/support/test_util.h"

namespace zae::test {
namespace {

using nn::StateDict;

// ---- configuration from metadata ----------------------------------------------------------

struct Config {
  std::map<std::string, std::string> kv;
  const std::string& str(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end()) throw std::runtime_error("fixture config has no key '" + k + "'");
    return it->second;
  }
  double num(const std::string& k) const { return std::stod(str(k)); }
  int64_t integer(const std::string& k) const { return std::stoll(str(k)); }
  bool flag(const std::string& k) const { return integer(k) != 0; }
};

Config parse_config(const std::string& text) {
  Config c;
  std::istringstream is(text);
  std::string item;
  while (is >> item) {
    const size_t eq = item.find('=');
    c.kv[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return c;
}

Reduction parse_reduction(const std::string& s) {
  if (s == "none") return Reduction::none;
  if (s == "sum") return Reduction::sum;
  return Reduction::mean;
}

// The (name, config) cases of a fixture (every metadata entry but "generator").
std::vector<std::pair<std::string, Config>> cases_of(const Fixture& f) {
  std::vector<std::pair<std::string, Config>> out;
  for (const auto& [k, v] : f.metadata)
    if (k != "generator") out.emplace_back(k, parse_config(v));
  return out;
}

struct Tolerance {
  double fwd_rtol, fwd_atol, grad_rtol, grad_atol;
};
Tolerance tolerance(DType dt) {
  if (dt == DType::float64) return {1e-12, 1e-14, 1e-12, 1e-14};
  return {1e-5, 1e-6, 1e-4, 1e-5};
}

int64_t g_compared = 0;  // tensors compared against PyTorch, over all tests

void compare(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  ++g_compared;
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  // fixture_io.save stores 0-dim arrays as [1] (np.ascontiguousarray returns ndim >= 1).
  const bool scalar = got.dim() == 0 && want.shape() == Shape{1};
  if (!scalar) {
    EXPECT_EQ(got.shape(), want.shape()) << what;
  }
  EXPECT_TRUE(all_close(got, want.to_vector<double>(), rtol, atol)) << what;
}

// ---- normalisation layers ----------------------------------------------------------------------

std::shared_ptr<nn::Layer> make_norm(const Config& c) {
  const std::string kind = c.str("kind");
  if (kind == "bn1d" || kind == "bn2d") {
    nn::BatchNormBase::Options o{
        .num_features = c.integer("num_features"),
        .eps = c.num("eps"),
        .momentum = c.str("momentum") == "none" ? std::nullopt : std::optional<double>(c.num("momentum")),
        .affine = c.flag("affine"),
        .track_running_stats = c.flag("track")};
    if (kind == "bn1d") return std::make_shared<nn::BatchNorm1d>(o);
    return std::make_shared<nn::BatchNorm2d>(o);
  }
  if (kind == "ln") {
    Shape shape;
    std::istringstream is(c.str("normalized_shape"));
    for (std::string part; std::getline(is, part, ',');) shape.push_back(std::stoll(part));
    return std::make_shared<nn::LayerNorm>(
        nn::LayerNorm::Options{.normalized_shape = shape, .eps = c.num("eps"), .elementwise_affine = c.flag("affine")});
  }
  return std::make_shared<nn::GroupNorm>(nn::GroupNorm::Options{.num_groups = c.integer("groups"),
                                                                .num_channels = c.integer("num_channels"),
                                                                .eps = c.num("eps"),
                                                                .affine = c.flag("affine")});
}

void run_norm_case(const Fixture& f, const std::string& name, const Config& c, DType dt) {
  SCOPED_TRACE(name + " in " + std::string(dtype_name(dt)) + " (" + f.metadata.at(name) + ")");
  auto key = [&](const std::string& k) { return name + "/" + k; };
  auto x_key = [&](int64_t i) {
    std::string k = "x";  // (built by appending: GCC 12 misfires -Wrestrict on "lit" + string&&)
    k += std::to_string(i);
    return key(k);
  };
  std::shared_ptr<nn::Layer> m = make_norm(c);
  m->to(dt);
  StateDict init;
  for (const char* k : {"weight", "bias"})
    if (f.has(key(k))) init.emplace_back(k, f.at(key(k)));
  if (f.has(key("running_mean_init"))) {
    init.emplace_back("running_mean", f.at(key("running_mean_init")));
    init.emplace_back("running_var", f.at(key("running_var_init")));
  }
  m->load_state_dict(init, /*strict=*/false);
  m->train(c.str("mode") == "train");
  const int64_t steps = c.integer("steps");
  for (int64_t i = 0; i + 1 < steps; ++i) {
    NoGradGuard no_grad;
    (*m)(f.at(x_key(i)).to(dt));
  }
  Tensor x = f.at(x_key(steps - 1)).detach().to(dt).requires_grad_();  // a fresh leaf
  Tensor y = (*m)(x);
  y.backward(f.at(key("gout")).to(dt));
  const Tolerance tol = tolerance(dt);
  compare(y, f.at(key("y")), tol.fwd_rtol, tol.fwd_atol, "output");
  compare(x.grad(), f.at(key("dx")), tol.grad_rtol, tol.grad_atol, "input gradient");
  std::map<std::string, Tensor> params, buffers;
  for (auto& [k, t] : m->named_parameters()) params[k] = t;
  for (auto& [k, t] : m->named_buffers()) buffers[k] = t;
  EXPECT_EQ(params.count("weight") > 0, f.has(key("dweight")));
  if (f.has(key("dweight"))) {
    compare(params["weight"].grad(), f.at(key("dweight")), tol.grad_rtol, tol.grad_atol, "weight gradient");
    compare(params["bias"].grad(), f.at(key("dbias")), tol.grad_rtol, tol.grad_atol, "bias gradient");
  }
  EXPECT_EQ(buffers.count("running_mean") > 0, f.has(key("running_mean")));
  if (f.has(key("running_mean"))) {
    compare(buffers["running_mean"], f.at(key("running_mean")), tol.fwd_rtol, tol.fwd_atol, "running_mean");
    compare(buffers["running_var"], f.at(key("running_var")), tol.fwd_rtol, tol.fwd_atol, "running_var");
    EXPECT_EQ(buffers["num_batches_tracked"].dtype(), DType::int64);
    EXPECT_EQ(buffers["num_batches_tracked"].item(), f.at(key("num_batches_tracked")).item());
  }
}

TEST(NormConformance, MatchesPyTorch) {
  const Fixture f = load_fixture("norm_loss_norm");
  const auto cases = cases_of(f);
  EXPECT_EQ(cases.size(), 17u);
  std::map<std::string, int> kinds;
  const int64_t before = g_compared;
  for (const auto& [name, c] : cases) {
    ++kinds[c.str("kind")];
    for (DType dt : {DType::float64, DType::float32}) run_norm_case(f, name, c, dt);
  }
  EXPECT_EQ(kinds["bn1d"], 5);
  EXPECT_EQ(kinds["bn2d"], 4);
  EXPECT_EQ(kinds["ln"], 3);
  EXPECT_EQ(kinds["gn"], 5);
  std::cout << "[ conformance ] " << cases.size() << " normalisation cases x 2 dtypes, " << g_compared - before
            << " tensors compared with PyTorch\n";
}

// ---- losses ------------------------------------------------------------------------------------

std::shared_ptr<nn::Loss> make_loss(const Fixture& f, const std::string& name, const Config& c) {
  auto opt = [&](const std::string& k) { return f.has(name + "/" + k) ? f.at(name + "/" + k) : Tensor(); };
  const std::string kind = c.str("kind");
  const Reduction r = parse_reduction(c.str("reduction"));
  if (kind == "ce")
    return std::make_shared<nn::CrossEntropyLoss>(
        nn::CrossEntropyLoss::Options{.weight = opt("weight"),
                                      .ignore_index = c.integer("ignore_index"),
                                      .reduction = r,
                                      .label_smoothing = c.num("label_smoothing")});
  if (kind == "nll")
    return std::make_shared<nn::NLLLoss>(
        nn::NLLLoss::Options{.weight = opt("weight"), .ignore_index = c.integer("ignore_index"), .reduction = r});
  if (kind == "mse") return std::make_shared<nn::MSELoss>(nn::MSELoss::Options{.reduction = r});
  if (kind == "l1") return std::make_shared<nn::L1Loss>(nn::L1Loss::Options{.reduction = r});
  if (kind == "smooth_l1")
    return std::make_shared<nn::SmoothL1Loss>(nn::SmoothL1Loss::Options{.reduction = r, .beta = c.num("beta")});
  return std::make_shared<nn::BCEWithLogitsLoss>(
      nn::BCEWithLogitsLoss::Options{.weight = opt("weight"), .reduction = r, .pos_weight = opt("pos_weight")});
}

void run_loss_case(const Fixture& f, const std::string& name, const Config& c, DType dt) {
  SCOPED_TRACE(name + " in " + std::string(dtype_name(dt)) + " (" + f.metadata.at(name) + ")");
  auto key = [&](const std::string& k) { return name + "/" + k; };
  std::shared_ptr<nn::Loss> m = make_loss(f, name, c);
  m->to(dt);
  for (auto& [k, b] : m->named_buffers()) EXPECT_EQ(b.dtype(), dt) << k;
  const bool class_target = f.at(key("target")).dtype() == DType::int64;
  Tensor input = f.at(key("input")).detach().to(dt).requires_grad_();
  Tensor target = class_target ? f.at(key("target")) : f.at(key("target")).detach().to(dt).requires_grad_();
  Tensor out = (*m)(input, target);
  if (f.has(key("gout")))
    out.backward(f.at(key("gout")).to(dt));
  else
    out.backward();
  const Tolerance tol = tolerance(dt);
  compare(out, f.at(key("out")), tol.fwd_rtol, tol.fwd_atol, "loss");
  compare(input.grad(), f.at(key("dinput")), tol.grad_rtol, tol.grad_atol, "input gradient");
  if (!class_target) compare(target.grad(), f.at(key("dtarget")), tol.grad_rtol, tol.grad_atol, "target gradient");
}

TEST(LossConformance, MatchesPyTorch) {
  const Fixture f = load_fixture("norm_loss_loss");
  const auto cases = cases_of(f);
  EXPECT_EQ(cases.size(), 60u);
  std::map<std::string, int> kinds;
  const int64_t before = g_compared;
  for (const auto& [name, c] : cases) {
    ++kinds[c.str("kind")];
    for (DType dt : {DType::float64, DType::float32}) run_loss_case(f, name, c, dt);
  }
  EXPECT_EQ(kinds["ce"], 18);
  EXPECT_EQ(kinds["nll"], 12);
  EXPECT_EQ(kinds["mse"], 3);
  EXPECT_EQ(kinds["l1"], 3);
  EXPECT_EQ(kinds["smooth_l1"], 12);
  EXPECT_EQ(kinds["bce"], 12);
  std::cout << "[ conformance ] " << cases.size() << " loss cases x 2 dtypes, " << g_compared - before
            << " tensors compared with PyTorch\n";
}

// ---- module behaviour --------------------------------------------------------------------------

std::vector<std::string> keys(const StateDict& sd) {
  std::vector<std::string> out;
  for (const auto& [k, v] : sd) out.push_back(k);
  return out;
}

TEST(NormModules, LayerNormForwardAddIsTheAddThenTheNorm) {
  manual_seed(5);
  nn::LayerNorm ln({.normalized_shape = {6}, .eps = 1e-6});
  {
    NoGradGuard no_grad;
    Tensor w = ln.weight(), b = ln.bias();  // handles to the parameters
    w.copy_(randn({6}));
    b.copy_(randn({6}));
  }
  Tensor x = randn({3, 6}), r = randn({3, 6});
  AddLayerNormResult fused = ln.forward_add(x, r);
  Tensor sum = x + r;
  Tensor out = ln.forward(sum);
  expect_close(fused.sum, sum.to_vector<double>(), 0, 0);
  expect_close(fused.out, out.to_vector<double>(), 1e-6, 1e-7);
}

TEST(NormModules, PrintLikePyTorch) {
  EXPECT_EQ(nn::BatchNorm2d(64).str(),
            "BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  EXPECT_EQ(
      nn::BatchNorm1d(
          {.num_features = 8, .eps = 0.001, .momentum = std::nullopt, .affine = false, .track_running_stats = false})
          .str(),
      "BatchNorm1d(8, eps=0.001, momentum=None, affine=False, track_running_stats=False)");
  EXPECT_EQ(nn::LayerNorm(10).str(), "LayerNorm((10,), eps=1e-05, elementwise_affine=True)");
  EXPECT_EQ(nn::LayerNorm({.normalized_shape = {4, 5}, .eps = 1e-6, .elementwise_affine = false}).str(),
            "LayerNorm((4, 5), eps=1e-06, elementwise_affine=False)");
  EXPECT_EQ(nn::GroupNorm(2, 6).str(), "GroupNorm(2, 6, eps=1e-05, affine=True)");
  EXPECT_EQ(nn::CrossEntropyLoss().str(), "CrossEntropyLoss()");
  EXPECT_EQ(nn::BCEWithLogitsLoss().str(), "BCEWithLogitsLoss()");
}

TEST(NormModules, StateDictKeysAndBuffers) {
  nn::BatchNorm2d bn(3);
  EXPECT_EQ(keys(bn.state_dict()),
            (std::vector<std::string>{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(bn.num_batches_tracked().dtype(), DType::int64);
  EXPECT_EQ(bn.num_batches_tracked().dim(), 0);
  expect_close(bn.running_var(), {1, 1, 1}, 0, 0);
  bn.to(DType::float64);
  EXPECT_EQ(bn.running_mean().dtype(), DType::float64);
  EXPECT_EQ(bn.num_batches_tracked().dtype(), DType::int64);
  EXPECT_EQ(keys(nn::BatchNorm1d({.num_features = 2, .affine = false}).state_dict()),
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(keys(nn::BatchNorm1d({.num_features = 2, .track_running_stats = false}).state_dict()),
            (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(keys(nn::LayerNorm({.normalized_shape = {4}, .bias = false}).state_dict()),
            (std::vector<std::string>{"weight"}));
  EXPECT_EQ(keys(nn::GroupNorm({.num_groups = 1, .num_channels = 2, .affine = false}).state_dict()).size(), 0u);
  nn::CrossEntropyLoss ce({.weight = ones({4})});
  EXPECT_EQ(keys(ce.state_dict()), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(ce.num_parameters(), 0);
  EXPECT_EQ(keys(nn::BCEWithLogitsLoss({.pos_weight = ones({4})}).state_dict()),
            (std::vector<std::string>{"pos_weight"}));
  EXPECT_EQ(keys(nn::NLLLoss().state_dict()).size(), 0u);
}

TEST(NormModules, BatchNormModesAndCounter) {
  nn::BatchNorm1d bn(3);
  Tensor x = random_tensor({4, 3}, DType::float32, 1);
  bn(x);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked().item(), 2.0);
  StateDict saved;
  for (auto& [k, v] : bn.state_dict()) saved.emplace_back(k, v.clone());
  bn.eval();
  Tensor y = bn(x);  // eval: running stats, no update
  EXPECT_EQ(bn.num_batches_tracked().item(), 2.0);
  expect_close(bn.running_mean(), saved[2].second.to_vector<double>(), 0, 0);
  // A rejected batch changes no state.
  bn.train();
  expect_throws_with(
      [&] {
        bn(zeros({1, 3}));
      },
      {"Expected more than 1 value per channel when training, got input size [1, 3]"});
  EXPECT_EQ(bn.num_batches_tracked().item(), 2.0);
  // Round trip through the state dict restores the statistics.
  nn::BatchNorm1d other(3);
  other.load_state_dict(saved);
  other.eval();
  expect_close(other(x), y.to_vector<double>(), 0, 0);
  // Without running stats, eval mode normalises with the batch statistics.
  nn::BatchNorm1d plain({.num_features = 3, .track_running_stats = false});
  plain.eval();
  Tensor z = plain(x);
  expect_close(mean(z, {0}), {0, 0, 0}, 0, 1e-6);
}

TEST(NormModules, Errors) {
  nn::BatchNorm1d bn1(3);
  nn::BatchNorm2d bn2(3);
  expect_throws_with(
      [&] {
        bn1(zeros({2, 3, 4, 5}));
      },
      {"BatchNorm1d: expected 2D or 3D input", "got 4D input of shape [2, 3, 4, 5]"});
  expect_throws_with(
      [&] {
        bn2(zeros({2, 3, 4}));
      },
      {"BatchNorm2d: expected 4D input", "got 3D input of shape [2, 3, 4]"});
  expect_throws_with([&] { bn2(zeros({2, 4, 2, 2})); }, {"BatchNorm2d(3): input of shape [2, 4, 2, 2] has 4 channels"});
  expect_throws_with([] { nn::BatchNorm1d(0); }, {"num_features must be positive, got 0"});
  expect_throws_with([] { nn::GroupNorm(4, 6); }, {"GroupNorm: num_channels (6) must be divisible by num_groups (4)"});
  nn::GroupNorm gn(2, 6);
  expect_throws_with(
      [&] {
        gn(zeros({2, 4, 3}));
      },
      {"GroupNorm(2, 6): expected input of shape (N, 6, *)", "[2, 4, 3]"});
  nn::LayerNorm ln(5);
  expect_throws_with([&] { ln(zeros({2, 4})); }, {"does not end with normalized_shape [5]"});
  expect_throws_with([] { nn::SmoothL1Loss({.beta = -0.5}); }, {"SmoothL1Loss: beta must be non-negative"});
  expect_throws_with([] { nn::CrossEntropyLoss({.label_smoothing = 1.5}); }, {"label_smoothing must be in [0, 1]"});
  nn::MSELoss mse;
  expect_throws_with(
      [&] {
        mse(zeros({3, 2}), zeros({3}));
      },
      {"mse_loss: target of shape [3] does not match the input of shape [3, 2]"});
}

}  // namespace
}  // namespace zae::test
