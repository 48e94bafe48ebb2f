// Modules to and from safetensors, with tied weights: a tensor that several state-dict
// names share is stored once (first name) plus metadata {alias: first name}, as
// safetensors.torch.save_model does; loading fills every name of a tied group.
#include <unordered_map>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/safetensors_format.h"

namespace zae::io {

namespace {

// Two handles are one tensor when they are the same TensorImpl or view the same memory
// the same way (same storage, offset, shape, strides and dtype).
bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.is_same(b) || (a.storage() == b.storage() && a.storage_offset() == b.storage_offset() &&
                          a.dtype() == b.dtype() && a.shape() == b.shape() && a.strides() == b.strides());
}

// For each state-dict entry, the index of the first entry that is the same tensor.
std::vector<size_t> tie_targets(const nn::StateDict& sd) {
  std::vector<size_t> target(sd.size());
  std::unordered_map<const StorageImpl*, std::vector<size_t>> firsts;  // storage -> kept entries
  for (size_t i = 0; i < sd.size(); ++i) {
    target[i] = i;
    auto& kept = firsts[sd[i].second.storage().get()];
    for (size_t j : kept)
      if (same_tensor(sd[j].second, sd[i].second)) {
        target[i] = j;
        break;
      }
    if (target[i] == i) kept.push_back(i);
  }
  return target;
}

}  // namespace

void save_module_safetensors(const nn::Module& module, const std::string& path,
                             const std::map<std::string, std::string>& metadata) {
  const nn::StateDict sd = module.state_dict();
  const std::vector<size_t> target = tie_targets(sd);
  std::vector<std::pair<std::string, Tensor>> kept;
  std::map<std::string, std::string> meta = metadata;
  for (size_t i = 0; i < sd.size(); ++i) {
    if (target[i] == i)
      kept.push_back(sd[i]);
    else
      meta.emplace(sd[i].first, sd[target[i]].first);  // user metadata with this key wins
  }
  const std::string hint =
      "save_module_safetensors: " + module.type_name() +
      " has parameters or buffers that partially overlap in memory; only identical views can be tied";
  const detail::WritePlan plan = detail::plan_safetensors(kept, meta, hint.c_str());
  write_file_atomic(path, [&](std::FILE* f) { detail::write_plan(f, plan, path); });
}

nn::LoadResult load_safetensors_into(nn::Module& module, const std::string& path, bool strict) {
  SafetensorsLoadOptions options;
  options.widen_unsupported = true;  // values are converted to the module's dtypes anyway
  SafetensorsData data = load_safetensors(path, options);
  nn::StateDict state = std::move(data.tensors);
  std::unordered_map<std::string, size_t> in_file;
  for (size_t i = 0; i < state.size(); ++i) in_file.emplace(state[i].first, i);

  // Names the file lacks: take them from a tied name it holds (the module's ties, or an
  // alias recorded in the metadata by the writer).
  const nn::StateDict own = module.state_dict();
  const std::vector<size_t> target = tie_targets(own);
  std::vector<size_t> group_source(own.size(), state.size());  // per tie group: an entry of the file
  for (size_t j = 0; j < own.size(); ++j) {
    auto it = in_file.find(own[j].first);
    if (it != in_file.end() && group_source[target[j]] == state.size()) group_source[target[j]] = it->second;
  }
  std::vector<std::pair<std::string, size_t>> extra;
  for (size_t i = 0; i < own.size(); ++i) {
    const std::string& name = own[i].first;
    if (in_file.count(name)) continue;
    size_t source = group_source[target[i]];
    if (source == state.size()) {
      auto alias = data.metadata.find(name);
      if (alias != data.metadata.end()) {
        auto it = in_file.find(alias->second);
        if (it != in_file.end()) source = it->second;
      }
    }
    if (source != state.size()) extra.emplace_back(name, source);
  }
  for (const auto& [name, source] : extra) state.emplace_back(name, state[source].second);
  try {
    return module.load_state_dict(state, strict);
  } catch (const Error& e) {
    ZAE_FAIL("load_safetensors_into '", path, "': ", e.message());
  }
}

}  // namespace zae::io
