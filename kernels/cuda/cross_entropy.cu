// CUDA fused cross-entropy (contract in cross_entropy.h; formulas in
// kernels/cpu/cross_entropy.h). Row kernels use detail::row_shape (one row group per
// row); the loss sum is a two-stage fixed tree over blocks of rows.
#include "kernels/cuda/cross_entropy.h"

#include <algorithm>
#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/reduce_block.cuh"

namespace zae::kernels::cuda {

namespace {

using detail::from_acc;
using detail::MaxSum;
using detail::Pair;
using detail::PairPlus;
using detail::Plus;
using detail::to_acc;

constexpr int kUnroll = 4;
constexpr int kSumThreads = 256;        // threads of the sum kernels (one row group)
constexpr int64_t kMaxSumBlocks = 256;  // first-stage blocks of cross_entropy_reduce
constexpr int kScanThreads = 256;       // threads per block of the target scan
constexpr int64_t kMaxScanBlocks = 1024;

template <class I>
__global__ void __launch_bounds__(kScanThreads)
    find_invalid_kernel(const I* __restrict__ target, int64_t n, int64_t classes, bool has_ignore, int64_t ignore,
                        unsigned long long* __restrict__ first) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t v = static_cast<int64_t>(target[i]);
    if (has_ignore && v == ignore) continue;
    // Integer atomicMin: the smallest position wins whatever the order (deterministic).
    if (v < 0 || v >= classes) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

template <class T, class I>
__global__ void __launch_bounds__(1024)
    ce_forward_kernel(const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight,
                      int64_t rows, int64_t classes, int64_t ignore, acc_t<T> eps, acc_t<T> smooth_coef,
                      acc_t<T>* __restrict__ lse, T* __restrict__ loss, double* __restrict__ row_loss,
                      double* __restrict__ row_weight, int bx, int by) {
  using A = acc_t<T>;
  using S = MaxSum<A>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  const bool valid = row < rows;
  const T* xr = logits + (valid ? row : 0) * classes;  // (C)
  S st = detail::max_sum_init<A>();
  if (valid) {
    int64_t c = threadIdx.x;
    for (; c + (kUnroll - 1) * bx < classes; c += kUnroll * bx) {
      A v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) v[u] = to_acc(xr[c + u * bx]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) detail::max_sum_add(st, v[u]);
    }
    for (; c < classes; c += bx) detail::max_sum_add(st, to_acc(xr[c]));
  }
  st = detail::row_group_allreduce(
      st, [](const S& a, const S& b) { return detail::max_sum_merge(a, b); }, bx, reinterpret_cast<S*>(smem_bytes));
  const A l = detail::max_sum_logsumexp(st);
  const int64_t t = valid ? static_cast<int64_t>(target[row]) : ignore;
  const bool active = valid && t != ignore;
  A smooth = A(0);
  if (eps != A(0)) {  // uniform over the grid: every thread reaches the allreduce
    if (active) {
      for (int64_t c = threadIdx.x; c < classes; c += bx) {
        const A wc = weight != nullptr ? to_acc(weight[c]) : A(1);
        smooth += wc * (l - to_acc(xr[c]));
      }
    }
    smooth = detail::row_group_allreduce(smooth, Plus<A>{}, bx, reinterpret_cast<A*>(smem_bytes));
  }
  if (!valid || threadIdx.x != 0) return;
  A value = A(0), wt = A(0);
  if (active) {
    wt = weight != nullptr ? to_acc(weight[t]) : A(1);
    value = (A(1) - eps) * wt * (l - to_acc(xr[t]));
    if (eps != A(0)) value += smooth_coef * smooth;
  }
  lse[row] = l;
  if (row_loss != nullptr) {
    row_loss[row] = static_cast<double>(value);
    row_weight[row] = static_cast<double>(wt);
  }
  if (loss != nullptr) loss[row] = from_acc<T>(value);
}

/// Per-block sums of row_loss and row_weight over chunks of rows: partial (blocks, 2).
__global__ void __launch_bounds__(kSumThreads)
    ce_sum_partial_kernel(const double* __restrict__ row_loss, const double* __restrict__ row_weight, int64_t rows,
                          int64_t chunk, double* __restrict__ partial) {
  __shared__ Pair<double> smem[kSumThreads / 32];
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * chunk, r1 = min(rows, r0 + chunk);
  Pair<double> p{0.0, 0.0};
  for (int64_t r = r0 + threadIdx.x; r < r1; r += kSumThreads) {
    p.a += row_loss[r];
    p.b += row_weight[r];
  }
  p = detail::row_group_reduce(p, PairPlus<double>{}, kSumThreads, smem);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = p.a;
    partial[2 * blockIdx.x + 1] = p.b;
  }
}

