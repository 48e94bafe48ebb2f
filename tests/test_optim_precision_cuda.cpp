// nn/optim low precision and capturable steps on CUDA (ctest label gpu) against the CPU
// twin: CUDA and CPU optimizers run the same steps from the same values and gradients.
// - Master weights (float16 / bfloat16 with float32 masters; AdamW, Adam with amsgrad
//   and L2, SGD with Nesterov momentum): parameters, masters and moments bit for bit
//   (the kernels round every operation like the CPU twin).
// - Stochastic rounding of bfloat16 (with and without masters): bit for bit, since the
//   Philox stream is keyed by (seed, parameter index, step, element index).
// - Capturable mode (lr from a cosine schedule every step, hyperparameters and step
//   counters in device memory) against the CPU's normal mode: close (the device
//   computes the bias corrections with its own pow), steps equal; also 300 tensors,
//   past the step-counter and chunk tables of one launch.
// Every test skips cleanly where no CUDA device is present.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/zae.h"
#include "nn/optim/adam.h"
#include "nn/optim/sgd.h"
#include "nn/sched/cosine.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using OptPtr = std::shared_ptr<optim::Optimizer>;

struct Case {
  std::string name;
  std::function<OptPtr(std::vector<Tensor>, bool master, bool sr)> make;
};

std::vector<Case> cases() {
  using namespace optim;
  return {
      {"AdamW",
       [](std::vector<Tensor> p, bool m, bool sr) -> OptPtr {
         return std::make_shared<AdamW>(std::move(p), AdamWOptions{.lr = 1e-2,
                                                                   .beta2 = 0.95,
                                                                   .weight_decay = 0.1,
                                                                   .master_weights = m,
                                                                   .stochastic_rounding = sr,
                                                                   .seed = 1234});
       }},
      {"Adam amsgrad L2",
       [](std::vector<Tensor> p, bool m, bool sr) -> OptPtr {
         return std::make_shared<Adam>(std::move(p), AdamOptions{.lr = 1e-2,
                                                                 .beta1 = 0.8,
                                                                 .weight_decay = 0.05,
                                                                 .amsgrad = true,
                                                                 .master_weights = m,
                                                                 .stochastic_rounding = sr,
                                                                 .seed = 1234});
       }},
      {"SGD nesterov",
       [](std::vector<Tensor> p, bool m, bool sr) -> OptPtr {
         return std::make_shared<SGD>(std::move(p), SGDOptions{.lr = 0.05,
                                                               .momentum = 0.9,
                                                               .weight_decay = 0.01,
                                                               .nesterov = true,
                                                               .master_weights = m,
                                                               .stochastic_rounding = sr,
                                                               .seed = 1234});
       }},
  };
}

// Sizes off the vector width, a tensor over two chunks (32768 elements each).
const std::vector<Shape> kShapes = {{1}, {7}, {1023}, {33, 31}, {(1 << 16) + 5}};

struct Twins {
  std::vector<Tensor> cpu, dev;
};

Twins make_params(const std::vector<Shape>& shapes, DType dt, uint64_t seed) {
  Twins t;
  for (size_t i = 0; i < shapes.size(); ++i) {
    test::LeafPair p = test::random_leaf_pair(shapes[i], dt, seed + i);
    t.cpu.push_back(p.cpu);
    t.dev.push_back(p.cuda);
  }
  return t;
}

void set_grads(Twins& t, DType dt, uint64_t seed) {
  for (size_t i = 0; i < t.cpu.size(); ++i) {
    Tensor g = test::random_tensor(t.cpu[i].shape(), DType::float64, seed * 1000 + i).to(dt);
    t.cpu[i].set_grad(g);
    t.dev[i].set_grad(g.to(Device::cuda()));
  }
}

