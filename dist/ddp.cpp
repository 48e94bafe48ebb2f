// DistributedDataParallel (dist/ddp.h): gradient buckets filled by post-accumulate-grad
// hooks and all-reduced asynchronously while backward goes on.
// Invariants of one pass (between two finish_gradient_sync() calls):
//   - ready_[i] is set at most once per parameter; bucket b's `ready` counts its ready
//     parameters; a bucket is started (its Work exists) only when all its parameters are
//     ready and every bucket below it has started, so next_bucket_ is the number started
//     and all ranks issue the same all-reduces in the same order;
//   - a started bucket's buffer is neither read nor written until its Work is waited for;
//   - pass_active_ is true iff some parameter was marked ready in this pass; reset_pass()
//     restores the idle state (no Work held, nothing ready).
#include "dist/ddp.h"

#include <algorithm>
#include <exception>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/hooks.h"
#include "engine/error.h"
#include "engine/ops/factory.h"

namespace zae::dist {

struct DistributedDataParallel::Bucket {
  std::vector<size_t> params;  // indices into params_, in bucket order (reverse registration)
  DType dtype = DType::float32;
  Device device = Device::cpu();
  int64_t numel = 0;
  size_t bytes = 0;
  Tensor buffer;               // (numel) flat, contiguous, on `device`; allocated once
  size_t ready = 0;            // parameters marked ready in this pass
  std::shared_ptr<Work> work;  // set once started in this pass (none for an empty bucket)
};

namespace {

// The tensors of `named` with duplicates (one tensor registered under two names) removed,
// keeping the first name.
std::vector<std::pair<std::string, Tensor>> unique_tensors(std::vector<std::pair<std::string, Tensor>> named) {
  std::unordered_set<const TensorImpl*> seen;
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, t] : named)
    if (t.defined() && seen.insert(t.impl_ptr().get()).second) out.emplace_back(std::move(name), std::move(t));
  return out;
}

std::string join_names(const std::vector<std::string>& names) {
  std::ostringstream os;
  for (size_t i = 0; i < names.size(); ++i) os << (i ? ", " : "") << names[i];
  return os.str();
}

}  // namespace

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<nn::Module> module,
                                                 std::shared_ptr<ProcessGroup> group, DDPOptions options)
    : module_(std::move(module)), group_(std::move(group)), options_(options) {
  ZAE_CHECK(module_ != nullptr, "DistributedDataParallel: the module is null");
  ZAE_CHECK(group_ != nullptr, "DistributedDataParallel: the process group is null");
  ZAE_CHECK(options_.bucket_cap_mb > 0.0, "DistributedDataParallel: bucket_cap_mb must be > 0, got ",
            options_.bucket_cap_mb);
  bucket_cap_bytes_ = std::max<size_t>(1, static_cast<size_t>(options_.bucket_cap_mb * 1024.0 * 1024.0));

  // Replicas start equal: rank 0's parameters and buffers everywhere.
  {
    std::vector<Tensor> state;
    for (auto& [name, t] : unique_tensors(module_->named_parameters())) state.push_back(t);
    for (auto& [name, t] : unique_tensors(module_->named_buffers())) state.push_back(t);
    broadcast_from_rank0(state);
  }

  for (auto& [name, t] : unique_tensors(module_->named_parameters())) {
    if (!t.requires_grad()) continue;
    names_.push_back(name);
    params_.push_back(t);
  }
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  offset_of_.assign(n, 0);
  ready_.assign(n, false);

  // Buckets in reverse registration order (backward's order), one open bucket per
  // (dtype, device); a bucket closes when the next parameter would take it past the cap
  // (a parameter larger than the cap gets a bucket of its own).
  std::vector<size_t> open;  // indices of the open buckets
  for (size_t k = n; k-- > 0;) {
    const Tensor& p = params_[k];
    auto it = std::find_if(open.begin(), open.end(), [&](size_t b) {
      return buckets_[b]->dtype == p.dtype() && buckets_[b]->device == p.device();
    });
    if (it != open.end() && buckets_[*it]->bytes + p.nbytes() > bucket_cap_bytes_) {
      open.erase(it);
      it = open.end();
    }
    size_t b;
    if (it == open.end()) {
      auto bucket = std::make_unique<Bucket>();
      bucket->dtype = p.dtype();
      bucket->device = p.device();
      b = buckets_.size();
      buckets_.push_back(std::move(bucket));
      open.push_back(b);
    } else {
      b = *it;
    }
    Bucket& bucket = *buckets_[b];
    bucket_of_[k] = b;
    offset_of_[k] = bucket.numel;
    bucket.params.push_back(k);
    bucket.numel += p.numel();
    bucket.bytes += p.nbytes();
  }
  for (auto& bucket : buckets_)
    bucket->buffer = Tensor::empty({bucket->numel}, {.dtype = bucket->dtype, .device = bucket->device});

  try {
    hook_ids_.reserve(n);
    for (size_t i = 0; i < n; ++i)
      hook_ids_.push_back(
          autograd::register_post_accumulate_grad_hook(params_[i], [this, i](const Tensor&) { on_gradient_ready(i); }));
  } catch (...) {
    for (size_t i = 0; i < hook_ids_.size(); ++i) autograd::remove_post_accumulate_grad_hook(params_[i], hook_ids_[i]);
    throw;
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  for (size_t i = 0; i < hook_ids_.size(); ++i) {
    try {
      autograd::remove_post_accumulate_grad_hook(params_[i], hook_ids_[i]);
    } catch (...) {
    }
  }
  drain();
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel& ddp) : ddp_(ddp), previous_(ddp.sync_enabled_) {
  ddp_.sync_enabled_ = false;
}

DistributedDataParallel::NoSync::~NoSync() { ddp_.sync_enabled_ = previous_; }

void DistributedDataParallel::on_gradient_ready(size_t i) {
  if (!sync_enabled_) {
    unsynced_ = true;  // this backward accumulates locally only
    return;
  }
  ZAE_CHECK(!ready_[i], "DistributedDataParallel (rank ", group_->rank(), "): parameter '", names_[i],
            "' received a gradient twice in one synchronised pass: backward ran again before "
            "finish_gradient_sync(). Call finish_gradient_sync() after every synchronised backward, or run "
            "the accumulation backwards inside no_sync()");
  mark_ready(i);
  launch_ready_buckets();
}

void DistributedDataParallel::mark_ready(size_t i) {
  ready_[i] = true;
  pass_active_ = true;
  ++buckets_[bucket_of_[i]]->ready;
}

void DistributedDataParallel::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_]->ready == buckets_[next_bucket_]->params.size()) {
    launch_bucket(next_bucket_);
    ++next_bucket_;
  }
}

