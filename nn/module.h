// Module: the unit of model composition. A module owns named parameters,
// buffers and child modules; dotted names ("block.0.weight") address every
// tensor and are the state-dict and safetensors keys. Parameters are never
// addressed by position.
// Invariants: names are unique within a module and contain no '.'; parameter
// and buffer handles keep their identity for the module's lifetime (to() and
// load_state_dict() change the data in place), so optimizers may hold them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace zae::nn {

/// An ordered list of (dotted name, tensor) pairs: depth first, each module's parameters,
/// then its persistent buffers, then its children (PyTorch's state_dict order).
using StateDict = std::vector<std::pair<std::string, Tensor>>;

/// What load_state_dict found (non-strict loads report instead of failing).
struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Module {
 public:
  explicit Module(std::string type_name);
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The class name shown when printing ("Linear", "Sequential", ...).
  const std::string& type_name() const { return type_name_; }

  // ---- traversal ---------------------------------------------------------------
  /// Parameters with dotted names, depth first in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  /// This module ("") and every descendant, with dotted names, depth-first pre-order (a
  /// module reachable twice is listed once).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  /// The direct child registered under `name` (error if absent).
  std::shared_ptr<Module> child(const std::string& name) const;
  /// Number of parameter elements (only those requiring grad if trainable_only).
  int64_t num_parameters(bool trainable_only = false) const;

  // ---- modes and placement -------------------------------------------------
  /// Sets training mode on this module and all descendants (affects dropout, batch norm).
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Moves parameters and buffers; floating tensors also take `dtype` when given.
  void to(Device device);
  void to(DType dtype);
  void to(Device device, DType dtype);
  /// Clears gradients: to none (undefined) by default, or to zeros.
  void zero_grad(bool set_to_none = true);

  // ---- state ------------------------------------------------------------------
  /// Parameters and persistent buffers under their dotted names (handles, not copies).
  StateDict state_dict() const;
  /// Copies values into the existing tensors. strict: missing or unexpected keys are an
  /// error listing all of them; a shape mismatch is always an error naming the key and
  /// both shapes; dtypes are converted to the module's.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  /// A PyTorch-like tree: "Sequential(\n  (0): Linear(in_features=2, ...)\n)".
  std::string str() const;
  /// The text between the parentheses of this module's line (e.g. "in_features=2").
  virtual std::string extra_repr() const { return ""; }

 protected:
  /// Registers a parameter; returns a copy of the stored handle (same tensor) to keep in a
  /// member (sets requires_grad unless a non-floating tensor or requires_grad=false). An
  /// undefined tensor registers "None".
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  /// Registers a buffer (e.g. running statistics); persistent buffers go in state_dict.
  /// Returns a copy of the stored handle.
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  /// Registers a child module and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  /// Replaces an existing child (containers use it).
  void replace_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name, const char* what) const;
  void collect(const std::string& prefix, bool params, bool recurse, bool persistent_only,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void collect_state(const std::string& prefix, StateDict& out) const;
  void print(std::string& out, int indent) const;

  std::string type_name_;
  std::vector<Slot> parameters_;
  std::vector<Slot> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

/// A module with one input and one output: what Sequential chains.
class Layer : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace zae::nn
