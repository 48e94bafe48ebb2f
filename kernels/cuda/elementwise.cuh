// The generic CUDA elementwise kernels and their launcher, shared by the unary, binary,
// compare/where, copy and fill families: out = f(in...) over a StridedIter<N>
// (operand 0 = out). Kernels first, launcher after.
//  - elementwise_vector_kernel: every operand dense (or a broadcast scalar input) and
//    aligned: 16-byte vector accesses, a scalar tail, 64-bit indices, grid-stride.
//  - elementwise_strided_kernel: anything else, over 32-bit chunks (launch_plan.h splits
//    2^31+ element or offset spaces), offsets from OffsetCalc passed by value.
// Per-thread work lives in kernels/simt/elementwise_body.h (host-tested).
// Invariants: launches go to the given stream on the current device; every launch is
// followed by a launch-error check; n == 0 launches nothing.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/simt/elementwise_body.h"
#include "kernels/simt/launch_plan.h"
#include "kernels/strided.h"

namespace zae::kernels::cuda {

// ---- kernels ------------------------------------------------------------------------

template <int W, class Out, class F, class... In>
__global__ void __launch_bounds__(simt::kThreadsPerBlock)
    elementwise_vector_kernel(int64_t n, Out* out, F f, simt::Src<In>... in) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nthreads = static_cast<int64_t>(gridDim.x) * blockDim.x;
  simt::vector_body<W>(tid, nthreads, n, out, f, in...);
}

template <int N, class Out, class F, class... In>
__global__ void __launch_bounds__(simt::kThreadsPerBlock)
    elementwise_strided_kernel(uint32_t n, simt::OffsetCalc<N> oc, Out* out, F f, const In*... in) {
  const uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x;
  const uint32_t nthreads = gridDim.x * blockDim.x;
  simt::strided_body<N>(tid, nthreads, n, oc, out, f, in...);
}

// ---- launch helpers -----------------------------------------------------------------

/// Multiprocessors of the current device (cached per device ordinal).
inline int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices] = {};
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) device = 0;
  int n = cache[device].load(std::memory_order_relaxed);
  if (n == 0) {
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    cache[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

namespace detail {
template <int N, class Out, class F, size_t... I, class... In>
void launch(cudaStream_t stream, const StridedIter<N>& it, Out* out, const F& f, std::index_sequence<I...>,
            const In*... in) {
  constexpr std::array<int, N> bytes{static_cast<int>(sizeof(Out)), static_cast<int>(sizeof(In))...};
  constexpr int W = simt::vector_width(bytes);
  const int sms = sm_count();
  simt::dispatch_elementwise<N>(
      it, std::array<const void*, N>{out, in...}, bytes, W,
      [&](const simt::DensePlan& plan) {
        const auto blocks = static_cast<unsigned>(simt::grid_size(simt::dense_work(plan.n, W), sms));
        elementwise_vector_kernel<W, Out, F, In...><<<blocks, simt::kThreadsPerBlock, 0, stream>>>(
            plan.n, out, f, simt::Src<In>{in, plan.broadcast[I + 1]}...);
      },
      [&](const StridedIter<N>& chunk, const std::array<int64_t, N>& base, int64_t) {
        const int64_t n = chunk.numel();
        const auto blocks = static_cast<unsigned>(simt::grid_size(n, sms));
        elementwise_strided_kernel<N, Out, F, In...><<<blocks, simt::kThreadsPerBlock, 0, stream>>>(
            static_cast<uint32_t>(n), simt::OffsetCalc<N>::from(chunk), out + base[0], f, (in + base[I + 1])...);
      });
}
}  // namespace detail

/// out = f(in...) elementwise over `it` (operand 0 = out, operand k = in[k - 1]) on `stream`.
template <class Out, class F, class... In>
void launch_elementwise(cudaStream_t stream, const StridedIter<1 + sizeof...(In)>& it, Out* out, const F& f,
                        const In*... in) {
  if (it.numel() == 0) return;
  detail::launch<1 + sizeof...(In)>(stream, it, out, f, std::index_sequence_for<In...>{}, in...);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace zae::kernels::cuda