template <class T>
__global__ void __launch_bounds__(kSumThreads)
    ce_sum_final_kernel(const double* __restrict__ partial, int64_t blocks, bool mean, T* __restrict__ out,
                        double* __restrict__ grad_scale) {
  __shared__ Pair<double> smem[kSumThreads / 32];
  Pair<double> p{0.0, 0.0};
  for (int64_t b = threadIdx.x; b < blocks; b += kSumThreads) {
    p.a += partial[2 * b];
    p.b += partial[2 * b + 1];
  }
  p = detail::row_group_reduce(p, PairPlus<double>{}, kSumThreads, smem);
  if (threadIdx.x != 0) return;
  if (mean) {
    *out = from_acc<T>(p.b == 0.0 ? __longlong_as_double(0x7ff8000000000000LL) : p.a / p.b);
    *grad_scale = 1.0 / p.b;
  } else {
    *out = from_acc<T>(p.a);
    *grad_scale = 1.0;
  }
}

/// scratch[0] = sum of the class weights, in acc_t<T>, by one block.
template <class T>
__global__ void __launch_bounds__(kSumThreads)
    ce_weight_total_kernel(const T* __restrict__ weight, int64_t classes, acc_t<T>* __restrict__ total) {
  using A = acc_t<T>;
  __shared__ A smem[kSumThreads / 32];
  A s = A(0);
  for (int64_t c = threadIdx.x; c < classes; c += kSumThreads) s += to_acc(weight[c]);
  s = detail::row_group_reduce(s, Plus<A>{}, kSumThreads, smem);
  if (threadIdx.x == 0) *total = s;
}

template <class T, class I>
__global__ void __launch_bounds__(1024)
    ce_backward_kernel(const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight,
                       const acc_t<T>* __restrict__ lse, const T* __restrict__ grad, int64_t grad_stride,
                       const double* __restrict__ grad_scale, const acc_t<T>* __restrict__ weight_total, int64_t rows,
                       int64_t classes, int64_t ignore, acc_t<T> eps, acc_t<T> smooth_coef, T* __restrict__ d_logits,
                       int bx, int by) {
  using A = acc_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  if (row >= rows) return;               // no block-wide synchronisation in this kernel
  const T* xr = logits + row * classes;  // (C)
  T* dr = d_logits + row * classes;      // (C)
  const int64_t t = static_cast<int64_t>(target[row]);
  if (t == ignore) {
    for (int64_t j = threadIdx.x; j < classes; j += bx) dr[j] = from_acc<T>(A(0));
    return;
  }
  const double scale = grad_scale != nullptr ? *grad_scale : 1.0;
  const A g = static_cast<A>(static_cast<double>(to_acc(grad[row * grad_stride])) * scale);
  const A wt = weight != nullptr ? to_acc(weight[t]) : A(1);
  const A target_coef = (A(1) - eps) * wt;
  const A total = weight != nullptr ? *weight_total : static_cast<A>(classes);
  const A p_coef = target_coef + smooth_coef * total;  // weight of p_j
  const A l = lse[row];
  for (int64_t j = threadIdx.x; j < classes; j += bx) {
    const A wj = weight != nullptr ? to_acc(weight[j]) : A(1);
    A v = detail::exp_of(to_acc(xr[j]) - l) * p_coef - smooth_coef * wj;
    if (j == t) v -= target_coef;
    dr[j] = from_acc<T>(g * v);
  }
}

int64_t sum_blocks(int64_t rows) {
  return std::clamp<int64_t>(detail::ceil_div(rows, 8 * kSumThreads), 1, kMaxSumBlocks);
}

void check_rows_grid(int64_t blocks, const char* what, int64_t rows, int64_t classes) {
  ZAE_CHECK(blocks <= INT_MAX, what, " (cuda): ", rows, " rows of ", classes, " classes need ", blocks,
            " blocks, more than a grid holds");
}

}  // namespace

