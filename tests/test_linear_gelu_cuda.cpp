// CUDA linear_gelu (ctest label gpu) against its CPU twin on the same random inputs:
// - the fused route (cuBLASLt bias+GELU / GELU epilogue: no grad, or recompute) and the
//   saved-pre-activation route (bias GEMM + elementwise GELU), forward and the gradients
//   of x, weight and bias, for float32 / float64 / bfloat16 / float16;
// - with and without bias, 1-D / 2-D / 3-D inputs, a transposed x and weight (the fused
//   route reads them with trans flags), GPT-2-sized rows, no rows;
// - bfloat16 autocast on the device; a device mismatch is a clear error.
// Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::backward_both_weighted;
using test::cuda_matches_cpu;
using test::LeafPair;
using test::poison_cuda_like;
using test::random_leaf_pair;

double rtol_for(DType dt) {
  return test::tolerance_for(dt,
                             {.float64 = 1e-10, .float32 = 1e-5, .bfloat16 = 2e-2, .float16 = 3e-3, .integral = 0.0});
}

struct Case {
  Shape x_shape;  // (..., in)
  int64_t out;
  bool bias = true;
  bool x_transposed = false;  // x is the transpose (first two dims) of a contiguous base
  bool w_transposed = false;  // weight is the transpose of a contiguous (in, out) base
};

const Case kCases[] = {
    {{5, 7}, 9},
    {{5, 7}, 9, false},
    {{4, 12, 64}, 256},
    {{4, 12, 64}, 256, false, true},
    {{33, 17}, 40, true, true, true},
    {{7}, 4},
    {{2, 3, 5, 6}, 3},
    {{0, 4}, 3},
    {{256, 96}, 384, true, false, true},
};

// mode 0: no grad (fused epilogue), 1: grad, h saved (bias GEMM + GELU kernel),
// 2: grad with recompute (fused epilogue forward, recomputed h in backward).
void check_case(const Case& c, DType dt, int mode, uint64_t& seed) {
  SCOPED_TRACE(shape_str(c.x_shape) + " -> " + std::to_string(c.out) + (c.bias ? " bias" : " no-bias") +
               (c.x_transposed ? " x^T" : "") + (c.w_transposed ? " W^T" : "") + " " +
               std::string(dtype_name(dt)) + " mode " + std::to_string(mode));
  const int64_t in = c.x_shape.back();
  Shape xb = c.x_shape;
  if (c.x_transposed) std::swap(xb[0], xb[1]);
  LeafPair x = random_leaf_pair(xb, dt, ++seed);
  LeafPair w = random_leaf_pair(c.w_transposed ? Shape{in, c.out} : Shape{c.out, in}, dt, ++seed, 0.3);
  LeafPair b = random_leaf_pair({c.out}, dt, ++seed, 0.5);
  auto view_x = [&](const Tensor& t) { return c.x_transposed ? t.transpose(0, 1) : t; };
  auto view_w = [&](const Tensor& t) { return c.w_transposed ? t.t() : t; };
  const LinearGeluOptions opts{.recompute = mode == 2};
  auto fn = [&](const Tensor& xt, const Tensor& wt, const Tensor& bt) {
    return linear_gelu(view_x(xt), view_w(wt), c.bias ? bt : Tensor(), opts);
  };
  if (mode == 0) {
    NoGradGuard no_grad;
    Tensor want = fn(x.cpu, w.cpu, b.cpu);
    poison_cuda_like(want);
    EXPECT_TRUE(cuda_matches_cpu(fn(x.cuda, w.cuda, b.cuda), want, rtol_for(dt)));
    return;
  }
  Tensor want = fn(x.cpu, w.cpu, b.cpu);
  poison_cuda_like(want);
  Tensor got = fn(x.cuda, w.cuda, b.cuda);
  EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
  if (want.numel() == 0) return;
  backward_both_weighted(want, got, ++seed);
  EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 2 * rtol_for(dt))) << "dx";
  EXPECT_TRUE(cuda_matches_cpu(w.cuda.grad(), w.cpu.grad(), 2 * rtol_for(dt))) << "dweight";
  if (c.bias) {
    EXPECT_TRUE(cuda_matches_cpu(b.cuda.grad(), b.cpu.grad(), 2 * rtol_for(dt))) << "dbias";
  }
}

