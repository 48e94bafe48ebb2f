// CUDA add_layer_norm forward and backward (contract in add_layer_norm.h).
// Row kernels give each row to one row group (detail::row_shape) and merge the row sums
// with row_group_allreduce, so every lane knows the statistics before it writes. The
// backward is layer_norm's on (g_out, sum) (kernels/cuda/layer_norm.cu): d_sum is its dx
// pass with g_sum as the addend (detail::layer_norm_backward_dx), dweight / dbias its
// column sums, called with dx = null: the same kernels, the same fixed order.
#include "kernels/cuda/add_layer_norm.h"

#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/layer_norm.h"
#include "kernels/cuda/reduce_block.cuh"

namespace zae::kernels::cuda {

namespace {

using detail::from_acc;
using detail::Plus;
using detail::to_acc;

template <class T>
__global__ void __launch_bounds__(1024)
    add_layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ residual,
                                  const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ sum,
                                  T* __restrict__ y, acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd,
                                  int64_t M, int64_t N, acc_t<T> eps, int bx, int by) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  A* smem = reinterpret_cast<A*>(smem_bytes);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * by + threadIdx.y;
  const bool valid = row < M;
  const int64_t base = (valid ? row : 0) * N;  // row start in x, residual, sum, y: (N)
  const A inv_n = A(1) / static_cast<A>(N);
  A s = A(0);
  if (valid) {
    for (int64_t j = threadIdx.x; j < N; j += bx) {
      const T v = from_acc<T>(to_acc(x[base + j]) + to_acc(residual[base + j]));
      sum[base + j] = v;
      s += to_acc(v);
    }
  }
  s = detail::row_group_allreduce(s, Plus<A>{}, bx, smem);
  const A mu = s * inv_n;
  A ss = A(0);
  if (valid) {
    for (int64_t j = threadIdx.x; j < N; j += bx) {  // this thread's own writes of sum
      const A d = to_acc(sum[base + j]) - mu;
      ss += d * d;
    }
  }
  ss = detail::row_group_allreduce(ss, Plus<A>{}, bx, smem);
  if (!valid) return;
  const A r = A(1) / detail::sqrt_of(ss * inv_n + eps);
  if (threadIdx.x == 0) {
    mean[row] = mu;
    rstd[row] = r;
  }
  for (int64_t j = threadIdx.x; j < N; j += bx) {
    A v = (to_acc(sum[base + j]) - mu) * r;
    if (weight != nullptr) v *= to_acc(weight[j]);
    if (bias != nullptr) v += to_acc(bias[j]);
    y[base + j] = from_acc<T>(v);
  }
}

void check_grid(int64_t blocks, const char* what, int64_t M, int64_t N) {
  ZAE_CHECK(blocks <= INT_MAX, what, " (cuda): ", M, " rows of ", N, " need ", blocks,
            " blocks, more than a grid holds");
}

}  // namespace

template <class T>
void add_layer_norm_forward(const T* x, const T* residual, const T* weight, const T* bias, T* sum, T* y,
                            acc_t<T>* mean, acc_t<T>* rstd, int64_t M, int64_t N, double eps, cudaStream_t stream) {
  using A = acc_t<T>;
  if (M == 0) return;
  const detail::RowShape rs = detail::row_shape(M, N);
  check_grid(rs.blocks, "add_layer_norm", M, N);
  add_layer_norm_forward_kernel<T>
      <<<static_cast<unsigned>(rs.blocks), dim3(rs.bx, rs.by), rs.smem(sizeof(A)), stream>>>(
          x, residual, weight, bias, sum, y, mean, rstd, M, N, static_cast<A>(eps), rs.bx, rs.by);
  CUDA_CHECK(cudaGetLastError());
}

template <class T>
size_t add_layer_norm_backward_workspace_bytes(int64_t M, int64_t N, bool need_weight_or_bias) {
  return layer_norm_backward_workspace_bytes<T>(M, N, need_weight_or_bias);
}

template <class T>
void add_layer_norm_backward(const T* g_out, const T* g_sum, const T* sum, const acc_t<T>* mean,
                             const acc_t<T>* rstd, const T* weight, T* d_sum, T* dweight, T* dbias, int64_t M,
                             int64_t N, void* workspace, cudaStream_t stream) {
  if (N == 0) return;
  if (d_sum != nullptr && M > 0)
    detail::layer_norm_backward_dx<T>(g_out, g_sum, sum, mean, rstd, weight, d_sum, M, N, "add_layer_norm backward",
                                      stream);
  if (dweight != nullptr || dbias != nullptr)
    layer_norm_backward<T>(g_out, sum, mean, rstd, weight, nullptr, dweight, dbias, M, N, workspace, stream);
}

#define ZAE_CUDA_ADD_LAYER_NORM(T)                                                                                 \
  template void add_layer_norm_forward<T>(const T*, const T*, const T*, const T*, T*, T*, acc_t<T>*, acc_t<T>*,   \
                                          int64_t, int64_t, double, cudaStream_t);                                \
  template size_t add_layer_norm_backward_workspace_bytes<T>(int64_t, int64_t, bool);                             \
  template void add_layer_norm_backward<T>(const T*, const T*, const T*, const acc_t<T>*, const acc_t<T>*,        \
                                           const T*, T*, T*, T*, int64_t, int64_t, void*, cudaStream_t);
ZAE_CUDA_ADD_LAYER_NORM(float)
ZAE_CUDA_ADD_LAYER_NORM(double)
ZAE_CUDA_ADD_LAYER_NORM(Half)
ZAE_CUDA_ADD_LAYER_NORM(BFloat16)
#undef ZAE_CUDA_ADD_LAYER_NORM

}  // namespace zae::kernels::cuda
