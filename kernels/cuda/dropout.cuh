// CUDA dropout forward kernel: grid-stride over the Philox blocks that overlap a 32-bit
// chunk of the tensor (each block's four words decide four consecutive elements), per-
// thread work in kernels/simt/random_body.h (host-tested against kernels/cpu/dropout.cpp).
// Backward uses the generic elementwise kernels.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"
#include "kernels/simt/launch_plan.h"
#include "kernels/simt/random_body.h"

namespace zae::kernels::cuda {

template <class T>
__global__ void __launch_bounds__(simt::kThreadsPerBlock)
    dropout_forward_kernel(simt::OffsetCalc<3> oc, uint32_t n, int64_t linear_begin, T* out, const T* x, bool* mask,
                           float p, acc_t<T> scale, uint64_t seed, uint64_t offset) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  simt::dropout_body<T>(tid, static_cast<int64_t>(gridDim.x) * blockDim.x, oc, n, linear_begin, out, x, mask, p,
                        scale, seed, offset);
}

}  // namespace zae::kernels::cuda
