#include "dist/gloo_process_group.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "dist/gloo_context.h"
#include "dist/reduce_kernels.h"
#include "dist/store.h"
#include "engine/error.h"
#include "engine/ops/copy.h"

namespace zae::dist {
namespace detail {

std::string describe_tensor(const Tensor& t) {
  std::ostringstream os;
  os << "shape " << shape_str(t.shape()) << ", dtype " << t.dtype() << ", device " << t.device();
  return os.str();
}

void check_cpu_tensor(const std::string& op, const Tensor& t, const char* what) {
  ZAE_CHECK(t.defined(), op, " (gloo): the ", what, " is undefined");
  ZAE_CHECK(t.device().is_cpu(), op, " (gloo): the ", what, " must be on the CPU, got ", describe_tensor(t),
            " (the gloo backend moves CPU tensors; use the nccl backend for CUDA tensors)");
  ZAE_CHECK(t.is_contiguous(), op, " (gloo): the ", what, " must be contiguous, got ", describe_tensor(t), ", strides ",
            shape_str(t.strides()), " (call .contiguous() first)");
}

void check_peer(const std::string& op, const char* role, int peer, int size) {
  ZAE_CHECK(peer >= 0 && peer < size, op, " (gloo): ", role, " rank ", peer, " is not a rank of this group (size ",
            size, ", ranks 0..", size - 1, ")");
}

}  // namespace detail

namespace {

using detail::check_cpu_tensor;
using detail::check_peer;
using detail::describe_tensor;

void check_reducible(const std::string& op, const Tensor& t, ReduceOp rop) {
  const DType d = t.dtype();
  ZAE_CHECK(detail::is_native_reduce_dtype(d) || d == DType::bfloat16 || d == DType::float16, op,
            " (gloo): dtype ", d, " cannot be reduced, got ", describe_tensor(t),
            " (supported: float32, float64, bfloat16, float16, int32, int64, uint8)");
  ZAE_CHECK(rop == ReduceOp::sum || rop == ReduceOp::avg || rop == ReduceOp::min || rop == ReduceOp::max, op,
            " (gloo): unknown ReduceOp code ", static_cast<int>(rop));
  ZAE_CHECK(rop != ReduceOp::avg || is_floating(d), op, " (gloo): ReduceOp::avg needs a floating dtype, got ",
            describe_tensor(t), "; an integer average would round: reduce with sum and divide yourself");
}

bool is_half(DType d) { return d == DType::bfloat16 || d == DType::float16; }

Tensor converted(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), {.dtype = dtype, .device = t.device()});
  copy_into(out, t);
  return out;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// store->lost_ranks() on a helper thread, waiting at most `limit`: the store promises not
// to throw, but a store whose server stopped answering could block for its own (long)
// timeout, and a failing collective must report promptly. A call that overruns is left
// to finish on its detached thread, which owns what it touches.
std::vector<int> lost_ranks_within(const std::shared_ptr<Store>& store, std::chrono::milliseconds limit) {
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<int> ranks;
  };
  auto result = std::make_shared<Result>();
  try {
    std::thread([store, result] {
      std::vector<int> ranks;
      try {
        ranks = store->lost_ranks();
      } catch (...) {
        ranks.clear();  // naming the culprit is best effort
      }
      {
        std::lock_guard<std::mutex> lock(result->mu);
        result->ranks = std::move(ranks);
        result->done = true;
      }
      result->cv.notify_all();
    }).detach();
  } catch (...) {
    return {};  // no thread: report without the culprit
  }
  std::unique_lock<std::mutex> lock(result->mu);
  if (!result->cv.wait_for(lock, limit, [&] { return result->done; })) return {};
  return result->ranks;
}

template <class T>
void gloo_all_reduce_typed(const std::shared_ptr<gloo::Context>& context, void* data, size_t n, ReduceOp op,
                           std::chrono::milliseconds timeout) {
  gloo::AllreduceOptions options(context);
  options.setOutput<T>(static_cast<T*>(data), n);
  options.setReduceFunction(detail::cpu_reduce_fn(dtype_of<T>(), op, "all_reduce"));
  options.setTimeout(timeout);
  gloo::allreduce(options);
}

}  // namespace

