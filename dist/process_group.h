// ProcessGroup: the collectives of data parallel training over one group of processes
// (ranks 0..size()-1), with two backends: Gloo for CPU tensors (dist/gloo_process_group)
// and NCCL for CUDA tensors (dist/nccl_process_group).
//
// Contract for callers: every rank calls the same collectives in the same order with
// tensors of the same shape and dtype (as with torch.distributed). Tensors are
// contiguous and on the backend's device kind; a mismatch is a zae::Error naming the
// op, the tensor's shape/dtype/device and what was expected.
// Failure: every blocking call and every Work::wait() gives up after options().timeout;
// a peer that died or failed makes the call throw a zae::Error that names this rank,
// the op, the backend's message and, where the store can tell, the ranks that are
// gone (Store::lost_ranks). Nothing hangs forever.
// Order: asynchronous ops (all_reduce_async) run in the order they were issued, before
// any later blocking op of the same group.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace zae::dist {

class Store;

enum class ReduceOp { sum, avg, min, max };
const char* reduce_op_name(ReduceOp op);

/// How all_reduce is computed: the backend's own algorithm, or the ring written out in
/// dist/ring_all_reduce.h over the backend's send/recv (same result, for learning and
/// for the bandwidth benchmark).
enum class AllReduceAlgorithm { library, ring };

struct ProcessGroupOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  ///< every collective, p2p op and wait
  AllReduceAlgorithm all_reduce_algorithm = AllReduceAlgorithm::library;
  std::string store_prefix = "pg0";  ///< keys this group uses in the store (several groups may share one)
};

/// A pending asynchronous operation.
class Work {
 public:
  virtual ~Work() = default;
  /// Blocks until done (or throws the op's error; after options().timeout a timeout error).
  virtual void wait() = 0;
  /// True when done (successfully or not); never blocks.
  virtual bool completed() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const ProcessGroupOptions& options() const { return options_; }
  /// "gloo" or "nccl".
  virtual std::string backend() const = 0;

  /// In place: t = op over all ranks' t (avg = sum / size()).
  virtual void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  /// As all_reduce, returning at once; t must stay alive and untouched until wait().
  virtual std::shared_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  /// In place: every rank's t becomes root's t.
  virtual void broadcast(Tensor& t, int root) = 0;
  /// Returns shape (size(), ...in.shape): row r is rank r's `in`.
  virtual Tensor all_gather(const Tensor& in) = 0;
  /// `in` has shape (size() * n, ...); returns rows [rank()*n, (rank()+1)*n) of the
  /// op-reduction over ranks, shape (n, ...).
  virtual Tensor reduce_scatter(const Tensor& in, ReduceOp op = ReduceOp::sum) = 0;
  /// Returns when every rank has entered it.
  virtual void barrier() = 0;

  // Point to point. `tag` tells apart messages between the same pair of ranks.
  virtual void send(const Tensor& t, int dst, uint32_t tag = 0) = 0;
  virtual void recv(Tensor& t, int src, uint32_t tag = 0) = 0;
  /// Sends `out` to dst and receives `in` from src at the same time (no deadlock when
  /// every rank of a ring does it at once): the step of a ring algorithm.
  virtual void send_recv(const Tensor& out, int dst, Tensor& in, int src, uint32_t tag = 0) = 0;

 protected:
  ProcessGroup(int rank, int size, ProcessGroupOptions options)
      : rank_(rank), size_(size), options_(std::move(options)) {}

 private:
  int rank_;
  int size_;
  ProcessGroupOptions options_;
};

/// Gloo over TCP for CPU tensors (float32, float64, bfloat16, float16, int32, int64, uint8).
/// Connects to every other rank through `store` (all ranks call it with the same
/// store_prefix). Listens on the address given by ZAE_GLOO_HOST, else this host's name
/// when it resolves, else loopback (one machine).
std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank, int size,
                                                      ProcessGroupOptions options = {});

/// Whether this build has NCCL (it is built with the CUDA backend).
bool nccl_available();
/// NCCL for CUDA tensors on `device` (one device per rank); the unique id travels through
/// the store. Throws a clear error when built without CUDA.
std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> store, int rank, int size,
                                                      Device device, ProcessGroupOptions options = {});

}  // namespace zae::dist
