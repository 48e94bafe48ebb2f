// nn::Module: registration and name rules, traversal order and dotted names,
// tied weights, modes, dtype moves that keep handle identity, zero_grad,
// state_dict order and load_state_dict (strict and not, shape errors, failed
// loads change nothing), num_parameters and the printed tree.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/zae.h"
#include "nn/nn.h"
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

// A module that exposes registration to the tests.
class Custom : public Module {
 public:
  explicit Custom(std::string type = "Custom") : Module(std::move(type)) {}
  using Module::register_buffer;
  using Module::register_module;
  using Module::register_parameter;
  using Module::replace_child;
};

// Block: w (n), running (n) persistent, scratch (1) non-persistent, lin = Linear(n, n),
// and an optional None parameter.
class Block : public Module {
 public:
  explicit Block(int64_t n) : Module("Block") {
    w = register_parameter("w", ones({n}));
    register_parameter("none", Tensor());
    running = register_buffer("running", zeros({n}));
    register_buffer("scratch", zeros({1}), false);
    lin = register_module("lin", std::make_shared<Linear>(n, n));
  }
  std::string extra_repr() const override { return "n=" + std::to_string(w.numel()); }
  Tensor w, running;
  std::shared_ptr<Linear> lin;
};

// Net: a = Block(2), emb = Embedding(4, 2), steps (int64 buffer), head = Sequential(Linear(2, 3)).
class Net : public Module {
 public:
  Net() : Module("Net") {
    a = register_module("a", std::make_shared<Block>(2));
    steps = register_buffer("steps", zeros({}, {.dtype = DType::int64}));
    emb = register_module("emb", std::make_shared<Embedding>(4, 2));
    head = register_module("head", std::make_shared<Sequential>(
                                       std::initializer_list<std::shared_ptr<Layer>>{std::make_shared<Linear>(2, 3)}));
  }
  std::shared_ptr<Block> a;
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<Sequential> head;
  Tensor steps;
};

template <class Pairs>
std::vector<std::string> keys_of(const Pairs& pairs) {
  std::vector<std::string> out;
  for (const auto& p : pairs) out.push_back(p.first);
  return out;
}

using Strings = std::vector<std::string>;

// ------------------------------------------------------------------ registration

TEST(ModuleRegistration, NameRules) {
  Custom m;
  m.register_parameter("w", ones({2}));
  expect_throws_with([&] { m.register_parameter("w", ones({2})); }, {"Custom", "parameter name 'w'", "already"});
  expect_throws_with([&] { m.register_buffer("w", ones({2})); }, {"Custom", "buffer name 'w'", "already"});
  expect_throws_with([&] { m.register_module("w", std::make_shared<ReLU>()); }, {"module name 'w'", "already"});
  expect_throws_with([&] { m.register_parameter("a.b", ones({2})); }, {"Custom", "'a.b'", "no '.'"});
  expect_throws_with([&] { m.register_buffer("", ones({2})); }, {"Custom", "non-empty"});
  expect_throws_with([&] { m.register_module("x", std::shared_ptr<Module>()); }, {"Custom", "'x'", "null"});
  Tensor leaf = ones({2}).requires_grad_(true);
  expect_throws_with([&] { m.register_parameter("nonleaf", leaf * 2.0); }, {"Custom", "'nonleaf'", "leaf"});
  // A failed registration registers nothing.
  EXPECT_EQ(keys_of(m.named_parameters()), Strings{"w"});
  EXPECT_TRUE(m.named_buffers().empty());
  EXPECT_TRUE(m.named_children().empty());
}

TEST(ModuleRegistration, ParametersRequireGradUnlessAskedOrIntegral) {
  Custom m;
  Tensor w = m.register_parameter("w", zeros({2}));
  Tensor frozen = m.register_parameter("frozen", zeros({3}), false);
  Tensor idx = m.register_parameter("idx", zeros({2}, {.dtype = DType::int64}));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_FALSE(frozen.requires_grad());
  EXPECT_FALSE(idx.requires_grad());
  EXPECT_EQ(m.num_parameters(), 7);
  EXPECT_EQ(m.num_parameters(/*trainable_only=*/true), 2);
  // The returned handle is the registered tensor.
  EXPECT_TRUE(m.named_parameters()[0].second.is_same(w));
}

