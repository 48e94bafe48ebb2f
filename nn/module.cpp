#include "nn/module.h"

#include <algorithm>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/copy.h"

namespace zae::nn {

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}

void Module::check_new_name(const std::string& name, const char* what) const {
  ZAE_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what, " name '", name,
            "' must be non-empty and contain no '.'");
  auto taken = [&](const std::vector<Slot>& v) {
    return std::any_of(v.begin(), v.end(), [&](const Slot& s) { return s.name == name; });
  };
  bool child = std::any_of(children_.begin(), children_.end(), [&](const auto& c) { return c.first == name; });
  ZAE_CHECK(!taken(parameters_) && !taken(buffers_) && !child, type_name_, ": ", what, " name '", name,
            "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  if (t.defined()) {
    ZAE_CHECK(t.is_leaf(), type_name_, ": parameter '", name, "' must be a leaf tensor (detach() it first)");
    if (requires_grad && is_floating(t.dtype())) t.requires_grad_(true);
  }
  parameters_.push_back(Slot{name, std::move(t), true});
  return parameters_.back().tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "buffer");
  buffers_.push_back(Slot{name, std::move(t), persistent});
  return buffers_.back().tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "module");
  ZAE_CHECK(m != nullptr, type_name_, ": module '", name, "' is null");
  children_.emplace_back(name, std::move(m));
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> m) {
  ZAE_CHECK(m != nullptr, type_name_, ": module '", name, "' is null");
  for (auto& c : children_)
    if (c.first == name) {
      c.second = std::move(m);
      return;
    }
  ZAE_FAIL(type_name_, ": no child module named '", name, "'");
}

void Module::collect(const std::string& prefix, bool params, bool recurse, bool persistent_only,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const Slot& s : params ? parameters_ : buffers_) {
    if (!s.tensor.defined() || (persistent_only && !s.persistent)) continue;
    out.emplace_back(prefix + s.name, s.tensor);
  }
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, true, persistent_only, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, recurse, false, out);
  // A tensor shared by two modules (tied weights) is listed once, under its first name.
  std::unordered_set<const TensorImpl*> seen;
  std::erase_if(out, [&](const auto& p) { return !seen.insert(p.second.impl_ptr().get()).second; });
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, recurse, false, out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const { return children_; }

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& c : children_)
    if (c.first == name) return c.second;
  ZAE_FAIL(type_name_, ": no child module named '", name, "'");
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  // The root is not owned by a shared_ptr we can see: alias it without ownership.
  out.emplace_back("", std::shared_ptr<Module>(std::shared_ptr<Module>(), this));
  // Depth-first pre-order, as PyTorch; a module reachable twice is listed once.
  std::unordered_set<const Module*> seen = {this};
  auto visit = [&](auto&& self, const std::string& prefix, const Module& m) -> void {
    for (const auto& [name, child] : m.children_) {
      if (!seen.insert(child.get()).second) continue;
      std::string full = prefix.empty() ? name : prefix + "." + name;
      out.emplace_back(full, child);
      self(self, full, *child);
    }
  };
  visit(visit, "", *this);
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  auto move = [&](Tensor& t) {
    if (!t.defined() || t.device() == device) return;
    t.set_data(t.detach().to(device));
    if (t.grad().defined()) t.set_grad(t.grad().to(device));
  };
  for (auto& [name, t] : named_parameters()) move(t);
  for (auto& [name, t] : named_buffers()) move(t);
}

void Module::to(DType dtype) {
  ZAE_CHECK(is_floating(dtype), type_name_, ".to: modules convert to floating dtypes only, got ", dtype);
  NoGradGuard no_grad;
  auto convert = [&](Tensor& t) {
    if (!t.defined() || !is_floating(t.dtype()) || t.dtype() == dtype) return;
    t.set_data(t.detach().to(dtype));
    if (t.grad().defined()) t.set_grad(t.grad().to(dtype));
  };
  for (auto& [name, t] : named_parameters()) convert(t);
  for (auto& [name, t] : named_buffers()) convert(t);
}

void Module::to(Device device, DType dtype) {
  to(dtype);
  to(device);
}

void Module::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (auto& [name, t] : named_parameters()) {
    if (!t.grad().defined()) continue;
    if (set_to_none)
      t.set_grad(Tensor());
    else
      t.grad().zero_();
  }
}

void Module::collect_state(const std::string& prefix, StateDict& out) const {
  // Per module: its parameters, then its persistent buffers, then its children (PyTorch's order).
  collect(prefix, true, false, false, out);
  collect(prefix, false, false, true, out);
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

StateDict Module::state_dict() const {
  StateDict out;
  collect_state("", out);
  return out;
}

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  LoadResult result;
  std::unordered_map<std::string, const Tensor*> given;
  for (const auto& [k, v] : state) {
    ZAE_CHECK(given.emplace(k, &v).second, "load_state_dict: key '", k, "' appears twice");
  }
  StateDict own = state_dict();
  std::unordered_set<std::string> own_keys;
  for (const auto& [k, v] : own) own_keys.insert(k);
  for (const auto& [k, v] : own)
    if (!given.count(k)) result.missing_keys.push_back(k);
  for (const auto& [k, v] : state)
    if (!own_keys.count(k)) result.unexpected_keys.push_back(k);
  if (strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty())) {
    std::ostringstream os;
    os << "load_state_dict for " << type_name_ << ":";
    if (!result.missing_keys.empty()) {
      os << " missing keys:";
      for (auto& k : result.missing_keys) os << " '" << k << "'";
      os << ";";
    }
    if (!result.unexpected_keys.empty()) {
      os << " unexpected keys:";
      for (auto& k : result.unexpected_keys) os << " '" << k << "'";
      os << ";";
    }
    ZAE_FAIL(os.str());
  }
  // Check every shape before writing anything, so a failed load changes nothing.
  for (const auto& [k, dst] : own) {
    auto it = given.find(k);
    if (it == given.end()) continue;
    const Tensor& src = *it->second;
    ZAE_CHECK(src.defined(), "load_state_dict: value for '", k, "' is undefined");
    ZAE_CHECK(src.shape() == dst.shape(), "load_state_dict: shape mismatch for '", k, "': checkpoint has ",
              shape_str(src.shape()), ", model has ", shape_str(dst.shape()));
  }
  NoGradGuard no_grad;
  for (const auto& [k, dst] : own) {
    auto it = given.find(k);
    if (it == given.end()) continue;
    copy_into(dst, *it->second);
    dst.storage()->bump_version();
  }
  return result;
}

void Module::print(std::string& out, int indent) const {
  out += type_name_ + "(";
  std::string extra = extra_repr();
  if (children_.empty()) {
    out += extra + ")";
    return;
  }
  std::string pad(static_cast<size_t>(indent + 2), ' ');
  out += "\n";
  if (!extra.empty()) out += pad + extra + "\n";
  for (const auto& [name, child] : children_) {
    out += pad + "(" + name + "): ";
    child->print(out, indent + 2);
    out += "\n";
  }
  out += std::string(static_cast<size_t>(indent), ' ') + ")";
}

std::string Module::str() const {
  std::string out;
  print(out, 0);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.str(); }

}  // namespace zae::nn
