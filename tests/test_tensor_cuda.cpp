// CUDA storage and transfers (ctest label gpu): CPU -> CUDA -> CPU round trips
// for every dtype from contiguous and strided sources, conversions on the way,
// device bookkeeping and the error for a device index that does not exist.
// Every test skips cleanly where no CUDA device is present.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/device.h"
#include "engine/generator.h"
#include "engine/ops/factory.h"
#include "engine/tensor.h"

namespace {

using zae::Device;
using zae::DType;
using zae::Shape;
using zae::Tensor;

constexpr DType kAllDTypes[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                                DType::int32,   DType::int64,   DType::uint8,    DType::bool_};

// Values every dtype holds exactly; bool gets 0/1.
std::vector<double> sample_values(DType dt, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = dt == DType::bool_ ? static_cast<double>((i * 7 + 3) % 3 == 0) : (i * 37) % 101;
  return v;
}

TEST(TensorCuda, DeviceCountIsPositive) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  EXPECT_TRUE(zae::cuda::compiled());
  EXPECT_GT(zae::cuda::device_count(), 0);
  zae::cuda::synchronize();
}

TEST(TensorCuda, RoundTripEveryDTypeContiguous) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (DType dt : kAllDTypes) {
    std::vector<double> want = sample_values(dt, 1000);
    Tensor host = zae::tensor(want, {10, 100}, {.dtype = dt});
    Tensor dev = host.to(Device::cuda());
    EXPECT_EQ(dev.device(), Device::cuda(0)) << dt;
    EXPECT_TRUE(dev.device().is_cuda());
    EXPECT_EQ(dev.dtype(), dt);
    EXPECT_EQ(dev.shape(), (Shape{10, 100}));
    EXPECT_FALSE(dev.storage() == host.storage());
    Tensor back = dev.to(Device::cpu());
    EXPECT_TRUE(back.device().is_cpu());
    EXPECT_EQ(back.dtype(), dt);
    EXPECT_EQ(back.to_vector<double>(), want) << dt;
    EXPECT_EQ(dev.to_vector<double>(), want) << dt << " (to_vector straight from the device)";
    EXPECT_TRUE(dev.to(Device::cuda()).is_same(dev)) << "to(same device) returns the tensor itself";
  }
}

TEST(TensorCuda, RoundTripEveryDTypeFromNonContiguousSources) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (DType dt : kAllDTypes) {
    std::vector<double> v = sample_values(dt, 24);
    Tensor host = zae::tensor(v, {4, 6}, {.dtype = dt});
    // Transposed, stepped slice, and broadcast (stride 0) sources.
    std::vector<Tensor> sources = {host.t(), host.slice(1, 1, 6, 2), host.select(0, 2).unsqueeze(0).expand({3, 6})};
    for (const Tensor& src : sources) {
      ASSERT_FALSE(src.is_contiguous());
      std::vector<double> want = src.to_vector<double>();
      Tensor dev = src.to(Device::cuda());
      EXPECT_EQ(dev.shape(), src.shape()) << dt;
      EXPECT_EQ(dev.to(Device::cpu()).to_vector<double>(), want) << dt << " from shape " << zae::shape_str(src.shape());
    }
  }
}

TEST(TensorCuda, ToDeviceAndDTypeConverts) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor host = zae::tensor({1.5, -2.25, 3.0, 0.0}, {2, 2}, {.dtype = DType::float64});
  Tensor d16 = host.to(Device::cuda(), DType::float16);
  EXPECT_EQ(d16.dtype(), DType::float16);
  EXPECT_TRUE(d16.device().is_cuda());
  EXPECT_EQ(d16.to_vector<double>(), (std::vector<double>{1.5, -2.25, 3.0, 0.0}));
  Tensor di = host.to(Device::cuda(), DType::int32);
  EXPECT_EQ(di.to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3, 0}));
  Tensor back = d16.to(Device::cpu(), DType::float32);
  EXPECT_EQ(back.to_vector<float>(), (std::vector<float>{1.5f, -2.25f, 3.0f, 0.0f}));
  EXPECT_EQ(host.to(Device::cuda()).select(0, 1).select(0, 0).item(), 3.0);
}

TEST(TensorCuda, CopyIntoDeviceTensors) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor dev = zae::zeros({2, 3}, {.device = Device::cuda()});
  EXPECT_TRUE(dev.device().is_cuda());
  EXPECT_EQ(dev.to_vector<float>(), std::vector<float>(6, 0.0f));
  dev.copy_(zae::tensor({1, 2, 3, 4, 5, 6}, {2, 3}));
  EXPECT_EQ(dev.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  dev.copy_(zae::tensor({1, 2, 3, 4, 5, 6}, {3, 2}).t());  // strided CPU source
  EXPECT_EQ(dev.to_vector<float>(), (std::vector<float>{1, 3, 5, 2, 4, 6}));
  Tensor host = zae::zeros({2, 3}, {.dtype = DType::float64});
  host.copy_(dev);
  EXPECT_EQ(host.to_vector<double>(), (std::vector<double>{1, 3, 5, 2, 4, 6}));
  Tensor c = dev.clone();
  EXPECT_TRUE(c.device().is_cuda());
  EXPECT_FALSE(c.storage() == dev.storage());
  EXPECT_EQ(c.to_vector<float>(), dev.to_vector<float>());
}

TEST(TensorCuda, RandomFactoriesMatchTheCpuStream) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  zae::Generator a(77), b(77);
  Tensor cpu = zae::rand({1000}, {}, &a);
  Tensor dev = zae::rand({1000}, {.device = Device::cuda()}, &b);
  EXPECT_TRUE(dev.device().is_cuda());
  EXPECT_EQ(dev.to_vector<float>(), cpu.to_vector<float>());
  EXPECT_EQ(a.offset(), b.offset());
}

TEST(TensorCuda, GradientFlowsBackAcrossDevices) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor x = zae::tensor({1.0, 2.0}, {2}, {.requires_grad = true});
  Tensor y = x.to(Device::cuda());
  EXPECT_TRUE(y.requires_grad());
  y.backward(zae::full({2}, 3.0, {.device = Device::cuda()}));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().device().is_cpu());
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3.0f, 3.0f}));
}

TEST(TensorCuda, MissingDeviceIndexFailsClearlyOnAllocation) {
  if (!zae::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  int n = zae::cuda::device_count();
  Device missing = Device::parse("cuda:" + std::to_string(n));
  EXPECT_EQ(missing.index, n);
  try {
    zae::zeros({2}, {.device = missing});
    ADD_FAILURE() << "allocating on " << missing << " must fail";
  } catch (const zae::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(missing.str()), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(n) + " CUDA device"), std::string::npos) << what;
  }
  if (n == 1) {
    Device one = Device::parse("cuda:1");
    EXPECT_THROW(zae::empty({4}, {.device = one}), zae::Error);
    EXPECT_THROW(zae::tensor({1.0}).to(one), zae::Error);
  }
}

}  // namespace
