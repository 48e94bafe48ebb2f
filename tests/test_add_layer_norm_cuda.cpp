// CUDA add_layer_norm (ctest label gpu) against its CPU twin on the same random inputs:
// sum and out forward, and the gradients of x, residual, weight and bias with upstream
// gradients into sum only, out only and both (through autograd on both devices); short
// rows (warp per row), long rows (block per row), many rows (the chunked dweight / dbias
// sums), several normalized dims, no rows; float32 / float64 / bfloat16 / float16; the
// CUDA dweight / dbias are bitwise deterministic. Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/autograd/engine.h"
#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/nn.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using test::cuda_matches_cpu;
using test::LeafPair;
using test::poison_cuda_like;
using test::random_leaf_pair;

double rtol_for(DType dt) { return test::tolerance_for(dt, test::kRowReductionTolerance); }

struct Case {
  Shape shape;
  Shape normalized;
  bool weight = true, bias = true;
};

TEST(AddLayerNormCuda, ForwardAndBackwardMatchCpu) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Case cases[] = {
      {{1, 1}, {1}},       {{5, 7}, {7}},           {{3, 768}, {768}, true, false}, {{64, 1023}, {1023}},
      {{2, 4097}, {4097}, false, false},             {{3000, 64}, {64}},             {{4, 6, 10}, {6, 10}},
      {{0, 8}, {8}},       {{7}, {7}, false, true},
  };
  uint64_t seed = 500;
  const char* modes[] = {"sum only", "out only", "both"};
  for (const Case& c : cases)
    for (DType dt : test::kFloatingDTypes)
      for (int mode = 0; mode < 3; ++mode) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " shape " + shape_str(c.shape) + " normalized " +
                     shape_str(c.normalized) + (c.weight ? " weight" : "") + (c.bias ? " bias" : "") + " " +
                     modes[mode]);
        LeafPair x = random_leaf_pair(c.shape, dt, ++seed, 2.0, 0.5);
        LeafPair r = random_leaf_pair(c.shape, dt, ++seed);
        LeafPair w = random_leaf_pair(c.normalized, dt, ++seed, 0.5, 1.0);
        LeafPair b = random_leaf_pair(c.normalized, dt, ++seed);
        AddLayerNormResult want =
            add_layer_norm(x.cpu, r.cpu, c.normalized, c.weight ? w.cpu : Tensor(), c.bias ? b.cpu : Tensor());
        poison_cuda_like(want.out);
        AddLayerNormResult got =
            add_layer_norm(x.cuda, r.cuda, c.normalized, c.weight ? w.cuda : Tensor(), c.bias ? b.cuda : Tensor());
        EXPECT_TRUE(cuda_matches_cpu(got.sum, want.sum, rtol_for(dt))) << "sum";
        EXPECT_TRUE(cuda_matches_cpu(got.out, want.out, rtol_for(dt))) << "out";
        Tensor gs = test::random_tensor(c.shape, dt, ++seed), go = test::random_tensor(c.shape, dt, ++seed);
        std::vector<Tensor> roots_cpu, roots_cuda, seeds_cpu, seeds_cuda;
        if (mode != 1) {
          roots_cpu.push_back(want.sum), roots_cuda.push_back(got.sum);
          seeds_cpu.push_back(gs), seeds_cuda.push_back(gs.to(Device::cuda()));
        }
        if (mode != 0) {
          roots_cpu.push_back(want.out), roots_cuda.push_back(got.out);
          seeds_cpu.push_back(go), seeds_cuda.push_back(go.to(Device::cuda()));
        }
        autograd::backward(roots_cpu, seeds_cpu);
        autograd::backward(roots_cuda, seeds_cuda);
        EXPECT_TRUE(cuda_matches_cpu(x.cuda.grad(), x.cpu.grad(), 4 * rtol_for(dt))) << "d_x";
        EXPECT_TRUE(cuda_matches_cpu(r.cuda.grad(), r.cpu.grad(), 4 * rtol_for(dt))) << "d_residual";
        if (c.weight && mode != 0) {
          EXPECT_TRUE(cuda_matches_cpu(w.cuda.grad(), w.cpu.grad(), 4 * rtol_for(dt))) << "d_weight";
        }
        if (c.bias && mode != 0) {
          EXPECT_TRUE(cuda_matches_cpu(b.cuda.grad(), b.cpu.grad(), 4 * rtol_for(dt))) << "d_bias";
        }
      }
}

TEST(AddLayerNormCuda, WeightAndBiasGradientsAreDeterministic) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor x = test::random_tensor({4099, 300}, DType::float32, 7).to(Device::cuda());
  Tensor r = test::random_tensor({4099, 300}, DType::float32, 8).to(Device::cuda());
  Tensor g = test::random_tensor({4099, 300}, DType::float32, 9).to(Device::cuda());
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Tensor w = ones({300}, {.device = Device::cuda()}).requires_grad_();
    Tensor b = zeros({300}, {.device = Device::cuda()}).requires_grad_();
    add_layer_norm(x, r, {300}, w, b).out.backward(g);
    std::vector<float> bits = w.grad().to_vector<float>();
    const std::vector<float> db = b.grad().to_vector<float>();
    bits.insert(bits.end(), db.begin(), db.end());
    runs.push_back(bits);
  }
  EXPECT_EQ(runs[0], runs[1]) << "two identical backward passes must give the same bits";
}

}  // namespace
