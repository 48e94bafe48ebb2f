// GPT2 (nn/gpt2.h) on the CPU with small configs: nanoGPT's parameter names and the
// count (d12's 124,439,808 from the formula, the formula checked by allocation),
// shapes, causality, the loss against cross_entropy, the tied head, GPT-2's init
// statistics and determinism, the block_size error, generate (greedy = argmax
// chaining, top_k = 1 = greedy, cropping, seeded sampling, top_k support, the sampling
// distribution), Hugging Face safetensors (round trip, a hand-built hub-style file,
// errors naming tensors, failed loads leave the model unchanged) and a float64
// gradient check of a tiny model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/zae.h"
#include "io/safetensors.h"
#include "io/gpt2_safetensors.h"
#include "nn/gpt2.h"
#include "tests/support/gradcheck.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using namespace zae::nn;
using zae::test::expect_throws_with;
using zae::io::load_hf_safetensors;
using zae::io::save_hf_safetensors;

GPT2Config small_config() {
  GPT2Config c;
  c.vocab_size = 64;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  return c;
}

std::shared_ptr<GPT2> make_model(const GPT2Config& c, uint64_t seed) {
  manual_seed(seed);
  auto m = std::make_shared<GPT2>(c);
  m->eval();
  return m;
}

Tensor param(const Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_parameters())
    if (n == name) return t;
  ADD_FAILURE() << "no parameter " << name;
  return Tensor();
}

Tensor tokens(const std::vector<int64_t>& v, int64_t b, int64_t t) { return tensor<int64_t>(v, {b, t}); }

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> x = values(a), y = values(b);
  double m = 0.0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

double std_of(const Tensor& t) {
  std::vector<double> v = values(t);
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double s = 0.0;
  for (double x : v) s += (x - mean) * (x - mean);
  return std::sqrt(s / static_cast<double>(v.size()));
}

// ---- config and names ------------------------------------------------------------------

TEST(GPT2Config, NamedSizesAndCounts) {
  struct Row {
    const char* name;
    int64_t layers, heads, embd, count;
  };
  for (const Row& r : {Row{"d12", 12, 12, 768, 124439808}, Row{"d24", 24, 16, 1024, 354823168},
                       Row{"d36", 36, 20, 1280, 774030080}, Row{"d48", 48, 25, 1600, 1557611200}}) {
    GPT2Config c = GPT2Config::named(r.name);
    EXPECT_EQ(c.n_layer, r.layers) << r.name;
    EXPECT_EQ(c.n_head, r.heads) << r.name;
    EXPECT_EQ(c.n_embd, r.embd) << r.name;
    EXPECT_EQ(c.vocab_size, 50257) << r.name;
    EXPECT_EQ(c.block_size, 1024) << r.name;
    EXPECT_EQ(c.num_parameters(), r.count) << r.name;
  }
  expect_throws_with([] { GPT2Config::named("d13"); }, {"d13", "d12", "d48"});
}

TEST(GPT2, ParameterNamesAreNanoGPTs) {
  auto m = make_model(small_config(), 1);
  std::vector<std::string> want = {"transformer.wte.weight", "transformer.wpe.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    for (const char* s : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                          "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                          "mlp.c_proj.weight", "mlp.c_proj.bias"})
      want.push_back(p + s);
  }
  want.push_back("transformer.ln_f.weight");
  want.push_back("transformer.ln_f.bias");
  std::vector<std::string> got;
  for (const auto& [n, t] : m->named_parameters()) got.push_back(n);
  EXPECT_EQ(got, want);
  std::vector<std::string> state;
  for (const auto& [n, t] : m->state_dict()) state.push_back(n);
  EXPECT_EQ(state, want);  // no buffers, no lm_head entry
  EXPECT_TRUE(m->named_buffers().empty());

  EXPECT_EQ(param(*m, "transformer.h.1.attn.c_attn.weight").shape(), (Shape{96, 32}));
  EXPECT_EQ(param(*m, "transformer.h.0.mlp.c_fc.weight").shape(), (Shape{128, 32}));
  EXPECT_EQ(param(*m, "transformer.h.0.mlp.c_proj.weight").shape(), (Shape{32, 128}));
  EXPECT_EQ(param(*m, "transformer.wpe.weight").shape(), (Shape{16, 32}));
}

