// GPT2: the model of nn/gpt2.h from the engine's modules (Embedding, LayerNorm,
// CausalSelfAttention, Linear, GELU, Dropout), its GPT-2 initialisation, the loss and
// autoregressive sampling. The Hugging Face safetensors conversion is in io/gpt2_safetensors.h.
// Invariants: the module tree is nanoGPT's, so the dotted parameter names are its
// state-dict keys: "transformer" is a ModuleDict {wte, wpe, drop, h, ln_f}, each h.<i> a
// Block {ln_1, attn, ln_2, mlp}, each mlp an MLP {c_fc, gelu, c_proj, dropout}. The
// head has no module or parameter of its own: forward multiplies by wte's weight.
#include "nn/gpt2.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/shape.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/checkpoint.h"
#include "nn/container.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/normalization.h"

namespace zae::nn {

namespace {

constexpr double kInitStd = 0.02;

/// c_fc (C -> 4C), GELU(tanh), c_proj (4C -> C), dropout: nanoGPT's MLP. c_fc and the
/// GELU run as one fused linear_gelu (the GELU module stays registered for the keys and
/// the repr); recompute_gelu recomputes c_fc's output in backward instead of saving it.
class MLP : public Layer {
 public:
  MLP(int64_t n_embd, double dropout, bool recompute_gelu) : Layer("MLP"), recompute_gelu_(recompute_gelu) {
    c_fc_ = register_module("c_fc", std::make_shared<Linear>(n_embd, 4 * n_embd));
    gelu_ = register_module("gelu", std::make_shared<GELU>(GELU::Options{.approximate = GeluApprox::tanh}));
    c_proj_ = register_module("c_proj", std::make_shared<Linear>(4 * n_embd, n_embd));
    dropout_ = register_module("dropout", std::make_shared<Dropout>(dropout));
  }
  Tensor forward(const Tensor& x) override {  // (B, T, C) -> (B, T, C)
    Tensor h = linear_gelu(x, c_fc_->weight(), c_fc_->bias(), {.recompute = recompute_gelu_});  // (B, T, 4C)
    return dropout_->forward(c_proj_->forward(h));
  }
  const std::shared_ptr<Linear>& c_fc() const { return c_fc_; }
  const std::shared_ptr<Linear>& c_proj() const { return c_proj_; }

 private:
  std::shared_ptr<Linear> c_fc_;
  std::shared_ptr<GELU> gelu_;
  std::shared_ptr<Linear> c_proj_;
  std::shared_ptr<Dropout> dropout_;
  bool recompute_gelu_;
};

/// Pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)).
class Block : public Layer {
 public:
  explicit Block(const GPT2Config& c) : Layer("Block") {
    ln_1_ = register_module("ln_1", std::make_shared<LayerNorm>(c.n_embd));
    attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(CausalSelfAttention::Options{
                                        .embed_dim = c.n_embd, .num_heads = c.n_head, .dropout = c.dropout}));
    ln_2_ = register_module("ln_2", std::make_shared<LayerNorm>(c.n_embd));
    mlp_ = register_module("mlp", std::make_shared<MLP>(c.n_embd, c.dropout, c.recompute_gelu));
  }
  Tensor forward(const Tensor& x) override {  // (B, T, C) -> (B, T, C)
    AddLayerNormResult h = ln_2_->forward_add(x, attn_->forward(ln_1_->forward(x)));  // h.sum = x + attn(...)
    return h.sum + mlp_->forward(h.out);
  }
  const std::shared_ptr<LayerNorm>& ln_1() const { return ln_1_; }
  const std::shared_ptr<CausalSelfAttention>& attn() const { return attn_; }
  const std::shared_ptr<LayerNorm>& ln_2() const { return ln_2_; }
  const std::shared_ptr<MLP>& mlp() const { return mlp_; }

 private:
  std::shared_ptr<LayerNorm> ln_1_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<LayerNorm> ln_2_;
  std::shared_ptr<MLP> mlp_;
};

void check_config(const GPT2Config& c) {
  ZAE_CHECK(c.vocab_size > 0 && c.block_size > 0 && c.n_layer > 0 && c.n_head > 0 && c.n_embd > 0,
            "GPT2: vocab_size, block_size, n_layer, n_head and n_embd must be > 0, got vocab_size=", c.vocab_size,
            ", block_size=", c.block_size, ", n_layer=", c.n_layer, ", n_head=", c.n_head, ", n_embd=", c.n_embd);
  ZAE_CHECK(c.n_embd % c.n_head == 0, "GPT2: n_embd=", c.n_embd, " is not divisible by n_head=", c.n_head);
  ZAE_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, "GPT2: dropout must be in [0, 1), got ", c.dropout);
}

