// The NCCL process group: collectives over CUDA tensors between ranks that each own one
// CUDA device (contract: dist/process_group.h). A build without CUDA has no NCCL:
// nccl_available() is false there and make_nccl_process_group throws saying so.
//
// How (CUDA builds): the communicator, its stream, the polling waits and the failure
// handling live in dist/nccl_comm.h (non-blocking NCCL: no call holds the host without a
// deadline). This file validates arguments and maps each op onto NCCL.
// - Streams: the "compute" stream is the calling thread's current engine stream for the
//   group's device (engine/cuda/stream.h); each op runs on the group's own comm stream
//   after the work already queued on the compute stream. Blocking ops return when the op
//   has completed on the device; all_reduce_async returns a Work whose wait() polls for
//   completion, then makes the issuing thread's compute stream wait for it.
// - Data: contiguous tensors on the group's device. Reductions (all_reduce, reduce_scatter)
//   take float32, float64, bfloat16, float16, int32, int64, uint8; avg is for floating
//   dtypes only (as in the Gloo group: an integer average would round). Moves of bytes
//   (broadcast, all_gather, send, recv, send_recv) also take bool. Zero-element tensors
//   move nothing (every rank skips alike).
// - all_reduce_algorithm == ring: all_reduce is dist/ring_all_reduce.h over send_recv
//   (all_reduce_async then runs it at once and returns a completed Work).
// - Failure: "<op> failed on rank R of N (nccl): <why> [<tensors>]" plus the ranks the
//   store reports lost; the group is broken afterwards (later calls throw at once).
// - Point to point: NCCL carries no tags; messages between two ranks match in issue order,
//   so `tag` is accepted and ignored (callers pair sends and receives in order). A lone
//   send or recv to this rank itself would never complete and is refused (send_recv may
//   name this rank: both halves are issued in one NCCL group).
// Invariants: the communicator, stream and events outlive every Work of the group (Works
// share them); a tensor of an async op is kept alive by its Work and declared in use on
// the comm stream to the caching allocator (record_stream), so its memory is not reused
// early even if the Work is dropped; destruction never throws.
#include "dist/process_group.h"

#include "engine/error.h"

#ifndef ZAE_WITH_CUDA

namespace zae::dist {

bool nccl_available() { return false; }

std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store>, int rank, int size, Device device,
                                                      ProcessGroupOptions) {
  ZAE_FAIL("make_nccl_process_group (rank ", rank, " of ", size, ", ", device,
           "): this build has no CUDA/NCCL backend (configured with -DZAE_CUDA=OFF or without the CUDA toolkit); "
           "rebuild with -DZAE_CUDA=ON, or use the gloo backend for CPU tensors");
}

}  // namespace zae::dist

#else  // ZAE_WITH_CUDA

#include "dist/cuda/nccl_comm.h"
#include "dist/ring_all_reduce.h"
#include "dist/store.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"

namespace zae::dist {
namespace {

using nccl_detail::Clock;
using nccl_detail::Event;
using nccl_detail::NcclComm;
using zae::detail::concat;

ncclRedOp_t nccl_reduce_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::max: return ncclMax;
  }
  ZAE_FAIL("unknown ReduceOp code ", static_cast<int>(op));
}

/// NCCL's type for `t`; bool travels as bytes when only moved (`reduction` false), and
/// cannot be reduced.
bool nccl_data_type(DType t, bool reduction, ncclDataType_t* out) {
  switch (t) {
    case DType::float32: *out = ncclFloat32; return true;
    case DType::float64: *out = ncclFloat64; return true;
    case DType::bfloat16: *out = ncclBfloat16; return true;
    case DType::float16: *out = ncclFloat16; return true;
    case DType::int32: *out = ncclInt32; return true;
    case DType::int64: *out = ncclInt64; return true;
    case DType::uint8: *out = ncclUint8; return true;
    case DType::bool_: *out = ncclUint8; return !reduction;
  }
  return false;
}

std::string describe(const Tensor& t) {
  return concat("shape ", shape_str(t.shape()), " dtype ", t.dtype(), " on ", t.device());
}

/// A Work that is already complete (empty tensors).
class DoneWork final : public Work {
 public:
  void wait() override {}
  bool completed() override { return true; }
};

