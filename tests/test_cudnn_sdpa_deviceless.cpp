// cuDNN fused-attention graphs (engine/cuda/cudnn_sdpa.h) checked WITHOUT a GPU (ctest label
// cpu; CUDA builds only): cuDNN >= 9.8 plans a graph for a device described in JSON (an H200,
// sm_90) with no handle. For shapes the GPU test uses, the forward and backward graphs
// must be accepted by the support checks of cuDNN's fused-attention engines: on a machine
// with a CUDA driver the plan finalizes; on one without, the toolkit's driver stub is loaded
// so that cuDNN can list its runtime-compiled engines, and planning must get as far as
// loading kernels (CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER), not stop at "no engine
// configs". Negative controls (head dims cuDNN rejects) must stop at "no engine configs",
// which shows the check can fail. Nothing here runs a kernel or checks numbers.
#include <gtest/gtest.h>

#include <string>

#ifdef ZAE_TESTS_WITH_CUDA
#include <dlfcn.h>

#include <cstdlib>

#include "engine/cuda/cudnn_sdpa.h"
#endif

namespace {

#ifdef ZAE_TESTS_WITH_CUDA

using zae::DType;
using zae::cuda::SdpaProblem;

// cudaDeviceProp of an H200 (sm_90, 132 SMs) in cuDNN's device-property JSON.
constexpr const char* kH200 = R"({"maxGridSize":[2147483647,65535,65535],"maxBlockSize":[1024,1024,64],
  "regsPerBlock":65536,"multiProcessorCount":132,"warpSize":32,"maxSharedMemoryPerBlock":49152,
  "maxSharedMemoryPerBlockOptin":232448,"reservedSharedMemoryPerBlock":1024,"maxRegistersPerSM":65536,
  "maxCtasPerSM":32,"maxThreadsPerBlock":1024,"maxThreadsPerSM":2048,"pciDeviceId":0,"isTccDriver":0,
  "supportCoopLaunch":1,"totalGlobalMem":150754820096,"smClockRateKHz":1980000,"memClockRateKHz":3201000,
  "l2CacheSize":52428800,"cudaDeviceId":0,"deviceVer":900,"driverVer":13000,"deviceName":"NVIDIA H200"})";

// The CUDA driver, or else the toolkit's stub (same soname, so cuDNN's own dlopen finds it).
bool load_driver_or_stub() {
  if (dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL) != nullptr) return true;
  std::string roots[] = {"", "/usr/local/cuda"};
  if (const char* home = std::getenv("CUDA_HOME")) roots[0] = home;
  for (const std::string& root : roots) {
    if (root.empty()) continue;
    for (const char* sub : {"/lib64/stubs/libcuda.so", "/targets/x86_64-linux/lib/stubs/libcuda.so"})
      if (dlopen((root + sub).c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr) return true;
  }
  return false;
}

std::string name(const SdpaProblem& p, bool backward) {
  return std::string(backward ? "backward" : "forward") + (p.dtype == DType::bfloat16 ? " bf16" : " f16") + " B " +
         std::to_string(p.batch) + " H " + std::to_string(p.heads) + " T " + std::to_string(p.tq) + " D " +
         std::to_string(p.d) + (p.causal ? " causal" : "");
}

TEST(CudnnSdpaDeviceless, GraphsPassTheFusedAttentionSupportChecks) {
  if (!load_driver_or_stub()) GTEST_SKIP() << "neither a CUDA driver nor the toolkit's driver stub";
  // Each candidate config takes about a second to get to loading its kernels, so this covers
  // both dtypes, both masks, both head dims and odd T in 4 plans (a sweep of every shape of
  // the GPU test and more, 80 plans, passed the same way by hand).
  const SdpaProblem problems[] = {
      {.device = 0, .batch = 1, .heads = 2, .tq = 130, .tk = 130, .d = 128, .dtype = DType::bfloat16, .causal = true,
       .scale = 0.125},
      {.device = 0, .batch = 2, .heads = 3, .tq = 7, .tk = 7, .d = 64, .dtype = DType::float16, .causal = false,
       .scale = 0.125},
  };
  for (const SdpaProblem& p : problems)
    for (bool backward : {false, true}) {
      const std::string reason = zae::cuda::cudnn_sdpa_plan_deviceless(p, backward, kH200);
      EXPECT_TRUE(reason.empty() || (reason.find("CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER") != std::string::npos &&
                                     reason.find("heuristics mode A: no engine configs") == std::string::npos))
          << name(p, backward) << ": " << reason;
    }
}

TEST(CudnnSdpaDeviceless, GraphsCuDnnCannotRunFindNoEngine) {
  if (!load_driver_or_stub()) GTEST_SKIP() << "neither a CUDA driver nor the toolkit's driver stub";
  for (int64_t d : {4, 36, 260})
    for (bool backward : {false, true}) {
      const SdpaProblem p{.device = 0, .batch = 1, .heads = 2, .tq = 64, .tk = 64, .d = d,
                          .dtype = DType::bfloat16, .causal = true, .scale = 0.125};
      const std::string reason = zae::cuda::cudnn_sdpa_plan_deviceless(p, backward, kH200);
      EXPECT_NE(reason.find("heuristics mode A: no engine configs"), std::string::npos)
          << name(p, backward) << ": " << reason;
    }
}

#else

TEST(CudnnSdpaDeviceless, NeedsACudaBuild) { GTEST_SKIP() << "built without CUDA (no cuDNN)"; }

#endif

}  // namespace
