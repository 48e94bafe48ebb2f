// safetensors with CUDA tensors (ctest label gpu; skips without a device): CUDA tensors
// are written exactly as their CPU copies, files load onto the device on request, and
// modules on the device load and save like CPU ones. Without a device, asking for one
// is a clear error (that part runs everywhere).
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/zae.h"
#include "io/safetensors.h"
#include "nn/module.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

std::vector<std::pair<std::string, Tensor>> sample() {
  return {{"w", test::random_tensor({4, 3}, DType::float32, 1)},
          {"d", test::random_tensor({5}, DType::float64, 2)},
          {"h", test::random_tensor({2, 2}, DType::float32, 3).to(DType::bfloat16)},
          {"i", test::random_tensor({3}, DType::int64, 4)},
          {"b", test::random_tensor({6}, DType::bool_, 5)},
          {"s", scalar_tensor(2.5)}};
}

TEST(SafetensorsCuda, DeviceRequestWithoutDeviceIsAnError) {
  if (cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  io::SafetensorsLoadOptions o;
  o.device = Device::cuda();
  const std::string bytes = io::serialize_safetensors(sample());
  EXPECT_THROW(io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m", o), Error);
}

TEST(SafetensorsCuda, CudaTensorsWriteAsTheirCpuCopies) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = sample();
  std::vector<std::pair<std::string, Tensor>> gpu;
  for (const auto& [n, t] : cpu) gpu.emplace_back(n, t.to(Device::cuda()));
  gpu[0].second = cpu[0].second.t().contiguous().to(Device::cuda()).t();  // non-contiguous on the device
  cpu[0].second = cpu[0].second.t().contiguous().t();
  EXPECT_EQ(io::serialize_safetensors(gpu, {{"k", "v"}}), io::serialize_safetensors(cpu, {{"k", "v"}}));
}

TEST(SafetensorsCuda, LoadOntoTheDevice) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto cpu = sample();
  const std::string bytes = io::serialize_safetensors(cpu);
  io::SafetensorsLoadOptions o;
  o.device = Device::cuda();
  o.dtype = DType::float64;
  const io::SafetensorsData d =
      io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m", o);
  ASSERT_EQ(d.tensors.size(), cpu.size());
  for (const auto& [name, t] : d.tensors) {
    EXPECT_TRUE(t.device().is_cuda()) << name;
    auto it = std::find_if(cpu.begin(), cpu.end(), [&](const auto& p) { return p.first == name; });
    ASSERT_NE(it, cpu.end());
    EXPECT_EQ(t.dtype(), is_floating(it->second.dtype()) ? DType::float64 : it->second.dtype()) << name;
    EXPECT_EQ(t.cpu().to_vector<double>(), it->second.to_vector<double>()) << name;
  }
}

class Net : public nn::Module {
 public:
  explicit Net(uint64_t seed) : nn::Module("Net") {
    register_parameter("weight", test::random_tensor({3, 4}, DType::float32, seed));
    register_buffer("steps", full({}, static_cast<double>(seed), {.dtype = DType::int64}));
  }
};

TEST(SafetensorsCuda, ModulesOnTheDevice) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const std::string dir = ::testing::TempDir();
  Net src(1), dst(2);
  io::save_module_safetensors(src, dir + "/cpu.safetensors");
  src.to(Device::cuda());
  io::save_module_safetensors(src, dir + "/gpu.safetensors");
  const auto a = io::load_safetensors(dir + "/cpu.safetensors"), b = io::load_safetensors(dir + "/gpu.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i)
    EXPECT_EQ(a.tensors[i].second.to_vector<double>(), b.tensors[i].second.to_vector<double>());
  dst.to(Device::cuda());
  io::load_safetensors_into(dst, dir + "/cpu.safetensors");
  for (const auto& [name, t] : dst.state_dict()) EXPECT_TRUE(t.device().is_cuda()) << name;
  EXPECT_EQ(dst.state_dict()[0].second.cpu().to_vector<float>(), Net(1).state_dict()[0].second.to_vector<float>());
}

}  // namespace
}  // namespace zae