/// An all_reduce_async in flight: holds the tensor and the completion event.
class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclComm> comm, std::shared_ptr<Event> done, Tensor tensor, cudaStream_t compute,
           std::string what, std::chrono::milliseconds timeout)
      : comm_(std::move(comm)),
        done_(std::move(done)),
        tensor_(std::move(tensor)),
        compute_(compute),
        what_(std::move(what)),
        timeout_(timeout) {}

  void wait() override {
    if (waited_) return;
    cuda::DeviceGuard guard(comm_->device());
    comm_->wait("all_reduce_async", what_, *done_, Clock::now() + timeout_);
    CUDA_CHECK(cudaStreamWaitEvent(compute_, done_->get(), 0));
    waited_ = true;
    tensor_ = Tensor();
  }
  bool completed() override { return waited_ || comm_->finished(*done_); }

 private:
  std::shared_ptr<NcclComm> comm_;
  std::shared_ptr<Event> done_;
  Tensor tensor_;
  cudaStream_t compute_;  // the issuing thread's stream: wait() orders it after the op
  std::string what_;
  std::chrono::milliseconds timeout_;
  bool waited_ = false;
};

class NcclProcessGroup final : public ProcessGroup {
 public:
  NcclProcessGroup(std::shared_ptr<Store> store, int rank, int size, Device device, ProcessGroupOptions options)
      : ProcessGroup(rank, size, std::move(options)),
        device_(device),
        comm_(std::make_shared<NcclComm>(std::move(store), rank, size, device.index, this->options())) {}

  std::string backend() const override { return "nccl"; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    const ncclDataType_t type = check_reduction("all_reduce", t, "tensor", op);
    if (options().all_reduce_algorithm == AllReduceAlgorithm::ring) {
      ring_all_reduce(*this, t, op);
      return;
    }
    const ncclRedOp_t red = nccl_reduce_op(op);
    void* p = t.raw_data();
    const auto n = static_cast<size_t>(t.numel());
    run_blocking("all_reduce", t.numel(), [&] { return describe(t); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclAllReduce(p, p, n, type, red, c, s); });
    t.storage()->bump_version();
  }