TEST(GPT2, PrintsAsNanoGPTsTree) {
  auto m = make_model(small_config(), 1);
  const std::string s = m->str();
  for (const char* part : {"(transformer): ModuleDict", "(wte): Embedding(64, 32)", "(wpe): Embedding(16, 32)",
                           "(h): ModuleList", "(0): Block", "(attn): CausalSelfAttention", "(mlp): MLP",
                           "(gelu): GELU(approximate='tanh')", "(ln_f): LayerNorm"})
    EXPECT_NE(s.find(part), std::string::npos) << part << " not in\n" << s;
  EXPECT_EQ(s.find("lm_head"), std::string::npos);
}

TEST(GPT2, AllocatedCountMatchesFormula) {
  std::vector<GPT2Config> configs = {small_config()};
  GPT2Config odd;
  odd.vocab_size = 50, odd.block_size = 7, odd.n_layer = 3, odd.n_head = 4, odd.n_embd = 16;
  configs.push_back(odd);
  for (const GPT2Config& c : configs) {
    GPT2 m(c);
    EXPECT_EQ(m.num_parameters(), c.num_parameters());
    EXPECT_EQ(m.num_parameters(true), c.num_parameters());
  }
  // Small model by hand: wte 64*32 + wpe 16*32 + 2 blocks * 12,704 + ln_f 64.
  EXPECT_EQ(small_config().num_parameters(), 2048 + 512 + 2 * 12704 + 64);
}

TEST(GPT2, BadConfigIsAnError) {
  GPT2Config c = small_config();
  c.n_head = 5;
  expect_throws_with([&] { GPT2 m(c); }, {"n_embd=32", "n_head=5"});
  c = small_config();
  c.n_layer = 0;
  expect_throws_with([&] { GPT2 m(c); }, {"n_layer=0"});
}

// ---- forward and loss --------------------------------------------------------------------

TEST(GPT2, ForwardShapesAndBlockSizeError) {
  auto m = make_model(small_config(), 2);
  Tensor idx = randint(0, 64, {3, 5});
  Tensor logits = m->forward(idx);
  EXPECT_EQ(logits.shape(), (Shape{3, 5, 64}));
  EXPECT_EQ(logits.dtype(), DType::float32);
  EXPECT_EQ(m->forward(randint(0, 64, {1, 16})).shape(), (Shape{1, 16, 64}));
  expect_throws_with([&] { m->forward(randint(0, 64, {1, 17})); }, {"T=17", "block_size=16"});
  expect_throws_with([&] { m->forward(randint(0, 64, {5})); }, {"(B, T)"});
  expect_throws_with([&] { m->forward(tokens({1, 64}, 1, 2)); }, {"64"});  // out of the vocabulary
}

TEST(GPT2, IsCausal) {
  auto m = make_model(small_config(), 3);
  std::vector<int64_t> a = {5, 9, 1, 33, 7, 2, 60, 11}, b = a;
  b[5] = 40;
  std::vector<double> la = values(m->forward(tokens(a, 1, 8))), lb = values(m->forward(tokens(b, 1, 8)));
  for (int64_t t = 0; t < 8; ++t) {
    double d = 0.0;
    for (int64_t v = 0; v < 64; ++v) d = std::max(d, std::abs(la[t * 64 + v] - lb[t * 64 + v]));
    if (t < 5)
      EXPECT_EQ(d, 0.0) << "position " << t << " sees a later token";
    else
      EXPECT_GT(d, 1e-6) << "position " << t << " ignores token 5";
  }
}

TEST(GPT2, LossIsCrossEntropyOfLogits) {
  auto m = make_model(small_config(), 4);
  Tensor idx = randint(0, 64, {2, 12}), targets = randint(0, 64, {2, 12});
  const double loss = m->loss(idx, targets).item();
  const double ref = cross_entropy(m->forward(idx).reshape({24, 64}), targets.reshape({24})).item();
  EXPECT_NEAR(loss, ref, 1e-6);
  // Near-uniform predictions at init (weights N(0, 0.02)): about ln(V).
  EXPECT_NEAR(loss, std::log(64.0), 0.1);
  // nanoGPT's ignore_index = -1.
  std::vector<int64_t> t = targets.to_vector<int64_t>();
  std::vector<int64_t> partial = t;
  for (size_t i = 12; i < 24; ++i) partial[i] = -1;
  const double half = m->loss(idx, tokens(partial, 2, 12)).item();
  const double ref_half = cross_entropy(m->forward(idx).select(0, 0), targets.select(0, 0)).item();
  EXPECT_NEAR(half, ref_half, 1e-6);
  expect_throws_with([&] { m->loss(idx, randint(0, 64, {2, 11})); }, {"targets", "[2, 11]", "[2, 12]"});
}

