// CallFingerprint: what one rank is about to do (the collective, reduce op, algorithm,
// root, dtype and shape; or, for point to point, the tensor it sends or receives into)
// as a fixed-size record that the ranks exchange before any data moves. A violation of
// the ProcessGroup contract (ranks calling different collectives, or passing tensors of
// different shapes or dtypes) then becomes a zae::Error naming every rank's call, on
// every rank, instead of a crash, a hang or a silent partial transfer inside the
// transport (Gloo aborts the process when a message is longer than the buffer posted
// for it). Internal to dist/.
// Invariants: the record is 80 bytes with no padding (byte-wise comparable and safe to
// send); unused shape entries are zero; equal records mean compatible calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dist/process_group.h"

namespace zae::dist::detail {

enum class CallKind : uint8_t { all_reduce = 1, broadcast, all_gather, reduce_scatter, barrier, p2p };

struct CallFingerprint {
  static constexpr uint32_t kMagic = 0x5a414546;  // "ZAEF"
  uint32_t magic = kMagic;
  uint8_t kind = 0;
  uint8_t dtype = 0;
  uint8_t reduce_op = 0;
  uint8_t algorithm = 0;
  int32_t root = 0;  ///< broadcast: the root; p2p: the tag
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {};
};
static_assert(sizeof(CallFingerprint) == 80, "CallFingerprint must have no padding");

/// The record of a call; `t` may be null (barrier). Only the fields the kind uses are set.
CallFingerprint make_fingerprint(CallKind kind, const Tensor* t, ReduceOp op = ReduceOp::sum,
                                 AllReduceAlgorithm algorithm = AllReduceAlgorithm::library, int root = 0);

/// "all_reduce(avg, ring) of float32 [4, 3]", "broadcast(root 1) of int64 [7]", "barrier", ...
std::string describe_call(const CallFingerprint& f);

bool operator==(const CallFingerprint& a, const CallFingerprint& b);

/// Throws a zae::Error when the ranks' records (all[r] = rank r's) are not all equal:
/// "the ranks disagree about this call: rank 0: ...; rank 2: ... (every rank must ...)".
void check_same_calls(const std::vector<CallFingerprint>& all);

/// The payload size a point-to-point record announces, or -1 when the record is not a
/// well-formed one (wrong magic or kind, unknown dtype, negative or overflowing shape).
int64_t announced_bytes(const CallFingerprint& f);

/// Throws when a point-to-point message announced by `sent` (from rank src) does not fit
/// `receiving` (same dtype and element count needed; shapes may differ).
void check_p2p_match(const CallFingerprint& sent, int src, const CallFingerprint& receiving);

}  // namespace zae::dist::detail
