// CUDA scaled_dot_product_attention (flash attention kernels, ctest label gpu) against
// its CPU twin on the same random inputs, forward and backward (gradients through
// autograd on both devices): causal and not, odd sequence lengths that leave partial
// tiles (1, 7, 33, 130, Tq != Tk), every padded head-dim class (8, 32, 40, 64, 100, 128),
// non-contiguous inputs, a custom scale; float32, bfloat16 and float16; float64 and
// D > 128 are clear errors on CUDA. Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/ops/nn.h"
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
  return test::tolerance_for(dt, {.float64 = 1e-10, .float32 = 1e-5, .bfloat16 = 2e-2, .float16 = 4e-3,
                                  .integral = 0.0});
}

struct AttnCase {
  int64_t bh0, bh1, tq, tk, d;
  bool causal;
  bool transposed = false;  // q, k, v are (B, T, H, D) leaves seen through transpose(1, 2)
  double scale = 0.0;       // 0: the default 1 / sqrt(D)
};

TEST(AttentionCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const AttnCase cases[] = {
      {1, 1, 1, 1, 8, false},     {2, 3, 7, 7, 8, true},       {2, 2, 33, 33, 64, true},
      {1, 3, 130, 130, 64, true}, {1, 2, 130, 130, 64, false}, {2, 2, 5, 70, 32, false},
      {1, 2, 70, 9, 40, false},   {1, 2, 65, 65, 100, true},   {1, 1, 47, 47, 128, true},
      {2, 2, 33, 33, 16, true, true}, {1, 2, 40, 40, 64, false, true, 0.3},
  };
  uint64_t seed = 1;
  for (const AttnCase& c : cases)
    for (DType dt : {DType::float32, DType::bfloat16, DType::float16}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " bh " + std::to_string(c.bh0) + "x" + std::to_string(c.bh1) +
                   " tq " + std::to_string(c.tq) + " tk " + std::to_string(c.tk) + " d " + std::to_string(c.d) +
                   (c.causal ? " causal" : "") + (c.transposed ? " transposed" : ""));
      auto leaf = [&](int64_t t) {
        return random_leaf_pair(c.transposed ? Shape{c.bh0, t, c.bh1, c.d} : Shape{c.bh0, c.bh1, t, c.d}, dt,
                                ++seed);
      };
      LeafPair q = leaf(c.tq), k = leaf(c.tk), v = leaf(c.tk);
      auto view = [&](const Tensor& x) { return c.transposed ? x.transpose(1, 2) : x; };
      AttentionOptions opts{.causal = c.causal};
      if (c.scale != 0.0) opts.scale = c.scale;
      Tensor want = scaled_dot_product_attention(view(q.cpu), view(k.cpu), view(v.cpu), opts);
      poison_cuda_like(want);
      Tensor got = scaled_dot_product_attention(view(q.cuda), view(k.cuda), view(v.cuda), opts);
      EXPECT_TRUE(cuda_matches_cpu(got, want, rtol_for(dt)));
      backward_both_weighted(want, got, ++seed);
      EXPECT_TRUE(cuda_matches_cpu(q.cuda.grad(), q.cpu.grad(), 2 * rtol_for(dt))) << "dq";
      EXPECT_TRUE(cuda_matches_cpu(k.cuda.grad(), k.cpu.grad(), 2 * rtol_for(dt))) << "dk";
      EXPECT_TRUE(cuda_matches_cpu(v.cuda.grad(), v.cpu.grad(), 2 * rtol_for(dt))) << "dv";
    }
}

TEST(AttentionCuda, UnsupportedCasesAreClearErrors) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = test::random_tensor({1, 2, 4, 8}, DType::float64).to(Device::cuda());
  test::expect_throws_with([&] { scaled_dot_product_attention(x, x, x); }, {"float64", "cuda"});
  Tensor y = test::random_tensor({1, 2, 4, 129}).to(Device::cuda());
  test::expect_throws_with([&] { scaled_dot_product_attention(y, y, y); }, {"head dim", "129"});
  Tensor z = test::random_tensor({1, 2, 4, 8});
  test::expect_throws_with([&] { scaled_dot_product_attention(z.to(Device::cuda()), z, z); }, {"device mismatch"});
}

}  // namespace
