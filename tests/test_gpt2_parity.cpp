// nn::GPT2 against PyTorch's debug state (tests/fixtures/gen_gpt2.py -> gpt2_debug.safetensors,
// the analogue of llm.c's gpt2_124M_debug_state.bin for a tiny config: vocab 64, block 16,
// 2 layers, 4 heads, 32 channels, batch 2 x 8). The reference is computed in float64 from
// float32 parameters and stored as float32, so the differences measure the engine alone.
//
// The model is built with the fixture's config and every "p.<name>" tensor is copied into the
// parameter of that name (named_parameters: nanoGPT's names, lm_head tied to wte). Then:
//   - logits and loss of forward(idx), every parameter gradient of the loss;
//   - 10 steps of the engine's AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0:
//     torch.optim.AdamW's settings in the script) on the same batch: the 10 losses (before each
//     step) and the parameters after the last step.
// Float32 is checked tight, bfloat16 autocast (forward and loss inside autocast::Guard, float32
// master weights and gradients) loose, against the same float32 reference.
// Measures: "rel" of a tensor = max |engine - ref| / max |ref| over the tensor; parameters after
// the steps in units of lr (max and mean |engine - ref| / lr), since Adam turns gradients whose
// size is at the rounding level into full lr-sized steps of either sign. The k third of each
// attn.c_attn.bias is exempt from that comparison: its gradient is zero in exact arithmetic
// (a per-query constant cancels in the softmax), so what Adam does with its rounding noise is
// implementation noise; it is only bounded.
// Evidence for the tolerances (the script's metadata, PyTorch 1.13 on CPU against the same
// float64 reference): float32 logits 9e-8, loss 5e-9, worst gradient 6e-7, losses 8e-8,
// parameters after 10 steps max 0.013 lr / mean <= 1e-4 lr; bfloat16 autocast logits 4.8e-3,
// loss 4e-5, worst gradient 1.1e-2, losses 1.2e-4, parameters max 2.9 lr / mean <= 0.05 lr.
// Each test prints its measured worst values ("[gpt2 parity] ...").
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/zae.h"
#include "nn/gpt2.h"
#include "nn/optim/adam.h"
#include "tests/support/fixture.h"

namespace {

using namespace zae;
using zae::test::Fixture;
using zae::test::load_fixture;

constexpr double kLr = 1e-3;
constexpr int kSteps = 10;

const Fixture& fixture() {
  static const Fixture fx = load_fixture("gpt2_debug");
  return fx;
}

int64_t meta_int(const std::string& key) { return std::stoll(fixture().metadata.at(key)); }

nn::GPT2Config fixture_config() {
  nn::GPT2Config c;
  c.vocab_size = meta_int("vocab_size");
  c.block_size = meta_int("block_size");
  c.n_layer = meta_int("n_layer");
  c.n_head = meta_int("n_head");
  c.n_embd = meta_int("n_embd");
  c.dropout = 0.0;
  return c;
}

// A model with the fixture's config and initial parameters, copied by name.
std::unique_ptr<nn::GPT2> make_model() {
  auto model = std::make_unique<nn::GPT2>(fixture_config());
  NoGradGuard no_grad;
  for (const auto& [name, p] : model->named_parameters()) {
    const Tensor& src = fixture().at("p." + name);
    ZAE_CHECK(src.shape() == p.shape(), "parameter ", name, ": model shape ", p.shape(), ", fixture shape ",
              src.shape());
    Tensor dst = p;
    dst.copy_(src);
  }
  return model;
}

struct Cmp {
  double max_diff = 0, max_ref = 0, mean_diff = 0, max_got = 0;
  double rel() const { return max_diff / std::max(max_ref, 1e-30); }
};

// Compares got against ref elementwise (any float dtypes), leaving out flat elements [skip_begin, skip_end).
Cmp compare(const Tensor& got, const Tensor& ref, int64_t skip_begin = 0, int64_t skip_end = 0) {
  EXPECT_EQ(got.shape(), ref.shape());
  const std::vector<double> a = got.to_vector<double>(), r = ref.to_vector<double>();
  Cmp c;
  if (a.size() != r.size()) {
    c.max_diff = INFINITY;
    return c;
  }
  int64_t n = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(a.size()); ++i) {
    if (i >= skip_begin && i < skip_end) continue;
    const double d = std::isfinite(a[i]) ? std::abs(a[i] - r[i]) : INFINITY;
    c.max_diff = std::max(c.max_diff, d);
    c.max_ref = std::max(c.max_ref, std::abs(r[i]));
    c.max_got = std::max(c.max_got, std::abs(a[i]));
    c.mean_diff += d;
    ++n;
  }
  if (n) c.mean_diff /= static_cast<double>(n);
  return c;
}

