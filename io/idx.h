// The IDX file format (LeCun's MNIST format, also Fashion-MNIST's): a 4-byte magic
// 0x00 0x00 <type> <ndims>, ndims big-endian uint32 sizes, then the elements in
// row-major order, big-endian. Files may be gzip-compressed (read and written
// through zlib; a file without a gzip header is read as is).
// Type codes and the dtypes they load as: 0x08 uint8 -> uint8, 0x09 int8 -> int32,
// 0x0B int16 -> int32, 0x0C int32 -> int32, 0x0D float32 -> float32,
// 0x0E float64 -> float64.
// Invariants: a file that is not exactly one well-formed IDX payload (bad magic,
// unknown type, more than 8 dims, more than 2^31 elements, fewer or more bytes than
// the header announces, a damaged gzip stream) is a zae::Error naming the file and
// the problem; memory is allocated only as data actually arrives, so a hostile header
// cannot make the reader allocate what the file does not hold.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace zae {

/// Largest element count read_idx accepts (2^31).
inline constexpr int64_t kIdxMaxElements = int64_t{1} << 31;

/// Reads an IDX file (raw or .gz) into a new contiguous CPU tensor.
Tensor read_idx(const std::string& path);

/// Writes t (uint8, int32, float32 or float64; at most 255 dims) as an IDX file,
/// gzip-compressed when `gzip` (level 6). Other dtypes are an error.
void write_idx(const std::string& path, const Tensor& t, bool gzip);

}  // namespace zae
