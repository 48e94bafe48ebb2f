// CUDA_CHECK: turns a failed CUDA runtime call into a zae::Error naming the call, the
// CUDA error name and its message. Lives in kernels/ so the CUDA kernels (the lowest
// layer) can use it; engine/cuda/cuda_check.h re-exports it for the engine.
// Its only project dependency is engine/error.h (a leaf header with no engine types).
#pragma once

#include <cuda_runtime.h>

#include "engine/error.h"

/// Evaluates `call` (a cudaError_t expression) once; throws zae::Error unless it is cudaSuccess.
#define CUDA_CHECK(call)                                                                            \
  do {                                                                                              \
    cudaError_t zae_err_ = (call);                                                                  \
    if (zae_err_ != cudaSuccess) [[unlikely]]                                                       \
      ::zae::detail::throw_error(::zae::detail::concat("CUDA error ", cudaGetErrorName(zae_err_), \
                                                       ": ", cudaGetErrorString(zae_err_)),        \
                                 #call, __FILE__, __LINE__);                                        \
  } while (0)
