// bits_t<T>: the unsigned integer type of T's size. Kernels that only move values
// (where, fill, same-dtype copies) work on these, so dtypes of one size share code.
#pragma once

#include <cstdint>
#include <type_traits>

namespace zae::kernels::simt {

template <size_t Bytes>
struct UnsignedOfSize;
template <>
struct UnsignedOfSize<1> {
  using type = uint8_t;
};
template <>
struct UnsignedOfSize<2> {
  using type = uint16_t;
};
template <>
struct UnsignedOfSize<4> {
  using type = uint32_t;
};
template <>
struct UnsignedOfSize<8> {
  using type = uint64_t;
};

template <class T>
using bits_t = typename UnsignedOfSize<sizeof(T)>::type;

/// The bits of `v` as bits_t<T> (host code; T trivially copyable).
template <class T>
bits_t<T> to_bits(const T& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  bits_t<T> u;
  __builtin_memcpy(&u, &v, sizeof(T));
  return u;
}

}  // namespace zae::kernels::simt