TEST(ModuleRegistration, ChildAccessAndReplace) {
  Custom m;
  auto relu = m.register_module("act", std::make_shared<ReLU>());
  EXPECT_EQ(m.child("act"), relu);
  expect_throws_with([&] { m.child("nope"); }, {"Custom", "no child module named 'nope'"});
  auto tanh_layer = std::make_shared<Tanh>();
  m.replace_child("act", tanh_layer);
  EXPECT_EQ(m.child("act"), tanh_layer);
  expect_throws_with([&] { m.replace_child("nope", tanh_layer); }, {"Custom", "'nope'"});
}

// ------------------------------------------------------------------ traversal

TEST(ModuleTraversal, DottedNamesInRegistrationOrder) {
  Net net;
  EXPECT_EQ(keys_of(net.named_parameters()),
            (Strings{"a.w", "a.lin.weight", "a.lin.bias", "emb.weight", "head.0.weight", "head.0.bias"}));
  EXPECT_EQ(keys_of(net.named_parameters(/*recurse=*/false)), Strings{});
  EXPECT_EQ(keys_of(net.a->named_parameters(false)), Strings{"w"});
  EXPECT_EQ(keys_of(net.named_buffers()), (Strings{"steps", "a.running", "a.scratch"}));
  EXPECT_EQ(keys_of(net.named_buffers(false)), Strings{"steps"});
  EXPECT_EQ(net.buffers().size(), 3u);
  EXPECT_EQ(keys_of(net.named_children()), (Strings{"a", "emb", "head"}));
  // Depth-first pre-order, as PyTorch.
  EXPECT_EQ(keys_of(net.named_modules()), (Strings{"", "a", "a.lin", "emb", "head", "head.0"}));
  EXPECT_EQ(net.named_modules()[0].second.get(), &net);
  EXPECT_EQ(net.named_modules()[2].second, net.a->lin);
  std::vector<Tensor> params = net.parameters();
  ASSERT_EQ(params.size(), 6u);
  EXPECT_TRUE(params[0].is_same(net.a->w));
  EXPECT_TRUE(params[3].is_same(net.emb->weight()));
  EXPECT_EQ(net.num_parameters(), 2 + 4 + 2 + 8 + 6 + 3);
}

TEST(ModuleTraversal, TiedWeightsAndSharedModulesAreListedOnce) {
  Custom root;
  auto shared = std::make_shared<Linear>(3, 3);
  root.register_module("first", shared);
  auto other = root.register_module("other", std::make_shared<Custom>());
  other->register_parameter("tied", shared->weight());  // the same tensor under a second name
  root.register_module("again", shared);                // the same module twice
  EXPECT_EQ(keys_of(root.named_parameters()), (Strings{"first.weight", "first.bias"}));
  EXPECT_EQ(root.parameters().size(), 2u);
  EXPECT_EQ(root.num_parameters(), 12);
  EXPECT_EQ(keys_of(root.named_modules()), (Strings{"", "first", "other"}));
  // The state dict keeps every name, as PyTorch's does.
  EXPECT_EQ(keys_of(root.state_dict()),
            (Strings{"first.weight", "first.bias", "other.tied", "again.weight", "again.bias"}));
  // Loading through either name writes the one tensor.
  StateDict sd = root.state_dict();
  StateDict loaded;
  for (auto& [k, t] : sd) loaded.emplace_back(k, full(t.shape(), 2.0));
  root.load_state_dict(loaded);
  EXPECT_TRUE(all_close(shared->weight(), std::vector<double>(9, 2.0)));
}

// ------------------------------------------------------------------ modes, dtype, grads