void DistributedDataParallel::launch_bucket(size_t b) {
  Bucket& bucket = *buckets_[b];
  {
    NoGradGuard no_grad;
    for (size_t k : bucket.params) {
      const Tensor& p = params_[k];
      ZAE_CHECK(p.dtype() == bucket.dtype && p.device() == bucket.device, "DistributedDataParallel: parameter '",
                names_[k], "' is now ", p.dtype(), " on ", p.device(), " but was ", bucket.dtype, " on ",
                bucket.device, " when DDP was constructed; move or convert the model before wrapping it");
      Tensor slot = bucket.buffer.narrow(0, offset_of_[k], p.numel());
      const Tensor g = p.grad();
      if (g.defined()) {
        ZAE_CHECK(g.shape() == p.shape(), "DistributedDataParallel: parameter '", names_[k], "' has shape ",
                  shape_str(p.shape()), " but its .grad has shape ", shape_str(g.shape()));
        slot.view(p.shape()).copy_(g);
      } else {
        slot.zero_();
      }
    }
  }
  if (bucket.numel == 0) return;
  try {
    bucket.work = group_->all_reduce_async(bucket.buffer, ReduceOp::avg);
  } catch (const std::exception& e) {
    ZAE_FAIL("DistributedDataParallel (rank ", group_->rank(), "): starting the gradient all-reduce of bucket ", b,
             " of ", buckets_.size(), " failed: ", e.what());
  }
}

void DistributedDataParallel::wait_and_copy_back() {
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (!buckets_[b]->work) continue;
    try {
      buckets_[b]->work->wait();
    } catch (const std::exception& e) {
      const auto& ps = buckets_[b]->params;
      ZAE_FAIL("DistributedDataParallel (rank ", group_->rank(), "): the gradient all-reduce of bucket ", b, " of ",
               buckets_.size(), " (", ps.size(), " parameter(s), '", names_[ps.front()], "' .. '", names_[ps.back()],
               "') failed: ", e.what(),
               ". Every rank must run the same synchronised backward passes; if another rank reported parameters "
               "without gradient, fix that first");
    }
  }
  NoGradGuard no_grad;
  for (auto& bucket : buckets_) {
    for (size_t k : bucket->params) {
      Tensor& p = params_[k];
      const Tensor avg = bucket->buffer.narrow(0, offset_of_[k], p.numel()).view(p.shape());
      Tensor g = p.grad();
      if (g.defined())
        g.copy_(avg);
      else
        p.set_grad(avg.clone());
    }
  }
}

void DistributedDataParallel::drain() noexcept {
  for (auto& bucket : buckets_) {
    if (!bucket->work) continue;
    try {
      bucket->work->wait();
    } catch (...) {
    }
  }
}

