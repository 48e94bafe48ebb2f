// CudaGraph and SideStream (engine/cuda/graph.h). Every runtime call runs under a
// DeviceGuard for the graph's device and is checked with CUDA_CHECK, which names the
// call and the CUDA error; the noexcept paths (abort, destructors) report to stderr.
#include "engine/cuda/graph.h"

#include <cstdio>
#include <exception>

#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"
#include "engine/error.h"

namespace zae::cuda {

bool stream_is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status == cudaStreamCaptureStatusActive;
}

// ---- SideStream --------------------------------------------------------------------

SideStream::SideStream(int device) : device_(device) {
  DeviceGuard guard(device_);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  const cudaError_t err = cudaEventCreateWithFlags(&event_, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    (void)cudaStreamDestroy(stream_);
    CUDA_CHECK(err);
  }
}

SideStream::~SideStream() {
  try {
    DeviceGuard guard(device_);
    // Cached blocks stay keyed by this stream's handle: finish its work before the
    // handle can be reused by a new stream.
    (void)cudaStreamSynchronize(stream_);
    (void)cudaEventDestroy(event_);
    (void)cudaStreamDestroy(stream_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae: destroying a side stream on cuda:%d failed: %s\n", device_, e.what());
  }
}

void SideStream::wait_for(cudaStream_t other) {
  DeviceGuard guard(device_);
  CUDA_CHECK(cudaEventRecord(event_, other));
  CUDA_CHECK(cudaStreamWaitEvent(stream_, event_, 0));
}

void SideStream::join_into(cudaStream_t other) {
  DeviceGuard guard(device_);
  CUDA_CHECK(cudaEventRecord(event_, stream_));
  CUDA_CHECK(cudaStreamWaitEvent(other, event_, 0));
}

// ---- CudaGraph ---------------------------------------------------------------------

CudaGraph::CudaGraph(int device) : device_(device) {}

CudaGraph::~CudaGraph() {
  try {
    reset();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae: destroying a CUDA graph on cuda:%d failed: %s\n", device_, e.what());
  }
}

void CudaGraph::capture_begin() {
  ZAE_CHECK(!capturing_ && exec_ == nullptr, "CudaGraph::capture_begin on cuda:", device_, ": the graph is ",
            capturing_ ? "already capturing" : "already captured", "; reset() it first");
  DeviceGuard guard(device_);
  cudaStream_t stream = current_stream(device_);
  ZAE_CHECK(stream != nullptr && stream != cudaStreamLegacy && stream != cudaStreamPerThread,
            "CudaGraph::capture_begin on cuda:", device_,
            ": the current stream is a default stream, which CUDA cannot capture; make a non-default stream "
            "current first (cuda::StreamGuard with a cuda::SideStream)");
  ZAE_CHECK(!stream_is_capturing(stream), "CudaGraph::capture_begin on cuda:", device_, ": stream ",
            static_cast<const void*>(stream), " is already being captured (by another graph)");
  const uint64_t pool = graph_pool_handle();
  begin_allocate_to_pool(device_, stream, pool);
  const cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    end_allocate_to_pool(device_, stream);
    (void)cudaGetLastError();
    try {
      release_pool(device_, pool);
    } catch (...) {  // the capture error is the one to report
    }
    CUDA_CHECK(err);
  }
  pool_ = pool;
  capture_stream_ = stream;
  capturing_ = true;
}

void CudaGraph::capture_end() {
  ZAE_CHECK(capturing_, "CudaGraph::capture_end on cuda:", device_, ": no capture is underway (call capture_begin)");
  DeviceGuard guard(device_);
  cudaGraph_t graph = nullptr;
  const cudaError_t end_err = cudaStreamEndCapture(capture_stream_, &graph);
  capturing_ = false;
  end_allocate_to_pool(device_, capture_stream_);
  if (end_err != cudaSuccess) {
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    release_pool_noexcept();
    CUDA_CHECK(end_err);  // e.g. cudaErrorStreamCaptureInvalidated: an illegal call was made while capturing
  }
  graph_ = graph;
  const cudaError_t inst_err = cudaGraphInstantiate(&exec_, graph_, 0);
  if (inst_err != cudaSuccess) {
    exec_ = nullptr;
    (void)cudaGraphDestroy(graph_);
    graph_ = nullptr;
    (void)cudaGetLastError();
    release_pool_noexcept();
    CUDA_CHECK(inst_err);
  }
  replays_ = 0;
  last_replay_stream_ = nullptr;
}

void CudaGraph::capture_abort() noexcept {
  if (!capturing_) return;
  try {
    DeviceGuard guard(device_);
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(capture_stream_, &graph);  // usually cudaErrorStreamCaptureInvalidated
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();  // capture errors are not sticky: clear the last one
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae: aborting a CUDA graph capture on cuda:%d: %s\n", device_, e.what());
  }
  capturing_ = false;
  end_allocate_to_pool(device_, capture_stream_);
  release_pool_noexcept();
}

void CudaGraph::replay() {
  ZAE_CHECK(exec_ != nullptr, "CudaGraph::replay on cuda:", device_, ": nothing was captured (capture_begin / ",
            "capture_end first)");
  DeviceGuard guard(device_);
  cudaStream_t stream = current_stream(device_);
  CUDA_CHECK(cudaGraphLaunch(exec_, stream));
  last_replay_stream_ = stream;
  ++replays_;
}

void CudaGraph::reset() {
  capture_abort();
  if (exec_ != nullptr || graph_ != nullptr) {
    DeviceGuard guard(device_);
    // The pool may be handed out again once released: no replay may still use it.
    if (replays_ > 0) CUDA_CHECK(cudaStreamSynchronize(last_replay_stream_));
    cudaGraphExec_t exec = exec_;
    cudaGraph_t graph = graph_;
    exec_ = nullptr;
    graph_ = nullptr;
    replays_ = 0;
    if (exec != nullptr) CUDA_CHECK(cudaGraphExecDestroy(exec));
    if (graph != nullptr) CUDA_CHECK(cudaGraphDestroy(graph));
  }
  if (pool_ != 0) {
    const uint64_t pool = pool_;
    pool_ = 0;
    release_pool(device_, pool);
  }
}

void CudaGraph::release_pool_noexcept() noexcept {
  if (pool_ == 0) return;
  const uint64_t pool = pool_;
  pool_ = 0;
  try {
    release_pool(device_, pool);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae: releasing the memory pool of a CUDA graph on cuda:%d failed: %s\n", device_, e.what());
  }
}

}  // namespace zae::cuda
