// nn::GPT2 against PyTorch's debug state (tests/fixtures/gen_gpt2.py ->
// gpt2_debug.safetensors, the analogue of llm.c's gpt2_124M_debug_state.bin for
// a tiny config: vocab 64, block 16, 2 layers, 4 heads, 32 channels, batch 2 x
// 8). The reference is computed in float64 from float32 parameters and stored
// as float32, so the differences measure the engine alone.
//
// The model is built with the fixture's config and every "p.<name>" tensor is
// copied into the parameter of that name (named_parameters: nanoGPT's names,
// lm_head tied to wte). Then:
//   - logits and loss of forward(idx), every parameter gradient of the loss;
//   - 10 steps of the engine's AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8,
//   weight_decay 0:
//     torch.optim.AdamW's settings in the script) on the same batch: the 10
//     losses (before each step) and the parameters after the last step.
// Float32 is checked tight, bfloat16 autocast (forward and loss inside
// autocast::Guard, float32 master weights and gradients) loose, against the
// same float32 reference. Measures: "rel" of a tensor = max |engine - ref| /
// max |ref| over the tensor; parameters after the steps in units of lr (max and
// mean |engine - ref| / lr), since Adam turns gradients whose size is at the
// rounding level into full lr-sized steps of either sign. The k third of each
// attn.c_attn.bias is exempt from that comparison: its gradient is zero in
// exact arithmetic (a per-query constant cancels in the softmax), so what Adam
// does with its rounding noise is implementation noise; it is only bounded.
// Evidence for the tolerances (the script's metadata, PyTorch 1.13 on CPU
// against the same float64 reference): float32 logits 9e-8, loss 5e-9, worst
// gradient 6e-7, losses 8e-8, parameters after 10 steps max 0.013 lr / mean <=
// 1e-4 lr; bfloat16 autocast logits 4.8e-3, loss 4e-5, worst gradient 1.1e-2,
// losses 1.2e-4, parameters max 2.9 lr / mean <= 0.05 lr. Each test prints its
// measured worst values ("[gpt2 parity] ...").
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/support/gpt2_parity.h"

namespace {

using namespace zae;
using namespace zae::test::gpt2_parity;

TEST(GPT2Parity, ParametersMatchTheFixtureByName) {
  nn::GPT2 model(fixture_config());
  std::set<std::string> fixture_names;
  for (const auto &[key, t] : fixture().tensors)
    if (key.rfind("p.", 0) == 0)
      fixture_names.insert(key.substr(2));
  std::set<std::string> model_names;
  for (const auto &[name, p] : model.named_parameters()) {
    EXPECT_TRUE(model_names.insert(name).second)
        << "duplicate parameter " << name;
    ASSERT_TRUE(fixture_names.count(name))
        << "the fixture has no parameter " << name;
    EXPECT_EQ(p.shape(), fixture().at("p." + name).shape()) << name;
    EXPECT_EQ(p.dtype(), DType::float32) << name;
  }
  EXPECT_EQ(model_names, fixture_names)
      << "nanoGPT's names, lm_head tied to wte (no entry of its own)";
  EXPECT_EQ(
      fixture().metadata.at("optimizer"),
      R"(AdamW {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.0, "amsgrad": false})")
      << "the script's optimizer settings changed: update run_engine";
  EXPECT_EQ(meta_int("steps"), kSteps);
}

TEST(GPT2Parity, Float32LogitsAndLoss) {
  check_logits_and_loss(false, kFloat32);
}
TEST(GPT2Parity, Float32Gradients) { check_gradients(false, kFloat32); }
TEST(GPT2Parity, Float32AdamWTenSteps) { check_adamw(false, kFloat32); }

TEST(GPT2Parity, BFloat16AutocastLogitsAndLoss) {
  check_logits_and_loss(true, kBFloat16);
}
TEST(GPT2Parity, BFloat16AutocastGradients) {
  check_gradients(true, kBFloat16);
}
TEST(GPT2Parity, BFloat16AutocastAdamWTenSteps) {
  check_adamw(true, kBFloat16);
}

} // namespace
