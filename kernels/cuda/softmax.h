// CUDA softmax / log_softmax over one dim of a dense tensor viewed as (outer, K, inner):
// the device twins of kernels/cpu/softmax.h, with the same contract (dense buffers,
// write-only outputs, acc_t arithmetic, NaN for a lane whose maximum is infinite or
// that holds a NaN; backward from the saved output y).
//
// Invariants:
// - inner == 1 (the last dim): one row group per row, a warp (or a warp segment for
//   K <= 32) for K <= 1024, up to 1024 threads for longer rows. Forward reads the row
//   twice: a running (max, sum of exp) pass, then the write. Backward: a sum pass, then
//   the write.
// - inner > 1: one thread per (outer, inner) lane walking K at stride inner
//   (coalesced along inner), same two passes.
// - Deterministic (fixed reduction trees, no atomics); nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace zae::kernels::cuda {

/// y = softmax(x) (or log_softmax when `log`) along K.  x, y: (outer, K, inner).
template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, bool log, cudaStream_t stream);

/// dx from the upstream gradient g and the saved output y.  g, y, dx: (outer, K, inner).
template <class T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t outer, int64_t K, int64_t inner, bool log,
                      cudaStream_t stream);

}  // namespace zae::kernels::cuda
