// CRC-32C (Castagnoli): the checksum of TensorBoard/TFRecord framing, iSCSI and ext4.
// Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF; the check
// value is crc32c("123456789") = 0xE3069283.
// Two implementations give identical results: a portable slicing-by-8 table version
// (any CPU) and, on x86-64 CPUs with SSE4.2, the CRC32 instruction. crc32c() picks the
// hardware path when the CPU has it (decided once, at first use); both paths are public
// so that tests can compare them.
// Invariants: crc32c_extend(crc32c(a), b) == crc32c(a + b) for every split; n == 0
// returns the crc unchanged; no function reads outside [data, data + n).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zae::io {

/// CRC-32C of `n` bytes (hardware path when available).
uint32_t crc32c(const void* data, size_t n);
inline uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }

/// Continues a CRC-32C: crc32c_extend(crc32c(a), b) == crc32c(a followed by b).
/// crc32c_extend(0, data, n) == crc32c(data, n).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);

/// The portable slicing-by-8 path (same contract as crc32c_extend).
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n);

/// Whether this CPU has the SSE4.2 CRC32 instruction (always false off x86-64).
bool crc32c_hardware_available();

/// The SSE4.2 path (same contract as crc32c_extend). Must only be called when
/// crc32c_hardware_available() is true.
uint32_t crc32c_extend_hardware(uint32_t crc, const void* data, size_t n);

/// TensorFlow's mask for CRCs stored next to the data they cover:
/// ((crc >> 15) | (crc << 17)) + 0xA282EAD8, modulo 2^32.
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u; }
/// The inverse of mask_crc32c.
inline uint32_t unmask_crc32c(uint32_t masked) {
  const uint32_t rot = masked - 0xA282EAD8u;
  return (rot >> 17) | (rot << 15);
}
/// mask_crc32c(crc32c(data, n)).
inline uint32_t masked_crc32c(const void* data, size_t n) { return mask_crc32c(crc32c(data, n)); }
inline uint32_t masked_crc32c(std::string_view s) { return masked_crc32c(s.data(), s.size()); }

}  // namespace zae::io
