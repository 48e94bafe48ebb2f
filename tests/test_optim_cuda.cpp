// nn/optim on CUDA (ctest label gpu): every optimizer in every option combination runs
// 5 steps on CUDA parameters and on CPU copies of them, from the same random initial
// values and the same random gradients each step; parameters and every state buffer
// must agree (float32 1e-6 relative, float64 1e-12, bfloat16 1e-2, float16 1e-3, each
// with an absolute floor of that tolerance times the tensor's largest magnitude). Also:
// many tensors and large ones (the fused launch splits its table across launches and
// tensors across chunks), parameter groups, parameters skipped for lack of a gradient,
// strided parameters, and the error for parameters on different devices.
// Every test skips cleanly where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "nn/optim/adagrad.h"
#include "nn/optim/adam.h"
#include "nn/optim/rmsprop.h"
#include "nn/optim/sgd.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using OptPtr = std::unique_ptr<optim::Optimizer>;

struct Case {
  std::string name;
  std::function<OptPtr(std::vector<optim::ParamGroup>)> make;
};

double tolerance(DType dt) {
  return test::tolerance_for(
      dt, {.float64 = 1e-12, .float32 = 1e-6, .bfloat16 = 1e-2, .float16 = 1e-3, .integral = 1e-6});
}

/// Every element within rtol * |want| + rtol * max|want| of the CPU value.
::testing::AssertionResult tensors_close(const Tensor& got, const Tensor& want, double rtol) {
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape()) << " vs " << shape_str(want.shape());
  if (!got.device().is_cuda()) return ::testing::AssertionFailure() << "result is on " << got.device();
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    const bool ok = std::abs(g[i] - w[i]) <= rtol * (std::abs(w[i]) + scale) || (std::isnan(g[i]) && std::isnan(w[i]));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << w.size() << " elements differ; first at " << first
                                       << ": cuda " << g[first] << " vs cpu " << w[first] << " (rtol " << rtol << ")";
}

/// Leaf parameters of the given shapes on CPU and their copies on CUDA (same values).
struct Twins {
  std::vector<Tensor> cpu, dev;
};

Twins make_params(const std::vector<Shape>& shapes, DType dt, uint64_t seed) {
  Twins t;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor init = test::random_tensor(shapes[i], DType::float64, seed + i).to(dt);
    t.cpu.push_back(init.clone().detach().requires_grad_());
    t.dev.push_back(init.to(Device::cuda()).detach().requires_grad_());
  }
  return t;
}

/// Puts the same random gradient on both twins of each parameter (none where skip[i]).
void set_grads(const Twins& t, DType dt, uint64_t seed, const std::vector<bool>& skip = {}) {
  for (size_t i = 0; i < t.cpu.size(); ++i) {
    Tensor c = t.cpu[i], d = t.dev[i];
    if (i < skip.size() && skip[i]) {
      c.set_grad(Tensor());
      d.set_grad(Tensor());
      continue;
    }
    Tensor g = test::random_tensor(c.shape(), DType::float64, seed * 1000 + i).to(dt);
    c.set_grad(g);
    d.set_grad(g.to(Device::cuda()));
  }
}

/// Parameters and every state buffer of the two optimizers agree.
void expect_same_state(const optim::Optimizer& cpu_opt, const optim::Optimizer& dev_opt, const Twins& t, DType dt,
                       const std::string& what) {
  const double rtol = tolerance(dt);
  for (size_t i = 0; i < t.cpu.size(); ++i) {
    EXPECT_TRUE(tensors_close(t.dev[i], t.cpu[i], rtol)) << what << ": parameter " << i;
    const auto& sc = cpu_opt.state(t.cpu[i]);
    const auto& sd = dev_opt.state(t.dev[i]);
    ASSERT_EQ(sc.size(), sd.size()) << what << ": state keys of parameter " << i;
    for (const auto& [key, want] : sc) {
      auto it = sd.find(key);
      ASSERT_NE(it, sd.end()) << what << ": CUDA state lacks '" << key << "' of parameter " << i;
      if (key == "step") {
        EXPECT_EQ(it->second.item(), want.item()) << what << ": step of parameter " << i;
        continue;
      }
      EXPECT_EQ(it->second.dtype(), want.dtype()) << what << ": " << key;
      EXPECT_TRUE(tensors_close(it->second, want, rtol)) << what << ": state '" << key << "' of parameter " << i;
    }
  }
}

/// Runs `steps` steps of the case on CPU and CUDA twins and compares after each.
void run_case(const Case& c, DType dt, const std::vector<Shape>& shapes, int steps = 5,
              const std::function<std::vector<bool>(int)>& skip = {}) {
  const std::string what = c.name + " " + std::string(dtype_name(dt));
  Twins t = make_params(shapes, dt, 11);
  OptPtr cpu_opt = c.make({{t.cpu, {}}});
  OptPtr dev_opt = c.make({{t.dev, {}}});
  for (int s = 0; s < steps; ++s) {
    set_grads(t, dt, static_cast<uint64_t>(s + 1), skip ? skip(s) : std::vector<bool>{});
    cpu_opt->step();
    dev_opt->step();
  }
  expect_same_state(*cpu_opt, *dev_opt, t, dt, what);
}

