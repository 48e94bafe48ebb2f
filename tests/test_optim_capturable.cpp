// nn/optim capturable mode on the CPU (set_capturable, upload_hyperparameters): the
// kernels read the hyperparameters from a tensor and keep each parameter's step in a
// float32 counter they increment themselves, the code path a CUDA graph replays. On
// the CPU it must give bitwise the normal mode's parameters and state: SGD, Adam and
// AdamW, float64 / float32 / bfloat16 (with master weights and stochastic rounding),
// with a cosine schedule changing lr every step, other options changed mid-run, and a
// parameter skipped on some steps. Also: state_dict reports "step" as a float64 count,
// switching the mode off and on and loading a normal state continue the same run, and
// optimizers without a capturable step refuse it.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "nn/optim/adagrad.h"
#include "nn/optim/adam.h"
#include "nn/optim/rmsprop.h"
#include "nn/optim/sgd.h"
#include "nn/sched/cosine.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using OptPtr = std::shared_ptr<optim::Optimizer>;

struct Case {
  std::string name;
  std::function<OptPtr(std::vector<Tensor>, bool low_precision)> make;
  std::string mid_run_key;  // an option changed before step 4 (besides lr)
  double mid_run_value;
};

std::vector<Case> cases() {
  using namespace optim;
  return {
      {"SGD momentum dampening",
       [](std::vector<Tensor> p, bool lp) -> OptPtr {
         return std::make_shared<SGD>(std::move(p), SGDOptions{.lr = 0.05,
                                                               .momentum = 0.9,
                                                               .dampening = 0.1,
                                                               .weight_decay = 0.01,
                                                               .master_weights = lp,
                                                               .stochastic_rounding = lp,
                                                               .seed = 3});
       },
       "momentum", 0.5},
      {"SGD nesterov maximize",
       [](std::vector<Tensor> p, bool lp) -> OptPtr {
         return std::make_shared<SGD>(std::move(p), SGDOptions{.lr = 0.05,
                                                               .momentum = 0.8,
                                                               .nesterov = true,
                                                               .maximize = true,
                                                               .master_weights = lp,
                                                               .stochastic_rounding = lp,
                                                               .seed = 3});
       },
       "weight_decay", 0.1},
      {"SGD plain",
       [](std::vector<Tensor> p, bool lp) -> OptPtr {
         return std::make_shared<SGD>(std::move(p), SGDOptions{.lr = 0.1, .master_weights = lp});
       },
       "weight_decay", 0.2},
      {"Adam amsgrad L2",
       [](std::vector<Tensor> p, bool lp) -> OptPtr {
         return std::make_shared<Adam>(std::move(p), AdamOptions{.lr = 0.02,
                                                                 .beta1 = 0.8,
                                                                 .beta2 = 0.95,
                                                                 .weight_decay = 0.05,
                                                                 .amsgrad = true,
                                                                 .master_weights = lp,
                                                                 .stochastic_rounding = lp,
                                                                 .seed = 11});
       },
       "beta1", 0.6},
      {"AdamW",
       [](std::vector<Tensor> p, bool lp) -> OptPtr {
         return std::make_shared<AdamW>(std::move(p), AdamWOptions{.lr = 0.02,
                                                                   .beta2 = 0.99,
                                                                   .weight_decay = 0.1,
                                                                   .master_weights = lp,
                                                                   .stochastic_rounding = lp,
                                                                   .seed = 11});
       },
       "eps", 1e-3},
      {"Adam maximize",
       [](std::vector<Tensor> p, bool lp) -> OptPtr {
         return std::make_shared<Adam>(std::move(p), AdamOptions{.lr = 0.02, .maximize = true, .master_weights = lp});
       },
       "weight_decay", 0.3},
  };
}

const std::vector<Shape> kShapes = {{300}, {4, 9}, {1}};

std::vector<Tensor> make_params(DType dt) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < kShapes.size(); ++i)
    out.push_back(test::random_tensor(kShapes[i], DType::float64, 40 + i).to(dt).detach().requires_grad_());
  return out;
}

std::vector<Tensor> copies(const std::vector<Tensor>& p) {
  std::vector<Tensor> out;
  for (const Tensor& t : p) out.push_back(t.detach().clone().requires_grad_());
  return out;
}

/// The same gradients on both lists; tensor 1 gets none on odd steps.
void set_grads(std::vector<Tensor>& a, std::vector<Tensor>& b, DType dt, int step) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (i == 1 && step % 2 == 1) {
      a[i].set_grad(Tensor());
      b[i].set_grad(Tensor());
      continue;
    }
    Tensor g = test::random_tensor(a[i].shape(), DType::float64, 1000 * step + i).to(dt);
    a[i].set_grad(g);
    b[i].set_grad(g.clone());
  }
}

