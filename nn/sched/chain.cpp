#include "nn/sched/chain.h"

#include <algorithm>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

std::shared_ptr<optim::Optimizer> SchedulerChain::common_optimizer(
    const std::vector<std::shared_ptr<Scheduler>>& schedulers) {
  ZAE_CHECK(!schedulers.empty(), "SchedulerChain: needs at least one scheduler");
  for (size_t i = 0; i < schedulers.size(); ++i) {
    ZAE_CHECK(schedulers[i] != nullptr, "SchedulerChain: scheduler ", i, " is null");
  }
  const auto& first = schedulers[0]->optimizer();
  for (size_t i = 1; i < schedulers.size(); ++i) {
    ZAE_CHECK(schedulers[i]->optimizer() == first, "SchedulerChain: all schedulers must drive the same optimizer, but ",
              schedulers[i]->name(), " (scheduler ", i, ") drives a ", schedulers[i]->optimizer()->name(), " at ",
              schedulers[i]->optimizer().get(), " while ", schedulers[0]->name(), " (scheduler 0) drives a ",
              first->name(), " at ", first.get());
  }
  return first;
}

SchedulerChain::SchedulerChain(std::vector<std::shared_ptr<Scheduler>> schedulers)
    : Scheduler("SchedulerChain", common_optimizer(schedulers)), schedulers_(std::move(schedulers)) {
  starts_.push_back(0);
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    const Scheduler& s = *schedulers_[i];
    ZAE_CHECK(!s.needs_metric(), prefix(), s.name(), " (scheduler ", i,
              ") is metric-driven and cannot be chained: it has no length");
    const std::optional<int64_t> t = s.total_iters();
    ZAE_CHECK(t.has_value(), prefix(), s.name(), " (scheduler ", i,
              ") has no total_iters (it never ends), so nothing could follow it in a chain");
    starts_.push_back(starts_.back() + *t);
  }
  rebase(schedulers_[0]->base_lrs());
  initial_step();
}

size_t SchedulerChain::index_at(int64_t step) const {
  ZAE_CHECK(step >= 0, prefix(), "step must be >= 0, got ", step);
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), step);
  const size_t after = static_cast<size_t>(it - starts_.begin());  // >= 1 since starts_[0] = 0
  return std::min(after - 1, schedulers_.size() - 1);
}

std::vector<double> SchedulerChain::lr_at(int64_t step) const {
  const size_t i = index_at(step);
  return schedulers_[i]->lr_at(step - starts_[i]);
}

void SchedulerChain::seek(int64_t step) {
  const size_t i = index_at(step);
  Scheduler& s = *schedulers_[i];
  s.seek(step - starts_[i]);  // computes before it writes: a failure changes nothing
  last_step_ = step;
  last_lrs_ = s.get_last_lr();
}

void SchedulerChain::rebase(const std::vector<double>& base_lrs) {
  Scheduler::rebase(base_lrs);
  for (const auto& s : schedulers_) s->rebase(base_lrs);
}

SchedulerState SchedulerChain::state_dict() const {
  SchedulerState state = Scheduler::state_dict();
  for (const auto& s : schedulers_) state.children.push_back(s->state_dict());
  return state;
}

void SchedulerChain::check_state(const SchedulerState& state) const {
  check_common(state);
  ZAE_CHECK(state.scalars.empty(), prefix(), "load_state_dict: unexpected scalar '", state.scalars.begin()->first, "'");
  ZAE_CHECK(state.children.size() == schedulers_.size(), prefix(), "load_state_dict: the state holds ",
            state.children.size(), " chained schedulers, this chain has ", schedulers_.size());
  for (size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->check_state(state.children[i]);
}

void SchedulerChain::load_state_dict(const SchedulerState& state) {
  check_state(state);
  for (size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->load_state_dict(state.children[i]);
  base_lrs_ = state.base_lrs;
  last_step_ = state.last_step;
  write_lrs(state.last_lrs);  // last: the chain's lrs win over the children's
}

}  // namespace zae::sched
