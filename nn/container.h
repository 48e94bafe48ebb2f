// Containers, as torch.nn's: Sequential chains layers; ModuleList and ModuleDict
// hold modules for a parent to use. Each element is a registered child, so its
// parameters appear under "<index>.<name>" / "<key>.<name>" in named_parameters()
// and state_dict(). Invariant: the container's own list and its registered
// children always hold the same modules in the same order.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace zae::nn {

/// Layers applied in order; forward(x) = layer_n(...layer_1(x)). Children are
/// named "0", "1", ... unless pushed with a name. Empty: forward returns x.
class Sequential : public Layer {
 public:
  Sequential() : Layer("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Layer>> layers);
  explicit Sequential(const std::vector<std::shared_ptr<Layer>>& layers);

  /// Appends a layer named by its position; returns it.
  template <class L>
  std::shared_ptr<L> push_back(std::shared_ptr<L> layer) {
    append(std::to_string(layers_.size()), layer);
    return layer;
  }
  /// Appends a layer under an explicit name (as PyTorch's OrderedDict form).
  template <class L>
  std::shared_ptr<L> push_back(const std::string& name, std::shared_ptr<L> layer) {
    append(name, layer);
    return layer;
  }

  /// The i-th layer; negative i counts from the end.
  std::shared_ptr<Layer> operator[](int64_t i) const;
  /// The i-th layer as type L (error if it is another type).
  template <class L>
  std::shared_ptr<L> at(int64_t i) const {
    auto p = std::dynamic_pointer_cast<L>((*this)[i]);
    ZAE_CHECK(p != nullptr, "Sequential: layer ", i, " is a ", (*this)[i]->type_name(), ", not the requested type");
    return p;
  }
  size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  auto begin() const { return layers_.begin(); }
  auto end() const { return layers_.end(); }

  Tensor forward(const Tensor& x) override;

 private:
  void append(const std::string& name, std::shared_ptr<Layer> layer);
  std::vector<std::shared_ptr<Layer>> layers_;
};

/// A list of modules of any kind, named "0", "1", ...; it has no forward.
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);

  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    append(module);
    return module;
  }
  void extend(const std::vector<std::shared_ptr<Module>>& modules);

  /// The i-th module; negative i counts from the end.
  std::shared_ptr<Module> operator[](int64_t i) const;
  template <class M>
  std::shared_ptr<M> at(int64_t i) const {
    auto p = std::dynamic_pointer_cast<M>((*this)[i]);
    ZAE_CHECK(p != nullptr, "ModuleList: module ", i, " is a ", (*this)[i]->type_name(), ", not the requested type");
    return p;
  }
  size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }

 private:
  void append(std::shared_ptr<Module> module);
  std::vector<std::shared_ptr<Module>> modules_;
};

/// Modules under string keys, in insertion order; it has no forward.
class ModuleDict : public Module {
 public:
  ModuleDict() : Module("ModuleDict") {}
  ModuleDict(std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> items);

  /// Adds `module` under `key`, or replaces the module already there (keeping its position).
  template <class M>
  std::shared_ptr<M> insert(const std::string& key, std::shared_ptr<M> module) {
    put(key, module);
    return module;
  }
  /// The module under `key` (error naming the key and the known keys if absent).
  std::shared_ptr<Module> operator[](const std::string& key) const;
  template <class M>
  std::shared_ptr<M> at(const std::string& key) const {
    auto p = std::dynamic_pointer_cast<M>((*this)[key]);
    ZAE_CHECK(p != nullptr, "ModuleDict: module '", key, "' is a ", (*this)[key]->type_name(),
              ", not the requested type");
    return p;
  }
  bool contains(const std::string& key) const;
  std::vector<std::string> keys() const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  void put(const std::string& key, std::shared_ptr<Module> module);
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> items_;
};

}  // namespace zae::nn