TEST(ModuleModes, TrainAndEvalAreRecursive) {
  Net net;
  EXPECT_TRUE(net.is_training());
  net.eval();
  for (auto& [name, m] : net.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net.head->train();
  EXPECT_TRUE(net.head->at<Linear>(0)->is_training());
  EXPECT_FALSE(net.a->is_training());
  net.train();
  for (auto& [name, m] : net.named_modules()) EXPECT_TRUE(m->is_training()) << name;
}

TEST(ModuleDType, ToKeepsHandleIdentityAndConvertsGrads) {
  Net net;
  Tensor held = net.a->lin->weight();  // as an optimizer would hold it
  std::vector<double> before = held.to_vector<double>();
  net.a->lin->forward(ones({1, 2})).sum().backward();
  ASSERT_TRUE(held.grad().defined());
  net.to(DType::float64);
  EXPECT_EQ(held.dtype(), DType::float64);
  EXPECT_TRUE(held.requires_grad());
  EXPECT_TRUE(held.is_leaf());
  EXPECT_EQ(held.grad().dtype(), DType::float64);
  EXPECT_EQ(held.to_vector<double>(), before);  // float32 -> float64 is exact
  EXPECT_EQ(net.a->running.dtype(), DType::float64);
  EXPECT_EQ(net.steps.dtype(), DType::int64);  // integer buffers keep their dtype
  for (const Tensor& p : net.parameters()) EXPECT_EQ(p.dtype(), DType::float64);
  // The module still works in float64, and gradients flow to the held handle.
  net.zero_grad();
  net.a->lin->forward(ones({1, 2}, {.dtype = DType::float64})).sum().backward();
  EXPECT_EQ(held.grad().dtype(), DType::float64);
  net.to(Device::cpu());  // no-op on the same device
  EXPECT_EQ(held.device(), Device::cpu());
  expect_throws_with([&] { net.to(DType::int32); }, {"Net.to", "floating", "int32"});
}

#ifdef ZAE_TEST_HAVE_ADAM
TEST(ModuleDType, AnOptimizerBuiltBeforeToStepsTheConvertedParameters) {
  Linear lin(3, 2);
  zae::optim::Adam opt(lin.parameters(), zae::optim::AdamOptions{.lr = 0.1});
  lin.to(DType::float64);
  Tensor x = ones({4, 3}, {.dtype = DType::float64});
  std::vector<double> before = lin.weight().to_vector<double>();
  lin.forward(x).sum().backward();
  opt.step();
  EXPECT_EQ(lin.weight().dtype(), DType::float64);
  std::vector<double> after = lin.weight().to_vector<double>();
  // Adam's first step moves every weight by lr against the gradient's sign (all positive here).
  for (size_t i = 0; i < after.size(); ++i) EXPECT_NEAR(after[i], before[i] - 0.1, 1e-6);
}
#endif

TEST(ModuleGrad, ZeroGradToNoneOrZeros) {
  Linear lin(3, 2);
  Tensor x = ones({4, 3});
  lin.forward(x).sum().backward();
  ASSERT_TRUE(lin.weight().grad().defined());
  Tensor g = lin.weight().grad();
  lin.zero_grad(/*set_to_none=*/false);
  EXPECT_TRUE(lin.weight().grad().is_same(g));  // kept, zeroed in place
  EXPECT_TRUE(all_close(g, std::vector<double>(6, 0.0), 0, 0));
  EXPECT_TRUE(all_close(lin.bias().grad(), {0.0, 0.0}, 0, 0));
  lin.forward(x).sum().backward();
  EXPECT_TRUE(all_close(lin.bias().grad(), {4.0, 4.0}, 0, 0));
  lin.zero_grad();
  EXPECT_FALSE(lin.weight().grad().defined());
  EXPECT_FALSE(lin.bias().grad().defined());
  lin.zero_grad();  // no grads: fine
}

// ------------------------------------------------------------------ state dict

TEST(ModuleState, StateDictOrderAndKeys) {
  Net net;
  // Per module: parameters, persistent buffers, then children (PyTorch's order); the None
  // parameter and the non-persistent buffer are left out.
  EXPECT_EQ(keys_of(net.state_dict()), (Strings{"steps", "a.w", "a.running", "a.lin.weight", "a.lin.bias", "emb.weight",
                                                "head.0.weight", "head.0.bias"}));
  // Entries are handles to the module's tensors, not copies.
  EXPECT_TRUE(net.state_dict()[1].second.is_same(net.a->w));
}

TEST(ModuleState, LoadCopiesValuesConvertsDTypesAndRoundTrips) {
  manual_seed(1);
  Net src;
  manual_seed(2);
  Net dst;
  ASSERT_NE(src.a->lin->weight().to_vector<double>(), dst.a->lin->weight().to_vector<double>());
  // From float64 copies of the values: converted into the model's float32.
  StateDict sd;
  for (auto& [k, t] : src.state_dict()) sd.emplace_back(k, t.to(is_floating(t.dtype()) ? DType::float64 : t.dtype()));
  Tensor held = dst.a->lin->weight();
  const uint64_t version = held.version();
  LoadResult r = dst.load_state_dict(sd);
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_EQ(held.dtype(), DType::float32);
  EXPECT_GT(held.version(), version);
  for (size_t i = 0; i < sd.size(); ++i) {
    const auto& [k, t] = dst.state_dict()[i];
    EXPECT_EQ(t.to_vector<double>(), src.state_dict()[i].second.to_vector<double>()) << k;
  }
  // A copy, not an alias: later changes to the source do not leak.
  {
    NoGradGuard no_grad;
    src.a->lin->weight().fill_(7.0);
  }
  EXPECT_NE(held.to_vector<double>()[0], 7.0);
  // Gradients still reach the loaded parameters.
  dst.a->lin->forward(ones({1, 2})).sum().backward();
  EXPECT_TRUE(held.grad().defined());
}

TEST(ModuleState, StrictLoadListsMissingAndUnexpectedInOneError) {
  Net net;
  StateDict sd = net.state_dict();
  std::vector<double> w_before = net.a->w.to_vector<double>();
  StateDict bad;
  for (auto& [k, t] : sd)
    if (k != "a.w" && k != "emb.weight") bad.emplace_back(k, full(t.shape(), 5.0, {.dtype = t.dtype()}));
  bad.emplace_back("a.extra", zeros({1}));
  bad.emplace_back("head.1.weight", zeros({1}));
  expect_throws_with([&] { net.load_state_dict(bad); }, {"load_state_dict for Net", "missing keys: 'a.w' 'emb.weight'",
                                                         "unexpected keys: 'a.extra' 'head.1.weight'"});
  // Nothing changed.
  EXPECT_EQ(net.a->w.to_vector<double>(), w_before);
  EXPECT_NE(net.a->lin->weight().to_vector<double>()[0], 5.0);
  // Non-strict: loads what matches and reports the rest.
  LoadResult r = net.load_state_dict(bad, /*strict=*/false);
  EXPECT_EQ(r.missing_keys, (Strings{"a.w", "emb.weight"}));
  EXPECT_EQ(r.unexpected_keys, (Strings{"a.extra", "head.1.weight"}));
  EXPECT_EQ(net.a->w.to_vector<double>(), w_before);
  EXPECT_TRUE(all_close(net.a->lin->weight(), std::vector<double>(4, 5.0), 0, 0));
  // Only missing keys, or only unexpected ones.
  StateDict partial(sd.begin() + 1, sd.end());
  expect_throws_with([&] { net.load_state_dict(partial); }, {"missing keys: 'steps'"});
  StateDict extra = sd;
  extra.emplace_back("zzz", zeros({1}));
  try {
    net.load_state_dict(extra);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("missing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unexpected keys: 'zzz'"), std::string::npos) << e.what();
  }
  StateDict twice = sd;
  twice.push_back(sd[0]);
  expect_throws_with([&] { net.load_state_dict(twice); }, {"load_state_dict", "'steps'", "twice"});
}

