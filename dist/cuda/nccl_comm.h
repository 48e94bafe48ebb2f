// NcclComm: one non-blocking NCCL communicator with its communication stream, the state
// that an NCCL process group (dist/nccl_process_group.cpp) shares with its Works.
// Internal, CUDA builds only (it includes cuda_runtime.h and nccl.h).
//
// - Setup: rank 0 makes an ncclUniqueId and sets it under "<store_prefix>/nccl_id"; the
//   other ranks get it from the store (waiting up to the store's timeout). The
//   communicator is created with ncclConfig_t::blocking = 0, so that no NCCL call holds the
//   host forever: a call that answers ncclInProgress is followed by polling
//   ncclCommGetAsyncError until the state leaves ncclInProgress, under a deadline.
// - issue(): records an event on the caller's compute stream, makes the comm stream
//   (cudaStreamNonBlocking, owned here) wait for it, enqueues the NCCL call on the comm
//   stream and records a fresh completion event after it.
// - wait(): polls the completion event, and the communicator's async error, until done.
// - Failure (an NCCL error or async error, a CUDA error, or the deadline passing):
//   ncclCommAbort, then a zae::Error "<op> failed on rank R of N (nccl): <why> [<what>]"
//   plus "; ranks lost: [...]" when the store can tell. The communicator is broken from
//   then on: every later call throws at once, naming the first failure.
// Invariants: mu_ serializes every use of the communicator (NCCL forbids concurrent use
// of one communicator), so ops reach the comm stream in issue order; the destructor
// finalizes the communicator (aborts it when broken, or when finalizing does not settle
// within min(timeout, 30 s)), frees the stream and events, and never throws.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "dist/process_group.h"

namespace zae::dist {

class Store;

namespace nccl_detail {

using Clock = std::chrono::steady_clock;

/// A CUDA event without timing data, on one device; destroyed without throwing.
class Event {
 public:
  explicit Event(int device);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

/// An NCCL call to enqueue on the comm stream; returns what NCCL answered.
using NcclCall = std::function<ncclResult_t(ncclComm_t comm, cudaStream_t stream)>;

class NcclComm {
 public:
  /// Exchanges the unique id through `store` and creates the communicator on `device`
  /// (a valid CUDA device index). Throws on failure or after options.timeout.
  NcclComm(std::shared_ptr<Store> store, int rank, int size, int device, const ProcessGroupOptions& options);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int device() const { return device_; }
  /// The communication stream (for cuda::record_stream).
  cudaStream_t stream() const { return stream_; }
  /// One int32 in device memory that barrier() all-reduces.
  void* barrier_buffer() const { return barrier_buf_; }

  /// Throws at once when an earlier failure broke the communicator.
  void check_usable(const char* op, const std::string& what);

  /// Enqueues call(comm, comm_stream) after the work already queued on `compute`, and
  /// returns its completion event. The caller has made device() current. `what`
  /// describes the tensors for error messages.
  std::shared_ptr<Event> issue(const char* op, const std::string& what, cudaStream_t compute, const NcclCall& call);

  /// Polls `done` until it completes; an NCCL async error, a CUDA error or `deadline`
  /// aborts the communicator and throws.
  void wait(const char* op, const std::string& what, const Event& done, Clock::time_point deadline);

  /// Whether `done` has completed, or waiting for it would throw at once. Never blocks.
  bool finished(const Event& done);

 private:
  void settle_locked(const char* op, const std::string& what, ncclResult_t result, Clock::time_point deadline);
  [[noreturn]] void fail_locked(const char* op, const std::string& what, const std::string& why);
  void release() noexcept;

  std::shared_ptr<Store> store_;
  int rank_;
  int size_;
  int device_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;  // guards comm_, broken_, broken_reason_ and the use of ready_
  ncclComm_t comm_ = nullptr;
  bool broken_ = false;
  std::string broken_reason_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // recorded on the compute stream before each op
  void* barrier_buf_ = nullptr;
};

}  // namespace nccl_detail
}  // namespace zae::dist
