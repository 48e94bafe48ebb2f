// Index validation on the CPU (kernels/cpu/index.h) and on CUDA (kernels/cuda/index.h,
// one read-back per scan). See index_check.h.
#include "engine/ops/index_check.h"

#include "kernels/cpu/index.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"
#include "kernels/cuda/index.h"
#endif

namespace zae::detail {

IndexScan scan_indices(const char* op, const Tensor& idx, int64_t size, bool want_max) {
  ZAE_CHECK(idx.is_contiguous(), op, ": internal error: index scan of a non-contiguous tensor");
  IndexScan out;
  const int64_t n = idx.numel();
  if (n == 0) return out;
  if (idx.device().is_cuda()) {
#ifdef ZAE_WITH_CUDA
    const int dev = idx.device().index;
    cuda::DeviceGuard guard(dev);
    cudaStream_t stream = cuda::current_stream(dev);
    Tensor stats = Tensor::empty({2}, {.dtype = DType::int64, .device = idx.device()});  // (2) device words
    auto* words = static_cast<unsigned long long*>(stats.raw_data());
    dispatch_index(idx.dtype(), op, [&](auto tag) {
      using I = typename decltype(tag)::type;
      kernels::cuda::index_stats<I>(idx.data<I>(), n, size, words, stream);
    });
    unsigned long long host[2] = {0, 0};
    CUDA_CHECK(cudaMemcpyAsync(host, words, sizeof(host), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));  // the op's one read-back
    out.first_invalid = host[0] == ~0ull ? -1 : static_cast<int64_t>(host[0]);
    if (want_max) out.max_value = static_cast<int64_t>(host[1] ^ (1ull << 63));
    return out;
#else
    ZAE_FAIL(op, ": not implemented for device ", idx.device(), " in this build");
#endif
  }
  dispatch_index(idx.dtype(), op, [&](auto tag) {
    using I = typename decltype(tag)::type;
    const I* p = idx.data<I>();
    out.first_invalid = kernels::cpu::find_invalid_index<I>(p, n, size);
    if (want_max) out.max_value = kernels::cpu::max_index<I>(p, n);
  });
  return out;
}

int64_t index_value_at(const Tensor& idx, int64_t pos) {
  return idx.reshape({idx.numel()}).select(0, pos).to_vector<int64_t>().at(0);
}

}  // namespace zae::detail
