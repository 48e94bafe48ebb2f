// nn layers and containers: PyTorch conformance (tests/fixtures/gen_layers.py:
// outputs, input and parameter gradients, printed form, loaded by state-dict
// names; float32 forward at 1e-5 relative, float64 gradients at 1e-10), default
// initialisation, Dropout's train/eval behaviour, container semantics,
// CausalSelfAttention's causality and float64 gradcheck, errors, and a small
// MLP that overfits a fixed batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/zae.h"
#include "nn/nn.h"
#include "tests/support/fixture.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

#if __has_include("nn/optim/adam.h")
#include "nn/optim/adam.h"
#define ZAE_TEST_HAVE_ADAM 1
#endif

namespace {

using namespace zae;
using namespace zae::nn;
using zae::test::all_close;
using zae::test::expect_throws_with;
using zae::test::Fixture;
using zae::test::load_fixture;

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// The parameters of `name` in fixture fx ("<name>.p.<key>"), as a state dict.
StateDict case_state(const Fixture& fx, const std::string& name) {
  StateDict sd;
  const std::string prefix = name + ".p.";
  for (const auto& [k, t] : fx.tensors)
    if (k.rfind(prefix, 0) == 0) sd.emplace_back(k.substr(prefix.size()), t);
  return sd;
}

struct Tolerance {
  double y_rtol, y_atol, g_rtol, g_atol;
};

// Runs m on the case's input in `dtype`, compares output and every gradient with PyTorch.
void check_case_in(Layer& m, const Fixture& fx, const std::string& name, DType dtype, Tolerance tol) {
  SCOPED_TRACE(name + " in " + std::string(dtype_name(dtype)));
  m.to(dtype);
  m.zero_grad();
  // Strict: the module's state-dict keys are exactly PyTorch's.
  m.load_state_dict(case_state(fx, name));
  Tensor x = fx.at(name + ".x");
  const bool float_input = is_floating(x.dtype());
  if (float_input) x = x.to(dtype).clone().requires_grad_(true);  // never mark the shared fixture
  Tensor y = m.forward(x);
  const Tensor& y_ref = fx.at(name + ".y");
  ASSERT_EQ(y.shape(), y_ref.shape());
  EXPECT_EQ(y.dtype(), dtype);
  EXPECT_TRUE(all_close(y, values(y_ref), tol.y_rtol, tol.y_atol)) << "output";
  y.backward(fx.at(name + ".gy").to(dtype));
  if (float_input) {
    EXPECT_TRUE(all_close(x.grad(), values(fx.at(name + ".gx")), tol.g_rtol, tol.g_atol)) << "d_x";
  }
  int n_grads = 0;
  for (const auto& [key, p] : m.named_parameters()) {
    const std::string gkey = name + ".g." + key;
    ASSERT_TRUE(fx.has(gkey)) << gkey;
    ASSERT_TRUE(p.grad().defined()) << key;
    EXPECT_TRUE(all_close(p.grad(), values(fx.at(gkey)), tol.g_rtol, tol.g_atol)) << "d_" << key;
    ++n_grads;
  }
  EXPECT_EQ(n_grads, static_cast<int>(case_state(fx, name).size()));
}

// float32 (forward 1e-5 relative) and float64 (gradients 1e-10 relative), plus the printed form.
void check_case(Layer& m, const Fixture& fx, const std::string& name) {
  check_case_in(m, fx, name, DType::float32, {1e-5, 1e-6, 1e-4, 1e-5});
  check_case_in(m, fx, name, DType::float64, {1e-12, 1e-13, 1e-10, 1e-12});
  auto it = fx.metadata.find(name + ".repr");
  if (it != fx.metadata.end()) {
    EXPECT_EQ(m.str(), it->second);
  }
}

const Fixture& layers_fixture() {
  static const Fixture fx = load_fixture("layers");
  return fx;
}
const Fixture& attention_fixture() {
  static const Fixture fx = load_fixture("layers_attention");
  return fx;
}

// ------------------------------------------------------------------ conformance

TEST(LayersConformance, Linear) {
  const Fixture& fx = layers_fixture();
  Linear with_bias({.in_features = 5, .out_features = 3});
  check_case(with_bias, fx, "linear_bias_2d");
  check_case(with_bias, fx, "linear_bias_3d");
  Linear no_bias({.in_features = 5, .out_features = 3, .bias = false});
  check_case(no_bias, fx, "linear_nobias_2d");
  check_case(no_bias, fx, "linear_nobias_3d");
}

TEST(LayersConformance, Embedding) {
  const Fixture& fx = layers_fixture();
  Embedding pad({.num_embeddings = 10, .embedding_dim = 4, .padding_idx = 2});
  check_case(pad, fx, "embedding_pad");
  Embedding negpad({.num_embeddings = 10, .embedding_dim = 4, .padding_idx = -1});
  EXPECT_EQ(*negpad.options().padding_idx, 9);
  check_case(negpad, fx, "embedding_negpad");
  Embedding plain(10, 4);
  check_case(plain, fx, "embedding_plain");
  // Indices may also be int32.
  Tensor y = plain.forward(fx.at("embedding_plain.x").to(DType::int32));
  EXPECT_TRUE(all_close(y, values(fx.at("embedding_plain.y")), 1e-12, 0));
}

TEST(LayersConformance, Activations) {
  const Fixture& fx = layers_fixture();
  ReLU relu;
  check_case(relu, fx, "relu");
  GELU gelu;
  check_case(gelu, fx, "gelu");
  GELU gelu_tanh({.approximate = GeluApprox::tanh});
  check_case(gelu_tanh, fx, "gelu_tanh");
  SiLU silu;
  check_case(silu, fx, "silu");
  Tanh tanh_layer;
  check_case(tanh_layer, fx, "tanh");
  Sigmoid sigmoid_layer;
  check_case(sigmoid_layer, fx, "sigmoid");
  Identity identity;
  check_case(identity, fx, "identity");
}

TEST(LayersConformance, SoftmaxOverEveryDim) {
  const Fixture& fx = layers_fixture();
  for (int64_t d : {0, 1, 2, -1}) {
    Softmax sm({.dim = d});
    check_case(sm, fx, d < 0 ? "softmax_dimm1" : "softmax_dim" + std::to_string(d));
  }
}

TEST(LayersConformance, Flatten) {
  const Fixture& fx = layers_fixture();
  Flatten def;
  check_case(def, fx, "flatten_default");
  Flatten f02({.start_dim = 0, .end_dim = 2});
  check_case(f02, fx, "flatten_0_2");
  Flatten f12(1, 2);
  check_case(f12, fx, "flatten_1_2");
}

TEST(LayersConformance, SequentialMlp) {
  Sequential mlp({std::make_shared<Linear>(6, 8), std::make_shared<ReLU>(), std::make_shared<Linear>(8, 8),
                  std::make_shared<GELU>(), std::make_shared<Linear>(8, 3)});
  check_case(mlp, layers_fixture(), "mlp");
}

TEST(LayersConformance, CausalSelfAttention) {
  const Fixture& fx = attention_fixture();
  struct Case {
    const char* name;
    int64_t c, nh;
    bool bias;
  };
  for (const Case& c : {Case{"attn_h2", 8, 2, true}, Case{"attn_h1", 8, 1, true}, Case{"attn_h4_nobias", 8, 4, false},
                        Case{"attn_t1", 6, 3, true}}) {
    CausalSelfAttention attn({.embed_dim = c.c, .num_heads = c.nh, .bias = c.bias});
    check_case(attn, fx, c.name);
  }
}

TEST(LayersConformance, PrintedTreeOfANestedSequential) {
  auto inner = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
      std::make_shared<Linear>(8, 8, false), std::make_shared<Dropout>(0.1),
      std::make_shared<GELU>(GELU::Options{.approximate = GeluApprox::tanh})});
  Sequential outer({std::make_shared<Linear>(4, 8), std::make_shared<ReLU>(), inner, std::make_shared<Flatten>(),
                    std::make_shared<Embedding>(10, 3, 0), std::make_shared<Softmax>(1), std::make_shared<Identity>(),
                    std::make_shared<SiLU>(), std::make_shared<Tanh>(), std::make_shared<Sigmoid>(),
                    std::make_shared<Dropout>()});
  EXPECT_EQ(outer.str(), layers_fixture().metadata.at("nested.repr"));
  std::ostringstream os;
  os << *inner;
  EXPECT_EQ(os.str(), inner->str());
}

