// The device switch of the elementwise op families (engine/ops/backend.h), in every
// build and without a GPU: the CPU always maps to its kernels; a CUDA device maps to
// the CUDA kernels only in builds with the CUDA backend and is otherwise a clear error
// naming the op, the device and the dtype.
#include <gtest/gtest.h>

#include "engine/device.h"
#include "engine/ops/backend.h"
#include "tests/support/test_util.h"

namespace zae {
namespace {

TEST(Backend, CpuTensorsUseTheCpuKernels) {
  for (DType dt : {DType::float32, DType::bfloat16, DType::int64, DType::bool_})
    EXPECT_EQ(elementwise_backend("add", Device::cpu(), dt), Backend::cpu);
}

TEST(Backend, CudaTensorsUseTheCudaKernelsExactlyInCudaBuilds) {
  EXPECT_EQ(elementwise_cuda_compiled(), cuda::compiled());
  if (cuda::compiled()) {
    EXPECT_EQ(elementwise_backend("mul", Device::cuda(0), DType::float16), Backend::cuda);
    EXPECT_EQ(elementwise_backend("where", Device::cuda(3), DType::bool_), Backend::cuda);
  } else {
    test::expect_throws_with([] { elementwise_backend("mul", Device::cuda(1), DType::float16); },
                             {"mul", "not implemented for device cuda:1", "float16"});
  }
}

}  // namespace
}  // namespace zae
