// The GPT-2 parity harness shared by tests/test_gpt2_parity.cpp (CPU) and
// tests/test_gpt2_parity_cuda.cpp (the same checks on a CUDA device, results
// copied back to the CPU for the comparison). See tests/test_gpt2_parity.cpp
// for the fixture, the measures and the evidence behind the tolerances.
#pragma once

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

namespace zae::test::gpt2_parity {

using namespace zae;

constexpr double kLr = 1e-3;
constexpr int kSteps = 10;

inline const Fixture &fixture() {
  static const Fixture fx = load_fixture("gpt2_debug");
  return fx;
}

inline int64_t meta_int(const std::string &key) {
  return std::stoll(fixture().metadata.at(key));
}

inline nn::GPT2Config fixture_config() {
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
inline std::unique_ptr<nn::GPT2> make_model() {
  auto model = std::make_unique<nn::GPT2>(fixture_config());
  NoGradGuard no_grad;
  for (const auto &[name, p] : model->named_parameters()) {
    const Tensor &src = fixture().at("p." + name);
    ZAE_CHECK(src.shape() == p.shape(), "parameter ", name, ": model shape ",
              p.shape(), ", fixture shape ", src.shape());
    Tensor dst = p;
    dst.copy_(src);
  }
  return model;
}

struct Cmp {
  double max_diff = 0, max_ref = 0, mean_diff = 0, max_got = 0;
  double rel() const { return max_diff / std::max(max_ref, 1e-30); }
};

// Compares got against ref elementwise (any float dtypes), leaving out flat
// elements [skip_begin, skip_end).
inline Cmp compare(const Tensor &got, const Tensor &ref, int64_t skip_begin = 0,
                   int64_t skip_end = 0) {
  EXPECT_EQ(got.shape(), ref.shape());
  const std::vector<double> a = got.to_vector<double>(),
                            r = ref.to_vector<double>();
  Cmp c;
  if (a.size() != r.size()) {
    c.max_diff = INFINITY;
    return c;
  }
  int64_t n = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(a.size()); ++i) {
    if (i >= skip_begin && i < skip_end)
      continue;
    const double d = std::isfinite(a[i]) ? std::abs(a[i] - r[i]) : INFINITY;
    c.max_diff = std::max(c.max_diff, d);
    c.max_ref = std::max(c.max_ref, std::abs(r[i]));
    c.max_got = std::max(c.max_got, std::abs(a[i]));
    c.mean_diff += d;
    ++n;
  }
  if (n)
    c.mean_diff /= static_cast<double>(n);
  return c;
}

inline bool is_c_attn_bias(const std::string &name) {
  const std::string suffix = "attn.c_attn.bias";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What one engine run produces: the first step's logits, loss and gradients,
// the losses before each AdamW step and the parameters after the last.
struct Run {
  Tensor logits;
  double loss = 0;
  std::vector<std::pair<std::string, Tensor>> grads;
  std::vector<double> losses;
  std::vector<std::pair<std::string, Tensor>> params;
};

inline Run run_engine(bool bf16, Device device) {
  auto model = make_model();
  model->to(device);
  const Tensor idx = fixture().at("idx").to(device);
  const Tensor targets = fixture().at("targets").to(device);
  optim::AdamW opt(model->parameters(), {.lr = kLr,
                                         .beta1 = 0.9,
                                         .beta2 = 0.999,
                                         .eps = 1e-8,
                                         .weight_decay = 0.0});
  Run r;
  for (int k = 0; k < kSteps; ++k) {
    opt.zero_grad();
    Tensor loss;
    {
      std::optional<autocast::Guard> guard;
      if (bf16)
        guard.emplace(DType::bfloat16);
      if (k == 0)
        r.logits = model->forward(idx).detach().to(Device::cpu());
      loss = model->loss(idx, targets);
    }
    loss.backward();
    r.losses.push_back(loss.item());
    if (k == 0) {
      r.loss = loss.item();
      for (const auto &[name, p] : model->named_parameters())
        r.grads.emplace_back(name, p.grad().defined()
                                       ? p.grad().to(Device::cpu()).clone()
                                       : Tensor());
    }
    opt.step();
  }
  for (const auto &[name, p] : model->named_parameters())
    r.params.emplace_back(name, p.detach().to(Device::cpu()).clone());
  return r;
}

inline const Run &engine_run(bool bf16, Device device) {
  static std::map<std::pair<bool, std::string>, Run> runs;
  const auto key = std::make_pair(bf16, device.str());
  auto it = runs.find(key);
  if (it == runs.end())
    it = runs.emplace(key, run_engine(bf16, device)).first;
  return it->second;
}

struct Tolerances {
  double logits_rel, loss_rel, grad_rel, losses_rel;
  double p10_max_over_lr, p10_mean_over_lr, kbias_max_over_lr;
};
// Measured on CPU (OpenBLAS), see the printed lines: float32 logits 1.1e-7,
// loss 0, worst gradient 7.4e-7, losses 6.4e-8, parameters max 0.013 lr / mean
// 9e-5 lr, k bias 0.008 lr; bfloat16 logits 4.8e-3, loss 2.7e-5, worst
// gradient 7.4e-3, losses 7.1e-5, parameters max 2.8 lr / mean 0.049 lr, k
// bias 7.1 lr. The bounds leave ~5-10x room (other GEMM backends and summation
// orders).
constexpr Tolerances kFloat32{1e-6, 1e-6, 1e-5, 1e-6, 0.05, 1e-3, 1.0};
constexpr Tolerances kBFloat16{3e-2, 5e-4, 3e-2, 5e-4, 10.0, 0.15, 20.0};

inline std::string tag(bool bf16, Device device) {
  return std::string(bf16 ? "bf16" : "f32") + " " + device.str();
}

inline void check_logits_and_loss(bool bf16, const Tolerances &tol,
                                  Device device = Device::cpu()) {
  const Run &r = engine_run(bf16, device);
  const Cmp c = compare(r.logits, fixture().at("logits"));
  const double ref_loss = fixture().at("loss").item();
  const double loss_rel = std::abs(r.loss - ref_loss) / std::abs(ref_loss);
  std::printf("[gpt2 parity] %s logits rel %.3g (max|d| %.3g, max|ref| %.3g); "
              "loss %.9g vs %.9g rel %.3g\n",
              tag(bf16, device).c_str(), c.rel(), c.max_diff, c.max_ref, r.loss,
              ref_loss, loss_rel);
  EXPECT_LE(c.rel(), tol.logits_rel) << "logits";
  EXPECT_LE(loss_rel, tol.loss_rel) << "loss " << r.loss << " vs " << ref_loss;
  // bfloat16 products round to ~3 significant digits: a float32-exact answer
  // means autocast did nothing.
  if (bf16) {
    EXPECT_GT(c.rel(), 1e-4)
        << "the logits under autocast(bfloat16) match float32 exactly";
  }
}

inline void check_gradients(bool bf16, const Tolerances &tol,
                            Device device = Device::cpu()) {
  const Run &r = engine_run(bf16, device);
  std::string worst_name;
  double worst = 0;
  for (const auto &[name, g] : r.grads) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(g.defined()) << "no gradient for " << name;
    EXPECT_EQ(g.dtype(), DType::float32)
        << "gradients of float32 parameters are float32";
    const Cmp c = compare(g, fixture().at("g." + name));
    EXPECT_LE(c.rel(), tol.grad_rel)
        << "d loss / d " << name << ": max|d| " << c.max_diff << ", max|ref| "
        << c.max_ref;
    if (c.rel() > worst)
      worst = c.rel(), worst_name = name;
  }
  std::printf(
      "[gpt2 parity] %s gradients: worst rel %.3g (%s) over %zu tensors\n",
      tag(bf16, device).c_str(), worst, worst_name.c_str(), r.grads.size());
}

inline void check_adamw(bool bf16, const Tolerances &tol,
                        Device device = Device::cpu()) {
  const Run &r = engine_run(bf16, device);
  const std::vector<double> ref_losses =
      fixture().at("losses").to_vector<double>();
  ASSERT_EQ(r.losses.size(), ref_losses.size());
  double worst_loss = 0;
  for (size_t k = 0; k < ref_losses.size(); ++k) {
    const double rel =
        std::abs(r.losses[k] - ref_losses[k]) / std::abs(ref_losses[k]);
    EXPECT_LE(rel, tol.losses_rel) << "loss before step " << k << ": "
                                   << r.losses[k] << " vs " << ref_losses[k];
    worst_loss = std::max(worst_loss, rel);
  }
  EXPECT_LT(r.losses.back(), r.losses.front())
      << "10 AdamW steps on one batch lower the loss";
  const int64_t c_embd = meta_int("n_embd");
  double worst_max = 0, worst_mean = 0, kbias = 0;
  std::string worst_name;
  for (const auto &[name, p] : r.params) {
    SCOPED_TRACE(name);
    const Tensor &ref = fixture().at("p10." + name);
    const bool kb = is_c_attn_bias(name);
    const Cmp c = kb ? compare(p, ref, c_embd, 2 * c_embd) : compare(p, ref);
    EXPECT_LE(c.max_diff / kLr, tol.p10_max_over_lr) << "max |p10 - ref| / lr";
    EXPECT_LE(c.mean_diff / kLr, tol.p10_mean_over_lr)
        << "mean |p10 - ref| / lr";
    if (c.max_diff / kLr > worst_max)
      worst_max = c.max_diff / kLr, worst_name = name;
    worst_mean = std::max(worst_mean, c.mean_diff / kLr);
    if (kb) {
      const double k_max =
          compare(p.narrow(0, c_embd, c_embd), zeros({c_embd})).max_diff;
      EXPECT_LE(k_max / kLr, tol.kbias_max_over_lr)
          << "k bias (zero gradient in exact arithmetic) moved";
      kbias = std::max(kbias, k_max / kLr);
    }
  }
  std::printf("[gpt2 parity] %s AdamW: losses worst rel %.3g (%.7g -> %.7g); "
              "params after %d steps: worst max %.3g lr "
              "(%s), worst mean %.3g lr; k bias |p| max %.3g lr\n",
              tag(bf16, device).c_str(), worst_loss, r.losses.front(),
              r.losses.back(), kSteps, worst_max, worst_name.c_str(),
              worst_mean, kbias);
}

} // namespace zae::test::gpt2_parity
