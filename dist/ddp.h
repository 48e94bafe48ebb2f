// DistributedDataParallel: data parallel training of one nn::Module over a ProcessGroup.
// Each rank runs the same model on its own shard of every batch; DDP keeps the replicas
// identical by averaging gradients across ranks during backward.
//
//   auto ddp = zae::dist::DistributedDataParallel(model, group, {.bucket_cap_mb = 25});
//   loss = model->forward(...)...;  loss.backward();  ddp.finish_gradient_sync();  opt.step();
//
// How: at construction, parameters and buffers are broadcast from rank 0. Parameters
// (those that require grad) are grouped into buckets of about bucket_cap_mb in reverse
// registration order (the order backward produces their gradients). A post-accumulate-grad
// hook (engine/autograd/hooks.h) marks a parameter ready; when every parameter of a bucket
// is ready, its gradients are copied into the bucket's flat buffer and an asynchronous
// all-reduce starts while backward goes on computing earlier layers. Buckets start strictly
// in index order, so every rank issues the same collectives in the same order.
// finish_gradient_sync() waits for all buckets and writes the averaged gradients back
// into each parameter's .grad.
// Invariants: the module's parameter names and the module itself are unchanged (state
// dicts and checkpoints keep their keys: no "module." prefix); gradients after
// finish_gradient_sync() are the mean over ranks of each rank's accumulated gradient;
// a parameter that got no gradient in a synchronised backward is an error naming it,
// unless find_unused_parameters (then its gradient counts as zero on that rank).
// Threads: the hooks run on the thread that runs backward; construct, backward,
// finish_gradient_sync() and the sync_* calls of one DDP belong on one thread.
// Every rank must run a synchronised backward (or none) before finish_gradient_sync(): a
// rank whose loss reached no parameter starts no bucket and the others' wait times out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "nn/module.h"

namespace zae::dist {

struct DDPOptions {
  double bucket_cap_mb = 25.0;          ///< bucket size in MiB of gradient data
  bool find_unused_parameters = false;  ///< true: a parameter without gradient counts as zero
  /// Whether the training loop should call sync_buffers() every step (the Trainer reads it);
  /// sync_buffers() itself always broadcasts, and construction always does.
  bool broadcast_buffers = true;
};

class DistributedDataParallel {
 public:
  /// Registers the hooks and broadcasts parameters and buffers from rank 0.
  DistributedDataParallel(std::shared_ptr<nn::Module> module, std::shared_ptr<ProcessGroup> group,
                          DDPOptions options = {});
  /// Removes the hooks (waits for in-flight reductions, never throws).
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  nn::Module& module() { return *module_; }
  ProcessGroup& group() { return *group_; }
  const DDPOptions& options() const { return options_; }

  /// RAII: backward passes inside the scope accumulate gradients locally without any
  /// communication (gradient accumulation); the next synchronised backward reduces the sum.
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& ddp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& ddp_;
    bool previous_;
  };
  NoSync no_sync() { return NoSync(*this); }
  bool sync_enabled() const { return sync_enabled_; }

  /// After a synchronised backward: waits for every bucket, launches those that are not
  /// complete (unused parameters, see the file comment) and leaves the averaged gradients
  /// in .grad. A no-op after a backward inside no_sync().
  void finish_gradient_sync();
  /// Whether some backward ran inside no_sync() since the last synchronisation (its
  /// gradients are local only).
  bool has_unsynced_gradients() const { return unsynced_; }
  /// Averages every parameter's current .grad across ranks now, bucket by bucket
  /// (for gradients accumulated under no_sync() that no synchronised backward followed).
  void sync_gradients();
  /// Broadcasts rank 0's buffers (batch-norm statistics) to all ranks.
  void sync_buffers();
  /// Broadcasts rank 0's parameters to all ranks.
  void sync_parameters();

  /// Buckets as lists of parameter names (for tests and for the curious).
  std::vector<std::vector<std::string>> bucket_layout() const;

 private:
  struct Bucket;
  void on_gradient_ready(size_t param_index);
  void mark_ready(size_t param_index);
  void launch_ready_buckets();
  void launch_bucket(size_t b);
  /// Waits for every bucket started in this pass; copies the averages into .grad.
  void wait_and_copy_back();
  /// Waits for every started bucket, swallowing errors (error paths, destructor).
  void drain() noexcept;
  void reset_pass();
  /// Broadcasts `tensors` from rank 0 in place, coalesced into flat buffers per dtype/device.
  void broadcast_from_rank0(const std::vector<Tensor>& tensors);

  std::shared_ptr<nn::Module> module_;
  std::shared_ptr<ProcessGroup> group_;
  DDPOptions options_;
  size_t bucket_cap_bytes_ = 0;
  std::vector<std::string> names_;    // parameters that require grad, registration order
  std::vector<Tensor> params_;
  std::vector<uint64_t> hook_ids_;
  std::vector<size_t> bucket_of_;     // param index -> bucket
  std::vector<int64_t> offset_of_;    // param index -> element offset in its bucket's buffer
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<bool> ready_;
  size_t next_bucket_ = 0;            // buckets start in index order
  bool pass_active_ = false;          // a synchronised backward has started marking params
  bool sync_enabled_ = true;
  bool unsynced_ = false;
};

}  // namespace zae::dist