TEST(ModuleState, ShapeMismatchNamesKeyAndShapesAndChangesNothing) {
  Net net;
  StateDict sd;
  for (auto& [k, t] : net.state_dict()) {
    Tensor v = full(t.shape(), 3.0, {.dtype = t.dtype()});
    if (k == "head.0.weight") v = zeros({2, 3});  // model has [3, 2]
    sd.emplace_back(k, v);
  }
  std::vector<double> before = net.a->lin->weight().to_vector<double>();
  for (bool strict : {true, false}) {
    expect_throws_with([&] { net.load_state_dict(sd, strict); },
                       {"shape mismatch", "'head.0.weight'", "checkpoint has [2, 3]", "model has [3, 2]"});
    // Keys before the bad one (a.lin.weight) were not written either.
    EXPECT_EQ(net.a->lin->weight().to_vector<double>(), before);
  }
  StateDict undef = net.state_dict();
  undef[0].second = Tensor();
  expect_throws_with([&] { net.load_state_dict(undef); }, {"'steps'", "undefined"});
}

// ------------------------------------------------------------------ printing

TEST(ModulePrint, TreeLikePyTorch) {
  Net net;
  EXPECT_EQ(net.str(),
            "Net(\n"
            "  (a): Block(\n"
            "    n=2\n"
            "    (lin): Linear(in_features=2, out_features=2, bias=True)\n"
            "  )\n"
            "  (emb): Embedding(4, 2)\n"
            "  (head): Sequential(\n"
            "    (0): Linear(in_features=2, out_features=3, bias=True)\n"
            "  )\n"
            ")");
  Custom leaf("Leaf");
  EXPECT_EQ(leaf.str(), "Leaf()");
  Sequential nested(
      {std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
           std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{std::make_shared<ReLU>()})}),
       std::make_shared<GELU>()});
  EXPECT_EQ(nested.str(),
            "Sequential(\n"
            "  (0): Sequential(\n"
            "    (0): Sequential(\n"
            "      (0): ReLU()\n"
            "    )\n"
            "  )\n"
            "  (1): GELU(approximate='none')\n"
            ")");
  std::ostringstream os;
  os << nested;
  EXPECT_EQ(os.str(), nested.str());
}

}  // namespace