// ------------------------------------------------------------------ default init

TEST(LayersInit, LinearDrawsPyTorchBoundsFromTheDefaultGenerator) {
  manual_seed(123);
  Linear a(256, 128);
  manual_seed(123);
  Linear b(256, 128);
  EXPECT_EQ(values(a.weight()), values(b.weight()));  // seeded: reproducible
  EXPECT_EQ(values(a.bias()), values(b.bias()));
  const double bound = 1.0 / std::sqrt(256.0);
  for (const Tensor& t : {a.weight(), a.bias()}) {
    std::vector<double> v = values(t);
    double mn = 1e9, mx = -1e9, sum = 0, sq = 0;
    for (double x : v) {
      mn = std::min(mn, x);
      mx = std::max(mx, x);
      sum += x;
      sq += x * x;
    }
    const double n = static_cast<double>(v.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    EXPECT_GE(mn, -bound);
    EXPECT_LE(mx, bound);
    EXPECT_GT(mx, 0.9 * bound);  // fills the range
    EXPECT_LT(mn, -0.9 * bound);
    EXPECT_NEAR(mean, 0.0, 5.0 * bound / std::sqrt(3.0 * n));
    EXPECT_NEAR(sd, bound / std::sqrt(3.0), 0.1 * bound);
  }
  EXPECT_EQ(a.weight().shape(), (Shape{128, 256}));
  EXPECT_EQ(a.bias().shape(), (Shape{128}));
  EXPECT_TRUE(a.weight().requires_grad());
  EXPECT_EQ(a.weight().dtype(), DType::float32);
  Linear c(256, 128);  // the generator moved on
  EXPECT_NE(values(a.weight()), values(c.weight()));
  Linear nb({.in_features = 3, .out_features = 2, .bias = false});
  EXPECT_FALSE(nb.bias().defined());
  EXPECT_EQ(nb.named_parameters().size(), 1u);
  EXPECT_EQ(nb.num_parameters(), 6);
}

TEST(LayersInit, EmbeddingIsStandardNormalWithThePaddingRowZeroed) {
  manual_seed(7);
  Embedding e({.num_embeddings = 400, .embedding_dim = 50, .padding_idx = 3});
  std::vector<double> v = values(e.weight());
  double sum = 0, sq = 0;
  for (double x : v) {
    sum += x;
    sq += x * x;
  }
  const double n = static_cast<double>(v.size()), mean = sum / n;
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(std::sqrt(sq / n - mean * mean), 1.0, 0.03);
  for (int64_t j = 0; j < 50; ++j) EXPECT_EQ(v[static_cast<size_t>(3 * 50 + j)], 0.0);
  EXPECT_NE(v[0], 0.0);
  // The padding row gets no gradient.
  Tensor y = e.forward(tensor(std::vector<int64_t>{3, 1, 3}, {3}));
  y.sum().backward();
  std::vector<double> g = values(e.weight().grad());
  for (int64_t j = 0; j < 50; ++j) {
    EXPECT_EQ(g[static_cast<size_t>(3 * 50 + j)], 0.0);
    EXPECT_EQ(g[static_cast<size_t>(1 * 50 + j)], 1.0);
  }
}

// ------------------------------------------------------------------ dropout

TEST(DropoutLayer, TrainScalesKeptElementsAndEvalIsIdentity) {
  Dropout d({.p = 0.3});
  EXPECT_EQ(d.str(), "Dropout(p=0.3, inplace=False)");
  Tensor x = ones({200, 100});
  Tensor y = d.forward(x);
  std::vector<double> v = values(y);
  int64_t zeros_seen = 0;
  for (double e : v) {
    if (e == 0.0) {
      ++zeros_seen;
    } else {
      EXPECT_NEAR(e, 1.0 / 0.7, 1e-6);
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / static_cast<double>(v.size()), 0.3, 0.02);
  d.eval();
  EXPECT_TRUE(d.forward(x).is_same(x));
  d.train();
  Dropout none({.p = 0.0});
  EXPECT_TRUE(none.forward(x).is_same(x));
  Dropout all(1.0);
  EXPECT_TRUE(all_close(all.forward(x), std::vector<double>(20000, 0.0)));
  EXPECT_EQ(Dropout().options().p, 0.5);
  // p is printed as Python's repr() of a float.
  for (auto [p, text] : std::vector<std::pair<double, std::string>>{{0.0, "0.0"},
                                                                    {1.0, "1.0"},
                                                                    {0.1, "0.1"},
                                                                    {1.0 / 3.0, "0.3333333333333333"},
                                                                    {0.0001, "0.0001"},
                                                                    {1e-05, "1e-05"},
                                                                    {1.5e-7, "1.5e-07"},
                                                                    {0.123456789, "0.123456789"}})
    EXPECT_EQ(Dropout(p).extra_repr(), "p=" + text + ", inplace=False");
  expect_throws_with([] { Dropout(1.5); }, {"Dropout", "[0, 1]", "1.5"});
  expect_throws_with([] { Dropout(-0.1); }, {"Dropout", "-0.1"});
}

TEST(DropoutLayer, GradientFollowsTheMask) {
  Dropout d(0.5);
  Tensor x = randn({50, 40}).requires_grad_(true);
  Tensor y = d.forward(x);
  y.sum().backward();
  std::vector<double> yv = values(y), gv = values(x.grad());
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_EQ(gv[i], yv[i] == 0.0 ? 0.0 : 2.0);
}

// ------------------------------------------------------------------ containers

TEST(SequentialContainer, ChainsIndexesAndNamesChildren) {
  auto l1 = std::make_shared<Linear>(4, 6);
  auto act = std::make_shared<Tanh>();
  Sequential seq({l1, act});
  auto l2 = seq.push_back(std::make_shared<Linear>(6, 2));
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(seq[0], l1);
  EXPECT_EQ(seq[-1], l2);
  EXPECT_EQ(seq.at<Linear>(2), l2);
  expect_throws_with([&] { seq.at<Linear>(1); }, {"Sequential", "layer 1", "Tanh"});
  expect_throws_with([&] { seq[3]; }, {"Sequential", "index 3", "3 elements"});
  expect_throws_with([&] { seq[-4]; }, {"Sequential", "index -4"});
  std::vector<std::string> names;
  for (const auto& [n, m] : seq.named_children()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0", "1", "2"}));
  std::vector<std::string> keys;
  for (const auto& [n, t] : seq.named_parameters()) keys.push_back(n);
  EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  Tensor x = randn({3, 4});
  Tensor y = seq.forward(x);
  Tensor ref = l2->forward(act->forward(l1->forward(x)));
  EXPECT_TRUE(all_close(y, values(ref), 0, 0));
  size_t count = 0;
  for (const auto& layer : seq) count += layer != nullptr;
  EXPECT_EQ(count, 3u);
  // Empty: the identity. Named entries keep their name.
  Sequential empty;
  EXPECT_TRUE(empty.forward(x).is_same(x));
  EXPECT_EQ(empty.str(), "Sequential()");
  Sequential named;
  named.push_back("fc", std::make_shared<Linear>(4, 2));
  named.push_back(std::make_shared<ReLU>());
  EXPECT_EQ(named.named_parameters()[0].first, "fc.weight");
  EXPECT_EQ(named.named_children()[1].first, "1");
  EXPECT_EQ(named.str(), "Sequential(\n  (fc): Linear(in_features=4, out_features=2, bias=True)\n  (1): ReLU()\n)");
  expect_throws_with([&] { named.push_back("fc", std::make_shared<ReLU>()); }, {"'fc'", "already registered"});
  expect_throws_with([&] { named.push_back(std::shared_ptr<Layer>()); }, {"Sequential", "null"});
}

TEST(ModuleListContainer, HoldsAnyModuleWithIndexNames) {
  ModuleList list({std::make_shared<Linear>(2, 3), std::make_shared<Embedding>(5, 2)});
  auto seq = list.push_back(std::make_shared<Sequential>());
  list.extend({std::make_shared<Linear>(3, 3, false)});
  EXPECT_EQ(list.size(), 4u);
  EXPECT_EQ(list[2], seq);
  EXPECT_EQ(list.at<Embedding>(1)->options().num_embeddings, 5);
  EXPECT_EQ(list[-1]->type_name(), "Linear");
  expect_throws_with([&] { list.at<Linear>(1); }, {"ModuleList", "module 1", "Embedding"});
  expect_throws_with([&] { list[4]; }, {"ModuleList", "index 4"});
  std::vector<std::string> keys;
  for (const auto& [n, t] : list.named_parameters()) keys.push_back(n);
  EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "3.weight"}));
  std::vector<std::string> types;
  for (const auto& m : list) types.push_back(m->type_name());
  EXPECT_EQ(types, (std::vector<std::string>{"Linear", "Embedding", "Sequential", "Linear"}));
  EXPECT_EQ(list.str(),
            "ModuleList(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): Embedding(5, 2)\n"
            "  (2): Sequential()\n  (3): Linear(in_features=3, out_features=3, bias=False)\n)");
}