// ---- the tied head -----------------------------------------------------------------------

TEST(GPT2, HeadIsWte) {
  auto m = make_model(small_config(), 5);
  Tensor wte = param(*m, "transformer.wte.weight");
  Tensor idx = tokens({1, 2, 3, 4}, 1, 4);  // tokens < 32 only
  // The head is wte: logits = ln_f(x) . wte[v]; changing row 50 (never an input) moves column 50 only.
  Tensor before = m->forward(idx).clone();
  {
    NoGradGuard g;
    wte.select(0, 50).add_(randn({32}));  // not constant: ln_f's output has zero mean
  }
  std::vector<double> b = values(before), a = values(m->forward(idx));
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t v = 0; v < 64; ++v) {
      const double d = std::abs(a[t * 64 + v] - b[t * 64 + v]);
      if (v == 50)
        EXPECT_GT(d, 1e-4);
      else
        EXPECT_EQ(d, 0.0);
    }

  // Gradients of both uses land in wte: rows of non-input tokens (head only) and input rows
  // (embedding + head). An SGD step on wte changes the input embedding and the head.
  m = make_model(small_config(), 5);
  wte = param(*m, "transformer.wte.weight");
  Tensor targets = tokens({2, 3, 4, 40}, 1, 4);
  m->loss(idx, targets).backward();
  Tensor g = wte.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(std::abs(values(g.select(0, 40))[0]) + std::abs(values(g.select(0, 40))[1]), 0.0);  // head only
  EXPECT_GT(std_of(g.select(0, 50)), 0.0);                                                        // head only
  EXPECT_GT(std_of(g.select(0, 1)), 0.0);                                                         // both
  // An input row's gradient sums the embedding and head uses: check it against central
  // differences of the loss (float64), which see both uses.
  m->to(DType::float64);
  m->zero_grad();
  Tensor w64 = param(*m, "transformer.wte.weight");
  m->loss(idx, targets).backward();
  const double analytic = values(w64.grad().select(0, 1))[3];
  const double eps = 1e-6;
  double* p = w64.data<double>() + 1 * 32 + 3;
  const double orig = *p;
  *p = orig + eps;
  const double up = m->loss(idx, targets).item();
  *p = orig - eps;
  const double down = m->loss(idx, targets).item();
  *p = orig;
  EXPECT_NEAR(analytic, (up - down) / (2 * eps), 1e-7 + 1e-4 * std::abs(analytic));
}

// ---- init --------------------------------------------------------------------------------

TEST(GPT2, InitStatisticsAndDeterminism) {
  GPT2Config c;
  c.vocab_size = 256, c.block_size = 64, c.n_layer = 4, c.n_head = 4, c.n_embd = 64;
  auto m = make_model(c, 6);
  const double proj = 0.02 / std::sqrt(8.0);
  for (const auto& [name, t] : m->named_parameters()) {
    SCOPED_TRACE(name);
    const bool ln = name.find("ln_") != std::string::npos;
    if (ln && name.find(".weight") != std::string::npos) {
      for (double v : values(t)) ASSERT_EQ(v, 1.0);
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      for (double v : values(t)) ASSERT_EQ(v, 0.0);
    } else {
      const bool is_proj = name.find("c_proj.weight") != std::string::npos;
      const double want = is_proj ? proj : 0.02;
      EXPECT_NEAR(std_of(t), want, 0.06 * want);
      std::vector<double> v = values(t);
      double mean = 0.0;
      for (double x : v) mean += x;
      mean /= static_cast<double>(v.size());
      EXPECT_LT(std::abs(mean), 5.0 * want / std::sqrt(static_cast<double>(v.size())));
    }
  }
  // Same seed, same weights; another seed, other weights.
  auto again = make_model(c, 6), other = make_model(c, 7);
  auto pa = m->named_parameters(), pb = again->named_parameters(), pc = other->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(max_abs_diff(pa[i].second, pb[i].second), 0.0) << pa[i].first;
  EXPECT_GT(max_abs_diff(pa[0].second, pc[0].second), 0.0);
}

// ---- generate ----------------------------------------------------------------------------

// Greedy decoding by hand: forward, argmax of the last position, append (cropping to block_size).
Tensor greedy_by_hand(GPT2& m, Tensor idx, int64_t steps) {
  NoGradGuard g;
  const int64_t bs = m.config().block_size;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = idx.size(1);
    Tensor cond = t > bs ? idx.narrow(1, t - bs, bs) : idx;
    Tensor next = argmax(m.forward(cond).select(1, cond.size(1) - 1), -1, /*keepdim=*/true);  // (B, 1)
    idx = cat({idx, next}, 1);
  }
  return idx;
}

