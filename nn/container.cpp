#include "nn/container.h"

namespace zae::nn {
namespace {

size_t wrap_index(int64_t i, size_t size, const char* container) {
  const int64_t n = static_cast<int64_t>(size);
  ZAE_CHECK(i >= -n && i < n, container, ": index ", i, " is out of range for ", n, " element", n == 1 ? "" : "s");
  return static_cast<size_t>(i < 0 ? i + n : i);
}

}  // namespace

// ---- Sequential ----------------------------------------------------------------

Sequential::Sequential(std::initializer_list<std::shared_ptr<Layer>> layers) : Sequential() {
  for (const auto& l : layers) push_back(l);
}

Sequential::Sequential(const std::vector<std::shared_ptr<Layer>>& layers) : Sequential() {
  for (const auto& l : layers) push_back(l);
}

void Sequential::append(const std::string& name, std::shared_ptr<Layer> layer) {
  ZAE_CHECK(layer != nullptr, "Sequential: layer '", name, "' is null");
  register_module(name, layer);
  layers_.push_back(std::move(layer));
}

std::shared_ptr<Layer> Sequential::operator[](int64_t i) const { return layers_[wrap_index(i, size(), "Sequential")]; }

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& layer : layers_) h = layer->forward(h);
  return h;
}

// ---- ModuleList ----------------------------------------------------------------

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) : ModuleList() {
  for (const auto& m : modules) append(m);
}

void ModuleList::append(std::shared_ptr<Module> module) {
  ZAE_CHECK(module != nullptr, "ModuleList: module ", modules_.size(), " is null");
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

void ModuleList::extend(const std::vector<std::shared_ptr<Module>>& modules) {
  for (const auto& m : modules) append(m);
}

std::shared_ptr<Module> ModuleList::operator[](int64_t i) const {
  return modules_[wrap_index(i, size(), "ModuleList")];
}

// ---- ModuleDict ----------------------------------------------------------------

ModuleDict::ModuleDict(std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> items) : ModuleDict() {
  for (const auto& [k, m] : items) put(k, m);
}

void ModuleDict::put(const std::string& key, std::shared_ptr<Module> module) {
  ZAE_CHECK(module != nullptr, "ModuleDict: module '", key, "' is null");
  for (auto& item : items_)
    if (item.first == key) {
      replace_child(key, module);
      item.second = std::move(module);
      return;
    }
  register_module(key, module);
  items_.emplace_back(key, std::move(module));
}

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& item : items_)
    if (item.first == key) return true;
  return false;
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& item : items_) out.push_back(item.first);
  return out;
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& key) const {
  for (const auto& item : items_)
    if (item.first == key) return item.second;
  std::string known;
  for (const auto& item : items_) known += (known.empty() ? "'" : ", '") + item.first + "'";
  ZAE_FAIL("ModuleDict: no module under key '", key, "' (keys: ", known.empty() ? "none" : known, ")");
}

}  // namespace zae::nn
