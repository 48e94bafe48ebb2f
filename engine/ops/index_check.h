// Validation of index tensors for the indexing ops (gather, index_select, scatter_add,
// embedding, one_hot), on the CPU and on CUDA, so each op words its own error from one
// scan result.
//
// CUDA: the indices live on the device, so they are checked there: one kernel writes
// the first out-of-range position and the largest value into device memory, and the op
// copies those two words back. That read is the one stream synchronization an indexing
// op's forward pass makes (backward passes reuse indices validated at forward time and
// never synchronize); on the error path one more element is read to name the bad value.
// Invariants: `idx` is contiguous with dtype int32 or int64; results are as if the
// values were scanned in order on the host.
#pragma once

#include <cstdint>
#include <limits>

#include "engine/tensor.h"

namespace zae::detail {

struct IndexScan {
  int64_t first_invalid = -1;                               ///< first position outside [0, size), or -1
  int64_t max_value = std::numeric_limits<int64_t>::min();  ///< the largest value (only when asked for)
};

/// Scans idx for values outside [0, size) (size = INT64_MAX: only negatives are out of
/// range) and, when want_max, for the largest value. `op` names the caller in errors.
IndexScan scan_indices(const char* op, const Tensor& idx, int64_t size, bool want_max = false);

/// The value at flat position pos of idx (on any device).
int64_t index_value_at(const Tensor& idx, int64_t pos);

}  // namespace zae::detail
