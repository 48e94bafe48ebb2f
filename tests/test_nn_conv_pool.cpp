// Conformance of the convolution and pooling layers (nn/conv.h, nn/pooling.h) with
// PyTorch 1.13: reference outputs and gradients from tests/fixtures/gen_conv_pool.py
// (conv_pool_conv / conv_pool_pool fixtures). Each config loads PyTorch's parameters
// through load_state_dict ("weight" / "bias"), checks the layer's repr against str(layer),
// the float32 forward at 1e-5 relative, and the float64 forward and gradients (input,
// weight, bias of sum(y * g)) tightly. Also: default initialisation, state-dict keys,
// option errors.
//
// Invariants: the C++ configs below mirror CONV and POOL in the generator, by name.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/ops/factory.h"
#include "nn/conv.h"
#include "nn/init.h"
#include "nn/pooling.h"
#include "tests/support/fixture.h"
#include "tests/support/test_util.h"

namespace {

using zae::DType;
using zae::Shape;
using zae::Tensor;
using zae::nn::AdaptiveAvgPool2d;
using zae::nn::AvgPool2d;
using zae::nn::Conv1d;
using zae::nn::Conv2d;
using zae::nn::Layer;
using zae::nn::MaxPool2d;
using zae::test::expect_throws_with;

struct LayerCase {
  std::string name;
  std::function<std::shared_ptr<Layer>()> make;
};

template <class L, class... Args>
std::function<std::shared_ptr<Layer>()> maker(Args... args) {
  return [=] { return std::make_shared<L>(args...); };
}

std::vector<LayerCase> conv_cases() {
  using O2 = Conv2d::Options;
  using O1 = Conv1d::Options;
  return {
      {"c2d_basic", maker<Conv2d>(O2{.in_channels = 3, .out_channels = 4, .kernel_size = 3})},
      {"c2d_stride_pad", maker<Conv2d>(O2{.in_channels = 3, .out_channels = 4, .kernel_size = {3, 2},
                                          .stride = {2, 1}, .padding = {1, 0}})},
      {"c2d_dilation",
       maker<Conv2d>(O2{.in_channels = 3, .out_channels = 2, .kernel_size = 3, .padding = 2, .dilation = {2, 1}})},
      {"c2d_groups",
       maker<Conv2d>(O2{.in_channels = 4, .out_channels = 6, .kernel_size = 3, .padding = 1, .groups = 2})},
      {"c2d_depthwise_nobias", maker<Conv2d>(O2{.in_channels = 4, .out_channels = 4, .kernel_size = 3, .stride = 2,
                                                .groups = 4, .bias = false})},
      {"c2d_pointwise", maker<Conv2d>(O2{.in_channels = 4, .out_channels = 5, .kernel_size = 1})},
      {"c2d_mnist_conv1", maker<Conv2d>(O2{.in_channels = 1, .out_channels = 8, .kernel_size = 3, .padding = 1})},
      {"c2d_unbatched", maker<Conv2d>(O2{.in_channels = 3, .out_channels = 2, .kernel_size = {2, 3},
                                         .stride = {1, 2}, .padding = 1})},
      {"c1d_basic", maker<Conv1d>(O1{.in_channels = 3, .out_channels = 4, .kernel_size = 3})},
      {"c1d_stride_pad_dil", maker<Conv1d>(O1{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .stride = 2,
                                              .padding = 2, .dilation = 2})},
      {"c1d_groups_nobias",
       maker<Conv1d>(O1{.in_channels = 4, .out_channels = 6, .kernel_size = 2, .groups = 2, .bias = false})},
  };
}

std::vector<LayerCase> pool_cases() {
  using MO = MaxPool2d::Options;
  using AO = AvgPool2d::Options;
  return {
      {"mp_2", maker<MaxPool2d>(zae::IntPair(2))},
      {"mp_k3_s2_p1", maker<MaxPool2d>(MO{.kernel_size = 3, .stride = 2, .padding = 1})},
      {"mp_ceil", maker<MaxPool2d>(MO{.kernel_size = 3, .stride = 2, .ceil_mode = true})},
      {"mp_dilation",
       maker<MaxPool2d>(MO{.kernel_size = {2, 3}, .stride = {{1, 2}}, .padding = 1, .dilation = {2, 1}})},
      {"mp_unbatched", maker<MaxPool2d>(MO{.kernel_size = 2, .stride = 1})},
      {"ap_2", maker<AvgPool2d>(zae::IntPair(2))},
      {"ap_k3_s2_p1", maker<AvgPool2d>(AO{.kernel_size = 3, .stride = 2, .padding = 1})},
      {"ap_ceil_exclude_pad", maker<AvgPool2d>(AO{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true,
                                                  .count_include_pad = false})},
      {"ap_rect", maker<AvgPool2d>(AO{.kernel_size = {2, 3}, .stride = {{2, 1}}})},
      {"ap_divisor", maker<AvgPool2d>(AO{.kernel_size = 3, .stride = 2, .padding = 1, .divisor_override = 5})},
      {"aap_3x4", maker<AdaptiveAvgPool2d>(zae::IntPair(3, 4))},
      {"aap_1", maker<AdaptiveAvgPool2d>(zae::IntPair(1))},
      {"aap_5x11", maker<AdaptiveAvgPool2d>(zae::IntPair(5, 11))},
      {"aap_unbatched", maker<AdaptiveAvgPool2d>(zae::IntPair(4, 2))},
  };
}

// Comparisons made, over all configs (printed at the end of the suite for the report).
int g_comparisons = 0;

void compare(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  ++g_comparisons;
  ASSERT_TRUE(got.defined()) << what << ": undefined";
  ASSERT_EQ(got.shape(), want.shape()) << what << ": shape " << zae::shape_str(got.shape()) << " vs PyTorch "
                                       << zae::shape_str(want.shape());
  EXPECT_TRUE(zae::test::all_close(got, want.to_vector<double>(), rtol, atol)) << what;
}

// Loads the layer's parameters (whatever it has) from the fixture in the given dtype.
void load_params(Layer& layer, const zae::test::Fixture& f, const std::string& name, DType dt) {
  zae::nn::StateDict sd;
  for (const auto& [key, p] : layer.named_parameters()) sd.emplace_back(key, f.at(name + "." + key).to(dt));
  layer.load_state_dict(sd);
}

// The fixture's input of a config: its own (".x") or a shared one named in the metadata.
Tensor input_of(const zae::test::Fixture& f, const std::string& name) {
  if (f.has(name + ".x")) return f.at(name + ".x");
  auto it = f.metadata.find(name + ".input");
  EXPECT_NE(it, f.metadata.end()) << "fixture " << f.name << " has no input for " << name;
  return f.at(it->second);
}

void check_against_pytorch(const LayerCase& c, const zae::test::Fixture& f) {
  SCOPED_TRACE(c.name);
  std::shared_ptr<Layer> layer = c.make();
  ++g_comparisons;
  EXPECT_EQ(layer->str(), f.metadata.at(c.name)) << "repr differs from PyTorch's";
  const Tensor x = input_of(f, c.name);
  const Tensor& y_ref = f.at(c.name + ".y");

  // float32 forward.
  load_params(*layer, f, c.name, DType::float32);
  compare(layer->forward(x.to(DType::float32)), y_ref, 1e-5, 1e-5, "float32 forward");

  // float64 forward and gradients of sum(y * g).
  layer->to(DType::float64);
  load_params(*layer, f, c.name, DType::float64);
  Tensor x64 = x.clone().requires_grad_();
  Tensor y = layer->forward(x64);
  compare(y, y_ref, 1e-12, 1e-12, "float64 forward");
  y.backward(f.at(c.name + ".g"));
  compare(x64.grad(), f.at(c.name + ".dx"), 1e-11, 1e-12, "input gradient");
  for (const auto& [key, p] : layer->named_parameters())
    compare(p.grad(), f.at(c.name + ".d" + key), 1e-11, 1e-12, key + " gradient");
}

TEST(ConvPoolConformance, ConvLayersMatchPyTorch) {
  const zae::test::Fixture f = zae::test::load_fixture("conv_pool_conv");
  const int before = g_comparisons;
  for (const LayerCase& c : conv_cases()) check_against_pytorch(c, f);
  std::cout << "conv conformance: " << conv_cases().size() << " configs, " << g_comparisons - before
            << " comparisons (repr, float32 forward, float64 forward, input/weight/bias gradients)\n";
}

TEST(ConvPoolConformance, PoolLayersMatchPyTorch) {
  const zae::test::Fixture f = zae::test::load_fixture("conv_pool_pool");
  const int before = g_comparisons;
  for (const LayerCase& c : pool_cases()) check_against_pytorch(c, f);
  std::cout << "pool conformance: " << pool_cases().size() << " configs, " << g_comparisons - before
            << " comparisons (repr, float32 forward, float64 forward, input gradient)\n";
}

// ---- default initialisation ---------------------------------------------------------------

TEST(Conv2dLayer, DefaultInitIsKaimingUniformFromTheDefaultGenerator) {
  // The same draws as kaiming_uniform_(a = sqrt(5)) on the weight, then U(+-1/sqrt(fan_in)) on the bias.
  zae::manual_seed(123);
  Conv2d conv(Conv2d::Options{.in_channels = 4, .out_channels = 6, .kernel_size = {3, 2}, .groups = 2});
  zae::manual_seed(123);
  Tensor w = zae::empty({6, 2, 3, 2}), b = zae::empty({6});
  zae::nn::init::kaiming_uniform_(w, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(2.0 * 3 * 2);  // fan_in = C / groups * kH * kW = 12
  zae::nn::init::uniform_(b, -bound, bound);
  EXPECT_TRUE(zae::test::all_close(conv.weight(), w.to_vector<double>(), 0, 0));
  EXPECT_TRUE(zae::test::all_close(conv.bias(), b.to_vector<double>(), 0, 0));
  for (double v : conv.weight().to_vector<double>()) EXPECT_LE(std::abs(v), bound);

  // Statistics of a large layer: U(-b, b) has mean 0 and variance b^2 / 3.
  Conv2d big(Conv2d::Options{.in_channels = 64, .out_channels = 128, .kernel_size = 3});
  const double b2 = 1.0 / (64.0 * 9.0);
  std::vector<double> v = big.weight().to_vector<double>();
  double mean = 0, var = 0, mx = 0;
  for (double e : v) {
    mean += e;
    mx = std::max(mx, std::abs(e));
  }
  mean /= static_cast<double>(v.size());
  for (double e : v) var += (e - mean) * (e - mean);
  var /= static_cast<double>(v.size());
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(var, b2 / 3.0, 0.02 * b2 / 3.0);
  EXPECT_LE(mx, std::sqrt(b2));
  EXPECT_GT(mx, 0.99 * std::sqrt(b2));
}

TEST(Conv1dLayer, DefaultInitBoundsAndKeys) {
  Conv1d conv(Conv1d::Options{.in_channels = 6, .out_channels = 6, .kernel_size = 5, .groups = 3});
  const double bound = 1.0 / std::sqrt(2.0 * 5);
  for (double v : conv.weight().to_vector<double>()) EXPECT_LE(std::abs(v), bound);
  for (double v : conv.bias().to_vector<double>()) EXPECT_LE(std::abs(v), bound);
  auto sd = conv.state_dict();
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd[0].first, "weight");
  EXPECT_EQ(sd[0].second.shape(), (Shape{6, 2, 5}));
  EXPECT_EQ(sd[1].first, "bias");
  Conv1d nobias(Conv1d::Options{.in_channels = 2, .out_channels = 2, .kernel_size = 1, .bias = false});
  ASSERT_EQ(nobias.state_dict().size(), 1u);
  EXPECT_FALSE(nobias.bias().defined());
  EXPECT_EQ(nobias.num_parameters(), 4);
}

// ---- reprs and errors ---------------------------------------------------------------------

TEST(ConvPoolLayers, ReprsFollowPyTorch) {
  EXPECT_EQ(Conv2d(Conv2d::Options{.in_channels = 1, .out_channels = 32, .kernel_size = 3, .padding = 1}).str(),
            "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
  EXPECT_EQ(Conv2d(3, 8, {5, 3}).str(), "Conv2d(3, 8, kernel_size=(5, 3), stride=(1, 1))");
  EXPECT_EQ(Conv1d(Conv1d::Options{.in_channels = 2, .out_channels = 4, .kernel_size = 3, .dilation = 2,
                                   .groups = 2, .bias = false})
                .str(),
            "Conv1d(2, 4, kernel_size=(3,), stride=(1,), dilation=(2,), groups=2, bias=False)");
  EXPECT_EQ(MaxPool2d(2).str(), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
  EXPECT_EQ(MaxPool2d(MaxPool2d::Options{.kernel_size = {2, 3}, .ceil_mode = true}).str(),
            "MaxPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0, dilation=1, ceil_mode=True)");
  EXPECT_EQ(AvgPool2d(AvgPool2d::Options{.kernel_size = 3, .stride = 1, .padding = 1}).str(),
            "AvgPool2d(kernel_size=3, stride=1, padding=1)");
  EXPECT_EQ(AdaptiveAvgPool2d(zae::IntPair(1)).str(), "AdaptiveAvgPool2d(output_size=1)");
  EXPECT_EQ(AdaptiveAvgPool2d({7, 7}).str(), "AdaptiveAvgPool2d(output_size=(7, 7))");
}

TEST(ConvPoolLayers, OptionAndInputErrors) {
  expect_throws_with([] { Conv2d(Conv2d::Options{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .groups = 2}); },
                     {"Conv2d(3, 4", "in_channels (3) must be divisible by groups (2)"});
  expect_throws_with([] { Conv2d(Conv2d::Options{.in_channels = 4, .out_channels = 3, .kernel_size = 3, .groups = 2}); },
                     {"Conv2d", "out_channels (3) must be divisible by groups (2)"});
  expect_throws_with([] { Conv2d(Conv2d::Options{.in_channels = 1, .out_channels = 1}); },
                     {"Conv2d", "kernel_size must be positive", "(0, 0)"});
  expect_throws_with([] { Conv2d(Conv2d::Options{.in_channels = 1, .out_channels = 1, .kernel_size = 3, .stride = 0}); },
                     {"Conv2d", "stride must be positive"});
  expect_throws_with([] { Conv1d(Conv1d::Options{.in_channels = 0, .out_channels = 1, .kernel_size = 3}); },
                     {"Conv1d", "must be positive"});
  expect_throws_with([] { MaxPool2d(MaxPool2d::Options{.kernel_size = 2, .padding = 2}); },
                     {"MaxPool2d", "padding (2, 2)", "at most half of kernel_size (2, 2)"});
  expect_throws_with([] { AvgPool2d(AvgPool2d::Options{.kernel_size = 2, .divisor_override = 0}); },
                     {"AvgPool2d", "divisor_override must be positive"});
  expect_throws_with([] { AdaptiveAvgPool2d(zae::IntPair(0, 3)); },
                     {"AdaptiveAvgPool2d", "output_size must be positive"});
  Conv2d conv(3, 8, 3);
  expect_throws_with([&] { conv.forward(zae::zeros({2, 4, 7, 9})); },
                     {"Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))", "(N, 3, H, W)", "[2, 4, 7, 9]"});
  expect_throws_with([&] { conv.forward(zae::zeros({2, 3, 2, 9})); }, {"conv2d", "kernel size (3, 3)"});
  Conv1d c1(3, 8, 3);
  expect_throws_with([&] { c1.forward(zae::zeros({2, 3, 7, 9})); }, {"Conv1d", "(N, 3, L)", "[2, 3, 7, 9]"});
}

TEST(ConvPoolLayers, MaxPoolForwardWithIndicesAndModuleDtype) {
  MaxPool2d pool(2);
  Tensor x = zae::test::random_tensor({1, 2, 4, 4}, DType::float32, 3);
  auto [y, idx] = pool.forward_with_indices(x);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2, 2}));
  EXPECT_EQ(idx.dtype(), DType::int64);
  Conv2d conv(2, 3, 3);
  conv.to(DType::float64);
  EXPECT_EQ(conv.forward(x.to(DType::float64)).dtype(), DType::float64);
  expect_throws_with([&] { conv.forward(x); }, {"conv2d", "weight has dtype float64", "input has dtype float32"});
}

}  // namespace
