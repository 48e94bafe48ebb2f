// float / double math for the elementwise functors, callable on host and device: the C
// library functions on the host (what std:: calls for these types in the CPU twins) and
// CUDA's full-precision versions on a device (no fast-math intrinsics). Transcendental
// results may differ from the host's in the last bits; +, -, *, / and sqrt are IEEE
// correctly rounded on both. Exception: float tanh on the host is vec::tanh_f32
// (kernels/cpu/vec_math.h), the vectorizable tanh that the CPU twins call.
#pragma once

#include <cmath>

#include "kernels/macros.h"
#ifndef __CUDA_ARCH__
#include "kernels/cpu/vec_math.h"
#endif

namespace zae::kernels::simt::math {

#define ZAE_SIMT_MATH1(name, fname)                       \
  ZAE_INLINE float name(float x) { return ::fname(x); }   \
  ZAE_INLINE double name(double x) { return ::name(x); }

ZAE_SIMT_MATH1(exp, expf)
ZAE_SIMT_MATH1(log, logf)
ZAE_SIMT_MATH1(sqrt, sqrtf)
ZAE_SIMT_MATH1(sin, sinf)
ZAE_SIMT_MATH1(cos, cosf)
ZAE_SIMT_MATH1(erf, erff)
ZAE_SIMT_MATH1(fabs, fabsf)
#undef ZAE_SIMT_MATH1

ZAE_INLINE float tanh(float x) {
#ifdef __CUDA_ARCH__
  return ::tanhf(x);
#else
  return cpu::vec::tanh_f32(x);
#endif
}
ZAE_INLINE double tanh(double x) { return ::tanh(x); }

ZAE_INLINE float pow(float x, float y) { return ::powf(x, y); }
ZAE_INLINE double pow(double x, double y) { return ::pow(x, y); }

}  // namespace zae::kernels::simt::math