TEST(ModuleDictContainer, OrderedKeysReplaceInPlaceAndClearMissingKeyErrors) {
  ModuleDict dict({{"encoder", std::make_shared<Linear>(4, 3)}, {"act", std::make_shared<ReLU>()}});
  dict.insert("decoder", std::make_shared<Linear>(3, 4));
  EXPECT_EQ(dict.keys(), (std::vector<std::string>{"encoder", "act", "decoder"}));
  EXPECT_TRUE(dict.contains("act"));
  EXPECT_FALSE(dict.contains("head"));
  auto gelu = dict.insert("act", std::make_shared<GELU>());  // replaces, keeps the position
  EXPECT_EQ(dict.keys(), (std::vector<std::string>{"encoder", "act", "decoder"}));
  EXPECT_EQ(dict["act"], gelu);
  EXPECT_EQ(dict.child("act"), gelu);
  EXPECT_EQ(dict.at<Linear>("decoder")->options().out_features, 4);
  expect_throws_with([&] { dict["head"]; }, {"ModuleDict", "'head'", "'encoder', 'act', 'decoder'"});
  expect_throws_with([&] { dict.at<Linear>("act"); }, {"ModuleDict", "'act'", "GELU"});
  expect_throws_with([&] { dict.insert("a.b", std::make_shared<ReLU>()); }, {"'a.b'", "'.'"});
  std::vector<std::string> keys;
  for (const auto& [n, t] : dict.named_parameters()) keys.push_back(n);
  EXPECT_EQ(keys, (std::vector<std::string>{"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}));
  std::vector<std::string> order;
  for (const auto& [k, m] : dict) order.push_back(k + ":" + m->type_name());
  EXPECT_EQ(order, (std::vector<std::string>{"encoder:Linear", "act:GELU", "decoder:Linear"}));
}

// ------------------------------------------------------------------ attention

TEST(CausalSelfAttentionLayer, LaterTokensDoNotChangeEarlierOutputs) {
  manual_seed(5);
  CausalSelfAttention attn({.embed_dim = 12, .num_heads = 3});
  Tensor x = randn({2, 6, 12});
  Tensor y = attn.forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 6, 12}));
  // Change the last two positions: outputs at positions 0..3 must not move.
  Tensor x2 = x.clone();
  {
    NoGradGuard no_grad;
    x2.narrow(1, 4, 2).copy_(randn({2, 2, 12}));
  }
  Tensor y2 = attn.forward(x2);
  EXPECT_TRUE(all_close(y2.narrow(1, 0, 4), values(y.narrow(1, 0, 4)), 0, 0));
  EXPECT_FALSE(all_close(y2.narrow(1, 4, 2), values(y.narrow(1, 4, 2)), 1e-3, 0));
  // Position 0 attends only to itself: its output is c_proj(v_0).
  Tensor qkv = attn.c_attn()->forward(x.narrow(1, 0, 1));  // (2, 1, 36)
  Tensor v0 = qkv.narrow(2, 24, 12);
  EXPECT_TRUE(all_close(attn.c_proj()->forward(v0), values(y.narrow(1, 0, 1)), 1e-5, 1e-6));
}