TEST(GPT2, GenerateGreedyIsArgmaxChaining) {
  auto m = make_model(small_config(), 8);
  Tensor idx = tokens({1, 2, 3, 10, 20, 30}, 2, 3);
  Tensor out = m->generate(idx, 20, 0.0);  // 23 > block_size: the context is cropped
  EXPECT_EQ(out.shape(), (Shape{2, 23}));
  EXPECT_EQ(out.dtype(), DType::int64);
  EXPECT_FALSE(out.requires_grad());
  EXPECT_TRUE(GradMode::is_enabled());
  std::vector<int64_t> o = out.to_vector<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(o.begin(), o.begin() + 3), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(std::vector<int64_t>(o.begin() + 23, o.begin() + 26), (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(o, greedy_by_hand(*m, idx, 20).to_vector<int64_t>());
  EXPECT_EQ(o, m->generate(idx, 20, 0.0).to_vector<int64_t>());
  // top_k = 1 keeps only the argmax: sampling at any temperature is greedy.
  Generator gen(123);
  EXPECT_EQ(o, m->generate(idx, 20, 1.0, 1, &gen).to_vector<int64_t>());
  EXPECT_EQ(o, m->generate(idx, 20, 5.0, 1).to_vector<int64_t>());
  EXPECT_EQ(m->generate(idx, 0).to_vector<int64_t>(), idx.to_vector<int64_t>());
}

TEST(GPT2, GenerateSamplingIsSeededAndRespectsTopK) {
  auto m = make_model(small_config(), 9);
  Tensor idx = tokens({4, 5, 6, 7}, 2, 2);
  Generator g1(77), g2(77), g3(78);
  Tensor a = m->generate(idx, 10, 1.0, 0, &g1), b = m->generate(idx, 10, 1.0, 0, &g2);
  Tensor c = m->generate(idx, 10, 1.0, 0, &g3);
  EXPECT_EQ(a.to_vector<int64_t>(), b.to_vector<int64_t>());
  EXPECT_NE(a.to_vector<int64_t>(), c.to_vector<int64_t>());
  // The default generator follows manual_seed.
  manual_seed(5);
  Tensor d1 = m->generate(idx, 6);
  manual_seed(5);
  EXPECT_EQ(d1.to_vector<int64_t>(), m->generate(idx, 6).to_vector<int64_t>());

  // top_k = 3: every sampled token is among the 3 largest logits of its context.
  Generator g4(1);
  Tensor s = m->generate(idx, 12, 2.0, 3, &g4);
  std::vector<int64_t> sv = s.to_vector<int64_t>();
  for (int64_t t = 2; t < 14; ++t) {
    std::vector<double> logits = values(m->forward(s.narrow(1, 0, t)).select(1, t - 1));  // (2, 64)
    for (int64_t r = 0; r < 2; ++r) {
      std::vector<double> row(logits.begin() + r * 64, logits.begin() + (r + 1) * 64);
      const double chosen = row[static_cast<size_t>(sv[r * 14 + t])];
      std::sort(row.begin(), row.end(), std::greater<double>());
      EXPECT_GE(chosen, row[2]) << "row " << r << " step " << t;
    }
  }
  expect_throws_with([&] { m->generate(idx, 1, -1.0); }, {"temperature", "-1"});
  expect_throws_with([&] { m->generate(idx, 1, 1.0, -2); }, {"top_k", "-2"});
  expect_throws_with([&] { m->generate(idx, -1); }, {"max_new_tokens", "-1"});
}

TEST(GPT2, GenerateSamplesFromSoftmaxOverTemperature) {
  auto m = make_model(small_config(), 10);
  const int64_t n = 4000;
  Tensor idx = zeros({n, 2}, {.dtype = DType::int64});
  Tensor row = m->forward(idx.narrow(0, 0, 1)).select(1, 1);  // (1, 64)
  std::vector<double> logits = values(row);
  // Scales the near-uniform init logits to a spread of 1.5: a few likely tokens, many unlikely.
  const double temperature = std_of(row) / 1.5;
  std::vector<double> p(64);
  const double mx = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;
  for (int v = 0; v < 64; ++v) total += p[v] = std::exp((logits[v] - mx) / temperature);
  for (double& x : p) x /= total;
  Generator gen(2024);
  std::vector<int64_t> out = m->generate(idx, 1, temperature, 0, &gen).to_vector<int64_t>();
  std::vector<double> freq(64, 0.0);
  for (int64_t r = 0; r < n; ++r) freq[static_cast<size_t>(out[r * 3 + 2])] += 1.0 / n;
  int checked = 0;
  for (int v = 0; v < 64; ++v) {
    const double sigma = std::sqrt(p[v] * (1 - p[v]) / n);
    EXPECT_NEAR(freq[v], p[v], 4.5 * sigma + 1e-3) << "token " << v;
    if (p[v] > 0.05) ++checked;
  }
  EXPECT_GE(checked, 2) << "the test needs several likely tokens";
}

// ---- Hugging Face safetensors ------------------------------------------------------------

class GPT2Hf : public zae::test::TempDirTest {};

TEST_F(GPT2Hf, SaveLoadRoundTrip) {
  auto a = make_model(small_config(), 11), b = make_model(small_config(), 12);
  const std::string file = path("gpt2.safetensors");
  save_hf_safetensors(*a, file);
  io::SafetensorsHeader h = io::read_safetensors_header(file);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  std::map<std::string, Shape> shapes;
  for (const auto& e : h.entries) shapes[e.name] = e.shape;
  EXPECT_EQ(shapes.size(), a->state_dict().size());
  EXPECT_EQ(shapes.at("transformer.h.0.attn.c_attn.weight"), (Shape{32, 96}));  // Conv1D (in, out)
  EXPECT_EQ(shapes.at("transformer.h.1.mlp.c_fc.weight"), (Shape{32, 128}));
  EXPECT_EQ(shapes.at("transformer.h.1.mlp.c_proj.weight"), (Shape{128, 32}));
  EXPECT_EQ(shapes.at("transformer.wte.weight"), (Shape{64, 32}));
  EXPECT_EQ(shapes.count("lm_head.weight"), 0u);

  Tensor idx = randint(0, 64, {2, 9});
  EXPECT_GT(max_abs_diff(a->forward(idx), b->forward(idx)), 1e-4);
  load_hf_safetensors(*b, file);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(max_abs_diff(pa[i].second, pb[i].second), 0.0) << pa[i].first;
  EXPECT_EQ(max_abs_diff(a->forward(idx), b->forward(idx)), 0.0);
}

// A file laid out as the hub's "gpt2": no prefix, Conv1D weights (in, out), the attention
// mask buffers, and an lm_head equal to wte.
std::vector<std::pair<std::string, Tensor>> hub_style(const GPT2& m) {
  NoGradGuard g;
  std::vector<std::pair<std::string, Tensor>> out;
  const int64_t bs = m.config().block_size;
  for (const auto& [name, t] : m.state_dict()) {
    std::string bare = name.substr(std::string("transformer.").size());
    const bool conv = bare.find("c_attn.weight") != std::string::npos ||
                      bare.find("c_proj.weight") != std::string::npos || bare.find("c_fc.weight") != std::string::npos;
    out.emplace_back(bare, conv ? t.t().contiguous() : t.clone());
    if (bare.size() > 10 && bare.compare(bare.size() - 11, 11, "ln_1.weight") == 0) {
      const std::string layer = bare.substr(0, bare.size() - 11);  // "h.<i>."
      out.emplace_back(layer + "attn.bias", ones({1, 1, bs, bs}));
      out.emplace_back(layer + "attn.masked_bias", scalar_tensor(-1e4));
    }
  }
  out.emplace_back("lm_head.weight", m.state_dict()[0].second.clone());
  return out;
}

TEST_F(GPT2Hf, LoadsHubStyleFile) {
  auto a = make_model(small_config(), 13), b = make_model(small_config(), 14);
  const std::string file = path("hub.safetensors");
  io::save_safetensors(file, hub_style(*a));
  load_hf_safetensors(*b, file);
  Tensor idx = randint(0, 64, {2, 16});
  EXPECT_EQ(max_abs_diff(a->forward(idx), b->forward(idx)), 0.0);
  // A float64 model loads the float32 file, converted.
  auto c = make_model(small_config(), 15);
  c->to(DType::float64);
  load_hf_safetensors(*c, file);
  EXPECT_EQ(param(*c, "transformer.h.1.attn.c_attn.weight").dtype(), DType::float64);
  EXPECT_LT(max_abs_diff(a->forward(idx), c->forward(idx)), 1e-5);
}

TEST_F(GPT2Hf, ErrorsNameTheTensorAndLeaveTheModelUnchanged) {
  auto a = make_model(small_config(), 16), b = make_model(small_config(), 17);
  Tensor idx = randint(0, 64, {1, 8});
  Tensor before = b->forward(idx).clone();
  auto write_and_load = [&](std::vector<std::pair<std::string, Tensor>> ts) {
    const std::string file = path("bad.safetensors");
    io::save_safetensors(file, ts);
    load_hf_safetensors(*b, file);
  };
  auto erase = [](std::vector<std::pair<std::string, Tensor>> ts, const std::string& name) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const auto& p) { return p.first == name; }), ts.end());
    return ts;
  };
  auto replace = [](std::vector<std::pair<std::string, Tensor>> ts, const std::string& name, Tensor t) {
    for (auto& p : ts)
      if (p.first == name) p.second = t;
    return ts;
  };
  auto base = hub_style(*a);
  expect_throws_with([&] { write_and_load(erase(base, "h.1.mlp.c_fc.bias")); }, {"missing", "h.1.mlp.c_fc.bias"});
  // A Conv1D weight left in Linear layout (out, in).
  expect_throws_with(
      [&] { write_and_load(replace(base, "h.0.attn.c_attn.weight", zeros({96, 32}))); },
      {"h.0.attn.c_attn.weight", "[96, 32]", "[32, 96]", "Conv1D"});
  expect_throws_with([&] { write_and_load(replace(base, "wpe.weight", zeros({8, 32}))); },
                     {"wpe.weight", "[8, 32]", "[16, 32]"});
  auto extra = base;
  extra.emplace_back("h.0.attn.rotary", zeros({4}));
  extra.emplace_back("h.5.ln_1.weight", zeros({32}));
  expect_throws_with([&] { write_and_load(extra); }, {"unexpected", "h.0.attn.rotary", "h.5.ln_1.weight"});
  expect_throws_with([&] { write_and_load(replace(base, "lm_head.weight", zeros({64, 32}))); },
                     {"lm_head.weight", "tied"});
  auto twice = base;
  twice.emplace_back("transformer.wte.weight", zeros({64, 32}));
  expect_throws_with([&] { write_and_load(twice); }, {"wte.weight", "transformer.wte.weight"});
  expect_throws_with([&] { load_hf_safetensors(*b, path("absent.safetensors")); }, {"absent.safetensors"});
  // A larger model's file names the config it does not match.
  GPT2Config big = small_config();
  big.n_layer = 3;
  auto c = make_model(big, 18);
  expect_throws_with([&] { write_and_load(hub_style(*c)); }, {"unexpected", "h.2.ln_1.weight", "n_layer=2"});
  EXPECT_EQ(max_abs_diff(before, b->forward(idx)), 0.0) << "a failed load changed the model";
}

