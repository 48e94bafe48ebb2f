// CUDA flash attention forward and backward (contract in attention.h).
//
// THIS CODE HAS NEVER RUN: it was written and compiled on a machine without a GPU.
// Its CPU twin (kernels/cpu/attention.cpp) is the tested reference, and
// tests/test_attention_cuda.cpp compares the two wherever a device is present.
//
// Plain SIMT code (no tensor cores), written to be read: float accumulation, tiles in
// shared memory as float, the head dim padded to kD (32, 64 or 128) with zeros so every
// inner loop has a compile-time trip count.
//   forward   block = (head, 16 query rows), 4 warps x 4 rows. Per tile of 32 keys: lane j
//             computes s_ij = (scale q_i) . k_j, the warp reduces the running max / sum,
//             and lane c accumulates O_i[c + 32 r] += p_ij v_j[c + 32 r] (p_ij by shuffle).
//   backward  D_i = rowsum(dO * O) first (one warp per row). Then block = (head, 32 keys):
//             per tile of 8 query rows, lane j computes p_ij (from lse) and
//             ds_ij = p_ij (dO_i . v_j - D_i) into shared memory; thread (key, 4-way dim
//             split) accumulates dk, dv of its key in registers over all query tiles;
//             thread (row, 16-way dim split) adds scale * ds k for the tile into a float
//             dq workspace with atomicAdd; a last kernel converts dq to T.
#include "kernels/cuda/attention.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"

namespace zae::kernels::cuda {

namespace {

constexpr int kThreads = 128;  // 4 warps per block in every kernel here
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFull, x, o);
  return x;
}

// ---- forward ------------------------------------------------------------------------

constexpr int kFwdRowsPerWarp = 4;
constexpr int kFwdBr = kWarps * kFwdRowsPerWarp;  // 16 query rows per block
constexpr int kBc = 32;                           // keys per tile (one per lane)

