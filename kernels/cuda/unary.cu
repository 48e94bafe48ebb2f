// CUDA unary launchers: the op switch (simt::visit_unary, the CPU twin's switch) runs
// once per call on the host; each (dtype, op) pair instantiates the two generic
// elementwise kernels with its functor.
#include <stdexcept>
#include <string>

#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/unary.h"
#include "kernels/simt/unary_ops.h"

namespace zae::kernels::cuda {

template <class T>
void unary(UnaryKind op, const StridedIter<2>& it, T* out, const T* a, cudaStream_t stream) {
  const bool known = simt::visit_unary<T>(op, [&](const auto& f) { launch_elementwise(stream, it, out, f, a); });
  if (!known)
    throw std::invalid_argument("kernels::cuda::unary: op " + std::to_string(static_cast<int>(op)) +
                                " is not defined for this element type");
}

#define ZAE_CUDA_UNARY(T) template void unary<T>(UnaryKind, const StridedIter<2>&, T*, const T*, cudaStream_t);
ZAE_CUDA_UNARY(float)
ZAE_CUDA_UNARY(double)
ZAE_CUDA_UNARY(Half)
ZAE_CUDA_UNARY(BFloat16)
ZAE_CUDA_UNARY(int32_t)
ZAE_CUDA_UNARY(int64_t)
ZAE_CUDA_UNARY(uint8_t)
#undef ZAE_CUDA_UNARY

}  // namespace zae::kernels::cuda
