// GradScaler on CUDA tensors (label gpu; skips without a device): the inf/NaN check and
// the exact float32-reciprocal unscale of tests/test_grad_scaler.cpp on the device.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "engine/zae.h"
#include "nn/optim/grad_scaler.h"
#include "nn/optim/sgd.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using optim::GradScaler;

TEST(GradScaler, CudaGradientsAreCheckedAndUnscaled) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Device dev = Device::cuda();
  GradScaler scaler({.init_scale = 3.0});
  const float inv = static_cast<float>(1.0 / 3.0);
  Tensor g = test::random_tensor({5000}, DType::float32, 21);
  Tensor p = zeros({5000}, {.device = dev, .requires_grad = true});
  Tensor q = zeros({7}, {.dtype = DType::bfloat16, .device = dev, .requires_grad = true});
  p.set_grad(g.to(dev));
  q.set_grad(ones({7}, {.dtype = DType::bfloat16, .device = dev}));
  optim::SGD opt({p, q}, {.lr = 0.1});
  scaler.unscale_(opt);
  EXPECT_FALSE(scaler.found_inf());
  std::vector<float> in = g.to_vector<float>(), out = p.grad().to_vector<float>();
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], in[i] * inv) << i;
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();

  std::vector<float> bad(5000, 1.0f);
  bad[4321] = std::numeric_limits<float>::quiet_NaN();
  p.set_grad(tensor(bad, {5000}).to(dev));
  std::vector<double> before = p.to_vector<double>();
  EXPECT_FALSE(scaler.step(opt));
  EXPECT_EQ(p.to_vector<double>(), before);
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 1.5);
}

}  // namespace