GlooProcessGroup::GlooProcessGroup(std::shared_ptr<Store> store, int rank, int size, ProcessGroupOptions options)
    : ProcessGroup(rank, size, std::move(options)), store_(std::move(store)) {
  if (size > 1) context_ = detail::connect_gloo_context(store_, rank, size, this->options());
  ring_transport_ = [this](const Tensor& out, int dst, Tensor& in, int src) {
    exchange(out.numel() > 0 ? out.raw_data() : nullptr, out.nbytes(), dst, in.numel() > 0 ? in.raw_data() : nullptr,
             in.nbytes(), src, detail::kGlooInternalSlotBase);
  };
  const std::string who = "rank " + std::to_string(rank) + " of " + std::to_string(size) + " (gloo)";
  comm_ = std::make_unique<detail::CommThread>(
      who, this->options().timeout,
      [this](const std::string& op, std::exception_ptr error) { return describe_failure(op, std::move(error)); });
}

GlooProcessGroup::~GlooProcessGroup() {
  if (comm_) comm_->stop();  // no job runs after this, so the context is ours alone
  context_.reset();          // closes the connections: blocked peers fail instead of waiting
}

std::string GlooProcessGroup::describe_failure(const std::string& op, std::exception_ptr error) {
  std::string message;
  try {
    std::rethrow_exception(error);
  } catch (const gloo::Exception& e) {
    message = e.what();
  } catch (const Error& e) {
    message = e.message();
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown exception";
  }
  std::ostringstream os;
  os << op << " failed on rank " << rank() << " of " << size() << " (gloo): " << message;
  const std::vector<int> lost =
      lost_ranks_within(store_, std::min<std::chrono::milliseconds>(options().timeout, std::chrono::seconds(2)));
  if (!lost.empty()) {
    os << ", rank(s) ";
    for (size_t i = 0; i < lost.size(); ++i) os << (i ? ", " : "") << lost[i];
    os << " gone (connection to the store closed)";
  }
  const std::string lower = lowercase(message);
  if (lower.find("timeout") != std::string::npos || lower.find("timed out") != std::string::npos) {
    os << "; a peer did not join this collective within " << options().timeout.count()
       << " ms: did every rank call the same collectives in the same order?";
  } else if (lower.find("closed") != std::string::npos || lower.find("reset") != std::string::npos ||
             lower.find("broken pipe") != std::string::npos || lower.find("refused") != std::string::npos) {
    os << "; a peer closed its connection (it failed, timed out or destroyed its process group)";
  }
  return os.str();
}

// ---- collectives ------------------------------------------------------------------

void GlooProcessGroup::agree_on_call(const detail::CallFingerprint& mine) {
  if (size() == 1) return;
  std::vector<detail::CallFingerprint> all(static_cast<size_t>(size()));
  gloo::AllgatherOptions o(context_);
  o.setInput<uint8_t>(reinterpret_cast<uint8_t*>(const_cast<detail::CallFingerprint*>(&mine)), sizeof(mine));
  o.setOutput<uint8_t>(reinterpret_cast<uint8_t*>(all.data()), sizeof(mine) * all.size());
  o.setTag(detail::kGlooFingerprintTag);
  o.setTimeout(options().timeout);
  gloo::allgather(o);
  detail::check_same_calls(all);
}

void GlooProcessGroup::all_reduce(Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(); }

std::shared_ptr<Work> GlooProcessGroup::all_reduce_async(Tensor& t, ReduceOp op) {
  const std::string name = "all_reduce";
  check_cpu_tensor(name, t, "tensor");
  check_reducible(name, t, op);
  const auto call = detail::make_fingerprint(detail::CallKind::all_reduce, &t, op, options().all_reduce_algorithm);
  return comm_->submit(name, [this, t, op, call] {
    agree_on_call(call);
    run_all_reduce(t, op);
  });
}

void GlooProcessGroup::run_all_reduce(Tensor t, ReduceOp op) {
  if (t.numel() == 0 || size() == 1) return;  // avg over one rank is the value itself
  if (is_half(t.dtype())) {                    // reduce in float32, round once
    Tensor wide = converted(t, DType::float32);
    run_all_reduce(wide, op);
    copy_into(t, wide);
  } else if (options().all_reduce_algorithm == AllReduceAlgorithm::ring) {
    detail::ring_all_reduce(ring_transport_, rank(), size(), t, op);
  } else {
    gloo_all_reduce(t, op);
    if (op == ReduceOp::avg)
      detail::cpu_divide_inplace(t.dtype(), t.raw_data(), static_cast<size_t>(t.numel()), size(), "all_reduce");
  }
  t.storage()->bump_version();
}

