// CUDA binary arithmetic launchers: the op switch (simt::visit_binary, the CPU twin's
// switch: add/sub with alpha == 1 take the plain functor) runs once per call on the
// host; each (dtype, op) pair instantiates the two generic elementwise kernels.
#include <stdexcept>
#include <string>

#include "kernels/cuda/binary.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/simt/binary_ops.h"

namespace zae::kernels::cuda {

template <class T>
void binary(BinaryKind op, const StridedIter<3>& it, T* out, const T* a, const T* b, acc_t<T> alpha,
            cudaStream_t stream) {
  const bool known =
      simt::visit_binary<T>(op, alpha, [&](const auto& f) { launch_elementwise(stream, it, out, f, a, b); });
  if (!known)
    throw std::invalid_argument("kernels::cuda::binary: op " + std::to_string(static_cast<int>(op)) +
                                " is not defined for this element type");
}

#define ZAE_CUDA_BINARY(T) \
  template void binary<T>(BinaryKind, const StridedIter<3>&, T*, const T*, const T*, acc_t<T>, cudaStream_t);
ZAE_CUDA_BINARY(float)
ZAE_CUDA_BINARY(double)
ZAE_CUDA_BINARY(Half)
ZAE_CUDA_BINARY(BFloat16)
ZAE_CUDA_BINARY(int32_t)
ZAE_CUDA_BINARY(int64_t)
ZAE_CUDA_BINARY(uint8_t)
#undef ZAE_CUDA_BINARY

}  // namespace zae::kernels::cuda