template <class O, class Opts>
Case make_case(std::string name, Opts opts) {
  return {std::move(name), [opts](std::vector<optim::ParamGroup> groups) -> OptPtr {
            return std::make_unique<O>(std::move(groups), opts);
          }};
}

std::vector<Case> sgd_cases() {
  std::vector<Case> out;
  for (double wd : {0.0, 0.1})
    for (double momentum : {0.0, 0.9})
      for (double dampening : {0.0, 0.3})
        for (bool nesterov : {false, true})
          for (bool maximize : {false, true}) {
            if (nesterov && (momentum == 0.0 || dampening != 0.0)) continue;  // invalid combination
            out.push_back(make_case<optim::SGD>(
                "SGD wd=" + std::to_string(wd) + " momentum=" + std::to_string(momentum) +
                    " dampening=" + std::to_string(dampening) + " nesterov=" + std::to_string(nesterov) +
                    " maximize=" + std::to_string(maximize),
                optim::SGDOptions{.lr = 0.05,
                                  .momentum = momentum,
                                  .dampening = dampening,
                                  .weight_decay = wd,
                                  .nesterov = nesterov,
                                  .maximize = maximize}));
          }
  return out;
}

std::vector<Case> adam_cases() {
  std::vector<Case> out;
  for (bool decoupled : {false, true})
    for (double wd : {0.0, 0.1})
      for (bool amsgrad : {false, true})
        for (bool maximize : {false, true}) {
          const std::string tail = " wd=" + std::to_string(wd) + " amsgrad=" + std::to_string(amsgrad) +
                                   " maximize=" + std::to_string(maximize);
          if (decoupled)
            out.push_back(make_case<optim::AdamW>("AdamW" + tail, optim::AdamWOptions{.lr = 0.02,
                                                                                       .beta1 = 0.8,
                                                                                       .beta2 = 0.95,
                                                                                       .weight_decay = wd,
                                                                                       .amsgrad = amsgrad,
                                                                                       .maximize = maximize}));
          else
            out.push_back(make_case<optim::Adam>("Adam" + tail, optim::AdamOptions{.lr = 0.02,
                                                                                    .beta1 = 0.8,
                                                                                    .beta2 = 0.95,
                                                                                    .weight_decay = wd,
                                                                                    .amsgrad = amsgrad,
                                                                                    .maximize = maximize}));
        }
  return out;
}

std::vector<Case> rmsprop_cases() {
  std::vector<Case> out;
  for (double wd : {0.0, 0.1})
    for (bool centered : {false, true})
      for (double momentum : {0.0, 0.9})
        for (bool maximize : {false, true})
          out.push_back(make_case<optim::RMSprop>(
              "RMSprop wd=" + std::to_string(wd) + " centered=" + std::to_string(centered) +
                  " momentum=" + std::to_string(momentum) + " maximize=" + std::to_string(maximize),
              optim::RMSpropOptions{.lr = 0.01,
                                    .alpha = 0.9,
                                    .weight_decay = wd,
                                    .momentum = momentum,
                                    .centered = centered,
                                    .maximize = maximize}));
  return out;
}

std::vector<Case> adagrad_cases() {
  std::vector<Case> out;
  for (double wd : {0.0, 0.1})
    for (double lr_decay : {0.0, 0.05})
      for (double init : {0.0, 0.1})
        for (bool maximize : {false, true})
          out.push_back(make_case<optim::Adagrad>(
              "Adagrad wd=" + std::to_string(wd) + " lr_decay=" + std::to_string(lr_decay) +
                  " init=" + std::to_string(init) + " maximize=" + std::to_string(maximize),
              optim::AdagradOptions{.lr = 0.05,
                                    .lr_decay = lr_decay,
                                    .weight_decay = wd,
                                    .initial_accumulator_value = init,
                                    .maximize = maximize}));
  return out;
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (auto* f : {&sgd_cases, &adam_cases, &rmsprop_cases, &adagrad_cases}) {
    auto v = f();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Sizes that are not multiples of the vector width (4) or the block's stride.
const std::vector<Shape> kSmallShapes = {{1}, {7}, {1023}, {33, 31}, {4, 1024}};

TEST(OptimCuda, EveryOptionCombinationFloat32) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const Case& c : all_cases()) run_case(c, DType::float32, kSmallShapes);
}

TEST(OptimCuda, EveryOptionCombinationFloat64) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const Case& c : all_cases()) run_case(c, DType::float64, kSmallShapes);
}