void GlooProcessGroup::gloo_all_reduce(const Tensor& t, ReduceOp op) {
  const auto n = static_cast<size_t>(t.numel());
  switch (t.dtype()) {
    case DType::float32: return gloo_all_reduce_typed<float>(context_, t.raw_data(), n, op, options().timeout);
    case DType::float64: return gloo_all_reduce_typed<double>(context_, t.raw_data(), n, op, options().timeout);
    case DType::int32: return gloo_all_reduce_typed<int32_t>(context_, t.raw_data(), n, op, options().timeout);
    case DType::int64: return gloo_all_reduce_typed<int64_t>(context_, t.raw_data(), n, op, options().timeout);
    case DType::uint8: return gloo_all_reduce_typed<uint8_t>(context_, t.raw_data(), n, op, options().timeout);
    default: ZAE_FAIL("all_reduce (gloo): no native reduction for dtype ", t.dtype());
  }
}

void GlooProcessGroup::broadcast(Tensor& t, int root) {
  const std::string name = "broadcast";
  check_cpu_tensor(name, t, "tensor");
  check_peer(name, "root", root, size());
  const auto call = detail::make_fingerprint(detail::CallKind::broadcast, &t, ReduceOp::sum,
                                            AllReduceAlgorithm::library, root);
  comm_->run(name, [this, t, root, call] {
    agree_on_call(call);
    if (t.nbytes() == 0 || size() == 1) return;
    gloo::BroadcastOptions o(context_);
    o.setOutput<uint8_t>(static_cast<uint8_t*>(t.raw_data()), t.nbytes());
    o.setRoot(root);
    o.setTimeout(options().timeout);
    gloo::broadcast(o);
    t.storage()->bump_version();
  });
}

Tensor GlooProcessGroup::all_gather(const Tensor& in) {
  const std::string name = "all_gather";
  check_cpu_tensor(name, in, "input");
  Shape shape = in.shape();
  shape.insert(shape.begin(), size());
  Tensor out = Tensor::empty(shape, {.dtype = in.dtype(), .device = Device::cpu()});  // (size, ...in.shape)
  const auto call = detail::make_fingerprint(detail::CallKind::all_gather, &in);
  comm_->run(name, [this, in, out, call] {
    agree_on_call(call);
    const size_t bytes = in.nbytes();
    if (bytes == 0) return;
    if (size() == 1) {
      std::memcpy(out.raw_data(), in.raw_data(), bytes);
      return;
    }
    gloo::AllgatherOptions o(context_);
    o.setInput<uint8_t>(static_cast<uint8_t*>(in.raw_data()), bytes);  // only read
    o.setOutput<uint8_t>(static_cast<uint8_t*>(out.raw_data()), bytes * static_cast<size_t>(size()));
    o.setTimeout(options().timeout);
    gloo::allgather(o);
  });
  return out;
}

Tensor GlooProcessGroup::reduce_scatter(const Tensor& in, ReduceOp op) {
  const std::string name = "reduce_scatter";
  check_cpu_tensor(name, in, "input");
  check_reducible(name, in, op);
  ZAE_CHECK(in.dim() >= 1 && in.size(0) % size() == 0, name,
            " (gloo): dim 0 of the input must be divisible by the group size ",
            size(), ", got ", describe_tensor(in));
  auto result = std::make_shared<Tensor>();  // outlives this frame if the wait gives up
  const auto call = detail::make_fingerprint(detail::CallKind::reduce_scatter, &in, op);
  comm_->run(name, [this, in, op, result, call] {
    agree_on_call(call);
    *result = detail::ring_reduce_scatter(ring_transport_, rank(), size(), in, op);
  });
  return *result;
}

void GlooProcessGroup::barrier() {
  const auto call = detail::make_fingerprint(detail::CallKind::barrier, nullptr);
  comm_->run("barrier", [this, call] {
    agree_on_call(call);
    if (size() == 1) return;
    gloo::BarrierOptions o(context_);
    o.setTimeout(options().timeout);
    gloo::barrier(o);
  });
}

// ---- factory ------------------------------------------------------------------------

std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank, int size,
                                                      ProcessGroupOptions options) {
  ZAE_CHECK(store != nullptr, "make_gloo_process_group: the store is null");
  ZAE_CHECK(size >= 1, "make_gloo_process_group: group size must be >= 1, got ", size);
  ZAE_CHECK(rank >= 0 && rank < size, "make_gloo_process_group: rank ", rank, " is outside the group of size ", size);
  ZAE_CHECK(options.timeout.count() > 0, "make_gloo_process_group: timeout must be positive, got ",
            options.timeout.count(), " ms");
  // Longer waits overflow the clocks inside Gloo and the standard library: treat them as 30 days.
  options.timeout = std::min<std::chrono::milliseconds>(options.timeout, std::chrono::hours(24 * 30));
  return std::make_shared<GlooProcessGroup>(std::move(store), rank, size, std::move(options));
}

}  // namespace zae::dist