TEST(CausalSelfAttentionLayer, NamesPrintAndDropoutModes) {
  CausalSelfAttention attn({.embed_dim = 8, .num_heads = 2, .dropout = 0.25});
  std::vector<std::string> keys;
  for (const auto& [n, t] : attn.state_dict()) keys.push_back(n);
  EXPECT_EQ(keys, (std::vector<std::string>{"c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"}));
  EXPECT_EQ(attn.str(),
            "CausalSelfAttention(\n  embed_dim=8, num_heads=2\n"
            "  (c_attn): Linear(in_features=8, out_features=24, bias=True)\n"
            "  (c_proj): Linear(in_features=8, out_features=8, bias=True)\n"
            "  (attn_dropout): Dropout(p=0.25, inplace=False)\n"
            "  (resid_dropout): Dropout(p=0.25, inplace=False)\n)");
  EXPECT_EQ(attn.num_parameters(), 8 * 24 + 24 + 8 * 8 + 8);
  Tensor x = randn({2, 5, 8});
  // Training: dropout makes two calls differ; eval: deterministic and equal to dropout = 0.
  EXPECT_FALSE(all_close(attn.forward(x), values(attn.forward(x)), 1e-6, 0));
  attn.eval();
  CausalSelfAttention plain({.embed_dim = 8, .num_heads = 2});
  plain.load_state_dict(attn.state_dict());
  EXPECT_TRUE(all_close(attn.forward(x), values(plain.forward(x)), 0, 0));
}

