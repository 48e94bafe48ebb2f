// GPT-2 weights in Hugging Face's safetensors layout (io/gpt2_safetensors.h).
// Hugging Face's GPT-2 names are nanoGPT's, with or without the "transformer." prefix
// (the hub's "gpt2" file has "h.0.attn.c_attn.weight", a save_pretrained of
// GPT2LMHeadModel has "transformer.h.0.attn.c_attn.weight"). Its Conv1D layers store
// their weight as (in, out), the transpose of our Linear's (out, in): c_attn, c_proj
// (attention and MLP) and c_fc. Older files also hold the attention's mask buffers
// "h.<i>.attn.bias" and "h.<i>.attn.masked_bias", which carry no weights and are skipped.
// "lm_head.weight", when present, must equal wte (the head is tied).
// Invariants: a load validates the whole file (names, shapes, the tie) before it changes
// any parameter, and reports every problem in one error; a save writes the
// save_pretrained form: prefixed names, Conv1D layouts, no lm_head, metadata format=pt
// (transformers refuses safetensors files without it).
#include <cctype>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/reduce.h"
#include "io/safetensors.h"
#include "io/gpt2_safetensors.h"

namespace zae::io {

using nn::GPT2;
using nn::StateDict;

namespace {

const std::string kPrefix = "transformer.";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Weights that Hugging Face stores transposed (Conv1D: (in, out)).
bool is_conv1d_weight(const std::string& name) {
  return ends_with(name, ".c_attn.weight") || ends_with(name, ".c_proj.weight") || ends_with(name, ".c_fc.weight");
}

/// "h.<digits>.attn.bias" or "h.<digits>.attn.masked_bias": the attention mask buffers.
bool is_attention_buffer(const std::string& bare) {
  if (bare.rfind("h.", 0) != 0) return false;
  size_t i = 2;
  while (i < bare.size() && std::isdigit(static_cast<unsigned char>(bare[i]))) ++i;
  if (i == 2) return false;
  const std::string rest = bare.substr(i);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

Shape transposed(const Shape& s) { return s.size() == 2 ? Shape{s[1], s[0]} : s; }

}  // namespace

void load_hf_safetensors(GPT2& model, const std::string& path) {
  io::SafetensorsData data = io::load_safetensors(path);
  NoGradGuard no_grad;

  std::map<std::string, Tensor> own;  // our name -> parameter
  StateDict own_list = model.state_dict();
  for (const auto& [name, t] : own_list) own.emplace(name, t);

  std::map<std::string, std::pair<std::string, Tensor>> found;  // our name -> (file name, tensor in our layout)
  std::vector<std::string> problems;
  Tensor lm_head;
  for (const auto& [file_name, t] : data.tensors) {
    if (file_name == "lm_head.weight") {
      lm_head = t;
      continue;
    }
    const bool prefixed = file_name.rfind(kPrefix, 0) == 0;
    const std::string bare = prefixed ? file_name.substr(kPrefix.size()) : file_name;
    if (is_attention_buffer(bare)) continue;
    const std::string ours = kPrefix + bare;
    auto it = own.find(ours);
    if (it == own.end()) {
      problems.push_back("unexpected tensor '" + file_name + "'");
      continue;
    }
    const bool conv = is_conv1d_weight(ours);
    const Shape want = conv ? transposed(it->second.shape()) : it->second.shape();
    if (t.shape() != want) {
      found.emplace(ours, std::make_pair(file_name, Tensor()));  // present, reported here, not as missing
      problems.push_back("tensor '" + file_name + "' has shape " + shape_str(t.shape()) + ", expected " +
                         shape_str(want) + (conv ? " (Conv1D layout: (in, out))" : ""));
      continue;
    }
    auto [slot, inserted] = found.emplace(ours, std::make_pair(file_name, conv ? t.t() : t));
    if (!inserted) problems.push_back("tensors '" + slot->second.first + "' and '" + file_name + "' are the same weight");
  }
  for (const auto& [name, t] : own_list) {
    if (found.count(name) == 0) problems.push_back("missing tensor '" + name.substr(kPrefix.size()) + "'");
  }
  if (lm_head.defined() && problems.empty()) {
    const Tensor& wte = found.at(kPrefix + "wte.weight").second;
    if (lm_head.shape() != wte.shape()) {
      problems.push_back("tensor 'lm_head.weight' has shape " + shape_str(lm_head.shape()) + ", expected " +
                         shape_str(wte.shape()) + " (tied to wte)");
    } else {
      const double diff = amax((lm_head.to(DType::float64) - wte.to(DType::float64)).abs()).item();
      if (diff != 0.0) {
        std::ostringstream os;
        os << "tensor 'lm_head.weight' differs from 'wte.weight' (max |difference| " << diff
           << "); GPT2's head is tied to wte";
        problems.push_back(os.str());
      }
    }
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += "\n  " + p;
    ZAE_FAIL("load_hf_safetensors: ", path, " does not match GPT2(n_layer=", model.config().n_layer,
             ", n_embd=", model.config().n_embd, ", vocab_size=", model.config().vocab_size,
             ", block_size=", model.config().block_size, "):", all);
  }
  StateDict state;
  state.reserve(own_list.size());
  for (const auto& [name, t] : own_list) state.emplace_back(name, found.at(name).second);
  model.load_state_dict(state, /*strict=*/true);
}

void save_hf_safetensors(const GPT2& model, const std::string& path) {
  NoGradGuard no_grad;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.emplace_back(name, is_conv1d_weight(name) ? t.t() : t);
  io::save_safetensors(path, tensors, {{"format", "pt"}});
}

}  // namespace zae::io
