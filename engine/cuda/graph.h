// CUDA graphs: CudaGraph owns one captured graph (cudaGraph_t) and its executable
// (cudaGraphExec_t); SideStream is a non-default stream to warm up and capture on.
// CUDA-only header: include it from .cu files and engine/cuda/*.cpp (or code under
// #ifdef ZAE_WITH_CUDA) only.
//
// Capture rules (what the CUDA runtime requires, and how this wrapper meets it):
// - The legacy default stream (0) cannot be captured. capture_begin() captures the
//   calling thread's current_stream(device), which must be another stream: make a
//   SideStream current with StreamGuard for the warm-up and the capture, and order it
//   after the main stream's work (SideStream::wait_for) and the main stream after it
//   (SideStream::join_into).
// - Capture mode is cudaStreamCaptureModeThreadLocal: this thread may not make
//   potentially unsafe calls (synchronous copies, cudaMalloc without the allocator's
//   relaxed guard, event queries, item()) while it captures, which invalidates the
//   capture and surfaces as a zae::Error at the offending call or at capture_end();
//   other threads (data loader workers copying batches) are not restricted.
// - Memory: between capture_begin and capture_end every allocation of the caching
//   allocator on the capture stream comes from a private pool of this graph
//   (BlockCache::begin_capture). Blocks freed during the capture are reused only by
//   later allocations of the same capture; no allocation outside the pool ever gets
//   that memory while the graph lives, since replays write it. reset() (and the
//   destructor) waits for the last replay, destroys the graph and releases the pool
//   to the general cache.
// - replay() launches the executable on the current stream; it reads and writes exactly
//   the addresses the captured kernels used (static tensors: copy new inputs into
//   them before a replay, read outputs from them after).
// Invariants: a CudaGraph is empty, capturing, or ready (captured and instantiated); every
// CUDA call is checked and a failure is a zae::Error naming the call and the CUDA error;
// a failed capture leaves the graph empty and its pool released; destructors never throw.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace zae::cuda {

/// Whether `stream` is being captured into a graph now (cudaStreamIsCapturing).
bool stream_is_capturing(cudaStream_t stream);

/// A non-blocking stream on one device for warm-up and capture; destroyed after its work.
class SideStream {
 public:
  explicit SideStream(int device);
  /// Waits for the stream's work, then destroys it (never throws).
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  /// This stream waits for the work queued on `other` so far (an event, no host sync).
  void wait_for(cudaStream_t other);
  /// `other` waits for the work queued on this stream so far.
  void join_into(cudaStream_t other);

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t event_ = nullptr;
};

/// One capturable, replayable CUDA graph with a private memory pool (see the file comment).
class CudaGraph {
 public:
  /// An empty graph for device `device`.
  explicit CudaGraph(int device);
  /// reset(), reporting (not throwing) failures.
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  /// Starts capturing the thread's current stream of the device into a fresh private
  /// pool. zae::Error when the graph is not empty, the current stream is a default
  /// stream or already capturing, or the runtime refuses.
  void capture_begin();
  /// Ends the capture and instantiates the graph; on failure the graph is empty again.
  void capture_end();
  /// Ends a capture that went wrong (an exception in the captured code): discards what
  /// was captured, clears the capture error, releases the pool. Never throws.
  void capture_abort() noexcept;
  /// Launches the graph on the thread's current stream of the device.
  void replay();
  /// Back to empty: aborts a capture, waits for the last replay, destroys the graph and
  /// releases the pool.
  void reset();

  bool capturing() const { return capturing_; }
  /// Captured and instantiated: replay() may be called.
  bool ready() const { return exec_ != nullptr; }
  /// The private pool (0 while empty).
  uint64_t pool() const { return pool_; }
  int device() const { return device_; }
  /// How often replay() ran since the capture.
  int64_t replays() const { return replays_; }

 private:
  void release_pool_noexcept() noexcept;

  int device_;
  bool capturing_ = false;
  cudaStream_t capture_stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  uint64_t pool_ = 0;
  cudaStream_t last_replay_stream_ = nullptr;
  int64_t replays_ = 0;
};

}  // namespace zae::cuda
