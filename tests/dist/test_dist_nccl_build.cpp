// Whether the NCCL backend is there matches the build (ctest label cpu: no GPU needed).
// A build without CUDA says so clearly when asked for an NCCL group; a CUDA build on a
// machine without a device rejects the request naming the device, before touching NCCL.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "dist/memory_store.h"
#include "dist/process_group.h"
#include "engine/device.h"
#include "engine/error.h"

namespace zae::dist {
namespace {

std::string error_of_make(std::shared_ptr<Store> store, int rank, int size, Device device) {
  try {
    (void)make_nccl_process_group(std::move(store), rank, size, device);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "make_nccl_process_group did not throw";
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(NcclBuild, AvailabilityMatchesTheBuild) {
  EXPECT_EQ(nccl_available(), cuda::compiled());
#ifdef ZAE_TESTS_WITH_CUDA
  EXPECT_TRUE(nccl_available());
#else
  EXPECT_FALSE(nccl_available());
#endif
}

TEST(NcclBuild, WithoutCudaTheFactoryThrowsClearly) {
  if (nccl_available()) GTEST_SKIP() << "this build has NCCL";
  const std::string e = error_of_make(std::make_shared<MemoryStore>(), 0, 1, Device::cuda(0));
  EXPECT_TRUE(contains(e, "make_nccl_process_group") && contains(e, "no CUDA/NCCL") && contains(e, "ZAE_CUDA=ON")) << e;
}

TEST(NcclBuild, CudaBuildWithoutADeviceSaysSo) {
  if (!nccl_available()) GTEST_SKIP() << "this build has no NCCL";
  if (cuda::is_available()) GTEST_SKIP() << "a CUDA device is present (test_dist_nccl_cuda covers it)";
  const std::string e = error_of_make(std::make_shared<MemoryStore>(), 0, 1, Device::cuda(0));
  EXPECT_TRUE(contains(e, "cuda:0") && contains(e, "no CUDA device is available")) << e;
}

TEST(NcclBuild, CudaBuildRejectsBadArgumentsFirst) {
  if (!nccl_available()) GTEST_SKIP() << "this build has no NCCL";
  auto store = std::make_shared<MemoryStore>();
  std::string e = error_of_make(store, 0, 1, Device::cpu());
  EXPECT_TRUE(contains(e, "needs a CUDA device") && contains(e, "cpu")) << e;
  e = error_of_make(store, 3, 2, Device::cuda(0));
  EXPECT_TRUE(contains(e, "rank 3") && contains(e, "world size 2")) << e;
  e = error_of_make(nullptr, 0, 1, Device::cuda(0));
  EXPECT_TRUE(contains(e, "store is null")) << e;
}

}  // namespace
}  // namespace zae::dist
