// engine/autocast.h: which ops run in the low precision, which in float32, what
// gradients the float32 parameters get, and how guards nest.
#include <gtest/gtest.h>

#include "engine/autocast.h"
#include "engine/zae.h"
#include "support/test_util.h"

namespace {

using namespace zae;

TEST(Autocast, LowPrecisionOpsAndFloat32Ops) {
  Tensor x = randn({4, 8});
  Tensor w = randn({3, 8});
  Tensor b = randn({3});
  EXPECT_FALSE(autocast::enabled());
  for (DType low : {DType::bfloat16, DType::float16}) {
    autocast::Guard guard(low);
    EXPECT_TRUE(autocast::enabled());
    EXPECT_EQ(autocast::low_dtype(), low);
    Tensor y = linear(x, w, b);  // float32 inputs -> low
    EXPECT_EQ(y.dtype(), low);
    EXPECT_EQ(matmul(x, w.t()).dtype(), low);
    EXPECT_EQ(relu(y).dtype(), low);                    // other ops keep their input dtype
    EXPECT_EQ(softmax(y, 1).dtype(), DType::float32);   // softmax, reductions, losses: float32
    EXPECT_EQ(log_softmax(y, 1).dtype(), DType::float32);
    EXPECT_EQ(y.sum().dtype(), DType::float32);
    EXPECT_EQ(y.mean().dtype(), DType::float32);
    EXPECT_EQ(cross_entropy(y, tensor(std::vector<int64_t>{0, 1, 2, 0}, {4})).dtype(), DType::float32);
    EXPECT_EQ(layer_norm(y, {3}).dtype(), DType::float32);
    EXPECT_EQ(mse_loss(y, zeros({4, 3})).dtype(), DType::float32);
    Tensor x64 = randn({2, 2}, {.dtype = DType::float64});
    EXPECT_EQ(matmul(x64, x64).dtype(), DType::float64);  // float64 is never touched
  }
  EXPECT_EQ(linear(x, w, b).dtype(), DType::float32);
}

TEST(Autocast, GradientsReachTheFloat32ParametersAsFloat32) {
  Tensor x = randn({16, 32});
  Tensor w = (randn({10, 32}) * 0.1).requires_grad_();
  Tensor b = zeros({10}, {.requires_grad = true});
  Tensor target = randint(0, 10, {16});
  // Reference in float32.
  cross_entropy(linear(x, w, b), target).backward();
  const Tensor gw32 = w.grad().clone(), gb32 = b.grad().clone();
  w.set_grad(Tensor());
  b.set_grad(Tensor());
  for (DType low : {DType::bfloat16, DType::float16}) {
    Tensor loss;
    {
      autocast::Guard guard(low);
      loss = cross_entropy(linear(x, w, b), target);
      loss.backward();  // inside the region: backward runs with autocast suspended
    }
    EXPECT_EQ(loss.dtype(), DType::float32);
    ASSERT_EQ(w.grad().dtype(), DType::float32);
    ASSERT_EQ(b.grad().dtype(), DType::float32);
    const double tol = low == DType::bfloat16 ? 3e-2 : 5e-3;
    EXPECT_LT(amax(abs(w.grad() - gw32)).item(), tol * amax(abs(gw32)).item()) << low;
    EXPECT_LT(amax(abs(b.grad() - gb32)).item(), tol * amax(abs(gb32)).item()) << low;
    w.set_grad(Tensor());
    b.set_grad(Tensor());
  }
}

TEST(Autocast, GuardsNestSuspendAndRejectOtherDtypes) {
  {
    autocast::Guard outer(DType::bfloat16);
    {
      autocast::Guard inner(DType::float16);
      EXPECT_EQ(autocast::low_dtype(), DType::float16);
      {
        autocast::Suspend off;
        EXPECT_FALSE(autocast::enabled());
        EXPECT_EQ(matmul(randn({2, 2}), randn({2, 2})).dtype(), DType::float32);
      }
      EXPECT_TRUE(autocast::enabled());
      {
        autocast::Guard none(DType::float32);
        EXPECT_FALSE(autocast::enabled());
      }
    }
    EXPECT_EQ(autocast::low_dtype(), DType::bfloat16);
  }
  EXPECT_FALSE(autocast::enabled());
  test::expect_throws_with([] { autocast::Guard g(DType::int32); }, {"autocast", "int32"});
}

}  // namespace