/// One next token per row of `logits` (B, V) (float64, on the CPU), per generate's rules.
std::vector<int64_t> pick_tokens(const std::vector<double>& logits, int64_t b, int64_t v, double temperature,
                                 int64_t top_k, Generator* gen) {
  std::vector<int64_t> out(static_cast<size_t>(b));
  if (temperature == 0.0) {
    for (int64_t r = 0; r < b; ++r) {
      const double* row = logits.data() + r * v;
      out[static_cast<size_t>(r)] = std::max_element(row, row + v) - row;  // first maximum
    }
    return out;
  }
  // One uniform per row, from the generator (reproducible under manual_seed).
  std::vector<double> u = rand({b}, {.dtype = DType::float64}, gen).to_vector<double>();
  const int64_t k = top_k > 0 ? std::min(top_k, v) : v;
  std::vector<double> z(static_cast<size_t>(v)), sorted;
  for (int64_t r = 0; r < b; ++r) {
    const double* row = logits.data() + r * v;
    for (int64_t j = 0; j < v; ++j) z[static_cast<size_t>(j)] = row[j] / temperature;
    double cutoff = -std::numeric_limits<double>::infinity();
    if (k < v) {  // keep values >= the k-th largest (ties at the cutoff stay, as nanoGPT)
      sorted = z;
      std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<double>());
      cutoff = sorted[static_cast<size_t>(k - 1)];
    }
    const double zmax = *std::max_element(z.begin(), z.end());
    ZAE_CHECK(std::isfinite(zmax), "GPT2::generate: the logits of row ", r, " are not finite (max ", zmax, ")");
    double total = 0.0;
    for (double& x : z) {
      x = x < cutoff ? 0.0 : std::exp(x - zmax);
      total += x;
    }
    // Inverse CDF: the first token whose cumulative probability exceeds u.
    const double target = u[static_cast<size_t>(r)] * total;
    double cum = 0.0;
    int64_t pick = -1;
    for (int64_t j = 0; j < v; ++j) {
      const double p = z[static_cast<size_t>(j)];
      if (p <= 0.0) continue;
      pick = j;  // the last token with mass, should rounding leave cum <= target
      cum += p;
      if (cum > target) break;
    }
    out[static_cast<size_t>(r)] = pick;
  }
  return out;
}

}  // namespace

// ---- GPT2Config -----------------------------------------------------------------------

GPT2Config GPT2Config::named(const std::string& name) {
  GPT2Config c;
  if (name == "d12") {
    c.n_layer = 12, c.n_head = 12, c.n_embd = 768;
  } else if (name == "d24") {
    c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  } else if (name == "d36") {
    c.n_layer = 36, c.n_head = 20, c.n_embd = 1280;
  } else if (name == "d48") {
    c.n_layer = 48, c.n_head = 25, c.n_embd = 1600;
  } else {
    ZAE_FAIL("GPT2Config::named: unknown config '", name, "' (known: d12, d24, d36, d48)");
  }
  return c;
}

int64_t GPT2Config::num_parameters() const {
  const int64_t c = n_embd;
  const int64_t layer_norm = 2 * c;
  const int64_t attn = (c * 3 * c + 3 * c) + (c * c + c);
  const int64_t mlp = (c * 4 * c + 4 * c) + (4 * c * c + c);
  const int64_t block = 2 * layer_norm + attn + mlp;
  return vocab_size * c + block_size * c + n_layer * block + layer_norm;
}

// ---- GPT2 --------------------------------------------------------------------------------

struct GPT2::Parts {
  std::shared_ptr<ModuleDict> transformer;
  std::shared_ptr<Embedding> wte;
  std::shared_ptr<Embedding> wpe;
  std::shared_ptr<Dropout> drop;
  std::vector<std::shared_ptr<Block>> h;
  std::shared_ptr<LayerNorm> ln_f;
};

GPT2::GPT2(const GPT2Config& config) : Layer("GPT2"), config_(config) {
  check_config(config);
  parts_ = std::make_shared<Parts>();
  Parts& p = *parts_;
  p.transformer = register_module("transformer", std::make_shared<ModuleDict>());
  p.wte = p.transformer->insert("wte", std::make_shared<Embedding>(config.vocab_size, config.n_embd));
  p.wpe = p.transformer->insert("wpe", std::make_shared<Embedding>(config.block_size, config.n_embd));
  p.drop = p.transformer->insert("drop", std::make_shared<Dropout>(config.dropout));
  auto h = p.transformer->insert("h", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < config.n_layer; ++i) p.h.push_back(h->push_back(std::make_shared<Block>(config)));
  p.ln_f = p.transformer->insert("ln_f", std::make_shared<LayerNorm>(config.n_embd));

  // GPT-2's init, drawn from the default generator in parameter order. LayerNorms keep
  // their own (weight 1, bias 0).
  const double proj_std = kInitStd / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  auto init_linear = [](const Linear& l, double std_dev) {
    init::normal_(l.weight(), 0.0, std_dev);
    init::zeros_(l.bias());
  };
  init::normal_(p.wte->weight(), 0.0, kInitStd);
  init::normal_(p.wpe->weight(), 0.0, kInitStd);
  for (const auto& block : p.h) {
    init_linear(*block->attn()->c_attn(), kInitStd);
    init_linear(*block->attn()->c_proj(), proj_std);
    init_linear(*block->mlp()->c_fc(), kInitStd);
    init_linear(*block->mlp()->c_proj(), proj_std);
  }
}

