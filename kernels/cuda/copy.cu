// CUDA copy_cast launchers: one generic elementwise kernel pair per (Dst, Src) pair;
// same-dtype copies move bits (all dtypes of one size share a kernel).
#include "kernels/cuda/copy.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/numeric.h"
#include "kernels/simt/binary_ops.h"
#include "kernels/simt/bits.h"

namespace zae::kernels::cuda {

template <class Dst, class Src>
void copy_cast(const StridedIter<2>& it, Dst* dst, const Src* src, cudaStream_t stream) {
  if constexpr (std::is_same_v<Dst, Src>) {
    using U = simt::bits_t<Dst>;
    launch_elementwise(stream, it, reinterpret_cast<U*>(dst), simt::CastFn<U, U>{}, reinterpret_cast<const U*>(src));
  } else {
    launch_elementwise(stream, it, dst, simt::CastFn<Dst, Src>{}, src);
  }
}

#define ZAE_CUDA_COPY_SRC(Dst)                                                                   \
  template void copy_cast<Dst, float>(const StridedIter<2>&, Dst*, const float*, cudaStream_t);       \
  template void copy_cast<Dst, double>(const StridedIter<2>&, Dst*, const double*, cudaStream_t);     \
  template void copy_cast<Dst, Half>(const StridedIter<2>&, Dst*, const Half*, cudaStream_t);         \
  template void copy_cast<Dst, BFloat16>(const StridedIter<2>&, Dst*, const BFloat16*, cudaStream_t); \
  template void copy_cast<Dst, int32_t>(const StridedIter<2>&, Dst*, const int32_t*, cudaStream_t);   \
  template void copy_cast<Dst, int64_t>(const StridedIter<2>&, Dst*, const int64_t*, cudaStream_t);   \
  template void copy_cast<Dst, uint8_t>(const StridedIter<2>&, Dst*, const uint8_t*, cudaStream_t);   \
  template void copy_cast<Dst, bool>(const StridedIter<2>&, Dst*, const bool*, cudaStream_t);
ZAE_CUDA_COPY_SRC(float)
ZAE_CUDA_COPY_SRC(double)
ZAE_CUDA_COPY_SRC(Half)
ZAE_CUDA_COPY_SRC(BFloat16)
ZAE_CUDA_COPY_SRC(int32_t)
ZAE_CUDA_COPY_SRC(int64_t)
ZAE_CUDA_COPY_SRC(uint8_t)
ZAE_CUDA_COPY_SRC(bool)
#undef ZAE_CUDA_COPY_SRC

}  // namespace zae::kernels::cuda
