// Host-and-device math shared by the CPU and CUDA optimizer kernels (kernels/cpu/optim.h,
// kernels/cuda/optim.h): the per-step factors of Adam computed from (lr, betas, eps,
// weight_decay, t), and stochastic rounding of float32 to bfloat16 from a Philox stream.
//
// Invariants:
// - Every function is pure and computes the same bits on the host and on a CUDA device:
//   products and sums are rounded separately (explicit __d*_rn intrinsics on the device,
//   where nvcc would otherwise contract them into FMAs; the host build uses
//   -ffp-contract=off), division and square root are IEEE. Only pow() may differ by an
//   ulp between the host's libm and CUDA's, which the float conversion that follows
//   almost always absorbs.
// - Stochastic rounding of element i of tensor `tensor_id` at step `step` uses word
//   i % 4 of the Philox4x32-10 block with counter (i / 4 low, i / 4 high, tensor_id,
//   step) and key `seed`: the value rounds away from zero (to the neighbour of larger
//   magnitude) with probability (dropped 16 bits) / 2^16, so E[round(x)] = x. Exact
//   bfloat16 values, infinities and NaN are unchanged (NaN kept quiet); a value within
//   half an ulp below the largest finite bfloat16 may round to infinity.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/macros.h"
#include "kernels/numeric.h"
#include "kernels/philox.h"

namespace zae::kernels::optim_math {

// ---- separately rounded double arithmetic (host: plain operators, -ffp-contract=off) ----

ZAE_INLINE double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
ZAE_INLINE double dsub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
ZAE_INLINE double ddiv(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
ZAE_INLINE double dsqrt(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

/// Adam's hyperparameters, in the order a capturable step stores them in memory.
enum AdamSlot { kAdamLr = 0, kAdamBeta1, kAdamBeta2, kAdamEps, kAdamWeightDecay, kAdamSlots };
/// SGD's hyperparameters, in the order a capturable step stores them in memory.
enum SgdSlot { kSgdLr = 0, kSgdMomentum, kSgdDampening, kSgdWeightDecay, kSgdSlots };

/// Adam's scalars for one tensor at step t (counted from 1), in the compute type C.
template <class C>
struct AdamFactors {
  C sign, wd, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
  C neg_step_size;  // -lr / (1 - beta1^t)
  C bc2_sqrt;       // sqrt(1 - beta2^t)
};

/// The factors from hyperparameters hv (AdamSlot order) and step t.
template <class C>
ZAE_INLINE AdamFactors<C> adam_factors(const double* hv, bool maximize, double t) {
  const double lr = hv[kAdamLr], beta1 = hv[kAdamBeta1], beta2 = hv[kAdamBeta2];
  const double wd = hv[kAdamWeightDecay];
  const double bc1 = dsub(1.0, ::pow(beta1, t));
  const double bc2 = dsub(1.0, ::pow(beta2, t));
  AdamFactors<C> f;
  f.sign = C(maximize ? -1 : 1);
  f.wd = C(wd);
  f.decay = C(dsub(1.0, dmul(lr, wd)));
  f.beta1 = C(beta1);
  f.one_minus_beta1 = C(dsub(1.0, beta1));
  f.beta2 = C(beta2);
  f.one_minus_beta2 = C(dsub(1.0, beta2));
  f.eps = C(hv[kAdamEps]);
  f.neg_step_size = C(-ddiv(lr, bc1));
  f.bc2_sqrt = C(dsqrt(bc2));
  return f;
}

// ---- stochastic rounding -----------------------------------------------------------------

/// The 4 random words of quad q (elements 4q .. 4q+3) of a tensor's rounding stream.
ZAE_INLINE philox::U32x4 rounding_words(uint64_t seed, uint32_t tensor_id, uint32_t step, uint64_t q) {
  philox::U32x4 c{{static_cast<uint32_t>(q), static_cast<uint32_t>(q >> 32), tensor_id, step}};
  return philox::philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

/// x rounded to bfloat16 with the random word `word` (its top 16 bits are used).
ZAE_INLINE BFloat16 bf16_round_stochastic(float x, uint32_t word) {
  const uint32_t u = detail::float_bits(x);
  if ((u & 0x7fffffffu) >= 0x7f800000u) return BFloat16(x);  // inf, NaN
  return BFloat16::from_bits(static_cast<uint16_t>((u + (word >> 16)) >> 16));
}

/// Writes the float result x as a parameter of type T: stochastically rounded when T is
/// bfloat16 and `stochastic` is set, else rounded to nearest even.
template <class T, class C>
ZAE_INLINE T to_param(C x, bool stochastic, uint32_t word) {
  if constexpr (sizeof(T) == 2 && !std::is_same_v<T, Half>) {
    if (stochastic) return bf16_round_stochastic(static_cast<float>(x), word);
  }
  (void)stochastic;
  (void)word;
  return static_cast<T>(x);
}

}  // namespace zae::kernels::optim_math
