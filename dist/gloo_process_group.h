// GlooProcessGroup: the ProcessGroup of CPU tensors over Gloo's TCP transport. Users
// create it with make_gloo_process_group (dist/process_group.h); this header is internal.
//
// Threads: one communication thread per group (dist/comm_thread.h) runs every operation
// in issue order; blocking calls queue a job and wait, all_reduce_async returns the job.
// Gloo's context is only ever touched on that thread. Inputs are validated on the
// caller's thread before anything is queued, so a bad argument throws at once and
// leaves the group usable.
//
// Data: contiguous CPU tensors (non-contiguous ones are an error: call .contiguous()).
// Reductions (all_reduce, reduce_scatter) take float32, float64, int32, int64, uint8
// natively and bfloat16/float16 through a float32 copy (reduced in float32, rounded back
// once); avg = sum, then divided by size() (floating dtypes only: integer avg is an error,
// not a silent floor). Moves of bytes (broadcast, all_gather, send, recv, send_recv) take
// any dtype, bool included. Zero-element tensors move no data (the agreement below
// still runs, so they still wait for the peers).
// Algorithms: all_reduce is Gloo's (options.all_reduce_algorithm == library) or the ring
// of dist/ring_all_reduce.h over this group's own point-to-point transfers (== ring);
// reduce_scatter is always the ring's reduce-scatter phase; broadcast, all_gather and
// barrier are Gloo's. A group of size 1 opens no sockets and copies locally.
// Agreement: before moving data, every collective allgathers an 80-byte record of each
// rank's call (dist/call_fingerprint.h), and every point-to-point message is preceded by
// one; ranks that disagree (different collectives, shapes, dtypes, roots, algorithms, or
// a recv buffer that does not fit the message) get a zae::Error naming each rank's call
// instead of Gloo aborting the process. The price is one small allgather per collective
// (a few message latencies; nothing next to a gradient bucket's transfer). The ring's
// internal steps skip it: their sizes follow from the collective's agreed shape.
// Point to point: user messages travel in Gloo slots (0x5A << 56) | tag and the ring's
// internal ones in (0x5B << 56), far from the slots of Gloo's collectives (prefixes
// 0x01..0x08 in the top byte) and from Context::nextSlot()'s small counters. A recv
// whose message does not fit still drains it (up to 1 GiB), so the sender completes.
// Failure: a Gloo error becomes a zae::Error "<op> failed on rank R of N (gloo): <gloo's
// message>", plus the ranks Store::lost_ranks() names and a hint (timeouts: a peer did not
// join in time; closed connections: a peer failed or left). After a failure the group is
// broken: every later call throws at once naming the first failure. The destructor stops
// the thread (queued jobs fail, a running one ends within its timeout) and closes the
// connections, so peers blocked on this rank fail instead of hanging. It never throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dist/call_fingerprint.h"
#include "dist/comm_thread.h"
#include "dist/process_group.h"
#include "dist/ring_all_reduce.h"

namespace gloo {
class Context;
namespace transport {
class UnboundBuffer;
}
}  // namespace gloo

namespace zae::dist {

namespace detail {
inline constexpr uint64_t kGlooUserSlotBase = uint64_t{0x5A} << 56;      ///< | tag
inline constexpr uint64_t kGlooInternalSlotBase = uint64_t{0x5B} << 56;  ///< the ring's own steps
inline constexpr uint32_t kGlooFingerprintTag = 0x5A4146;                ///< Gloo allgather tag of the records

/// "shape [2, 3], dtype float32, device cpu"
std::string describe_tensor(const Tensor& t);
/// Defined, on the CPU and contiguous, else a zae::Error naming `op` and `what` ("input").
void check_cpu_tensor(const std::string& op, const Tensor& t, const char* what);
/// 0 <= peer < size, else a zae::Error naming `op` and `role` ("root", "destination").
void check_peer(const std::string& op, const char* role, int peer, int size);
}  // namespace detail

class GlooProcessGroup final : public ProcessGroup {
 public:
  /// Connects to every other rank through `store` (see make_gloo_process_group).
  GlooProcessGroup(std::shared_ptr<Store> store, int rank, int size, ProcessGroupOptions options);
  ~GlooProcessGroup() override;

  std::string backend() const override { return "gloo"; }

  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum) override;
  std::shared_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::sum) override;
  void broadcast(Tensor& t, int root) override;
  Tensor all_gather(const Tensor& in) override;
  Tensor reduce_scatter(const Tensor& in, ReduceOp op = ReduceOp::sum) override;
  void barrier() override;

  void send(const Tensor& t, int dst, uint32_t tag = 0) override;
  void recv(Tensor& t, int src, uint32_t tag = 0) override;
  void send_recv(const Tensor& out, int dst, Tensor& in, int src, uint32_t tag = 0) override;

 private:
  // Run on the communication thread only.
  void agree_on_call(const detail::CallFingerprint& mine);  // throws when the ranks disagree
  void run_all_reduce(Tensor t, ReduceOp op);
  void gloo_all_reduce(const Tensor& t, ReduceOp op);
  /// Raw transfer (no announcement): the ring's steps. Either side may be empty.
  void exchange(const void* out, size_t out_bytes, int dst, void* in, size_t in_bytes, int src, uint64_t slot);
  /// Announced transfer: the user's send / recv / send_recv (either tensor may be null).
  void transfer(const Tensor* out, int dst, const Tensor* in, int src, uint32_t tag);
  void wait_recv(gloo::transport::UnboundBuffer& buffer, int src);
  void wait_send(gloo::transport::UnboundBuffer& buffer, int dst);
  std::string describe_failure(const std::string& op, std::exception_ptr error);

  std::shared_ptr<Store> store_;
  std::shared_ptr<gloo::Context> context_;  // null for a group of size 1
  detail::SendRecvFn ring_transport_;       // exchange() in the internal slot, for the ring
  std::unique_ptr<detail::CommThread> comm_;
};

}  // namespace zae::dist
