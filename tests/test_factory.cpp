// Tensor factories: constant fills for every dtype, arange / linspace / eye
// edge cases, tensor() from vectors, the *_like family, the requires_grad option
// and the 64-byte alignment of CPU storage.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "engine/ops/factory.h"
#include "support/test_util.h"

namespace {

using zae::DType;
using zae::Shape;
using zae::Tensor;

constexpr DType kAllDTypes[] = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                                DType::int32,   DType::int64,   DType::uint8,    DType::bool_};

using zae::test::expect_throws_with;

TEST(Factory, ZerosOnesFullForEveryDType) {
  for (DType dt : kAllDTypes) {
    Tensor z = zae::zeros({2, 3}, {.dtype = dt});
    EXPECT_EQ(z.dtype(), dt);
    EXPECT_EQ(z.shape(), (Shape{2, 3}));
    EXPECT_TRUE(z.is_contiguous());
    EXPECT_TRUE(z.device().is_cpu());
    EXPECT_FALSE(z.requires_grad());
    EXPECT_EQ(z.to_vector<double>(), std::vector<double>(6, 0.0)) << dt;
    EXPECT_EQ(zae::ones({4}, {.dtype = dt}).to_vector<double>(), std::vector<double>(4, 1.0)) << dt;
    double v = dt == DType::bool_ ? 1.0 : 7.0;
    EXPECT_EQ(zae::full({3, 1, 2}, v, {.dtype = dt}).to_vector<double>(), std::vector<double>(6, v)) << dt;
  }
  EXPECT_EQ(zae::full({2}, -2.5).to_vector<float>(), (std::vector<float>{-2.5f, -2.5f}));
  EXPECT_EQ(zae::full({2}, 3.0, {.dtype = DType::bool_}).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1}));
  EXPECT_EQ(zae::full({2}, 0.1, {.dtype = DType::float16}).to_vector<float>()[0], static_cast<float>(zae::Half(0.1f)));
  Tensor s = zae::scalar_tensor(4.5, {.dtype = DType::float64});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 4.5);
}

TEST(Factory, EmptyAndZeroSizedShapes) {
  Tensor e = zae::zeros({0, 3});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.shape(), (Shape{0, 3}));
  EXPECT_TRUE(e.to_vector<float>().empty());
  Tensor u = zae::empty({5, 2}, {.dtype = DType::int32});
  EXPECT_EQ(u.shape(), (Shape{5, 2}));
  EXPECT_EQ(u.strides(), (Shape{2, 1}));
  EXPECT_EQ(u.nbytes(), 40u);
  expect_throws_with([] { zae::zeros({2, -1}); }, {"-1", "[2, -1]"});
  expect_throws_with([] { zae::zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}); }, {"8", "[1, 1, 1, 1, 1, 1, 1, 1, 1]"});
}

TEST(Factory, ArangeIntegers) {
  Tensor a = zae::arange(5);
  EXPECT_EQ(a.dtype(), DType::int64);
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(zae::arange(2, 11, 3).to_vector<int64_t>(), (std::vector<int64_t>{2, 5, 8}));
  EXPECT_EQ(zae::arange(2, 12, 3).to_vector<int64_t>(), (std::vector<int64_t>{2, 5, 8, 11}));
  EXPECT_EQ(zae::arange(3, {.dtype = DType::float32}).to_vector<float>(), (std::vector<float>{0, 1, 2}));
}

TEST(Factory, ArangeFloatAndNegativeSteps) {
  Tensor a = zae::arange(0.0, 1.0, 0.25, {.dtype = DType::float32});
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f}));
  // PyTorch: arange(0, 1, 0.1) has 10 elements, the last 0.9.
  Tensor b = zae::arange(0.0, 1.0, 0.1, {.dtype = DType::float64});
  ASSERT_EQ(b.numel(), 10);
  std::vector<double> bv = b.to_vector<double>();
  for (int i = 0; i < 10; ++i) EXPECT_DOUBLE_EQ(bv[i], 0.1 * i);
  Tensor c = zae::arange(5.0, 0.0, -1.5, {.dtype = DType::float64});
  EXPECT_EQ(c.to_vector<double>(), (std::vector<double>{5.0, 3.5, 2.0, 0.5}));
  EXPECT_EQ(zae::arange(3.0, -3.0, -2.0).to_vector<int64_t>(), (std::vector<int64_t>{3, 1, -1}));
  // Empty ranges.
  EXPECT_EQ(zae::arange(3.0, 3.0, 1.0).numel(), 0);
  EXPECT_EQ(zae::arange(0).numel(), 0);
  EXPECT_EQ(zae::arange(2.0, 2.0, -1.0).numel(), 0);
}