bool is_c_attn_bias(const std::string& name) {
  const std::string suffix = "attn.c_attn.bias";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What one engine run produces: the first step's logits, loss and gradients, the losses before
// each AdamW step and the parameters after the last.
struct Run {
  Tensor logits;
  double loss = 0;
  std::vector<std::pair<std::string, Tensor>> grads;
  std::vector<double> losses;
  std::vector<std::pair<std::string, Tensor>> params;
};

Run run_engine(bool bf16) {
  auto model = make_model();
  const Tensor& idx = fixture().at("idx");
  const Tensor& targets = fixture().at("targets");
  optim::AdamW opt(model->parameters(),
                   {.lr = kLr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0});
  Run r;
  for (int k = 0; k < kSteps; ++k) {
    opt.zero_grad();
    Tensor loss;
    {
      std::optional<autocast::Guard> guard;
      if (bf16) guard.emplace(DType::bfloat16);
      if (k == 0) r.logits = model->forward(idx).detach();
      loss = model->loss(idx, targets);
    }
    loss.backward();
    r.losses.push_back(loss.item());
    if (k == 0) {
      r.loss = loss.item();
      for (const auto& [name, p] : model->named_parameters())
        r.grads.emplace_back(name, p.grad().defined() ? p.grad().clone() : Tensor());
    }
    opt.step();
  }
  for (const auto& [name, p] : model->named_parameters()) r.params.emplace_back(name, p.detach().clone());
  return r;
}

const Run& engine_run(bool bf16) {
  static std::map<bool, Run> runs;
  auto it = runs.find(bf16);
  if (it == runs.end()) it = runs.emplace(bf16, run_engine(bf16)).first;
  return it->second;
}

struct Tolerances {
  double logits_rel, loss_rel, grad_rel, losses_rel;
  double p10_max_over_lr, p10_mean_over_lr, kbias_max_over_lr;
};
// Measured on CPU (OpenBLAS), see the printed lines: float32 logits 1.1e-7, loss 0, worst gradient
// 7.4e-7, losses 6.4e-8, parameters max 0.013 lr / mean 9e-5 lr, k bias 0.008 lr; bfloat16 logits
// 4.8e-3, loss 2.7e-5, worst gradient 7.4e-3, losses 7.1e-5, parameters max 2.8 lr / mean 0.049 lr,
// k bias 7.1 lr. The bounds leave ~5-10x room (other GEMM backends and summation orders).
constexpr Tolerances kFloat32{1e-6, 1e-6, 1e-5, 1e-6, 0.05, 1e-3, 1.0};
constexpr Tolerances kBFloat16{3e-2, 5e-4, 3e-2, 5e-4, 10.0, 0.15, 20.0};

const char* tag(bool bf16) { return bf16 ? "bf16" : "f32"; }

void check_logits_and_loss(bool bf16, const Tolerances& tol) {
  const Run& r = engine_run(bf16);
  const Cmp c = compare(r.logits, fixture().at("logits"));
  const double ref_loss = fixture().at("loss").item();
  const double loss_rel = std::abs(r.loss - ref_loss) / std::abs(ref_loss);
  std::printf("[gpt2 parity] %s logits rel %.3g (max|d| %.3g, max|ref| %.3g); loss %.9g vs %.9g rel %.3g\n", tag(bf16),
              c.rel(), c.max_diff, c.max_ref, r.loss, ref_loss, loss_rel);
  EXPECT_LE(c.rel(), tol.logits_rel) << "logits";
  EXPECT_LE(loss_rel, tol.loss_rel) << "loss " << r.loss << " vs " << ref_loss;
  // bfloat16 products round to ~3 significant digits: a float32-exact answer means autocast did nothing.
  if (bf16) {
    EXPECT_GT(c.rel(), 1e-4) << "the logits under autocast(bfloat16) match float32 exactly";
  }
}

void check_gradients(bool bf16, const Tolerances& tol) {
  const Run& r = engine_run(bf16);
  std::string worst_name;
  double worst = 0;
  for (const auto& [name, g] : r.grads) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(g.defined()) << "no gradient for " << name;
    EXPECT_EQ(g.dtype(), DType::float32) << "gradients of float32 parameters are float32";
    const Cmp c = compare(g, fixture().at("g." + name));
    EXPECT_LE(c.rel(), tol.grad_rel) << "d loss / d " << name << ": max|d| " << c.max_diff << ", max|ref| "
                                     << c.max_ref;
    if (c.rel() > worst) worst = c.rel(), worst_name = name;
  }
  std::printf("[gpt2 parity] %s gradients: worst rel %.3g (%s) over %zu tensors\n", tag(bf16), worst,
              worst_name.c_str(), r.grads.size());
}