Tensor GPT2::hidden_states(const Tensor& idx) {
  ZAE_CHECK(idx.defined(), "GPT2: undefined input");
  ZAE_CHECK(idx.dim() == 2, "GPT2: expected token ids of shape (B, T), got shape ", shape_str(idx.shape()));
  ZAE_CHECK(idx.dtype() == DType::int64 || idx.dtype() == DType::int32, "GPT2: token ids must be int64 (or int32), got ",
            idx.dtype());
  const int64_t t = idx.size(1);
  ZAE_CHECK(t <= config_.block_size, "GPT2: cannot forward a sequence of length T=", t,
            ", longer than block_size=", config_.block_size);
  ZAE_CHECK(t > 0, "GPT2: empty sequence (T=0)");
  const Parts& p = *parts_;
  Tensor pos = arange(t, {.dtype = DType::int64, .device = idx.device()});  // (T)
  Tensor x = p.drop->forward(p.wte->forward(idx) + p.wpe->forward(pos));   // (B, T, C)
  if (config_.checkpoint_blocks && GradMode::is_enabled()) {
    for (const auto& block : p.h) x = checkpoint(*block, x);
    return p.ln_f->forward(x);
  }
  // The blocks of Block::forward, with every residual add fused into the LayerNorm that
  // follows it (ln_2 of the same block, ln_1 of the next, ln_f after the last): the
  // residual stream x and the normalised a come out of one kernel each time.
  Tensor a = p.h.front()->ln_1()->forward(x);
  for (size_t i = 0; i < p.h.size(); ++i) {
    const Block& block = *p.h[i];
    AddLayerNormResult mid = block.ln_2()->forward_add(x, block.attn()->forward(a));
    LayerNorm& next = i + 1 < p.h.size() ? *p.h[i + 1]->ln_1() : *p.ln_f;
    AddLayerNormResult end = next.forward_add(mid.sum, block.mlp()->forward(mid.out));
    x = end.sum;
    a = end.out;
  }
  return a;  // ln_f(x), (B, T, C)
}

Tensor GPT2::forward(const Tensor& idx) {
  return linear(hidden_states(idx), parts_->wte->weight());  // (B, T, V): the head is wte
}

Tensor GPT2::loss(const Tensor& idx, const Tensor& targets) {
  ZAE_CHECK(targets.defined(), "GPT2::loss: undefined targets");
  ZAE_CHECK(idx.defined() && targets.shape() == idx.shape(), "GPT2::loss: targets of shape ",
            shape_str(targets.shape()), " do not match idx of shape ",
            idx.defined() ? shape_str(idx.shape()) : std::string("(undefined)"));
  Tensor x = hidden_states(idx);  // (B, T, C)
  const int64_t n = idx.numel();
  // The tied head and the loss fused in chunks of rows (engine/ops/linear_cross_entropy.cpp):
  // the (B, T, V) logits are never stored. nanoGPT's ignore_index: a target of -1 does not count.
  return linear_cross_entropy(x.reshape({n, config_.n_embd}), parts_->wte->weight(), Tensor(), targets.reshape({n}),
                              {.ignore_index = -1});
}

Tensor GPT2::generate(const Tensor& idx, int64_t max_new_tokens, double temperature, int64_t top_k, Generator* gen) {
  ZAE_CHECK(idx.defined() && idx.dim() == 2 && idx.size(1) > 0 && idx.size(0) > 0,
            "GPT2::generate: expected a prompt of shape (B, T0) with B, T0 >= 1, got ",
            idx.defined() ? shape_str(idx.shape()) : std::string("an undefined tensor"));
  ZAE_CHECK(idx.dtype() == DType::int64, "GPT2::generate: token ids must be int64, got ", idx.dtype());
  ZAE_CHECK(max_new_tokens >= 0, "GPT2::generate: max_new_tokens must be >= 0, got ", max_new_tokens);
  ZAE_CHECK(std::isfinite(temperature) && temperature >= 0.0,
            "GPT2::generate: temperature must be finite and >= 0 (0 = greedy), got ", temperature);
  ZAE_CHECK(top_k >= 0, "GPT2::generate: top_k must be >= 0 (0 = all tokens), got ", top_k);
  NoGradGuard no_grad;
  const int64_t b = idx.size(0), v = config_.vocab_size;
  Tensor out = idx;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const int64_t t = out.size(1);
    Tensor cond = t > config_.block_size ? out.narrow(1, t - config_.block_size, config_.block_size) : out;
    Tensor last = forward(cond).select(1, cond.size(1) - 1);  // (B, V)
    std::vector<int64_t> next = pick_tokens(last.to_vector<double>(), b, v, temperature, top_k, gen);
    Tensor col = tensor<int64_t>(next, {b, 1}).to(idx.device());
    out = cat({out, col}, 1);
  }
  return out;
}

}  // namespace zae::nn
