#include "nn/sched/scheduler.h"

#include <cmath>
#include <utility>

#include "engine/error.h"

namespace zae::sched {

namespace {

bool valid_lr(double lr) { return std::isfinite(lr) && lr >= 0.0; }

void flatten_into(const SchedulerState& s, const std::string& prefix, std::map<std::string, std::vector<double>>& out) {
  out[prefix + "last_step"] = {static_cast<double>(s.last_step)};
  out[prefix + "base_lrs"] = s.base_lrs;
  out[prefix + "last_lrs"] = s.last_lrs;
  for (const auto& [key, value] : s.scalars) out[prefix + "scalars." + key] = {value};
  for (size_t i = 0; i < s.children.size(); ++i) flatten_into(s.children[i], prefix + "children." + std::to_string(i) + ".", out);
}

double single(const std::map<std::string, std::vector<double>>& flat, const std::string& key) {
  auto it = flat.find(key);
  ZAE_CHECK(it != flat.end(), "SchedulerState::unflatten: missing key '", key, "'");
  ZAE_CHECK(it->second.size() == 1, "SchedulerState::unflatten: '", key, "' must hold one value, got ", it->second.size());
  return it->second[0];
}

}  // namespace

std::map<std::string, std::vector<double>> SchedulerState::flatten() const {
  std::map<std::string, std::vector<double>> out;
  flatten_into(*this, "", out);
  return out;
}

SchedulerState SchedulerState::unflatten(const std::map<std::string, std::vector<double>>& flat) {
  SchedulerState s;
  const double step = single(flat, "last_step");
  ZAE_CHECK(std::isfinite(step) && step >= 0 && step == std::floor(step) && step < 9007199254740992.0,
            "SchedulerState::unflatten: last_step must be a non-negative integer, got ", step);
  s.last_step = static_cast<int64_t>(step);
  for (const char* key : {"base_lrs", "last_lrs"}) {
    auto it = flat.find(key);
    ZAE_CHECK(it != flat.end(), "SchedulerState::unflatten: missing key '", key, "'");
    (std::string(key) == "base_lrs" ? s.base_lrs : s.last_lrs) = it->second;
  }
  std::map<size_t, std::map<std::string, std::vector<double>>> children;
  for (const auto& [key, value] : flat) {
    if (key == "last_step" || key == "base_lrs" || key == "last_lrs") continue;
    if (key.rfind("scalars.", 0) == 0 && key.size() > 8) {
      s.scalars[key.substr(8)] = single(flat, key);
    } else if (key.rfind("children.", 0) == 0) {
      const size_t dot = key.find('.', 9);
      const std::string index = key.substr(9, dot == std::string::npos ? std::string::npos : dot - 9);
      ZAE_CHECK(dot != std::string::npos && !index.empty() && index.size() < 10 &&
                    index.find_first_not_of("0123456789") == std::string::npos,
                "SchedulerState::unflatten: malformed key '", key, "'");
      children[std::stoul(index)][key.substr(dot + 1)] = value;
    } else {
      ZAE_FAIL("SchedulerState::unflatten: unexpected key '", key, "'");
    }
  }
  for (auto& [index, child] : children) {
    ZAE_CHECK(index == s.children.size(), "SchedulerState::unflatten: child ", s.children.size(),
              " is missing (found child ", index, ")");
    s.children.push_back(unflatten(child));
  }
  return s;
}

Scheduler::Scheduler(std::string name, std::shared_ptr<optim::Optimizer> optimizer)
    : name_(std::move(name)), optimizer_(std::move(optimizer)) {
  ZAE_CHECK(optimizer_ != nullptr, prefix(), "the optimizer is null");
  ZAE_CHECK(optimizer_->num_groups() > 0, prefix(), "the optimizer (", optimizer_->name(), ") has no parameter groups");
  for (size_t g = 0; g < optimizer_->num_groups(); ++g) {
    const double lr = optimizer_->lr(g);
    ZAE_CHECK(valid_lr(lr), prefix(), "the lr of parameter group ", g, " must be finite and >= 0, got ", lr);
    base_lrs_.push_back(lr);
  }
  last_lrs_ = base_lrs_;
}

void Scheduler::step() { seek(last_step_ + 1); }

void Scheduler::step(double metric) {
  ZAE_FAIL(prefix(), "step(metric = ", metric,
           ") is for metric-driven schedulers (ReduceLROnPlateau); this schedule depends only on the step count: "
           "call step()");
}

std::vector<double> Scheduler::lr_at(int64_t step) const {
  ZAE_FAIL(prefix(), "lr_at(", step, "): the lr is not a function of the step count (it follows a metric)");
}

void Scheduler::seek(int64_t step) {
  std::vector<double> lrs = lr_at(step);  // first: may throw, and then nothing changes
  last_step_ = step;
  write_lrs(std::move(lrs));
}

void Scheduler::rebase(const std::vector<double>& base_lrs) {
  ZAE_CHECK(base_lrs.size() == base_lrs_.size(), prefix(), "rebase: ", base_lrs.size(), " base lrs for ",
            base_lrs_.size(), " parameter groups");
  base_lrs_ = base_lrs;
}

void Scheduler::write_lrs(std::vector<double> lrs) {
  ZAE_CHECK(optimizer_->num_groups() == lrs.size(), prefix(), "the optimizer (", optimizer_->name(), ") now has ",
            optimizer_->num_groups(), " parameter groups but the scheduler was built for ", lrs.size(),
            "; build a new scheduler after add_param_group");
  for (size_t g = 0; g < lrs.size(); ++g) optimizer_->set_lr(lrs[g], g);
  last_lrs_ = std::move(lrs);
}

SchedulerState Scheduler::state_dict() const {
  SchedulerState s;
  s.name = name_;
  s.last_step = last_step_;
  s.base_lrs = base_lrs_;
  s.last_lrs = last_lrs_;
  return s;
}

void Scheduler::check_common(const SchedulerState& state) const {
  ZAE_CHECK(state.name.empty() || state.name == name_, prefix(), "load_state_dict: the state is of a ", state.name);
  ZAE_CHECK(state.last_step >= 0, prefix(), "load_state_dict: last_step must be >= 0, got ", state.last_step);
  ZAE_CHECK(state.base_lrs.size() == base_lrs_.size() && state.last_lrs.size() == base_lrs_.size(), prefix(),
            "load_state_dict: the state has ", state.base_lrs.size(), " base lrs and ", state.last_lrs.size(),
            " last lrs, this scheduler has ", base_lrs_.size(), " parameter groups");
  for (size_t g = 0; g < base_lrs_.size(); ++g) {
    ZAE_CHECK(valid_lr(state.base_lrs[g]) && valid_lr(state.last_lrs[g]), prefix(), "load_state_dict: group ", g,
              " has base lr ", state.base_lrs[g], " and last lr ", state.last_lrs[g], "; both must be finite and >= 0");
  }
}

void Scheduler::check_state(const SchedulerState& state) const {
  check_common(state);
  ZAE_CHECK(state.scalars.empty(), prefix(), "load_state_dict: unexpected scalar '", state.scalars.begin()->first, "'");
  ZAE_CHECK(state.children.empty(), prefix(), "load_state_dict: the state has ", state.children.size(),
            " chained schedulers, this scheduler has none");
}

void Scheduler::load_state_dict(const SchedulerState& state) {
  check_state(state);
  base_lrs_ = state.base_lrs;
  last_step_ = state.last_step;
  write_lrs(state.last_lrs);
}

}  // namespace zae::sched