/// Parameters (rtol_param) and every state buffer (rtol_state; "step" exactly) agree.
void expect_same(const optim::Optimizer& cpu_opt, const optim::Optimizer& dev_opt, const Twins& t,
                 double rtol_param, double rtol_state, const std::string& what) {
  for (size_t i = 0; i < t.cpu.size(); ++i) {
    EXPECT_TRUE(test::cuda_matches_cpu(t.dev[i].detach(), t.cpu[i].detach(), rtol_param))
        << what << ": parameter " << i;
    const auto& sc = cpu_opt.state(t.cpu[i]);
    const auto& sd = dev_opt.state(t.dev[i]);
    ASSERT_EQ(sc.size(), sd.size()) << what << ": state keys of parameter " << i;
    for (const auto& [key, want] : sc) {
      ASSERT_TRUE(sd.count(key)) << what << ": CUDA state lacks '" << key << "'";
      if (key == "step") {
        EXPECT_EQ(sd.at(key).item(), want.item()) << what << ": step of parameter " << i;
        continue;
      }
      EXPECT_TRUE(test::cuda_matches_cpu(sd.at(key), want, rtol_state))
          << what << ": state '" << key << "' of parameter " << i;
    }
  }
}

void run_bitwise(const Case& c, DType dt, bool master, bool sr) {
  const std::string what = c.name + " " + std::string(dtype_name(dt)) + (master ? " master" : "") + (sr ? " sr" : "");
  Twins t = make_params(kShapes, dt, 17);
  OptPtr cpu_opt = c.make(t.cpu, master, sr), dev_opt = c.make(t.dev, master, sr);
  for (int s = 0; s < 5; ++s) {
    set_grads(t, dt, static_cast<uint64_t>(s + 1));
    cpu_opt->step();
    dev_opt->step();
  }
  expect_same(*cpu_opt, *dev_opt, t, 0.0, 0.0, what);
  if (master) {
    EXPECT_EQ(dev_opt->state(t.dev[0]).at("master").device(), t.dev[0].device()) << what;
  }
}

TEST(OptimPrecisionCuda, MasterWeightsMatchTheCpuTwinBitwise) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const Case& c : cases())
    for (DType dt : {DType::bfloat16, DType::float16}) run_bitwise(c, dt, true, false);
}

TEST(OptimPrecisionCuda, StochasticRoundingMatchesTheCpuTwinBitwise) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const Case& c : cases())
    for (bool master : {false, true}) run_bitwise(c, DType::bfloat16, master, true);
}

void run_capturable(const Case& c, DType dt, bool low_precision, const std::vector<Shape>& shapes) {
  const std::string what = c.name + " capturable " + std::string(dtype_name(dt));
  Twins t = make_params(shapes, dt, 29);
  OptPtr cpu_opt = c.make(t.cpu, low_precision, low_precision);
  OptPtr dev_opt = c.make(t.dev, low_precision, low_precision);
  dev_opt->set_capturable(true);
  sched::CosineAnnealingScheduler sc(cpu_opt, 5, 1e-3), sd(dev_opt, 5, 1e-3);
  for (int s = 0; s < 6; ++s) {
    set_grads(t, dt, static_cast<uint64_t>(s + 1));
    cpu_opt->step();
    dev_opt->step();
    sc.step();
    sd.step();
  }
  // Masters and moments within float32 rounding; bf16 parameters within a bf16 ulp
  // (a last-bit difference of a master can move a rounding decision).
  expect_same(*cpu_opt, *dev_opt, t, dt == DType::bfloat16 ? 1e-2 : 1e-6, 1e-5, what);
  optim::OptimizerState st = dev_opt->state_dict();
  if (st.state.count(0) && st.state.at(0).count("step")) {
    EXPECT_EQ(st.state.at(0).at("step").item(), 6.0) << what;
    EXPECT_TRUE(st.state.at(0).at("step").device().is_cpu()) << what;
  }
}

TEST(OptimPrecisionCuda, CapturableMatchesTheCpuNormalMode) {
  ZAE_SKIP_WITHOUT_CUDA();
  for (const Case& c : cases()) {
    run_capturable(c, DType::float32, false, kShapes);
    run_capturable(c, DType::bfloat16, true, kShapes);
  }
}

TEST(OptimPrecisionCuda, CapturableWithManyTensors) {
  ZAE_SKIP_WITHOUT_CUDA();
  std::vector<Shape> shapes;
  for (int i = 0; i < 300; ++i) shapes.push_back({1 + (i * 37) % 200});
  for (const Case& c : cases()) run_capturable(c, DType::bfloat16, true, shapes);
}

}  // namespace
