// Internal to io/safetensors*.cpp: the format's dtype table, limits and write plan.
// Invariants: every dtype name the reference implementation knows is in the table
// (known-but-unsupported ones have no engine dtype); `order` is the reference's enum
// order, which its writer sorts by (descending) before the names.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/dtype.h"
#include "engine/tensor.h"

namespace zae::io::detail {

/// Largest header the reader accepts (the reference's limit).
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct StDType {
  const char* name;               ///< as in the file
  uint32_t bits;                  ///< per element (F4 is 4, F6_* are 6)
  int order;                      ///< the reference's enum order
  std::optional<DType> engine;    ///< the engine dtype it loads as, if any
  std::optional<DType> widened;   ///< with widen_unsupported: the engine dtype it widens to
};

/// The table entry for a file dtype name, or null if unknown.
const StDType* find_st_dtype(std::string_view name);
/// The table entry an engine dtype is written as.
const StDType& st_dtype_of(DType t);

/// "safetensors '<origin>'": how every reader error starts.
std::string where(const std::string& origin);
/// What a writer emits: the 8-byte length and the padded header, then the tensors'
/// bytes in order (contiguous CPU copies or the originals when already so).
struct WritePlan {
  std::string prefix;
  std::vector<Tensor> data;
  uint64_t data_bytes = 0;
};
/// Validates names, metadata and memory sharing (`tied_hint` ends the sharing error)
/// and lays the file out as the reference writer does.
WritePlan plan_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata, const char* tied_hint);
/// Writes a plan to `f`; errors name `path`.
void write_plan(std::FILE* f, const WritePlan& plan, const std::string& path);

/// A shape for messages ("[2, 3]"; long shapes elided).
std::string shape_text(const Shape& shape);

}  // namespace zae::io::detail