  std::shared_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op) override {
    const char* name = "all_reduce_async";
    const ncclDataType_t type = check_reduction(name, t, "tensor", op);
    std::string what = describe(t);
    if (options().all_reduce_algorithm == AllReduceAlgorithm::ring) {  // blocking: done on return
      ring_all_reduce(*this, t, op);
      return std::make_shared<DoneWork>();
    }
    const ncclRedOp_t red = nccl_reduce_op(op);
    if (t.numel() == 0) {
      comm_->check_usable(name, what);
      return std::make_shared<DoneWork>();
    }
    void* p = t.raw_data();
    const auto n = static_cast<size_t>(t.numel());
    cuda::DeviceGuard guard(device_.index);
    const cudaStream_t compute = cuda::current_stream(device_.index);
    auto done = comm_->issue(name, what, compute,
                             [&](ncclComm_t c, cudaStream_t s) { return ncclAllReduce(p, p, n, type, red, c, s); });
    try {
      cuda::record_stream(t.storage()->data(), device_.index, comm_->stream());
    } catch (const Error&) {
      // Memory the caching allocator does not own (adopted): it never reuses it early.
    }
    t.storage()->bump_version();
    return std::make_shared<NcclWork>(comm_, std::move(done), t, compute, std::move(what), options().timeout);
  }

  void broadcast(Tensor& t, int root) override {
    const ncclDataType_t type = check_tensor("broadcast", t, "tensor", false);
    check_peer("broadcast", "root", root, true);
    void* p = t.raw_data();
    const auto n = static_cast<size_t>(t.numel());
    run_blocking("broadcast", t.numel(), [&] { return concat(describe(t), ", root ", root); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclBroadcast(p, p, n, type, root, c, s); });
    t.storage()->bump_version();
  }

  Tensor all_gather(const Tensor& in) override {
    const ncclDataType_t type = check_tensor("all_gather", in, "input", false);
    Shape shape = in.shape();
    shape.insert(shape.begin(), size());
    Tensor out = allocate(shape, in.dtype());
    const void* src = in.raw_data();
    void* dst = out.raw_data();
    const auto n = static_cast<size_t>(in.numel());
    run_blocking("all_gather", in.numel(), [&] { return describe(in); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclAllGather(src, dst, n, type, c, s); });
    return out;
  }

  Tensor reduce_scatter(const Tensor& in, ReduceOp op) override {
    const ncclDataType_t type = check_reduction("reduce_scatter", in, "input", op);
    const ncclRedOp_t red = nccl_reduce_op(op);
    ZAE_CHECK(in.dim() >= 1 && in.size(0) % size() == 0, "reduce_scatter (nccl): the input's first dimension must be ",
              "a multiple of the group size ", size(), ", got ", describe(in));
    Shape shape = in.shape();
    shape[0] /= size();
    Tensor out = allocate(shape, in.dtype());
    const void* src = in.raw_data();
    void* dst = out.raw_data();
    const auto n = static_cast<size_t>(out.numel());
    run_blocking("reduce_scatter", out.numel(), [&] { return describe(in); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclReduceScatter(src, dst, n, type, red, c, s); });
    return out;
  }

  void barrier() override {
    void* p = comm_->barrier_buffer();
    run_blocking("barrier", 1, [] { return std::string(); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclAllReduce(p, p, 1, ncclInt32, ncclSum, c, s); });
  }

  void send(const Tensor& t, int dst, uint32_t /*tag*/) override {
    const ncclDataType_t type = check_tensor("send", t, "tensor", false);
    check_peer("send", "dst", dst, false);
    const void* p = t.raw_data();
    const auto n = static_cast<size_t>(t.numel());
    run_blocking("send", t.numel(), [&] { return concat(describe(t), " to rank ", dst); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclSend(p, n, type, dst, c, s); });
  }

  void recv(Tensor& t, int src, uint32_t /*tag*/) override {
    const ncclDataType_t type = check_tensor("recv", t, "tensor", false);
    check_peer("recv", "src", src, false);
    void* p = t.raw_data();
    const auto n = static_cast<size_t>(t.numel());
    run_blocking("recv", t.numel(), [&] { return concat(describe(t), " from rank ", src); },
                 [&](ncclComm_t c, cudaStream_t s) { return ncclRecv(p, n, type, src, c, s); });
    t.storage()->bump_version();
  }

  void send_recv(const Tensor& out, int dst, Tensor& in, int src, uint32_t /*tag*/) override {
    const ncclDataType_t out_type = check_tensor("send_recv", out, "sent tensor", false);
    const ncclDataType_t in_type = check_tensor("send_recv", in, "received tensor", false);
    check_peer("send_recv", "dst", dst, true);
    check_peer("send_recv", "src", src, true);
    const auto* out_p = static_cast<const char*>(out.raw_data());
    auto* in_p = static_cast<char*>(in.raw_data());
    ZAE_CHECK(out.numel() == 0 || in.numel() == 0 || out_p + out.nbytes() <= in_p || in_p + in.nbytes() <= out_p,
              "send_recv (nccl): the sent tensor (", describe(out), ") and the received tensor (", describe(in),
              ") overlap in memory");
    const auto out_n = static_cast<size_t>(out.numel());
    const auto in_n = static_cast<size_t>(in.numel());
    run_blocking(
        "send_recv", out.numel() + in.numel(),
        [&] { return concat("sent ", describe(out), " to rank ", dst, ", received ", describe(in), " from rank ", src); },
        [&](ncclComm_t c, cudaStream_t s) {
          ncclResult_t first = ncclGroupStart();
          if (first != ncclSuccess) return first;
          if (out_n > 0) first = ncclSend(out_p, out_n, out_type, dst, c, s);
          if (in_n > 0) {
            const ncclResult_t r = ncclRecv(in_p, in_n, in_type, src, c, s);
            if (first == ncclSuccess) first = r;
          }
          const ncclResult_t end = ncclGroupEnd();  // always: the group depth is per thread
          return first != ncclSuccess ? first : end;
        });
    in.storage()->bump_version();
  }

 private:
  /// Validates `t` (defined, on this group's device, contiguous, an NCCL dtype); returns its NCCL type.
  ncclDataType_t check_tensor(const char* op, const Tensor& t, const char* role, bool reduction) const {
    ZAE_CHECK(t.defined(), op, " (nccl): the ", role, " is an undefined tensor");
    ZAE_CHECK(t.device() == device_, op, " (nccl): the ", role, " must be on ", device_,
              " (this group's device), got ", describe(t));
    ZAE_CHECK(t.is_contiguous(), op, " (nccl): the ", role, " must be contiguous, got ", describe(t), " with strides ",
              shape_str(t.strides()));
    ncclDataType_t type = ncclFloat32;
    ZAE_CHECK(nccl_data_type(t.dtype(), reduction, &type), op, " (nccl): dtype ", t.dtype(),
              " cannot be reduced (float32, float64, bfloat16, float16, int32, int64, uint8 can), got ", describe(t));
    return type;
  }

  /// check_tensor for a reduction; avg needs a floating dtype (an integer average would round).
  ncclDataType_t check_reduction(const char* op, const Tensor& t, const char* role, ReduceOp red) const {
    const ncclDataType_t type = check_tensor(op, t, role, true);
    ZAE_CHECK(red != ReduceOp::avg || is_floating(t.dtype()), op, " (nccl): ReduceOp::avg needs a floating dtype, got ",
              describe(t), "; integer averages would round: reduce with sum and divide yourself");
    return type;
  }

  void check_peer(const char* op, const char* role, int peer, bool self_ok) const {
    ZAE_CHECK(peer >= 0 && peer < size(), op, " (nccl): ", role, " rank ", peer, " is out of range [0, ", size(),
              ") on rank ", rank());
    ZAE_CHECK(self_ok || peer != rank(), op, " (nccl): ", role, " rank ", peer,
              " is this rank itself, which would never complete; use send_recv to exchange with oneself");
  }

  Tensor allocate(const Shape& shape, DType dtype) const {
    cuda::DeviceGuard guard(device_.index);
    return Tensor::empty(shape, {.dtype = dtype, .device = device_});
  }

  /// Issues `call` and waits for it on the host (deadline: options().timeout from now).
  /// Nothing is issued for an empty tensor (numel 0): every rank skips alike.
  template <class What, class Call>
  void run_blocking(const char* op, int64_t numel, What&& what, Call&& call) {
    if (numel == 0) {
      comm_->check_usable(op, what());
      return;
    }
    const auto deadline = Clock::now() + options().timeout;
    const std::string text = what();
    cuda::DeviceGuard guard(device_.index);
    auto done = comm_->issue(op, text, cuda::current_stream(device_.index), call);
    comm_->wait(op, text, *done, deadline);
  }

  Device device_;
  std::shared_ptr<NcclComm> comm_;
};

}  // namespace

