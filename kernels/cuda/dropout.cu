// CUDA dropout launchers: forward per 32-bit chunk through dropout.cuh (the chunk's
// row-major start keeps the Philox counters global), backward through the generic
// elementwise kernels.
#include "kernels/cuda/dropout.cuh"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/elementwise.cuh"

namespace zae::kernels::cuda {

template <class T>
void dropout_forward(const StridedIter<3>& it, T* out, const T* x, bool* mask, float p, double scale, uint64_t seed,
                     uint64_t offset, cudaStream_t stream) {
  const acc_t<T> s = static_cast<acc_t<T>>(scale);
  const int sms = sm_count();
  simt::for_each_32bit_chunk(it, [&](const StridedIter<3>& chunk, const std::array<int64_t, 3>& base,
                                     int64_t linear_begin) {
    const int64_t n = chunk.numel();
    const int64_t blocks = (linear_begin + n - 1) / 4 - linear_begin / 4 + 1;  // Philox blocks touched
    dropout_forward_kernel<T><<<static_cast<unsigned>(simt::grid_size(blocks, sms)), simt::kThreadsPerBlock, 0,
                                stream>>>(simt::OffsetCalc<3>::from(chunk), static_cast<uint32_t>(n), linear_begin,
                                          out + base[0], x + base[1], mask + base[2], p, s, seed, offset);
  });
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void dropout_backward(const StridedIter<3>& it, T* d_x, const T* g, const bool* mask, double scale,
                      cudaStream_t stream) {
  launch_elementwise(stream, it, d_x, simt::DropoutBackwardFn<T>{static_cast<acc_t<T>>(scale)}, g, mask);
}

#define ZAE_CUDA_DROPOUT(T)                                                                                  \
  template void dropout_forward<T>(const StridedIter<3>&, T*, const T*, bool*, float, double, uint64_t, uint64_t, \
                                   cudaStream_t);                                                            \
  template void dropout_backward<T>(const StridedIter<3>&, T*, const T*, const bool*, double, cudaStream_t);
ZAE_CUDA_DROPOUT(float)
ZAE_CUDA_DROPOUT(double)
ZAE_CUDA_DROPOUT(Half)
ZAE_CUDA_DROPOUT(BFloat16)
#undef ZAE_CUDA_DROPOUT

}  // namespace zae::kernels::cuda