TEST(OptimCuda, EveryOptionCombinationHalfPrecisionWithFloatState) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::bfloat16, DType::float16})
    for (const Case& c : all_cases()) run_case(c, dt, kSmallShapes);
}

TEST(OptimCuda, LargeAndManyTensorsSplitAcrossLaunches) {
  ZAE_SKIP_WITHOUT_CUDA();
  // (1 << 20) + 3 elements span 33 chunks; 300 small tensors overflow a launch's table.
  std::vector<Shape> shapes = {{(1 << 20) + 3}, {5}, {1 << 16}};
  for (int i = 0; i < 300; ++i) shapes.push_back({1 + (i * 37) % 200});
  std::vector<Case> cases = {
      make_case<optim::SGD>("SGD nesterov", optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true}),
      make_case<optim::AdamW>("AdamW amsgrad", optim::AdamWOptions{.lr = 0.01, .amsgrad = true}),
      make_case<optim::RMSprop>("RMSprop centered momentum",
                                optim::RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true}),
      make_case<optim::Adagrad>("Adagrad lr_decay", optim::AdagradOptions{.lr = 0.05, .lr_decay = 0.01})};
  for (const Case& c : cases) run_case(c, DType::float32, shapes);
}

TEST(OptimCuda, ParametersWithoutGradientAreSkipped) {
  ZAE_SKIP_WITHOUT_CUDA();
  // Parameter 1 has no gradient on odd steps, parameter 2 never has one (it gets no state).
  auto skip = [](int s) { return std::vector<bool>{false, s % 2 == 1, true}; };
  for (const Case& c : all_cases()) run_case(c, DType::float32, {{9, 3}, {17}, {4}}, 5, skip);
}

TEST(OptimCuda, GroupsWithTheirOwnOptions) {
  ZAE_SKIP_WITHOUT_CUDA();
  Twins t = make_params({{100}, {7, 7}, {3}}, DType::float32, 5);
  auto make = [](const std::vector<Tensor>& p) {
    return std::make_unique<optim::Adam>(
        std::vector<optim::ParamGroup>{{{p[0], p[2]}, {{"lr", 0.05}, {"amsgrad", 1.0}}},
                                       {{p[1]}, {{"beta1", 0.5}, {"weight_decay", 0.2}}}},
        optim::AdamOptions{.lr = 0.01});
  };
  OptPtr cpu_opt = make(t.cpu), dev_opt = make(t.dev);
  for (int s = 0; s < 5; ++s) {
    set_grads(t, DType::float32, 40 + s);
    if (s == 3) {
      cpu_opt->set_lr(0.002, 1);
      dev_opt->set_lr(0.002, 1);
    }
    cpu_opt->step();
    dev_opt->step();
  }
  expect_same_state(*cpu_opt, *dev_opt, t, DType::float32, "Adam groups");
}

TEST(OptimCuda, StridedParameterIsUpdatedInPlace) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor base_cpu = test::random_tensor({6, 9}, DType::float32, 3);
  Tensor base_dev = base_cpu.to(Device::cuda());
  Tensor p_cpu = base_cpu.t().detach().requires_grad_();  // (9, 6) transposed view
  Tensor p_dev = base_dev.t().detach().requires_grad_();
  ASSERT_FALSE(p_dev.is_contiguous());
  optim::SGD cpu_opt({p_cpu}, {.lr = 0.1, .momentum = 0.9});
  optim::SGD dev_opt({p_dev}, {.lr = 0.1, .momentum = 0.9});
  for (int s = 0; s < 5; ++s) {
    Tensor g = test::random_tensor({9, 6}, DType::float32, 70 + s);
    p_cpu.set_grad(g);
    p_dev.set_grad(g.to(Device::cuda()));
    cpu_opt.step();
    dev_opt.step();
  }
  EXPECT_TRUE(tensors_close(p_dev, p_cpu, 1e-6));
  EXPECT_TRUE(tensors_close(base_dev, base_cpu, 1e-6)) << "the update reaches the viewed storage";
}

TEST(OptimCuda, ParametersOnDifferentDevicesAreAnError) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tensor a = test::random_tensor({3}, DType::float32, 1).requires_grad_();
  Tensor b = test::random_tensor({4}, DType::float32, 2).to(Device::cuda()).requires_grad_();
  optim::Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(zeros({3}));
  b.set_grad(zeros({4}, {.device = Device::cuda()}));
  std::vector<double> before = b.to_vector<double>();
  test::expect_throws_with([&] { opt.step(); }, {"Adam", "different devices", "cpu", "cuda:0"});
  EXPECT_TRUE(opt.state(a).empty()) << "a failed step creates no state";
  EXPECT_TRUE(opt.state(b).empty());
  EXPECT_EQ(b.to_vector<double>(), before);
}

}  // namespace