template <class T, int kD>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                             T* __restrict__ o, float* __restrict__ lse, int64_t tq, int64_t tk, int d, bool causal,
                             float scale, int64_t q_tiles) {
  constexpr int kPer = kD / 32;  // output dims per lane
  __shared__ float qs[kFwdBr][kD];     // (16, kD) scale * q
  __shared__ float ks[kBc][kD + 1];    // (32, kD) k, padded row: lane j reads row j conflict-free
  __shared__ float vs[kBc][kD];        // (32, kD) v
  const int64_t h = blockIdx.x / q_tiles;
  const int64_t i0 = (blockIdx.x % q_tiles) * kFwdBr;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const T* qh = q + h * tq * d;  // (Tq, d)
  const T* kh = k + h * tk * d;  // (Tk, d)
  const T* vh = v + h * tk * d;  // (Tk, d)

  for (int e = tid; e < kFwdBr * kD; e += kThreads) {
    const int r = e / kD, c = e % kD;
    qs[r][c] = (i0 + r < tq && c < d) ? static_cast<float>(qh[(i0 + r) * d + c]) * scale : 0.0f;
  }
  float m[kFwdRowsPerWarp], l[kFwdRowsPerWarp], acc[kFwdRowsPerWarp][kPer];
#pragma unroll
  for (int rr = 0; rr < kFwdRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
#pragma unroll
    for (int r = 0; r < kPer; ++r) acc[rr][r] = 0.0f;
  }

  const int64_t jend = causal ? min(tk, i0 + kFwdBr) : tk;
  for (int64_t j0 = 0; j0 < jend; j0 += kBc) {
    __syncthreads();  // the previous tile is consumed (and, the first time, qs is written)
    for (int e = tid; e < kBc * kD; e += kThreads) {
      const int r = e / kD, c = e % kD;
      const bool in = j0 + r < tk && c < d;
      ks[r][c] = in ? static_cast<float>(kh[(j0 + r) * d + c]) : 0.0f;
      vs[r][c] = in ? static_cast<float>(vh[(j0 + r) * d + c]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kFwdRowsPerWarp; ++rr) {
      const int row = warp * kFwdRowsPerWarp + rr;
      const int64_t i = i0 + row, j = j0 + lane;
      if (i >= tq) continue;  // warp-uniform
      float s = 0.0f;
#pragma unroll
      for (int c = 0; c < kD; ++c) s += qs[row][c] * ks[lane][c];
      const bool visible = j < tk && (!causal || j <= i);
      s = visible ? s : -INFINITY;
      const float m_new = fmaxf(m[rr], warp_max(s));
      if (m_new == -INFINITY) continue;  // no visible key yet (warp-uniform)
      const float p = visible ? expf(s - m_new) : 0.0f;
      const float alpha = expf(m[rr] - m_new);  // 0 when m was -inf
      l[rr] = l[rr] * alpha + warp_sum(p);
      m[rr] = m_new;
#pragma unroll
      for (int r = 0; r < kPer; ++r) acc[rr][r] *= alpha;
      for (int jj = 0; jj < kBc; ++jj) {
        const float pj = __shfl_sync(kFull, p, jj);
#pragma unroll
        for (int r = 0; r < kPer; ++r) acc[rr][r] += pj * vs[jj][lane + 32 * r];
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kFwdRowsPerWarp; ++rr) {
    const int64_t i = i0 + warp * kFwdRowsPerWarp + rr;
    if (i >= tq) continue;
    const float inv = 1.0f / l[rr];
#pragma unroll
    for (int r = 0; r < kPer; ++r) {
      const int c = lane + 32 * r;
      if (c < d) o[(h * tq + i) * d + c] = T(acc[rr][r] * inv);
    }
    if (lane == 0) lse[h * tq + i] = m[rr] + logf(l[rr]);
  }
}

// ---- backward -----------------------------------------------------------------------

// dd (BH * Tq) = rowsum(d_o * o), one warp per row.
template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_row_dot_kernel(const T* __restrict__ o, const T* __restrict__ d_o, float* __restrict__ dd, int64_t rows,
                             int d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // warp-uniform
  float s = 0.0f;
  for (int c = lane; c < d; c += 32) s += static_cast<float>(o[row * d + c]) * static_cast<float>(d_o[row * d + c]);
  s = warp_sum(s);
  if (lane == 0) dd[row] = s;
}

constexpr int kBwdRowsPerWarp = 2;
constexpr int kBwdBr = kWarps * kBwdRowsPerWarp;  // 8 query rows per tile

template <class T, int kD>
__global__ void __launch_bounds__(kThreads)
    attention_backward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                              const T* __restrict__ d_o, const float* __restrict__ lse, const float* __restrict__ dd,
                              float* __restrict__ dq_acc, T* __restrict__ dk, T* __restrict__ dv, int64_t tq,
                              int64_t tk, int d, bool causal, float scale, int64_t k_tiles) {
  constexpr int kKvSplit = kThreads / kBc;     // 4 threads per key for dk / dv
  constexpr int kKvDims = kD / kKvSplit;       // dims per thread for dk / dv
  constexpr int kQSplit = kThreads / kBwdBr;   // 16 threads per query row for dq
  constexpr int kQDims = kD / kQSplit;         // dims per thread for dq (kD >= 32 so >= 2)
  __shared__ float ks[kBc][kD + 1];    // (32, kD) k
  __shared__ float vs[kBc][kD + 1];    // (32, kD) v
  __shared__ float qs[kBwdBr][kD];     // (8, kD) scale * q
  __shared__ float gs[kBwdBr][kD];     // (8, kD) dO
  __shared__ float ps[kBwdBr][kBc + 1];   // (8, 32) P
  __shared__ float dss[kBwdBr][kBc + 1];  // (8, 32) dS
  const int64_t h = blockIdx.x / k_tiles;
  const int64_t j0 = (blockIdx.x % k_tiles) * kBc;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const T* qh = q + h * tq * d;
  const T* kh = k + h * tk * d;
  const T* vh = v + h * tk * d;
  const T* gh = d_o + h * tq * d;

  for (int e = tid; e < kBc * kD; e += kThreads) {
    const int r = e / kD, c = e % kD;
    const bool in = j0 + r < tk && c < d;
    ks[r][c] = in ? static_cast<float>(kh[(j0 + r) * d + c]) : 0.0f;
    vs[r][c] = in ? static_cast<float>(vh[(j0 + r) * d + c]) : 0.0f;
  }
  const int key_row = tid / kKvSplit, key_part = tid % kKvSplit;  // dk / dv: (key, dims part + 4 t)
  const int q_row = tid / kQSplit, q_part = tid % kQSplit;        // dq: (row, dims part + 16 t)
  float dk_acc[kKvDims], dv_acc[kKvDims];
#pragma unroll
  for (int t = 0; t < kKvDims; ++t) dk_acc[t] = dv_acc[t] = 0.0f;

  // Causal: query rows below j0 see none of these keys.
  const int64_t i_begin = causal ? (j0 / kBwdBr) * kBwdBr : 0;
  for (int64_t i0 = i_begin; i0 < tq; i0 += kBwdBr) {
    __syncthreads();  // the previous tile is consumed (and, the first time, ks / vs are written)
    for (int e = tid; e < kBwdBr * kD; e += kThreads) {
      const int r = e / kD, c = e % kD;
      const bool in = i0 + r < tq && c < d;
      qs[r][c] = in ? static_cast<float>(qh[(i0 + r) * d + c]) * scale : 0.0f;
      gs[r][c] = in ? static_cast<float>(gh[(i0 + r) * d + c]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kBwdRowsPerWarp; ++rr) {
      const int row = warp * kBwdRowsPerWarp + rr;
      const int64_t i = i0 + row, j = j0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i < tq && j < tk && (!causal || j <= i)) {
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int c = 0; c < kD; ++c) {
          s += qs[row][c] * ks[lane][c];
          dp += gs[row][c] * vs[lane][c];
        }
        p = expf(s - lse[h * tq + i]);
        ds = p * (dp - dd[h * tq + i]);
      }
      ps[row][lane] = p;
      dss[row][lane] = ds;
    }
    __syncthreads();
    // dv += P^T dO, dk += dS^T (scale q) for this thread's key and dims.
    for (int r = 0; r < kBwdBr; ++r) {
      const float pr = ps[r][key_row], dr = dss[r][key_row];
#pragma unroll
      for (int t = 0; t < kKvDims; ++t) {
        const int c = key_part + kKvSplit * t;
        dv_acc[t] += pr * gs[r][c];
        dk_acc[t] += dr * qs[r][c];
      }
    }
    // dq += scale dS k for this thread's row and dims (other key tiles add theirs too).
    if (i0 + q_row < tq) {
#pragma unroll
      for (int t = 0; t < kQDims; ++t) {
        const int c = q_part + kQSplit * t;
        if (c >= d) continue;
        float s = 0.0f;
        for (int jj = 0; jj < kBc; ++jj) s += dss[q_row][jj] * ks[jj][c];
        atomicAdd(&dq_acc[(h * tq + i0 + q_row) * d + c], s * scale);
      }
    }
  }

  const int64_t j = j0 + key_row;
  if (j < tk) {
#pragma unroll
    for (int t = 0; t < kKvDims; ++t) {
      const int c = key_part + kKvSplit * t;
      if (c < d) {
        dk[(h * tk + j) * d + c] = T(dk_acc[t]);
        dv[(h * tk + j) * d + c] = T(dv_acc[t]);
      }
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256) attention_cast_kernel(const float* __restrict__ src, T* __restrict__ dst,
                                                            int64_t n) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[e] = T(src[e]);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned grid_of(int64_t blocks, const char* what) {
  ZAE_CHECK(blocks <= INT_MAX, "attention (CUDA): ", what, " needs ", blocks, " blocks, more than a grid holds");
  return static_cast<unsigned>(blocks);
}

// Calls fn(std::integral_constant<int, kD>) for the padded head dim of d.
template <class Fn>
void with_head_dim(int64_t d, Fn&& fn) {
  if (d <= 32) {
    fn(std::integral_constant<int, 32>{});
  } else if (d <= 64) {
    fn(std::integral_constant<int, 64>{});
  } else if (d <= 128) {
    fn(std::integral_constant<int, 128>{});
  } else {
    ZAE_FAIL("attention (CUDA): head dim D = ", d, " is not supported (1 <= D <= 128)");
  }
}

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

bool attention_head_dim_supported(int64_t d) { return d >= 1 && d <= 128; }

template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* o, float* lse, int64_t batch_heads, int64_t tq,
                       int64_t tk, int64_t d, bool causal, double scale, cudaStream_t stream) {
  if (batch_heads == 0 || tq == 0) return;
  ZAE_CHECK(tk >= 1 && attention_head_dim_supported(d) && (!causal || tq == tk), "attention (CUDA): bad sizes tq=",
            tq, " tk=", tk, " d=", d, " causal=", causal);
  const int64_t q_tiles = ceil_div(tq, kFwdBr);
  const unsigned grid = grid_of(batch_heads * q_tiles, "the forward");
  with_head_dim(d, [&](auto kd) {
    attention_forward_kernel<T, decltype(kd)::value><<<grid, kThreads, 0, stream>>>(
        q, k, v, o, lse, tq, tk, static_cast<int>(d), causal, static_cast<float>(scale), q_tiles);
    CUDA_CHECK(cudaGetLastError());
  });
}

size_t attention_backward_workspace_bytes(int64_t batch_heads, int64_t tq, int64_t d) {
  const size_t rows = static_cast<size_t>(batch_heads * tq);
  return align256(rows * static_cast<size_t>(d) * sizeof(float)) + align256(rows * sizeof(float));
}

template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* d_o, const float* lse, T* dq, T* dk,
                        T* dv, int64_t batch_heads, int64_t tq, int64_t tk, int64_t d, bool causal, double scale,
                        void* workspace, cudaStream_t stream) {
  if (batch_heads == 0 || tk == 0 || d == 0) return;
  ZAE_CHECK(attention_head_dim_supported(d) && (!causal || tq == tk), "attention (CUDA): bad sizes tq=", tq,
            " tk=", tk, " d=", d, " causal=", causal);
  const int64_t rows = batch_heads * tq;
  if (tq == 0) {  // no queries: dk = dv = 0 and dq is empty
    CUDA_CHECK(cudaMemsetAsync(dk, 0, static_cast<size_t>(batch_heads * tk * d) * sizeof(T), stream));
    CUDA_CHECK(cudaMemsetAsync(dv, 0, static_cast<size_t>(batch_heads * tk * d) * sizeof(T), stream));
    return;
  }
  float* dq_acc = static_cast<float*>(workspace);  // (BH, Tq, d)
  float* dd = reinterpret_cast<float*>(static_cast<char*>(workspace) +
                                       align256(static_cast<size_t>(rows * d) * sizeof(float)));  // (BH, Tq)
  CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, static_cast<size_t>(rows * d) * sizeof(float), stream));
  attention_row_dot_kernel<T><<<grid_of(ceil_div(rows, kWarps), "the row dots"), kThreads, 0, stream>>>(
      o, d_o, dd, rows, static_cast<int>(d));
  CUDA_CHECK(cudaGetLastError());
  const int64_t k_tiles = ceil_div(tk, kBc);
  const unsigned grid = grid_of(batch_heads * k_tiles, "the backward");
  with_head_dim(d, [&](auto kd) {
    attention_backward_kernel<T, decltype(kd)::value><<<grid, kThreads, 0, stream>>>(
        q, k, v, d_o, lse, dd, dq_acc, dk, dv, tq, tk, static_cast<int>(d), causal, static_cast<float>(scale),
        k_tiles);
    CUDA_CHECK(cudaGetLastError());
  });
  const int64_t n = rows * d;
  attention_cast_kernel<T><<<grid_of(std::min<int64_t>(ceil_div(n, 256), 65535), "the dq cast"), 256, 0, stream>>>(
      dq_acc, dq, n);
  CUDA_CHECK(cudaGetLastError());
}

#define ZAE_CUDA_ATTENTION(T)                                                                                    \
  template void attention_forward<T>(const T*, const T*, const T*, T*, float*, int64_t, int64_t, int64_t, int64_t, \
                                     bool, double, cudaStream_t);                                               \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*, const float*, T*, T*, T*, \
                                      int64_t, int64_t, int64_t, int64_t, bool, double, void*, cudaStream_t);
ZAE_CUDA_ATTENTION(float)
ZAE_CUDA_ATTENTION(Half)
ZAE_CUDA_ATTENTION(BFloat16)
#undef ZAE_CUDA_ATTENTION

}  // namespace zae::kernels::cuda