bool nccl_available() { return true; }

std::shared_ptr<ProcessGroup> make_nccl_process_group(std::shared_ptr<Store> store, int rank, int size, Device device,
                                                      ProcessGroupOptions options) {
  ZAE_CHECK(store != nullptr, "make_nccl_process_group: the store is null");
  ZAE_CHECK(size >= 1 && rank >= 0 && rank < size, "make_nccl_process_group: rank ", rank,
            " is out of range for world size ", size);
  ZAE_CHECK(device.is_cuda(), "make_nccl_process_group (rank ", rank, " of ", size,
            "): the NCCL backend needs a CUDA device, got ", device, " (use the gloo backend for CPU tensors)");
  ZAE_CHECK(options.timeout.count() > 0, "make_nccl_process_group: the timeout must be positive, got ",
            options.timeout.count(), " ms");
  const int count = cuda::device_count();
  ZAE_CHECK(count > 0, "make_nccl_process_group (rank ", rank, " of ", size, "): device ", device,
            " requested, but no CUDA device is available");
  ZAE_CHECK(device.index >= 0 && device.index < count, "make_nccl_process_group (rank ", rank, " of ", size,
            "): device ", device, " requested, but only ", count, " CUDA device(s) exist");
  return std::make_shared<NcclProcessGroup>(std::move(store), rank, size, device, std::move(options));
}

}  // namespace zae::dist

#endif  // ZAE_WITH_CUDA
