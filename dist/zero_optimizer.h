// ZeroRedundancyOptimizer: ZeRO stage 1 (PyTorch's ZeroRedundancyOptimizer semantics).
// Every data parallel rank keeps the parameters, but the optimizer state (Adam's moments,
// ...) of each parameter lives on one rank only, its owner: per-rank optimizer memory is
// about 1/world of a plain optimizer's.
//
//   auto opt = std::make_shared<zae::dist::ZeroRedundancyOptimizer>(
//       model->parameters(), zae::dist::optimizer_factory<zae::optim::AdamW>(zae::optim::AdamWOptions{.lr = 3e-4}),
//       group);                                   // or no group: the default group, bound at first use
//   ... loss.backward(); ddp.finish_gradient_sync(); opt->step();
//
// How: it is an optim::Optimizer over ALL parameters (so schedulers, the Trainer, set_lr
// and option reads work on it as on the plain one) that builds an inner optimizer, with
// the factory, over the parameters this rank owns. step() copies every group's options
// to the inner optimizer, lets it update the owned parameters, then broadcasts every
// parameter from its owner (coalesced per owner and dtype into flat buckets).
// Preconditions: parameters start equal on every rank (DDP's constructor broadcasts rank
// 0's); gradients are already averaged across ranks when step() runs (DDP does it:
// dist/ddp.h); every rank passes the same parameters (shapes, dtypes, groups) in the same
// order.
// In the Trainer: with MultiGPUAddon, StateManagerAddon calls prepare_state_dict(0) (here:
// consolidate to rank 0) on every rank before rank 0 writes a checkpoint, and a resume loads
// the full state on every rank; zae-train gpt2 --zero uses it.
// Invariants:
// - Partition: greedy by numel, largest first (ties: lower index), each to the least
//   loaded rank (ties: lower rank); a pure function of the shapes, so identical on every
//   rank. Binding (in the constructor when a group is given, else at the first step,
//   consolidate_state_dict or load_state_dict, on the default group) checks with two small
//   all_gathers that every rank passed the same list; a difference is an error on every
//   rank naming the first parameter that differs (no rank is left waiting).
// - step(), consolidate_state_dict(), load_state_dict() and binding are collective: every
//   rank calls them in the same order. zero_grad() clears every parameter's gradient.
//   Parameter groups are fixed once bound (add_param_group before binding only).
// - name() and option keys are the inner optimizer's ("AdamW", ...), and state_dict()
//   has exactly the structure a plain optimizer over all parameters would have, so
//   checkpoints of a ZeRO run and of a plain run are interchangeable.
// - state_dict() needs consolidate_state_dict(to) on every rank first (collective: each
//   owner sends its shard's state to rank `to`); it then returns the full state on rank
//   `to` and is an error on the other ranks. A later step() or load_state_dict() drops
//   the consolidated copy (stale): state_dict() is then an error until the next consolidation.
// - load_state_dict(full state), on every rank, keeps only the owned parameters' state.
// - Optimizer::state(param) of this class is always empty; local_state(param) gives the
//   inner optimizer's state (empty for parameters another rank owns).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "nn/optim/optimizer.h"

namespace zae::dist {

/// Builds the inner optimizer over the given groups (keep their order and options).
using OptimizerFactory = std::function<std::unique_ptr<optim::Optimizer>(std::vector<optim::ParamGroup>)>;

/// A factory for optimizer type O constructed as O(groups, options).
template <class O, class OptionsT>
OptimizerFactory optimizer_factory(OptionsT options) {
  return [options](std::vector<optim::ParamGroup> groups) -> std::unique_ptr<optim::Optimizer> {
    return std::make_unique<O>(std::move(groups), options);
  };
}

struct ZeroOptions {
  /// Size cap of one flat broadcast bucket of parameters (per owner and dtype), in MiB.
  double bucket_cap_mb = 25.0;
};

class ZeroRedundancyOptimizer : public optim::Optimizer {
 public:
  /// `group` null: binds lazily to dist::default_group() at the first collective call
  /// (MultiGPUAddon creates the default group inside Trainer::run). With a group the
  /// constructor binds at once (collective).
  ZeroRedundancyOptimizer(std::vector<optim::ParamGroup> groups, OptimizerFactory factory,
                          std::shared_ptr<ProcessGroup> group = nullptr, ZeroOptions options = {});
  ZeroRedundancyOptimizer(std::vector<Tensor> params, OptimizerFactory factory,
                          std::shared_ptr<ProcessGroup> group = nullptr, ZeroOptions options = {});
  ~ZeroRedundancyOptimizer() override;

  /// Collective: inner step on the owned parameters, then every parameter from its owner.
  void step() override;

  /// Collective: gathers the full state on rank `to` (the other ranks send their shard).
  void consolidate_state_dict(int to = 0);
  /// The checkpoint hook of optim::Optimizer: consolidate_state_dict(to).
  void prepare_state_dict(int to) override { consolidate_state_dict(to); }
  /// The full state (handles to the consolidated copy): only on the rank consolidated to,
  /// after consolidate_state_dict and before the next step / load_state_dict.
  optim::OptimizerState state_dict() const override;
  /// Collective only through binding: options for every group, state for the owned
  /// parameters. `state` is a full state dict (as state_dict() returns).
  void load_state_dict(const optim::OptimizerState& state) override;

  /// Collective: checks the parameter lists across ranks and partitions (no-op when bound).
  void bind();
  bool is_bound() const { return bound_; }
  /// The group (null before binding when none was given).
  const std::shared_ptr<ProcessGroup>& process_group() const { return group_; }
  const ZeroOptions& zero_options() const { return options_; }

  // ---- the partition (all need a bound optimizer) ------------------------------
  /// The owning rank of each parameter, in flat order (parameters()).
  const std::vector<int>& owners() const;
  /// The flat indices of the parameters this rank owns, ascending.
  const std::vector<size_t>& local_indices() const;
  /// The inner optimizer (null when this rank owns no parameter).
  const optim::Optimizer* local_optimizer() const;
  /// The inner optimizer's state of `param` (empty when another rank owns it).
  const std::map<std::string, Tensor>& local_state(const Tensor& param) const;
  /// The rank whose consolidated state state_dict() returns (-1: none or stale).
  int consolidated_to() const { return consolidated_to_; }

 protected:
  void validate(const optim::Options& options) const override;
  std::vector<std::string> state_keys() const override { return {}; }

 private:
  struct Bucket;
  ZeroRedundancyOptimizer(std::unique_ptr<optim::Optimizer> prototype, const std::vector<optim::ParamGroup>& groups,
                          const OptimizerFactory& factory, std::shared_ptr<ProcessGroup> group,
                          ZeroOptions options);
  void require_bound(const char* what) const;
  /// Device that collective tensors live on (the parameters' device for NCCL, else the CPU).
  Device comm_device() const;
  void check_same_parameters();
  void build_partition();
  void sync_options();
  void broadcast_parameters();
  void send_shard_state(int to);
  void receive_shard_state(int from, optim::OptimizerState& out);

  std::unique_ptr<optim::Optimizer> prototype_;  // over all parameters, stateless: validates options
  OptimizerFactory factory_;
  std::shared_ptr<ProcessGroup> group_;
  ZeroOptions options_;
  bool bound_ = false;
  std::vector<int> owners_;
  std::vector<size_t> local_;
  std::unique_ptr<optim::Optimizer> inner_;
  std::vector<Bucket> buckets_;
  std::optional<optim::OptimizerState> consolidated_;
  int consolidated_to_ = -1;
};

}  // namespace zae::dist
