// Pinned host memory and asynchronous host-to-device batch copies (ctest label gpu):
// pin_memory gives page-locked CPU tensors with the same values, DataLoader batches
// come back pinned with pin_memory = true, Batch::to(cuda, non_blocking) lands the
// right values even when the host batch is dropped at once, and everything degrades
// to plain CPU memory where no device is present (that part runs everywhere).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/pinned_memory.h"

namespace zae {
namespace {

TEST(PinnedMemory, FallsBackToPlainCpuMemoryWithoutADevice) {
  if (cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(pinned_memory_available());
  Tensor t = arange(6, {.dtype = DType::float32});
  EXPECT_TRUE(pin_memory(t).is_same(t));
  EXPECT_FALSE(is_pinned(empty_pinned({3}, DType::float32)));
  EXPECT_TRUE(to_device(t, Device::cpu(), true).is_same(t));
}

TEST(PinnedMemory, PinAndCopyAsynchronously) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ASSERT_TRUE(pinned_memory_available());
  Tensor t = arange(1000, {.dtype = DType::float32}).view({10, 100});
  EXPECT_FALSE(is_pinned(t));
  Tensor p = pin_memory(t);
  EXPECT_TRUE(is_pinned(p));
  EXPECT_TRUE(p.device().is_cpu());
  EXPECT_EQ(p.to_vector<float>(), t.to_vector<float>());
  EXPECT_TRUE(pin_memory(p).is_same(p));
  Tensor strided = pin_memory(t.t());  // non-contiguous source: a contiguous pinned copy
  EXPECT_TRUE(is_pinned(strided));
  EXPECT_EQ(strided.to_vector<float>(), t.t().to_vector<float>());

  // Many asynchronous copies whose host sources die immediately: the values must survive.
  std::vector<Tensor> on_device;
  for (int i = 0; i < 32; ++i) {
    Batch host{{"x", pin_memory(full({256, 256}, static_cast<double>(i)))}};
    on_device.push_back(host.to(Device::cuda(), /*non_blocking=*/true)["x"]);
  }
  cuda::synchronize();
  for (int i = 0; i < 32; ++i) {
    EXPECT_TRUE(on_device[static_cast<size_t>(i)].device().is_cuda());
    const std::vector<float> v = on_device[static_cast<size_t>(i)].cpu().to_vector<float>();
    EXPECT_EQ(v.front(), static_cast<float>(i));
    EXPECT_EQ(v.back(), static_cast<float>(i));
  }
}

TEST(PinnedMemory, DataLoaderDeliversPinnedBatches) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor x = arange(40, {.dtype = DType::float32}).view({20, 2});
  auto ds = std::make_shared<TensorDataset>(Batch{{"x", x}});
  for (int workers : {0, 2}) {
    DataLoader loader(ds, {.batch_size = 8, .num_workers = workers, .pin_memory = true});
    int64_t row = 0;
    for (const Batch& b : loader) {
      EXPECT_TRUE(is_pinned(b["x"]));
      Tensor d = b.to(Device::cuda(), true)["x"];
      const std::vector<float> v = d.cpu().to_vector<float>();
      EXPECT_EQ(v.front(), static_cast<float>(2 * row));
      row += b["x"].size(0);
    }
    EXPECT_EQ(row, 20);
  }
}

}  // namespace
}  // namespace zae
