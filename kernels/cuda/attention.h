// CUDA fused scaled-dot-product attention (flash attention): the device twins of
// kernels/cpu/attention.h, with the same contract and math (S = scale q k^T, causal
// hides key j > i and needs Tq == Tk, lse (BH, Tq) = log-sum-exp of each row of S,
// backward recomputes P from q, k and lse; dS = P * (dP - D), D_i = rowsum(dO * O)).
//
// Invariants:
// - q, o, d_o, dq dense (BH, Tq, D); k, v, dk, dv dense (BH, Tk, D); lse (BH, Tq) float.
//   T is float, Half or BFloat16; every product accumulates in float. 1 <= D <= 128: the
//   kernels are templated on a padded head dim (32, 64 or 128) and zero-pad the rest.
// - Forward: one block per (head, tile of 16 query rows); each warp owns 4 rows and runs
//   the online softmax over tiles of 32 keys staged in shared memory (lane = key for the
//   scores, lane = head dims for the output accumulator).
// - Backward: a preprocessing kernel writes D_i; one block per (head, key tile)
//   accumulates dk, dv of its keys privately over all query tiles and adds its share of
//   dq (scaled) into a float workspace with atomicAdd; a last kernel converts dq to T.
//   dq is therefore not bitwise reproducible run to run (atomic order); dk, dv are.
// - Pointers are device pointers on the current device; everything runs on `stream`,
//   every launch is checked; nothing synchronises.
// - Written and compiled without a GPU: this code has NEVER RUN. tests/test_attention_cuda.cpp
//   compares it with the CPU twin where a device exists.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cuda {

/// Whether the CUDA kernels handle head dim d (1 <= d <= 128).
bool attention_head_dim_supported(int64_t d);

/// o = softmax(scale q k^T [+ causal mask]) v; lse (BH, Tq) float.
template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* o, float* lse, int64_t batch_heads, int64_t tq,
                       int64_t tk, int64_t d, bool causal, double scale, cudaStream_t stream);

/// Bytes of device scratch attention_backward needs (a float dq accumulator and D).
size_t attention_backward_workspace_bytes(int64_t batch_heads, int64_t tq, int64_t d);

/// Gradients from d_o, the saved o and lse; dq, dk, dv overwritten. `workspace`:
/// attention_backward_workspace_bytes bytes of device memory (256-byte aligned).
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* d_o, const float* lse, T* dq, T* dk,
                        T* dv, int64_t batch_heads, int64_t tq, int64_t tk, int64_t d, bool causal, double scale,
                        void* workspace, cudaStream_t stream);

}  // namespace zae::kernels::cuda