TEST(LinearGeluCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 1;
  for (const Case& c : kCases)
    for (DType dt : test::kFloatingDTypes)
      for (int mode : {0, 1, 2}) check_case(c, dt, mode, seed);
}

TEST(LinearGeluCuda, RecomputeMatchesSavedOnTheDevice) {
  ZAE_SKIP_WITHOUT_CUDA();
  // Both routes on the device: the epilogue GELU and the GELU kernel agree, and the
  // recomputed pre-activation gives the gradients of the saved one.
  LeafPair x = random_leaf_pair({8, 32, 128}, DType::float32, 71);
  LeafPair w = random_leaf_pair({512, 128}, DType::float32, 72, 0.1);
  LeafPair b = random_leaf_pair({512}, DType::float32, 73, 0.5);
  Tensor saved = linear_gelu(x.cuda, w.cuda, b.cuda);
  Tensor g = test::random_tensor(saved.shape(), DType::float32, 74).to(Device::cuda());
  saved.backward(g);
  Tensor dx = x.cuda.grad().clone(), dw = w.cuda.grad().clone(), db = b.cuda.grad().clone();
  x.cuda.set_grad(Tensor());
  w.cuda.set_grad(Tensor());
  b.cuda.set_grad(Tensor());
  Tensor recomputed = linear_gelu(x.cuda, w.cuda, b.cuda, {.recompute = true});
  recomputed.backward(g);
  EXPECT_TRUE(cuda_matches_cpu(recomputed, saved.to(Device::cpu()), 1e-5));
  EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), dx.to(Device::cpu()), 1e-5));
  EXPECT_TRUE(cuda_matches_cpu(w.cuda.grad(), dw.to(Device::cpu()), 1e-5));
  EXPECT_TRUE(cuda_matches_cpu(b.cuda.grad(), db.to(Device::cpu()), 1e-5));
}

TEST(LinearGeluCuda, Bfloat16AutocastMatchesCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "save");
    LeafPair x = random_leaf_pair({4, 16, 64}, DType::float32, 81);
    LeafPair w = random_leaf_pair({256, 64}, DType::float32, 82, 0.2);
    LeafPair b = random_leaf_pair({256}, DType::float32, 83, 0.5);
    Tensor want, got;
    {
      autocast::Guard guard(DType::bfloat16);
      want = linear_gelu(x.cpu, w.cpu, b.cpu, {.recompute = recompute});
      got = linear_gelu(x.cuda, w.cuda, b.cuda, {.recompute = recompute});
    }
    EXPECT_EQ(got.dtype(), DType::bfloat16);
    EXPECT_TRUE(cuda_matches_cpu(got, want, 2e-2));
    backward_both_weighted(want, got, 84);
    EXPECT_EQ(w.cuda.grad().dtype(), DType::float32);
    EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 4e-2)) << "dx";
    EXPECT_TRUE(cuda_matches_cpu(w.cuda.grad(), w.cpu.grad(), 4e-2)) << "dweight";
    EXPECT_TRUE(cuda_matches_cpu(b.cuda.grad(), b.cpu.grad(), 4e-2)) << "dbias";
  }
}

TEST(LinearGeluCuda, DeviceMismatchIsAnError) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = test::random_tensor({4, 6}, DType::float32, 1).to(Device::cuda());
  Tensor w = test::random_tensor({3, 6}, DType::float32, 2), b = test::random_tensor({3}, DType::float32, 3);
  test::expect_throws_with([&] { linear_gelu(x, w, b); }, {"linear_gelu", "device mismatch", "cuda", "cpu"});
  test::expect_throws_with([&] { linear_gelu(x, w.to(Device::cuda()), b); },
                           {"linear_gelu", "device mismatch", "bias"});
}

}  // namespace