TEST(Factory, ArangeErrors) {
  expect_throws_with([] { zae::arange(0.0, 1.0, 0.0); }, {"arange", "step", "0"});
  expect_throws_with([] { zae::arange(0.0, 5.0, -1.0); }, {"arange", "-1", "5"});
  expect_throws_with([] { zae::arange(0.0, std::nan(""), 1.0); }, {"arange"});
  expect_throws_with([] { zae::arange(0.0, 1.0, 0.5, {.dtype = DType::bool_}); }, {"arange", "bool"});
}

TEST(Factory, LinspaceEndpointsExact) {
  Tensor a = zae::linspace(0.0, 1.0, 5);
  EXPECT_EQ(a.dtype(), DType::float32);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f, 1.0f}));
  for (int64_t steps : {2, 3, 7, 10, 101}) {
    Tensor b = zae::linspace(-1.3, 3.7, steps, {.dtype = DType::float64});
    std::vector<double> v = b.to_vector<double>();
    ASSERT_EQ(static_cast<int64_t>(v.size()), steps);
    EXPECT_EQ(v.front(), -1.3) << steps;
    EXPECT_EQ(v.back(), 3.7) << steps;
    for (int64_t i = 0; i < steps; ++i) EXPECT_NEAR(v[i], -1.3 + 5.0 * i / (steps - 1), 1e-12) << steps << " " << i;
  }
  std::vector<float> f = zae::linspace(0.1, 0.7, 4).to_vector<float>();
  EXPECT_EQ(f.front(), 0.1f);
  EXPECT_EQ(f.back(), 0.7f);
  // Descending.
  EXPECT_EQ(zae::linspace(2.0, -2.0, 3, {.dtype = DType::float64}).to_vector<double>(),
            (std::vector<double>{2.0, 0.0, -2.0}));
}

TEST(Factory, LinspaceZeroAndOneSteps) {
  EXPECT_EQ(zae::linspace(0.0, 1.0, 0).numel(), 0);
  EXPECT_EQ(zae::linspace(0.0, 1.0, 0).shape(), (Shape{0}));
  // PyTorch: linspace(start, end, 1) == [start].
  EXPECT_EQ(zae::linspace(3.0, 10.0, 1, {.dtype = DType::float64}).to_vector<double>(), (std::vector<double>{3.0}));
  expect_throws_with([] { zae::linspace(0.0, 1.0, -2); }, {"linspace", "-2"});
  expect_throws_with([] { zae::linspace(0.0, 1.0, 3, {.dtype = DType::int32}); }, {"linspace", "int32"});
}

TEST(Factory, Eye) {
  EXPECT_EQ(zae::eye(3).to_vector<float>(), (std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  Tensor r = zae::eye(2, 3, {.dtype = DType::int64});
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  EXPECT_EQ(r.dtype(), DType::int64);
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 1, 0}));
  Tensor c = zae::eye(3, 2, {.dtype = DType::float64});
  EXPECT_EQ(c.shape(), (Shape{3, 2}));
  EXPECT_EQ(c.to_vector<double>(), (std::vector<double>{1, 0, 0, 1, 0, 0}));
  EXPECT_EQ(zae::eye(0).shape(), (Shape{0, 0}));
  EXPECT_EQ(zae::eye(2, 0).shape(), (Shape{2, 0}));
  EXPECT_EQ(zae::eye(2, 2, {.dtype = DType::bool_}).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 0, 1}));
  expect_throws_with([] { zae::eye(-2); }, {"eye", "-2"});
  expect_throws_with([] { zae::eye(2, -5); }, {"eye", "-5"});
}

TEST(Factory, TensorFromVectors) {
  Tensor a = zae::tensor(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(a.dtype(), DType::float32);
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  Tensor b = zae::tensor(std::vector<int64_t>{7, -8});
  EXPECT_EQ(b.dtype(), DType::int64);
  EXPECT_EQ(b.shape(), (Shape{2}));
  EXPECT_EQ(zae::tensor(std::vector<int32_t>{1, 2}).dtype(), DType::int32);
  EXPECT_EQ(zae::tensor(std::vector<uint8_t>{1, 2}).dtype(), DType::uint8);
  EXPECT_EQ(zae::tensor(std::vector<double>{1.5}).dtype(), DType::float64);
  Tensor c = zae::tensor({1.5, 2.5, 3.5, 4.5}, {2, 2});
  EXPECT_EQ(c.dtype(), DType::float32);
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{1.5f, 2.5f, 3.5f, 4.5f}));
  // An explicit dtype converts.
  Tensor d = zae::tensor(std::vector<double>{1.7, -2.2}, {}, {.dtype = DType::int32});
  EXPECT_EQ(d.dtype(), DType::int32);
  EXPECT_EQ(d.to_vector<int32_t>(), (std::vector<int32_t>{1, -2}));
  // A 0-dim tensor from one value with shape {} would be 1-D; scalar shape via {1} works.
  EXPECT_EQ(zae::tensor({5.0}).shape(), (Shape{1}));
  EXPECT_EQ(zae::tensor(std::vector<float>{}).shape(), (Shape{0}));
}

