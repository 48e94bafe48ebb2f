// GPT-2 weights in Hugging Face's safetensors layout, for nn::GPT2 (nn/gpt2.h): loading
// published checkpoints ("gpt2", "gpt2-medium", ...) and saving ones transformers loads.
// Lives in io/ (it reads and writes files; nn/ stays below io/).
#pragma once

#include <string>

#include "nn/gpt2.h"

namespace zae::io {

/// Loads Hugging Face GPT-2 weights (model.safetensors of "gpt2", "gpt2-medium", ...): the
/// names above, with or without the "transformer." prefix, Conv1D weights transposed; a
/// missing, unexpected or wrongly shaped tensor is an error naming it.
void load_hf_safetensors(nn::GPT2& model, const std::string& path);
/// Writes the model with Hugging Face's names and layouts (loadable by transformers).
void save_hf_safetensors(const nn::GPT2& model, const std::string& path);

}  // namespace zae::io
