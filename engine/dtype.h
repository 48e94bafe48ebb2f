// Runtime element types and the dispatch from a runtime DType to a C++ type.
// Dispatch happens once, at an op's entry (DESIGN.md convention 2): a generic
// lambda receives a TypeTag<T>; unsupported dtypes fail naming the op.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string_view>

#include "engine/error.h"
#include "kernels/numeric.h"

namespace zae {

enum class DType : uint8_t { float32, float64, bfloat16, float16, int32, int64, uint8, bool_ };

inline constexpr int kNumDTypes = 8;

/// Name as PyTorch spells it ("float32", "bfloat16", "bool", ...).
std::string_view dtype_name(DType t);
std::ostream& operator<<(std::ostream& os, DType t);
/// Bytes per element.
size_t itemsize(DType t);
bool is_floating(DType t);
bool is_integral(DType t);  // int32, int64, uint8 (bool excluded)
/// The dtype both operands of a binary op are computed in (PyTorch's promotion lattice).
DType promote_types(DType a, DType b);

template <class T>
struct TypeTag {
  using type = T;
};

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::float32; }
template <> constexpr DType dtype_of<double>() { return DType::float64; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::bfloat16; }
template <> constexpr DType dtype_of<Half>() { return DType::float16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::uint8; }
template <> constexpr DType dtype_of<bool>() { return DType::bool_; }

/// Calls fn(TypeTag<T>{}) for every dtype.
template <class Fn>
decltype(auto) dispatch_all(DType t, Fn&& fn) {
  switch (t) {
    case DType::float32: return fn(TypeTag<float>{});
    case DType::float64: return fn(TypeTag<double>{});
    case DType::bfloat16: return fn(TypeTag<BFloat16>{});
    case DType::float16: return fn(TypeTag<Half>{});
    case DType::int32: return fn(TypeTag<int32_t>{});
    case DType::int64: return fn(TypeTag<int64_t>{});
    case DType::uint8: return fn(TypeTag<uint8_t>{});
    case DType::bool_: return fn(TypeTag<bool>{});
  }
  ZAE_FAIL("unknown dtype code ", static_cast<int>(t));
}

/// Calls fn(TypeTag<T>{}) for the floating dtypes; others fail naming `op`.
template <class Fn>
decltype(auto) dispatch_floating(DType t, std::string_view op, Fn&& fn) {
  switch (t) {
    case DType::float32: return fn(TypeTag<float>{});
    case DType::float64: return fn(TypeTag<double>{});
    case DType::bfloat16: return fn(TypeTag<BFloat16>{});
    case DType::float16: return fn(TypeTag<Half>{});
    default: break;
  }
  ZAE_FAIL(op, ": dtype ", t, " is not supported (expected a floating dtype: float32, float64, bfloat16, float16)");
}

/// Calls fn(TypeTag<T>{}) for the numeric dtypes (all but bool); bool fails naming `op`.
template <class Fn>
decltype(auto) dispatch_numeric(DType t, std::string_view op, Fn&& fn) {
  switch (t) {
    case DType::float32: return fn(TypeTag<float>{});
    case DType::float64: return fn(TypeTag<double>{});
    case DType::bfloat16: return fn(TypeTag<BFloat16>{});
    case DType::float16: return fn(TypeTag<Half>{});
    case DType::int32: return fn(TypeTag<int32_t>{});
    case DType::int64: return fn(TypeTag<int64_t>{});
    case DType::uint8: return fn(TypeTag<uint8_t>{});
    default: break;
  }
  ZAE_FAIL(op, ": dtype ", t, " is not supported (expected a numeric dtype, not bool)");
}

/// Calls fn(TypeTag<T>{}) for the index dtypes int32 and int64; others fail naming `op`.
template <class Fn>
decltype(auto) dispatch_index(DType t, std::string_view op, Fn&& fn) {
  switch (t) {
    case DType::int32: return fn(TypeTag<int32_t>{});
    case DType::int64: return fn(TypeTag<int64_t>{});
    default: break;
  }
  ZAE_FAIL(op, ": index dtype ", t, " is not supported (expected int64 or int32)");
}

}  // namespace zae
