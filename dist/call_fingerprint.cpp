#include "dist/call_fingerprint.h"

#include <cstdint>
#include <cstring>
#include <sstream>

#include "engine/error.h"

namespace zae::dist::detail {
namespace {

const char* kind_name(uint8_t kind) {
  switch (static_cast<CallKind>(kind)) {
    case CallKind::all_reduce: return "all_reduce";
    case CallKind::broadcast: return "broadcast";
    case CallKind::all_gather: return "all_gather";
    case CallKind::reduce_scatter: return "reduce_scatter";
    case CallKind::barrier: return "barrier";
    case CallKind::p2p: return "point-to-point";
  }
  return "an unknown operation";
}

int64_t numel_of(const CallFingerprint& f) {
  int64_t n = 1;
  for (int32_t d = 0; d < f.ndim && d < kMaxDims; ++d) n *= f.shape[d];
  return n;
}

std::string tensor_part(const CallFingerprint& f) {
  std::ostringstream os;
  if (f.dtype < kNumDTypes)
    os << static_cast<DType>(f.dtype);
  else
    os << "dtype#" << static_cast<int>(f.dtype);
  os << " [";
  for (int32_t d = 0; d < f.ndim && d < kMaxDims; ++d) os << (d ? ", " : "") << f.shape[d];
  os << "]";
  return os.str();
}

}  // namespace

CallFingerprint make_fingerprint(CallKind kind, const Tensor* t, ReduceOp op, AllReduceAlgorithm algorithm,
                                 int root) {
  CallFingerprint f;
  f.kind = static_cast<uint8_t>(kind);
  if (kind == CallKind::all_reduce || kind == CallKind::reduce_scatter) f.reduce_op = static_cast<uint8_t>(op);
  if (kind == CallKind::all_reduce) f.algorithm = static_cast<uint8_t>(algorithm);
  if (kind == CallKind::broadcast || kind == CallKind::p2p) f.root = root;
  if (t != nullptr) {
    f.dtype = static_cast<uint8_t>(t->dtype());
    f.ndim = static_cast<int32_t>(t->dim());
    for (int64_t d = 0; d < t->dim(); ++d) f.shape[d] = t->size(d);
  }
  return f;
}

std::string describe_call(const CallFingerprint& f) {
  if (f.magic != CallFingerprint::kMagic) return "something that is not a zae call (a different program or version?)";
  std::ostringstream os;
  os << kind_name(f.kind);
  const auto kind = static_cast<CallKind>(f.kind);
  if (kind == CallKind::all_reduce)
    os << "(" << reduce_op_name(static_cast<ReduceOp>(f.reduce_op)) << ", "
       << (static_cast<AllReduceAlgorithm>(f.algorithm) == AllReduceAlgorithm::ring ? "ring" : "library") << ")";
  if (kind == CallKind::reduce_scatter) os << "(" << reduce_op_name(static_cast<ReduceOp>(f.reduce_op)) << ")";
  if (kind == CallKind::broadcast) os << "(root " << f.root << ")";
  if (kind == CallKind::p2p) os << " (tag " << static_cast<uint32_t>(f.root) << ")";
  if (kind != CallKind::barrier) os << " of " << tensor_part(f);
  return os.str();
}

bool operator==(const CallFingerprint& a, const CallFingerprint& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

void check_same_calls(const std::vector<CallFingerprint>& all) {
  bool same = true;
  for (const CallFingerprint& f : all) same = same && f == all.front();
  if (same) return;
  std::ostringstream os;
  os << "the ranks disagree about this call:";
  for (size_t r = 0; r < all.size(); ++r) {
    // Name rank 0 and every rank that differs from it (all of them when there are few).
    if (all.size() > 8 && r != 0 && all[r] == all.front()) continue;
    os << (r ? "; " : " ") << "rank " << r << ": " << describe_call(all[r]);
  }
  os << " (every rank must call the same collectives, in the same order, with tensors of the same shape and dtype)";
  ZAE_FAIL(os.str());
}

int64_t announced_bytes(const CallFingerprint& f) {
  if (f.magic != CallFingerprint::kMagic || static_cast<CallKind>(f.kind) != CallKind::p2p) return -1;
  if (f.dtype >= kNumDTypes || f.ndim < 0 || f.ndim > kMaxDims) return -1;
  int64_t bytes = static_cast<int64_t>(itemsize(static_cast<DType>(f.dtype)));
  for (int32_t d = 0; d < f.ndim; ++d) {
    if (f.shape[d] < 0) return -1;
    if (f.shape[d] != 0 && bytes > INT64_MAX / f.shape[d]) return -1;
    bytes *= f.shape[d];
  }
  return bytes;
}

void check_p2p_match(const CallFingerprint& sent, int src, const CallFingerprint& receiving) {
  ZAE_CHECK(sent.magic == CallFingerprint::kMagic && static_cast<CallKind>(sent.kind) == CallKind::p2p,
            "rank ", src, " sent ", describe_call(sent), " where a point-to-point message was expected");
  ZAE_CHECK(sent.dtype == receiving.dtype && numel_of(sent) == numel_of(receiving), "rank ", src, " sent ",
            tensor_part(sent), " but this rank receives into ", tensor_part(receiving),
            " (send and recv need the same dtype and number of elements)");
}

}  // namespace zae::dist::detail
