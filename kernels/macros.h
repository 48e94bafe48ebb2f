// Portability macros shared by host and device code. No dependencies.
#pragma once

#if defined(__CUDACC__)
#define ZAE_HD __host__ __device__
#define ZAE_INLINE __host__ __device__ __forceinline__
#else
#define ZAE_HD
#define ZAE_INLINE inline
#endif

// Asks the device compiler to unroll the next loop fully; a no-op in host code (host
// compilers unroll small constant-trip loops on their own and warn on `#pragma unroll`).
#if defined(__CUDA_ARCH__)
#define ZAE_UNROLL _Pragma("unroll")
#else
#define ZAE_UNROLL
#endif