TEST(Factory, TensorShapeMismatchNamesCountAndShape) {
  expect_throws_with([] { zae::tensor({1, 2, 3, 4, 5, 6}, {4}); }, {"6 values", "[4]"});
  expect_throws_with([] { zae::tensor(std::vector<int64_t>{1, 2, 3}, {2, 2}); }, {"3 values", "[2, 2]"});
}

TEST(Factory, LikeFactoriesKeepShapeDtypeDevice) {
  Tensor base = zae::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::float64, .requires_grad = true});
  Tensor t = base.t();  // non-contiguous: *_like gives a contiguous tensor of the same shape
  for (const Tensor& src : {base, t}) {
    Tensor z = zae::zeros_like(src);
    EXPECT_EQ(z.shape(), src.shape());
    EXPECT_EQ(z.dtype(), DType::float64);
    EXPECT_TRUE(z.device().is_cpu());
    EXPECT_TRUE(z.is_contiguous());
    EXPECT_FALSE(z.requires_grad()) << "*_like does not copy requires_grad";
    EXPECT_EQ(z.to_vector<double>(), std::vector<double>(6, 0.0));
    EXPECT_EQ(zae::ones_like(src).to_vector<double>(), std::vector<double>(6, 1.0));
    EXPECT_EQ(zae::full_like(src, -3).to_vector<double>(), std::vector<double>(6, -3.0));
    Tensor e = zae::empty_like(src);
    EXPECT_EQ(e.shape(), src.shape());
    EXPECT_EQ(e.dtype(), DType::float64);
    EXPECT_FALSE(e.storage() == src.storage());
  }
  Tensor i = zae::ones_like(zae::zeros({3}, {.dtype = DType::int32}));
  EXPECT_EQ(i.dtype(), DType::int32);
}

TEST(Factory, RequiresGradOption) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    Tensor z = zae::zeros({2}, {.dtype = dt, .requires_grad = true});
    EXPECT_TRUE(z.requires_grad()) << dt;
    EXPECT_TRUE(z.is_leaf()) << dt;
    EXPECT_FALSE(z.grad().defined()) << dt;
  }
  EXPECT_TRUE(zae::full({2}, 1.0, {.requires_grad = true}).requires_grad());
  EXPECT_TRUE(zae::tensor({1.0, 2.0}, {}, {.requires_grad = true}).requires_grad());
  EXPECT_TRUE(zae::linspace(0, 1, 3, {.requires_grad = true}).requires_grad());
  EXPECT_TRUE(zae::eye(2, 2, {.requires_grad = true}).requires_grad());
  EXPECT_TRUE(zae::empty({2}, {.requires_grad = true}).requires_grad());
  expect_throws_with([] { zae::zeros({2}, {.dtype = DType::int64, .requires_grad = true}); }, {"requires_grad", "int64"});
  expect_throws_with([] { zae::arange(3, {.dtype = DType::int64, .requires_grad = true}); }, {"int64"});
}

TEST(Factory, CpuStorageIs64ByteAligned) {
  std::vector<Tensor> keep;  // keep them alive so the allocator cannot hand back the same block
  for (int64_t n : {1, 3, 7, 17, 63, 64, 65, 1000, 4097, 100000}) {
    for (DType dt : {DType::uint8, DType::float16, DType::float32, DType::float64}) {
      Tensor t = zae::empty({n}, {.dtype = dt});
      auto addr = reinterpret_cast<uintptr_t>(t.storage()->data());
      EXPECT_EQ(addr % zae::kCpuAlignment, 0u) << "n=" << n << " dtype " << dt;
      keep.push_back(t);
    }
  }
  EXPECT_EQ(zae::kCpuAlignment, 64u);
}

TEST(Device, ParseAndPrint) {
  EXPECT_EQ(zae::Device::parse("cpu"), zae::Device::cpu());
  EXPECT_EQ(zae::Device::parse("cuda"), zae::Device::cuda(0));
  EXPECT_EQ(zae::Device::parse("cuda:1"), zae::Device::cuda(1));
  EXPECT_EQ(zae::Device::parse("cuda:12").index, 12);
  EXPECT_EQ(zae::Device::cuda(3).str(), "cuda:3");
  EXPECT_EQ(zae::Device::cpu().str(), "cpu");
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:1:2", ""}) {
    std::string quoted(1, '\'');
    quoted.append(bad).push_back('\'');
    expect_throws_with([&] { zae::Device::parse(bad); }, {quoted, "cuda:N"});
  }
}

TEST(Factory, NonCpuDeviceWithoutCudaFailsClearly) {
  if (zae::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  expect_throws_with([] { zae::zeros({2}, {.device = zae::Device::cuda(0)}); }, {"cuda:0"});
}

}  // namespace