TEST(CausalSelfAttentionLayer, Float64GradcheckOfInputAndParameters) {
  manual_seed(11);
  CausalSelfAttention attn({.embed_dim = 6, .num_heads = 2});
  attn.to(DType::float64);
  std::vector<Tensor> inputs = {Tensor()};
  for (const Tensor& p : attn.parameters()) inputs.push_back(p);  // perturbed in place: the module sees it
  auto f = [&](const std::vector<Tensor>& in) { return attn.forward(in[0]); };
  for (test::Variant v : {test::Variant::contiguous, test::Variant::transposed, test::Variant::sliced}) {
    test::InputSpec spec;
    spec.shape = {2, 4, 6};
    spec.variant = v;
    inputs[0] = test::make_input(spec, 1);
    test::GradcheckResult r = test::gradcheck(f, inputs);
    EXPECT_TRUE(r.ok()) << test::variant_name(v) << ": " << r.report << " " << r.error;
  }
}

TEST(CausalSelfAttentionLayer, Errors) {
  expect_throws_with([] { CausalSelfAttention({.embed_dim = 10, .num_heads = 3}); },
                     {"CausalSelfAttention", "embed_dim=10", "not divisible", "num_heads=3"});
  expect_throws_with([] { CausalSelfAttention({.embed_dim = 0, .num_heads = 1}); }, {"CausalSelfAttention", "> 0"});
  expect_throws_with([] { CausalSelfAttention({.embed_dim = 4, .num_heads = 2, .dropout = 2.0}); },
                     {"CausalSelfAttention", "dropout", "2"});
  CausalSelfAttention attn({.embed_dim = 8, .num_heads = 2});
  expect_throws_with([&] { attn.forward(randn({2, 5, 6})); }, {"CausalSelfAttention", "(B, T, C)", "8", "[2, 5, 6]"});
  expect_throws_with([&] { attn.forward(randn({5, 8})); }, {"CausalSelfAttention", "[5, 8]"});
}

