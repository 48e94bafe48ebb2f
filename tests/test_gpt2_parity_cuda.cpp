// The GPT-2 parity checks of tests/test_gpt2_parity.cpp on CUDA device 0 (the
// whole model against PyTorch's float64 debug state: float32 tight - cuBLAS
// without TF32 - and bfloat16 autocast loose, with the same tolerances as on
// the CPU). Skips without a device. Never run yet: no GPU has been available to
// the sessions that wrote the CUDA paths.
#include <gtest/gtest.h>

#include "tests/support/cuda_test_util.h"
#include "tests/support/gpt2_parity.h"

namespace {

using namespace zae;
using namespace zae::test::gpt2_parity;

TEST(GPT2ParityCuda, Float32LogitsAndLoss) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_logits_and_loss(false, kFloat32, Device::cuda(0));
}
TEST(GPT2ParityCuda, Float32Gradients) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_gradients(false, kFloat32, Device::cuda(0));
}
TEST(GPT2ParityCuda, Float32AdamWTenSteps) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_adamw(false, kFloat32, Device::cuda(0));
}
TEST(GPT2ParityCuda, BFloat16AutocastLogitsAndLoss) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_logits_and_loss(true, kBFloat16, Device::cuda(0));
}
TEST(GPT2ParityCuda, BFloat16AutocastGradients) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_gradients(true, kBFloat16, Device::cuda(0));
}
TEST(GPT2ParityCuda, BFloat16AutocastAdamWTenSteps) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_adamw(true, kBFloat16, Device::cuda(0));
}

} // namespace