// ---- float64 gradient check ----------------------------------------------------------------

TEST(GPT2, Float64Gradcheck) {
  GPT2Config c;
  c.vocab_size = 11, c.block_size = 6, c.n_layer = 2, c.n_head = 2, c.n_embd = 8;
  auto m = make_model(c, 19);
  m->to(DType::float64);
  {
    // LayerNorm parameters away from 1 / 0, so their gradients are exercised generically.
    NoGradGuard g;
    for (const auto& [name, t] : m->named_parameters())
      if (name.find("ln_") != std::string::npos || name.find(".bias") != std::string::npos)
        Tensor(t).add_(zae::test::random_tensor(t.shape(), DType::float64, 3).mul_(0.1));
  }
  std::vector<Tensor> params;
  std::vector<std::string> labels;
  for (const auto& [name, t] : m->named_parameters()) {
    params.push_back(t);
    labels.push_back(name);
  }
  Tensor idx = tokens({1, 4, 4, 9, 0, 10, 3, 3, 7, 2}, 2, 5), targets = tokens({4, 4, 9, 0, 10, 3, 7, 2, 2, 1}, 2, 5);
  zae::test::GradcheckOptions opts;
  opts.input_labels = labels;
  auto loss = [&](const std::vector<Tensor>&) { return m->loss(idx, targets); };
  zae::test::GradcheckResult r = zae::test::gradcheck(loss, params, opts);
  EXPECT_TRUE(r.ok()) << r.report << r.error;
  auto logits = [&](const std::vector<Tensor>&) { return m->forward(idx); };
  r = zae::test::gradcheck(logits, params, opts);
  EXPECT_TRUE(r.ok()) << r.report << r.error;
}

}  // namespace