// ------------------------------------------------------------------ errors

TEST(LayerErrors, NameTheLayerAndTheShapes) {
  Linear lin(5, 3);
  expect_throws_with([&] { lin.forward(randn({4, 6})); }, {"Linear", "in_features=5", "[4, 6]"});
  expect_throws_with([&] { lin.forward(Tensor()); }, {"Linear", "undefined"});
  expect_throws_with([] { Linear(-1, 3); }, {"Linear", "-1"});
  expect_throws_with([] { Embedding(10, 4, 10); }, {"Embedding", "padding_idx 10", "num_embeddings=10"});
  expect_throws_with([] { Embedding(10, 4, -11); }, {"Embedding", "padding_idx -11"});
  Embedding emb(10, 4);
  expect_throws_with([&] { emb.forward(tensor(std::vector<int64_t>{3, 10}, {2})); }, {"embedding", "index 10"});
  expect_throws_with([&] { emb.forward(randn({2})); }, {"embedding", "float32"});
  Flatten fl;
  expect_throws_with([&] { fl.forward(randn({3})); }, {"flatten", "1"});
  Softmax sm(3);
  expect_throws_with([&] { sm.forward(randn({2, 3})); }, {"softmax", "3"});
}

// ------------------------------------------------------------------ training

// A fixed regression batch for an 8-32-4 MLP; `step` updates the parameters from their
// gradients. Returns (first loss, last loss, steps taken); stops once loss < 1e-4.
struct OverfitResult {
  double first, last;
  int steps;
};
OverfitResult overfit(Sequential& mlp, int max_steps, const std::function<void()>& step) {
  Tensor x = randn({16, 8});
  Tensor target = randn({16, 4});
  auto loss_of = [&] {
    Tensor d = mlp.forward(x) - target;
    return (d * d).mean();
  };
  OverfitResult r{loss_of().item(), 0.0, 0};
  r.last = r.first;
  for (; r.steps < max_steps && r.last >= 1e-4; ++r.steps) {
    mlp.zero_grad();
    Tensor loss = loss_of();
    r.last = loss.item();
    loss.backward();
    step();
  }
  r.last = loss_of().item();
  return r;
}

