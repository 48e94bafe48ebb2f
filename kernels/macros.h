// Portability macros shared by host and device code. No dependencies.
#pragma once

#if defined(__CUDACC__)
#define ZAE_HD __host__ __device__
#define ZAE_INLINE __host__ __device__ __forceinline__
#else
#define ZAE_HD
#define ZAE_INLINE inline
#endif