void check_adamw(bool bf16, const Tolerances& tol) {
  const Run& r = engine_run(bf16);
  const std::vector<double> ref_losses = fixture().at("losses").to_vector<double>();
  ASSERT_EQ(r.losses.size(), ref_losses.size());
  double worst_loss = 0;
  for (size_t k = 0; k < ref_losses.size(); ++k) {
    const double rel = std::abs(r.losses[k] - ref_losses[k]) / std::abs(ref_losses[k]);
    EXPECT_LE(rel, tol.losses_rel) << "loss before step " << k << ": " << r.losses[k] << " vs " << ref_losses[k];
    worst_loss = std::max(worst_loss, rel);
  }
  EXPECT_LT(r.losses.back(), r.losses.front()) << "10 AdamW steps on one batch lower the loss";
  const int64_t c_embd = meta_int("n_embd");
  double worst_max = 0, worst_mean = 0, kbias = 0;
  std::string worst_name;
  for (const auto& [name, p] : r.params) {
    SCOPED_TRACE(name);
    const Tensor& ref = fixture().at("p10." + name);
    const bool kb = is_c_attn_bias(name);
    const Cmp c = kb ? compare(p, ref, c_embd, 2 * c_embd) : compare(p, ref);
    EXPECT_LE(c.max_diff / kLr, tol.p10_max_over_lr) << "max |p10 - ref| / lr";
    EXPECT_LE(c.mean_diff / kLr, tol.p10_mean_over_lr) << "mean |p10 - ref| / lr";
    if (c.max_diff / kLr > worst_max) worst_max = c.max_diff / kLr, worst_name = name;
    worst_mean = std::max(worst_mean, c.mean_diff / kLr);
    if (kb) {
      const double k_max = compare(p.narrow(0, c_embd, c_embd), zeros({c_embd})).max_diff;
      EXPECT_LE(k_max / kLr, tol.kbias_max_over_lr) << "k bias (zero gradient in exact arithmetic) moved";
      kbias = std::max(kbias, k_max / kLr);
    }
  }
  std::printf("[gpt2 parity] %s AdamW: losses worst rel %.3g (%.7g -> %.7g); params after %d steps: worst max %.3g lr "
              "(%s), worst mean %.3g lr; k bias |p| max %.3g lr\n",
              tag(bf16), worst_loss, r.losses.front(), r.losses.back(), kSteps, worst_max, worst_name.c_str(),
              worst_mean, kbias);
}

TEST(GPT2Parity, ParametersMatchTheFixtureByName) {
  nn::GPT2 model(fixture_config());
  std::set<std::string> fixture_names;
  for (const auto& [key, t] : fixture().tensors)
    if (key.rfind("p.", 0) == 0) fixture_names.insert(key.substr(2));
  std::set<std::string> model_names;
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(model_names.insert(name).second) << "duplicate parameter " << name;
    ASSERT_TRUE(fixture_names.count(name)) << "the fixture has no parameter " << name;
    EXPECT_EQ(p.shape(), fixture().at("p." + name).shape()) << name;
    EXPECT_EQ(p.dtype(), DType::float32) << name;
  }
  EXPECT_EQ(model_names, fixture_names) << "nanoGPT's names, lm_head tied to wte (no entry of its own)";
  EXPECT_EQ(fixture().metadata.at("optimizer"),
            R"(AdamW {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.0, "amsgrad": false})")
      << "the script's optimizer settings changed: update run_engine";
  EXPECT_EQ(meta_int("steps"), kSteps);
}

TEST(GPT2Parity, Float32LogitsAndLoss) { check_logits_and_loss(false, kFloat32); }
TEST(GPT2Parity, Float32Gradients) { check_gradients(false, kFloat32); }
TEST(GPT2Parity, Float32AdamWTenSteps) { check_adamw(false, kFloat32); }

TEST(GPT2Parity, BFloat16AutocastLogitsAndLoss) { check_logits_and_loss(true, kBFloat16); }
TEST(GPT2Parity, BFloat16AutocastGradients) { check_gradients(true, kBFloat16); }
TEST(GPT2Parity, BFloat16AutocastAdamWTenSteps) { check_adamw(true, kBFloat16); }

}  // namespace