::testing::AssertionResult bitwise_equal(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << shape_str(got.shape()) << " " << got.dtype() << " vs "
                                         << shape_str(want.shape()) << " " << want.dtype();
  auto g = got.detach().to_vector<double>(), w = want.detach().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    if (std::memcmp(&g[i], &w[i], sizeof(double)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << g[i] << " vs " << w[i];
  return ::testing::AssertionSuccess();
}

/// Parameters equal bitwise; state dicts hold the same keys, buffers bitwise, steps equal.
void expect_same(const optim::Optimizer& normal, const optim::Optimizer& cap, const std::vector<Tensor>& a,
                 const std::vector<Tensor>& b, const std::string& what) {
  optim::OptimizerState sa = normal.state_dict(), sb = cap.state_dict();
  ASSERT_EQ(sa.state.size(), sb.state.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(b[i], a[i])) << what << ": parameter " << i;
    const auto key = static_cast<int64_t>(i);
    if (!sa.state.count(key)) continue;
    const auto& ma = sa.state.at(key);
    const auto& mb = sb.state.at(key);
    ASSERT_EQ(ma.size(), mb.size()) << what << ": state keys of parameter " << i;
    for (const auto& [k, t] : ma) {
      ASSERT_TRUE(mb.count(k)) << what << ": " << k;
      if (k == "step") {
        EXPECT_EQ(mb.at(k).dtype(), DType::float64) << what << ": state_dict reports step as float64";
        EXPECT_EQ(mb.at(k).item(), t.item()) << what << ": step of parameter " << i;
      } else {
        EXPECT_TRUE(bitwise_equal(mb.at(k), t)) << what << ": state '" << k << "' of parameter " << i;
      }
    }
  }
}

void run_case(const Case& c, DType dt, bool low_precision) {
  const std::string what = c.name + " " + std::string(dtype_name(dt));
  std::vector<Tensor> a = make_params(dt), b = copies(a);
  OptPtr normal = c.make(a, low_precision), cap = c.make(b, low_precision);
  cap->set_capturable(true);
  EXPECT_TRUE(cap->capturable());
  sched::CosineAnnealingScheduler sa(normal, 6, 1e-3), sb(cap, 6, 1e-3);
  for (int s = 0; s < 8; ++s) {
    if (s == 4) {
      normal->set_option(c.mid_run_key, c.mid_run_value);
      cap->set_option(c.mid_run_key, c.mid_run_value);
    }
    set_grads(a, b, dt, s);
    normal->step();
    cap->step();
    sa.step();
    sb.step();
    expect_same(*normal, *cap, a, b, what + " step " + std::to_string(s));
  }
  // The live counter is a float32 scalar; the mode's off switch brings back a float64 count.
  const bool has_step = cap->state(b[0]).count("step") == 1;
  EXPECT_EQ(has_step, normal->state(a[0]).count("step") == 1) << what;
  if (has_step) {
    EXPECT_EQ(cap->state(b[0]).at("step").dtype(), DType::float32) << what;
  }
  cap->set_capturable(false);
  if (has_step) {
    EXPECT_EQ(cap->state(b[0]).at("step").dtype(), DType::float64) << what;
    EXPECT_EQ(cap->state(b[0]).at("step").item(), 8.0) << what;
  }
  set_grads(a, b, dt, 8);
  normal->step();
  cap->step();
  expect_same(*normal, *cap, a, b, what + " after capturable off");
  cap->set_capturable(true);
  set_grads(a, b, dt, 9);
  normal->step();
  cap->step();
  expect_same(*normal, *cap, a, b, what + " after capturable on again");
}

// Adam / AdamW keep a step for every parameter; SGD only with stochastic rounding.
TEST(Capturable, EqualsNormalModeBitwiseFloat64) {
  for (const Case& c : cases()) run_case(c, DType::float64, false);
}

TEST(Capturable, EqualsNormalModeBitwiseFloat32) {
  for (const Case& c : cases()) run_case(c, DType::float32, false);
}

TEST(Capturable, EqualsNormalModeBitwiseBf16MasterWeightsStochasticRounding) {
  for (const Case& c : cases()) run_case(c, DType::bfloat16, true);
}

TEST(Capturable, LoadsANormalStateAndUploadsExplicitly) {
  const Case c = cases()[4];  // AdamW
  std::vector<Tensor> a = make_params(DType::float32), b = copies(a);
  OptPtr normal = c.make(a, false), cap = c.make(b, false);
  for (int s = 0; s < 3; ++s) {
    set_grads(a, b, DType::float32, s);
    normal->step();
  }
  cap->set_capturable(true);
  cap->load_state_dict(normal->state_dict());
  for (size_t i = 0; i < b.size(); ++i) b[i].detach().copy_(a[i].detach());
  cap->upload_hyperparameters();  // explicit (step() does it too when not capturing)
  for (int s = 3; s < 6; ++s) {
    normal->set_lr(0.01 * s);
    cap->set_lr(0.01 * s);
    set_grads(a, b, DType::float32, s);
    normal->step();
    cap->step();
    expect_same(*normal, *cap, a, b, "AdamW loaded, step " + std::to_string(s));
  }
}

TEST(Capturable, OptimizersWithoutACapturableStepRefuse) {
  std::vector<Tensor> p = make_params(DType::float32);
  optim::RMSprop rms(p);
  optim::Adagrad ada(p);
  test::expect_throws_with([&] { rms.set_capturable(true); }, {"RMSprop", "capturable"});
  test::expect_throws_with([&] { ada.upload_hyperparameters(); }, {"Adagrad", "capturable"});
  EXPECT_FALSE(rms.capturable());
  rms.set_capturable(false);  // a no-op
}

}  // namespace
