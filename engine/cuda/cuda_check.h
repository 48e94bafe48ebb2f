// CUDA_CHECK: turns a failed CUDA runtime call into a zae::Error naming the call.
#pragma once

#include <cuda_runtime.h>

#include "engine/error.h"

#define CUDA_CHECK(call)                                                                            \
  do {                                                                                              \
    cudaError_t zae_err_ = (call);                                                                  \
    if (zae_err_ != cudaSuccess) [[unlikely]]                                                       \
      ::zae::detail::throw_error(::zae::detail::concat("CUDA error ", cudaGetErrorName(zae_err_), \
                                                       ": ", cudaGetErrorString(zae_err_)),        \
                                 #call, __FILE__, __LINE__);                                        \
  } while (0)