std::shared_ptr<Sequential> small_mlp() {
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
      std::make_shared<Linear>(8, 32), std::make_shared<Tanh>(), std::make_shared<Linear>(32, 4)});
}

TEST(Training, SmallMlpOverfitsAFixedBatchWithPlainSgd) {
  manual_seed(2024);
  auto mlp = small_mlp();
  OverfitResult r = overfit(*mlp, 5000, [&] {
    NoGradGuard no_grad;
    for (Tensor& p : mlp->parameters()) p.add_(p.grad(), -0.5);
  });
  RecordProperty("steps", r.steps);
  std::printf("MLP 8-32-4, SGD: loss %.4g -> %.3g in %d steps\n", r.first, r.last, r.steps);
  EXPECT_GT(r.first, 0.5);
  EXPECT_LT(r.last, 1e-3) << "loss went from " << r.first << " to " << r.last << " in " << r.steps << " steps";
}

#ifdef ZAE_TEST_HAVE_ADAM
TEST(Training, SmallMlpOverfitsAFixedBatchWithAdam) {
  manual_seed(2024);
  auto mlp = small_mlp();
  zae::optim::Adam opt(mlp->parameters(), zae::optim::AdamOptions{.lr = 1e-2});
  OverfitResult r = overfit(*mlp, 1500, [&] { opt.step(); });
  RecordProperty("steps", r.steps);
  std::printf("MLP 8-32-4, Adam: loss %.4g -> %.3g in %d steps\n", r.first, r.last, r.steps);
  EXPECT_GT(r.first, 0.5);
  EXPECT_LT(r.last, 1e-3) << "loss went from " << r.first << " to " << r.last << " in " << r.steps << " steps";
}
#endif

}  // namespace
