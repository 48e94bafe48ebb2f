// NcclComm (dist/cuda/nccl_comm.h): setup, issue, polling waits, failure and teardown of one
// non-blocking NCCL communicator. Compiled only in CUDA builds (an empty unit otherwise).
// Invariants: every wait polls with a deadline (never an unbounded NCCL or CUDA wait);
// a failure aborts the communicator exactly once, under mu_.
#ifdef ZAE_WITH_CUDA

#include "dist/cuda/nccl_comm.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "dist/cuda/nccl_check.h"
#include "dist/store.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"

namespace zae::dist::nccl_detail {
namespace {

using zae::detail::concat;

/// The longest the destructor waits for ncclCommFinalize before aborting instead.
constexpr std::chrono::milliseconds kFinalizeLimit{30000};

/// Polling pace: yield first (most ops finish within microseconds), then sleep, doubling up to 1 ms.
class Backoff {
 public:
  void pause() {
    if (polls_++ < 256) {
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(sleep_);
    sleep_ = std::min(sleep_ * 2, std::chrono::microseconds(1000));
  }

 private:
  int polls_ = 0;
  std::chrono::microseconds sleep_{10};
};

/// Makes `device` current for a scope without ever throwing (destructors and cleanup).
class QuietDeviceGuard {
 public:
  explicit QuietDeviceGuard(int device) {
    if (cudaGetDevice(&prev_) == cudaSuccess && prev_ != device) changed_ = cudaSetDevice(device) == cudaSuccess;
  }
  ~QuietDeviceGuard() {
    if (changed_) (void)cudaSetDevice(prev_);
  }
  QuietDeviceGuard(const QuietDeviceGuard&) = delete;
  QuietDeviceGuard& operator=(const QuietDeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

}  // namespace

Event::Event(int device) : device_(device) {
  CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
}

Event::~Event() {
  QuietDeviceGuard guard(device_);
  (void)cudaEventDestroy(event_);
}

NcclComm::NcclComm(std::shared_ptr<Store> store, int rank, int size, int device, const ProcessGroupOptions& options)
    : store_(std::move(store)), rank_(rank), size_(size), device_(device), timeout_(options.timeout) {
  const std::string key = options.store_prefix + "/nccl_id";
  const std::string what = concat("unique id under store key '", key, "', device cuda:", device_);
  cuda::DeviceGuard guard(device_);
  try {
    ncclUniqueId id{};
    if (rank_ == 0) {
      NCCL_CHECK(ncclGetUniqueId(&id));
      const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
      store_->set(key, Bytes(bytes, bytes + sizeof(id)));
    } else {
      const Bytes bytes = store_->get(key);
      ZAE_CHECK(bytes.size() == sizeof(id), "init on rank ", rank_, " of ", size_, " (nccl): store key '", key,
                "' holds ", bytes.size(), " bytes, expected an ncclUniqueId of ", sizeof(id));
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    CUDA_CHECK(cudaMalloc(&barrier_buf_, sizeof(int32_t)));
    CUDA_CHECK(cudaMemsetAsync(barrier_buf_, 0, sizeof(int32_t), stream_));  // ordered before any op
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const auto deadline = Clock::now() + timeout_;
    std::unique_lock lock(mu_);
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
    settle_locked("init", what, r, deadline);
  } catch (...) {
    release();
    throw;
  }
}

NcclComm::~NcclComm() { release(); }

void NcclComm::check_usable(const char* op, const std::string& what) {
  std::lock_guard lock(mu_);
  if (broken_) fail_locked(op, what, "");
}

std::shared_ptr<Event> NcclComm::issue(const char* op, const std::string& what, cudaStream_t compute,
                                       const NcclCall& call) {
  const auto deadline = Clock::now() + timeout_;
  std::lock_guard lock(mu_);
  if (broken_) fail_locked(op, what, "");
  auto done = std::make_shared<Event>(device_);
  CUDA_CHECK(cudaEventRecord(ready_, compute));
  CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
  settle_locked(op, what, call(comm_, stream_), deadline);
  CUDA_CHECK(cudaEventRecord(done->get(), stream_));
  return done;
}

void NcclComm::wait(const char* op, const std::string& what, const Event& done, Clock::time_point deadline) {
  Backoff backoff;
  for (;;) {
    const cudaError_t e = cudaEventQuery(done.get());
    if (e == cudaSuccess) return;
    {
      std::lock_guard lock(mu_);
      if (broken_) fail_locked(op, what, "");
      if (e != cudaErrorNotReady) {
        (void)cudaGetLastError();
        fail_locked(op, what, concat("CUDA error ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
      }
      ncclResult_t state = ncclSuccess;
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &state);
      if (q != ncclSuccess) fail_locked(op, what, detail::nccl_error_text(q, comm_));
      if (state != ncclSuccess && state != ncclInProgress) fail_locked(op, what, detail::nccl_error_text(state, comm_));
      if (Clock::now() >= deadline)
        fail_locked(op, what,
                    concat("timed out after ", timeout_.count(), " ms (a peer may have died, or not called ", op, ")"));
    }
    backoff.pause();
  }
}

bool NcclComm::finished(const Event& done) {
  const cudaError_t e = cudaEventQuery(done.get());
  if (e != cudaErrorNotReady) return true;  // done, or an error that wait() reports
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;  // an op is being issued: known only to be not done yet
  if (broken_) return true;
  ncclResult_t state = ncclSuccess;
  if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) return true;
  return state != ncclSuccess && state != ncclInProgress;
}

// After a call on the non-blocking communicator answered `result`: polls until its state
// leaves ncclInProgress. mu_ is held.
void NcclComm::settle_locked(const char* op, const std::string& what, ncclResult_t result,
                             Clock::time_point deadline) {
  if (result == ncclSuccess) return;
  if (result != ncclInProgress) fail_locked(op, what, detail::nccl_error_text(result, comm_));
  Backoff backoff;
  for (;;) {
    ncclResult_t state = ncclInProgress;
    const ncclResult_t q = ncclCommGetAsyncError(comm_, &state);
    if (q != ncclSuccess) fail_locked(op, what, detail::nccl_error_text(q, comm_));
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) fail_locked(op, what, detail::nccl_error_text(state, comm_));
    if (Clock::now() >= deadline)
      fail_locked(op, what,
                  concat("timed out after ", timeout_.count(), " ms in NCCL (did every one of the ", size_,
                         " ranks call ", op, "?)"));
    backoff.pause();
  }
}

// Breaks the communicator (aborting it) and throws the failure; when it is broken
// already, throws naming the first failure. mu_ is held.
void NcclComm::fail_locked(const char* op, const std::string& what, const std::string& why) {
  if (broken_)
    ZAE_FAIL(op, " on rank ", rank_, " of ", size_, " (nccl): the process group is broken by an earlier failure: ",
             broken_reason_);
  std::string message = concat(op, " failed on rank ", rank_, " of ", size_, " (nccl): ", why);
  if (!what.empty()) message += concat(" [", what, "]");
  const std::vector<int> lost = store_ != nullptr ? store_->lost_ranks() : std::vector<int>{};
  if (!lost.empty()) message += concat("; ranks lost: ", lost);
  broken_ = true;
  broken_reason_ = message;
  if (comm_ != nullptr) {
    QuietDeviceGuard guard(device_);
    (void)ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  ZAE_FAIL(message);
}

void NcclComm::release() noexcept {
  QuietDeviceGuard guard(device_);
  if (comm_ != nullptr) {
    bool clean = false;
    const ncclResult_t r = ncclCommFinalize(comm_);
    if (r == ncclSuccess || r == ncclInProgress) {
      const auto deadline = Clock::now() + std::min(timeout_, kFinalizeLimit);
      Backoff backoff;
      for (;;) {
        ncclResult_t state = ncclInProgress;
        if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
        if (state != ncclInProgress) {
          clean = state == ncclSuccess;
          break;
        }
        if (Clock::now() >= deadline) break;
        backoff.pause();
      }
    }
    if (clean)
      (void)ncclCommDestroy(comm_);
    else
      (void)ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  if (barrier_buf_ != nullptr) (void)cudaFree(barrier_buf_);
  if (ready_ != nullptr) (void)cudaEventDestroy(ready_);
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  barrier_buf_ = nullptr;
  ready_ = nullptr;
  stream_ = nullptr;
}

}  // namespace zae::dist::nccl_detail

#endif  // ZAE_WITH_CUDA
