#include "engine/dtype.h"

#include <ostream>

namespace zae {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::bfloat16: return "bfloat16";
    case DType::float16: return "float16";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
    case DType::uint8: return "uint8";
    case DType::bool_: return "bool";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

size_t itemsize(DType t) {
  switch (t) {
    case DType::float64:
    case DType::int64: return 8;
    case DType::float32:
    case DType::int32: return 4;
    case DType::bfloat16:
    case DType::float16: return 2;
    case DType::uint8:
    case DType::bool_: return 1;
  }
  ZAE_FAIL("unknown dtype code ", static_cast<int>(t));
}

bool is_floating(DType t) {
  return t == DType::float32 || t == DType::float64 || t == DType::bfloat16 || t == DType::float16;
}

bool is_integral(DType t) { return t == DType::int32 || t == DType::int64 || t == DType::uint8; }

namespace {
// Rank within a category: bool < integers < floats; within floats f16/bf16 < f32 < f64.
int category(DType t) { return t == DType::bool_ ? 0 : is_integral(t) ? 1 : 2; }
int width_rank(DType t) {
  switch (t) {
    case DType::uint8: return 0;
    case DType::int32: return 1;
    case DType::int64: return 2;
    case DType::bfloat16:
    case DType::float16: return 0;
    case DType::float32: return 1;
    case DType::float64: return 2;
    default: return 0;
  }
}
}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // bfloat16 with float16: neither holds the other, as in PyTorch the result is float32.
  if ((a == DType::bfloat16 && b == DType::float16) || (a == DType::float16 && b == DType::bfloat16))
    return DType::float32;
  int ca = category(a), cb = category(b);
  if (ca != cb) return ca > cb ? a : b;
  return width_rank(a) >= width_rank(b) ? a : b;
}

}  // namespace zae