template <class I>
int64_t find_invalid_target(const I* target, int64_t n, int64_t classes, const int64_t* ignore_index, int64_t* scratch,
                            cudaStream_t stream) {
  if (n <= 0) return -1;
  // 0x7f in every byte: a position larger than any valid one.
  CUDA_CHECK(cudaMemsetAsync(scratch, 0x7f, sizeof(int64_t), stream));
  const auto blocks = static_cast<unsigned>(std::min(detail::ceil_div(n, kScanThreads), kMaxScanBlocks));
  find_invalid_kernel<I><<<blocks, kScanThreads, 0, stream>>>(target, n, classes, ignore_index != nullptr,
                                                              ignore_index != nullptr ? *ignore_index : 0,
                                                              reinterpret_cast<unsigned long long*>(scratch));
  CUDA_CHECK(cudaGetLastError());
  int64_t first = 0;
  CUDA_CHECK(cudaMemcpyAsync(&first, scratch, sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return first >= 0 && first < n ? first : -1;
}

template <class T, class I>
void cross_entropy_forward(const T* logits, const I* target, const T* weight, const CrossEntropyParams& p,
                           acc_t<T>* lse, T* loss, double* row_loss, double* row_weight, cudaStream_t stream) {
  using A = acc_t<T>;
  if (p.rows <= 0) return;
  const A eps = static_cast<A>(p.label_smoothing);
  const A smooth_coef = p.classes > 0 ? eps / static_cast<A>(p.classes) : A(0);
  const detail::RowShape rs = detail::row_shape(p.rows, p.classes);
  check_rows_grid(rs.blocks, "cross_entropy", p.rows, p.classes);
  ce_forward_kernel<T, I><<<static_cast<unsigned>(rs.blocks), dim3(rs.bx, rs.by), rs.smem(sizeof(MaxSum<A>)), stream>>>(
      logits, target, weight, p.rows, p.classes, p.ignore_index, eps, smooth_coef, lse, loss, row_loss, row_weight,
      rs.bx, rs.by);
  CUDA_CHECK(cudaGetLastError());
}

int64_t cross_entropy_reduce_scratch(int64_t rows) { return 2 * sum_blocks(rows); }

template <class T>
void cross_entropy_reduce(const double* row_loss, const double* row_weight, int64_t rows, bool mean, T* out,
                          double* grad_scale, double* scratch, cudaStream_t stream) {
  const int64_t blocks = sum_blocks(rows);
  const int64_t chunk = std::max<int64_t>(1, detail::ceil_div(rows, blocks));
  ce_sum_partial_kernel<<<static_cast<unsigned>(blocks), kSumThreads, 0, stream>>>(row_loss, row_weight, rows, chunk,
                                                                                   scratch);
  ce_sum_final_kernel<T><<<1, kSumThreads, 0, stream>>>(scratch, blocks, mean, out, grad_scale);
  CUDA_CHECK(cudaGetLastError());
}

template <class T, class I>
void cross_entropy_backward(const T* logits, const I* target, const T* weight, const acc_t<T>* lse, const T* grad,
                            int64_t grad_stride, const double* grad_scale, const CrossEntropyParams& p, T* d_logits,
                            acc_t<T>* scratch, cudaStream_t stream) {
  using A = acc_t<T>;
  if (p.rows <= 0 || p.classes <= 0) return;
  const A eps = static_cast<A>(p.label_smoothing);
  const A smooth_coef = eps / static_cast<A>(p.classes);
  if (weight != nullptr) ce_weight_total_kernel<T><<<1, kSumThreads, 0, stream>>>(weight, p.classes, scratch);
  const detail::RowShape rs = detail::row_shape(p.rows, p.classes);
  check_rows_grid(rs.blocks, "cross_entropy backward", p.rows, p.classes);
  ce_backward_kernel<T, I><<<static_cast<unsigned>(rs.blocks), dim3(rs.bx, rs.by), 0, stream>>>(
      logits, target, weight, lse, grad, grad_stride, grad_scale, scratch, p.rows, p.classes, p.ignore_index, eps,
      smooth_coef, d_logits, rs.bx, rs.by);
  CUDA_CHECK(cudaGetLastError());
}

template int64_t find_invalid_target<int32_t>(const int32_t*, int64_t, int64_t, const int64_t*, int64_t*, cudaStream_t);
template int64_t find_invalid_target<int64_t>(const int64_t*, int64_t, int64_t, const int64_t*, int64_t*, cudaStream_t);

#define ZAE_CUDA_CE(T, I)                                                                                           \
  template void cross_entropy_forward<T, I>(const T*, const I*, const T*, const CrossEntropyParams&, acc_t<T>*, T*, \
                                            double*, double*, cudaStream_t);                                        \
  template void cross_entropy_backward<T, I>(const T*, const I*, const T*, const acc_t<T>*, const T*, int64_t,      \
                                             const double*, const CrossEntropyParams&, T*, acc_t<T>*, cudaStream_t);
#define ZAE_CUDA_CE_T(T)                                                                                   \
  ZAE_CUDA_CE(T, int32_t)                                                                                  \
  ZAE_CUDA_CE(T, int64_t)                                                                                  \
  template void cross_entropy_reduce<T>(const double*, const double*, int64_t, bool, T*, double*, double*, \
                                        cudaStream_t);
ZAE_CUDA_CE_T(float)
ZAE_CUDA_CE_T(double)
ZAE_CUDA_CE_T(Half)
ZAE_CUDA_CE_T(BFloat16)
#undef ZAE_CUDA_CE_T
#undef ZAE_CUDA_CE

}  // namespace zae::kernels::cuda
