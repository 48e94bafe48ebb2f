// Philox4x32-10 counter-based generator (Salmon et al., SC'11), host and device.
// A stream is (seed, offset): element i of a draw uses counter block
// offset + i / 4 and word i % 4, so any device that follows this layout
// reproduces the CPU numbers exactly. Invariant: pure functions, no state.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/macros.h"
#include "kernels/portable_math.h"

namespace zae::philox {

struct U32x4 {
  uint32_t v[4];
};

ZAE_INLINE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

/// Ten rounds of Philox4x32 on counter `c` with key (k0, k1).
ZAE_INLINE U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c.v[0], hi0, lo0);
    mulhilo(kM1, c.v[2], hi1, lo1);
    c = U32x4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

/// The four words of counter block `block` of stream `seed`.
ZAE_INLINE U32x4 block(uint64_t seed, uint64_t block) {
  U32x4 c{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

/// Uniform float in [0, 1) from 24 random bits.
ZAE_INLINE float to_unit_float(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
/// Uniform double in [0, 1) from 53 random bits of two words.
ZAE_INLINE double to_unit_double(uint32_t a, uint32_t b) {
  uint64_t x = (static_cast<uint64_t>(a) << 21) ^ (b >> 11);
  return static_cast<double>(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/// Element i of a uniform [0,1) float draw at stream (seed, offset).
ZAE_INLINE float uniform_float(uint64_t seed, uint64_t offset, uint64_t i) {
  return to_unit_float(block(seed, offset + i / 4).v[i % 4]);
}
/// Element i of a uniform [0,1) double draw: two words per element, two elements per block.
ZAE_INLINE double uniform_double(uint64_t seed, uint64_t offset, uint64_t i) {
  U32x4 w = block(seed, offset + i / 2);
  unsigned j = static_cast<unsigned>(i % 2) * 2;
  return to_unit_double(w.v[j], w.v[j + 1]);
}
/// The Box-Muller pair of words (a, b): u1 = (a + 1) / 2^32 in (0, 1] (log finite),
/// theta = 2 pi b / 2^32; z0 = r cos(theta), z1 = r sin(theta), r = sqrt(-2 log u1).
/// Built on kernels/portable_math.h so the host and a CUDA device give the same bits.
ZAE_INLINE void box_muller(uint32_t a, uint32_t b, double& z0, double& z1) {
  const double r = portable::sqrt_rn(-2.0 * portable::log_word_fraction(static_cast<uint64_t>(a) + 1u));
  double s, c;
  portable::sincos_turns(b, s, c);
  z0 = r * c;
  z1 = r * s;
}
/// Element i of a standard normal draw (Box-Muller on the word pair holding i), in double.
ZAE_INLINE double normal(uint64_t seed, uint64_t offset, uint64_t i) {
  U32x4 w = block(seed, offset + i / 4);
  unsigned j = static_cast<unsigned>(i % 4) & ~1u;
  double z0, z1;
  box_muller(w.v[j], w.v[j + 1], z0, z1);
  return (i % 2 == 0) ? z0 : z1;
}

/// Blocks a draw of n elements consumes, so the next draw starts fresh.
ZAE_INLINE uint64_t blocks_for(uint64_t n, uint64_t per_block) { return (n + per_block - 1) / per_block; }

}  // namespace zae::philox
