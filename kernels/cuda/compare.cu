// CUDA comparison and where launchers (twins of kernels/cpu/binary.cpp's compare and
// where). where moves values as unsigned integers of the element's size, so all dtypes
// of one size share a kernel.
#include <stdexcept>
#include <string>

#include "kernels/cuda/binary.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/simt/binary_ops.h"
#include "kernels/simt/bits.h"

namespace zae::kernels::cuda {

template <class T>
void compare(CompareKind op, const StridedIter<3>& it, bool* out, const T* a, const T* b, cudaStream_t stream) {
  const bool known = simt::visit_compare<T>(op, [&](const auto& f) { launch_elementwise(stream, it, out, f, a, b); });
  if (!known)
    throw std::invalid_argument("kernels::cuda::compare: unknown op " + std::to_string(static_cast<int>(op)));
}

template <class T>
void where(const StridedIter<4>& it, T* out, const bool* cond, const T* a, const T* b, cudaStream_t stream) {
  using U = simt::bits_t<T>;
  launch_elementwise(stream, it, reinterpret_cast<U*>(out), simt::WhereFn<U>{}, cond, reinterpret_cast<const U*>(a),
                     reinterpret_cast<const U*>(b));
}

#define ZAE_CUDA_COMPARE(T)                                                                                  \
  template void compare<T>(CompareKind, const StridedIter<3>&, bool*, const T*, const T*, cudaStream_t); \
  template void where<T>(const StridedIter<4>&, T*, const bool*, const T*, const T*, cudaStream_t);
ZAE_CUDA_COMPARE(float)
ZAE_CUDA_COMPARE(double)
ZAE_CUDA_COMPARE(Half)
ZAE_CUDA_COMPARE(BFloat16)
ZAE_CUDA_COMPARE(int32_t)
ZAE_CUDA_COMPARE(int64_t)
ZAE_CUDA_COMPARE(uint8_t)
ZAE_CUDA_COMPARE(bool)
#undef ZAE_CUDA_COMPARE

}  // namespace zae::kernels::cuda
