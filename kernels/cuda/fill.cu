// CUDA fill launchers: constant fills through the generic elementwise kernels (values
// move as bits, so dtypes of one size share a kernel); random fills through fill.cuh,
// one thread per Philox block, grid-stride.
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/fill.cuh"
#include "kernels/cuda/fill.h"
#include "kernels/simt/binary_ops.h"
#include "kernels/simt/bits.h"

namespace zae::kernels::cuda {

template <class T>
void fill(const StridedIter<1>& it, T* out, T value, cudaStream_t stream) {
  using U = simt::bits_t<T>;
  launch_elementwise(stream, it, reinterpret_cast<U*>(out), simt::FillFn<U>{simt::to_bits(value)});
}

namespace {
unsigned blocks_for_draw(int64_t n, int per_block) {
  return static_cast<unsigned>(simt::grid_size((n + per_block - 1) / per_block, sm_count()));
}
}  // namespace

template <class T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high, cudaStream_t stream) {
  if (n == 0) return;
  uniform_kernel<T><<<blocks_for_draw(n, simt::kUniformPerBlock<T>), simt::kThreadsPerBlock, 0, stream>>>(
      out, n, seed, offset, low, high);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std, cudaStream_t stream) {
  if (n == 0) return;
  normal_kernel<T><<<blocks_for_draw(n, 4), simt::kThreadsPerBlock, 0, stream>>>(out, n, seed, offset, mean, std);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
void randint(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high, cudaStream_t stream) {
  if (n == 0) return;
  randint_kernel<T><<<blocks_for_draw(n, 2), simt::kThreadsPerBlock, 0, stream>>>(out, n, seed, offset, low, high);
  CUDA_CHECK(cudaGetLastError());
}

template void fill<float>(const StridedIter<1>&, float*, float, cudaStream_t);
template void fill<double>(const StridedIter<1>&, double*, double, cudaStream_t);
template void fill<Half>(const StridedIter<1>&, Half*, Half, cudaStream_t);
template void fill<BFloat16>(const StridedIter<1>&, BFloat16*, BFloat16, cudaStream_t);
template void fill<int32_t>(const StridedIter<1>&, int32_t*, int32_t, cudaStream_t);
template void fill<int64_t>(const StridedIter<1>&, int64_t*, int64_t, cudaStream_t);
template void fill<uint8_t>(const StridedIter<1>&, uint8_t*, uint8_t, cudaStream_t);
template void fill<bool>(const StridedIter<1>&, bool*, bool, cudaStream_t);

#define ZAE_CUDA_RANDOM_FLOAT(T)                                                                \
  template void uniform<T>(T*, int64_t, uint64_t, uint64_t, double, double, cudaStream_t);      \
  template void normal<T>(T*, int64_t, uint64_t, uint64_t, double, double, cudaStream_t);
ZAE_CUDA_RANDOM_FLOAT(float)
ZAE_CUDA_RANDOM_FLOAT(double)
ZAE_CUDA_RANDOM_FLOAT(Half)
ZAE_CUDA_RANDOM_FLOAT(BFloat16)
#undef ZAE_CUDA_RANDOM_FLOAT
#define ZAE_CUDA_RANDINT(T) \
  template void randint<T>(T*, int64_t, uint64_t, uint64_t, int64_t, int64_t, cudaStream_t);
ZAE_CUDA_RANDINT(float)
ZAE_CUDA_RANDINT(double)
ZAE_CUDA_RANDINT(Half)
ZAE_CUDA_RANDINT(BFloat16)
ZAE_CUDA_RANDINT(int32_t)
ZAE_CUDA_RANDINT(int64_t)
ZAE_CUDA_RANDINT(uint8_t)
#undef ZAE_CUDA_RANDINT

}  // namespace zae::kernels::cuda