void DistributedDataParallel::reset_pass() {
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& bucket : buckets_) {
    bucket->ready = 0;
    bucket->work.reset();
  }
  next_bucket_ = 0;
  pass_active_ = false;
}

void DistributedDataParallel::finish_gradient_sync() {
  if (!pass_active_) return;  // no synchronised backward since the last synchronisation
  try {
    std::vector<std::string> missing;
    for (size_t i = 0; i < params_.size(); ++i)
      if (!ready_[i]) missing.push_back(names_[i]);
    if (!missing.empty()) {
      if (!options_.find_unused_parameters)
        ZAE_FAIL("DistributedDataParallel (rank ", group_->rank(), "): ", missing.size(),
                 " parameter(s) received no gradient in this backward pass: ", join_names(missing),
                 ". Every parameter that requires grad must contribute to the loss on every rank; if some are "
                 "unused on purpose, construct DDP with find_unused_parameters = true (their gradient then "
                 "counts as zero), or set requires_grad = false on them before wrapping the model");
      NoGradGuard no_grad;
      for (size_t i = 0; i < params_.size(); ++i) {
        if (ready_[i]) continue;
        if (!params_[i].grad().defined()) params_[i].set_grad(zeros_like(params_[i]));
        mark_ready(i);
      }
      launch_ready_buckets();
    }
    wait_and_copy_back();
  } catch (...) {
    // Leave the group as consistent as this rank can: every collective it started is
    // finished; the gradients stay local.
    drain();
    reset_pass();
    unsynced_ = true;
    throw;
  }
  reset_pass();
  unsynced_ = false;
}

void DistributedDataParallel::sync_gradients() {
  ZAE_CHECK(!pass_active_, "DistributedDataParallel::sync_gradients (rank ", group_->rank(),
            "): a synchronised backward is pending; call finish_gradient_sync() first (it already averages "
            "the gradients)");
  try {
    for (size_t b = 0; b < buckets_.size(); ++b) launch_bucket(b);
    wait_and_copy_back();
  } catch (...) {
    drain();
    reset_pass();
    throw;
  }
  reset_pass();
  unsynced_ = false;
}

void DistributedDataParallel::sync_buffers() {
  std::vector<Tensor> buffers;
  for (auto& [name, t] : unique_tensors(module_->named_buffers())) buffers.push_back(t);
  broadcast_from_rank0(buffers);
}

void DistributedDataParallel::sync_parameters() {
  std::vector<Tensor> params;
  for (auto& [name, t] : unique_tensors(module_->named_parameters())) params.push_back(t);
  broadcast_from_rank0(params);
}

void DistributedDataParallel::broadcast_from_rank0(const std::vector<Tensor>& tensors) {
  // Groups of the same (dtype, device) in list order, each cut at the bucket cap; every
  // rank forms the same groups because the modules are the same.
  std::vector<bool> done(tensors.size(), false);
  NoGradGuard no_grad;
  for (size_t first = 0; first < tensors.size(); ++first) {
    if (done[first]) continue;
    const DType dtype = tensors[first].dtype();
    const Device device = tensors[first].device();
    std::vector<size_t> members;
    size_t bytes = 0;
    auto flush = [&] {
      if (members.empty()) return;
      int64_t numel = 0;
      for (size_t m : members) numel += tensors[m].numel();
      if (numel > 0) {
        Tensor flat = Tensor::empty({numel}, {.dtype = dtype, .device = device});
        int64_t off = 0;
        for (size_t m : members) {
          flat.narrow(0, off, tensors[m].numel()).view(tensors[m].shape()).copy_(tensors[m]);
          off += tensors[m].numel();
        }
        group_->broadcast(flat, 0);
        if (group_->rank() != 0) {
          off = 0;
          for (size_t m : members) {
            Tensor dst = tensors[m];
            dst.copy_(flat.narrow(0, off, dst.numel()).view(dst.shape()));
            off += dst.numel();
          }
        }
      }
      members.clear();
      bytes = 0;
    };
    for (size_t i = first; i < tensors.size(); ++i) {
      if (done[i] || tensors[i].dtype() != dtype || tensors[i].device() != device) continue;
      if (!members.empty() && bytes + tensors[i].nbytes() > bucket_cap_bytes_) flush();
      members.push_back(i);
      bytes += tensors[i].nbytes();
      done[i] = true;
    }
    flush();
  }
}

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_layout() const {
  std::vector<std::vector<std::string>> out;
  out.reserve(buckets_.size());
  for (const auto& bucket : buckets_) {
    std::vector<std::string> names;
    for (size_t k : bucket->params) names.push_back(names_[k]);
    out.push_back(std::move(names));
  }
  return out;
}

}  // namespace zae::dist
