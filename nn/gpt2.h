// GPT2: GPT-2's decoder-only transformer (Radford et al. 2019, as nanoGPT/llm.c write it),
// built from the engine's modules:
//   x = wte(idx) + wpe(pos)                                  (B, T, C)
//   for each block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))
//     attn: CausalSelfAttention (c_attn C->3C, c_proj C->C); mlp: c_fc C->4C, GELU(tanh), c_proj 4C->C
//   logits = ln_f(x) @ wte^T                                 (B, T, V)  (the head is tied to wte)
// Names (state dict, safetensors): nanoGPT's, e.g. "transformer.wte.weight",
// "transformer.h.0.attn.c_attn.weight", "transformer.ln_f.bias"; lm_head is wte itself and has
// no entry of its own. Hugging Face's GPT-2 checkpoints use the same names but store the
// Linear weights of c_attn, c_proj and c_fc transposed (their Conv1D is (in, out)):
// io/gpt2_safetensors.h (load_hf_safetensors / save_hf_safetensors) converts.
// Init (GPT-2's): Linear and Embedding weights N(0, 0.02); the residual projections
// (attn.c_proj and mlp.c_proj) N(0, 0.02 / sqrt(2 * n_layer)); biases 0; LayerNorm 1 and 0.
// Invariants: T <= block_size (a clear error otherwise); idx holds int64 token ids in
// [0, vocab_size) (checked by embedding).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "nn/module.h"

namespace zae::nn {

struct GPT2Config {
  int64_t vocab_size = 50257;
  int64_t block_size = 1024;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  double dropout = 0.0;
  /// Recompute each MLP's c_fc output (the GELU input) in backward instead of saving it
  /// (linear_gelu's recompute): less activation memory for one extra GEMM per block.
  bool recompute_gelu = false;
  /// Activation checkpointing per block (nn/checkpoint.h): each block keeps only its input
  /// and reruns its forward in backward (about a third more compute, a fraction of the
  /// activation memory); the residual adds are then not fused across blocks.
  bool checkpoint_blocks = false;
  /// "d12" (124M), "d24" (350M), "d36" (774M), "d48" (1558M); the vocabulary and context of GPT-2.
  static GPT2Config named(const std::string& name);
  /// The model's parameter count (head tied, so counted once), without building it:
  /// 124,439,808 for d12.
  int64_t num_parameters() const;
};

class GPT2 : public Layer {
 public:
  explicit GPT2(const GPT2Config& config);

  /// idx (B, T) int64 -> logits (B, T, vocab_size).
  Tensor forward(const Tensor& idx) override;
  /// Mean cross-entropy of forward(idx) against targets (B, T) int64; targets of -1 are
  /// ignored (nanoGPT's ignore_index). The head and the loss run fused in chunks of rows
  /// (linear_cross_entropy), so the (B, T, V) logits are never stored.
  Tensor loss(const Tensor& idx, const Tensor& targets);
  /// The final hidden states ln_f(x) (B, T, n_embd) of idx (B, T): forward without the head.
  Tensor hidden_states(const Tensor& idx);
  /// Autoregressive sampling: appends max_new_tokens tokens to idx (B, T0) (cropping the
  /// context to block_size), softmax(logits / temperature), top_k > 0 keeps the k largest;
  /// temperature 0 = greedy. No graph is recorded.
  Tensor generate(const Tensor& idx, int64_t max_new_tokens, double temperature = 1.0, int64_t top_k = 0,
                  Generator* gen = nullptr);

  const GPT2Config& config() const { return config_; }

 private:
  GPT2Config config_;
  struct Parts;
  std::shared_ptr<Parts> parts_;
};

}  // namespace zae::nn
