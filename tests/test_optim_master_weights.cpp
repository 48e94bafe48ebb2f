// nn/optim low precision on the CPU: float32 master weights for float16 / bfloat16
// parameters (options "master_weights") and stochastic rounding of bfloat16 writes
// ("stochastic_rounding", "seed").
// Master weights: tiny updates that plain bf16 Adam loses move the parameter; a 16-bit
// run with masters equals, bit for bit after every step, a float32 run of the same
// optimizer on the same (widened) gradients, its master being the float32 parameter and
// its parameter that value rounded to nearest even; "master" round-trips through
// state_dict / load_state_dict (shape checked); float32 parameters ignore the option.
// Stochastic rounding: every written value is one of the two bf16 neighbours of the
// float32 result (the float32 run's value), the mean over many draws is within a few
// sigma of it, tiny updates that round to nearest loses accumulate on average, and a
// seed reproduces a run bit for bit and another seed does not.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/zae.h"
#include "nn/optim/adam.h"
#include "nn/optim/sgd.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using OptPtr = std::unique_ptr<optim::Optimizer>;

/// Makes an optimizer over `params`; `lp` adds master weights / stochastic rounding.
struct Config {
  std::string name;
  std::function<OptPtr(std::vector<Tensor>, bool master, bool sr, double seed)> make;
};

std::vector<Config> configs() {
  using namespace optim;
  return {
      {"AdamW",
       [](std::vector<Tensor> p, bool m, bool sr, double seed) -> OptPtr {
         return std::make_unique<AdamW>(std::move(p), AdamWOptions{.lr = 1e-2,
                                                                   .beta2 = 0.95,
                                                                   .weight_decay = 0.1,
                                                                   .master_weights = m,
                                                                   .stochastic_rounding = sr,
                                                                   .seed = seed});
       }},
      {"Adam amsgrad L2",
       [](std::vector<Tensor> p, bool m, bool sr, double seed) -> OptPtr {
         return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 1e-2,
                                                                 .beta1 = 0.8,
                                                                 .weight_decay = 0.05,
                                                                 .amsgrad = true,
                                                                 .master_weights = m,
                                                                 .stochastic_rounding = sr,
                                                                 .seed = seed});
       }},
      {"SGD nesterov",
       [](std::vector<Tensor> p, bool m, bool sr, double seed) -> OptPtr {
         return std::make_unique<SGD>(std::move(p), SGDOptions{.lr = 0.05,
                                                               .momentum = 0.9,
                                                               .weight_decay = 0.01,
                                                               .nesterov = true,
                                                               .master_weights = m,
                                                               .stochastic_rounding = sr,
                                                               .seed = seed});
       }},
  };
}

const std::vector<Shape> kShapes = {{300}, {5, 7}, {1}, {1030}};

std::vector<Tensor> make_params(DType dt, uint64_t seed) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < kShapes.size(); ++i)
    out.push_back(test::random_tensor(kShapes[i], DType::float64, seed + i).to(dt).detach().requires_grad_());
  return out;
}

/// Float32 leaves with the values of `lp` (exact).
std::vector<Tensor> widened(const std::vector<Tensor>& lp) {
  std::vector<Tensor> out;
  for (const Tensor& t : lp) out.push_back(t.detach().to(DType::float32).clone().requires_grad_());
  return out;
}

/// The same random gradient (rounded to `dt`) on every tensor of each list.
void set_grads(const std::vector<std::vector<Tensor>*>& lists, DType dt, uint64_t seed) {
  for (size_t i = 0; i < lists.front()->size(); ++i) {
    Tensor g = test::random_tensor((*lists.front())[i].shape(), DType::float64, seed * 100 + i).to(dt);
    for (auto* l : lists) {
      Tensor p = (*l)[i];
      p.set_grad(g.to(p.dtype()));
    }
  }
}

std::vector<double> values(const Tensor& t) { return t.detach().to_vector<double>(); }

/// Bitwise equality of two tensors' values (all compared as doubles, exact widening).
::testing::AssertionResult same_values(const Tensor& got, const Tensor& want) {
  auto g = values(got), w = values(want);
  if (g.size() != w.size()) return ::testing::AssertionFailure() << "sizes " << g.size() << " vs " << w.size();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i)
    if (std::memcmp(&g[i], &w[i], sizeof(double)) != 0 && bad++ == 0) first = static_cast<int64_t>(i);
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << g.size() << " differ; first at " << first << ": "
                                       << g[first] << " vs " << w[first];
}

/// The two bfloat16 neighbours of float x (equal when x is a bfloat16 value).
std::pair<double, double> bf16_neighbours(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
  float a, b;
  std::memcpy(&a, &lo, 4);
  std::memcpy(&b, &hi, 4);
  if ((u & 0xffffu) == 0) b = a;
  return {a, b};
}

// ---------------------------------------------------------------------------------
// Master weights

TEST(MasterWeights, TinyUpdatesThatPlainBf16LosesMoveTheParameter) {
  // Adam moves about lr per step; 1e-3 is below half the bf16 spacing under 1.0 (2^-9),
  // so plain bf16 rounds every update away.
  for (bool master : {false, true}) {
    Tensor p = tensor({1.0, -1.0, 0.75}, {3}, {.dtype = DType::bfloat16}).requires_grad_();
    optim::AdamW opt(std::vector<Tensor>{p}, {.lr = 1e-3, .weight_decay = 0.0, .master_weights = master});
    for (int s = 0; s < 10; ++s) {
      p.set_grad(tensor({1.0, -1.0, 1.0}, {3}, {.dtype = DType::bfloat16}));
      opt.step();
    }
    const auto v = values(p);
    if (!master) {
      EXPECT_EQ(v, (std::vector<double>{1.0, -1.0, 0.75})) << "plain bf16 keeps losing the updates";
      EXPECT_EQ(opt.state(p).count("master"), 0u);
    } else {
      EXPECT_LT(v[0], 1.0);
      EXPECT_GT(v[1], -1.0);
      EXPECT_LT(v[2], 0.75);
      ASSERT_EQ(opt.state(p).count("master"), 1u);
      const Tensor& m = opt.state(p).at("master");
      EXPECT_EQ(m.dtype(), DType::float32);
      EXPECT_EQ(m.shape(), p.shape());
      EXPECT_NEAR(values(m)[0], 1.0 - 10e-3, 1e-4);  // ten steps of ~lr
      EXPECT_TRUE(same_values(p, m.to(DType::bfloat16)));
    }
  }
}

TEST(MasterWeights, EqualsFloat32RunRoundedAfterEveryStep) {
  for (const Config& c : configs())
    for (DType dt : {DType::bfloat16, DType::float16}) {
      SCOPED_TRACE(c.name + " " + std::string(dtype_name(dt)));
      std::vector<Tensor> lp = make_params(dt, 3), ref = widened(lp), plain = make_params(dt, 3);
      OptPtr o_lp = c.make(lp, true, false, -1);
      OptPtr o_ref = c.make(ref, false, false, -1);
      OptPtr o_plain = c.make(plain, false, false, -1);
      bool plain_differs = false;
      for (int s = 0; s < 6; ++s) {
        set_grads({&lp, &ref, &plain}, dt, static_cast<uint64_t>(s + 1));
        o_lp->step();
        o_ref->step();
        o_plain->step();
        for (size_t i = 0; i < lp.size(); ++i) {
          EXPECT_TRUE(same_values(o_lp->state(lp[i]).at("master"), ref[i])) << "step " << s << " tensor " << i;
          EXPECT_TRUE(same_values(lp[i], ref[i].detach().to(dt))) << "step " << s << " tensor " << i;
          plain_differs |= !same_values(plain[i], ref[i].detach().to(dt));
        }
      }
      EXPECT_TRUE(plain_differs) << "without masters the 16-bit run should drift from the rounded float32 run";
    }
}

TEST(MasterWeights, Float32ParametersIgnoreTheOption) {
  std::vector<Tensor> a = widened(make_params(DType::bfloat16, 5)), b = widened(a);
  OptPtr oa = configs()[0].make(a, true, true, 3), ob = configs()[0].make(b, false, false, -1);
  for (int s = 0; s < 3; ++s) {
    set_grads({&a, &b}, DType::float32, static_cast<uint64_t>(s + 1));
    oa->step();
    ob->step();
  }
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(same_values(a[i], b[i]));
    EXPECT_EQ(oa->state(a[i]).count("master"), 0u);
  }
}

TEST(MasterWeights, StateDictRoundTripAndShapeCheck) {
  for (const Config& c : configs()) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> a = make_params(DType::bfloat16, 7);
    OptPtr oa = c.make(a, true, false, -1);
    for (int s = 0; s < 3; ++s) {
      set_grads({&a}, DType::bfloat16, static_cast<uint64_t>(s + 1));
      oa->step();
    }
    optim::OptimizerState sd = oa->state_dict();
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(sd.state.at(static_cast<int64_t>(i)).count("master"), 1u);
      EXPECT_EQ(sd.state.at(static_cast<int64_t>(i)).at("master").dtype(), DType::float32);
    }
    // A copy of the parameters whose values lost the masters' precision: loading the
    // state brings the masters back, so both runs continue identically.
    std::vector<Tensor> b;
    for (const Tensor& t : a) b.push_back(t.detach().clone().requires_grad_());
    OptPtr ob = c.make(b, true, false, -1);
    ob->load_state_dict(sd);
    for (int s = 3; s < 6; ++s) {
      set_grads({&a, &b}, DType::bfloat16, static_cast<uint64_t>(s + 1));
      oa->step();
      ob->step();
    }
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(same_values(a[i], b[i])) << "tensor " << i;
      EXPECT_TRUE(same_values(oa->state(a[i]).at("master"), ob->state(b[i]).at("master"))) << "tensor " << i;
    }
    // A master of the wrong shape is rejected, naming the buffer and both shapes.
    optim::OptimizerState bad = oa->state_dict();
    bad.state.at(1).at("master") = zeros({7, 5}, {.dtype = DType::float32});
    OptPtr oc = c.make(make_params(DType::bfloat16, 7), true, false, -1);
    test::expect_throws_with([&] { oc->load_state_dict(bad); }, {"master", "[7, 5]", "[5, 7]"});
  }
}

TEST(MasterWeights, TurningTheOptionOffDropsTheMaster) {
  std::vector<Tensor> a = make_params(DType::bfloat16, 9);
  optim::AdamW opt(a, {.lr = 1e-2, .master_weights = true});
  set_grads({&a}, DType::bfloat16, 1);
  opt.step();
  EXPECT_EQ(opt.state(a[0]).count("master"), 1u);
  opt.set_option("master_weights", 0.0);
  opt.step();
  EXPECT_EQ(opt.state(a[0]).count("master"), 0u);
}

TEST(MasterWeights, BadOptionValues) {
  std::vector<Tensor> a = make_params(DType::bfloat16, 1);
  test::expect_throws_with([&] { optim::AdamW bad(a, {.master_weights = false, .seed = -2}); },
                           {"AdamW", "seed", "-2"});
  test::expect_throws_with([&] { optim::SGD bad(a, {.seed = 1.5}); }, {"SGD", "seed", "1.5"});
  optim::Adam opt(a);
  test::expect_throws_with([&] { opt.set_option("master_weights", 2.0); }, {"Adam", "master_weights", "2"});
  test::expect_throws_with([&] { opt.set_option("stochastic_rounding", 0.5); }, {"stochastic_rounding", "0.5"});
}

// ---------------------------------------------------------------------------------
// Stochastic rounding

/// Runs `steps` SR steps of config c on bf16 params (seed `seed`), with or without
/// masters, from fixed values and gradients; returns the parameters' values per step.
std::vector<std::vector<double>> sr_run(const Config& c, bool master, double seed, int steps = 3) {
  std::vector<Tensor> p = make_params(DType::bfloat16, 21);
  OptPtr o = c.make(p, master, true, seed);
  std::vector<std::vector<double>> out;
  for (int s = 0; s < steps; ++s) {
    set_grads({&p}, DType::bfloat16, static_cast<uint64_t>(s + 1));
    o->step();
    std::vector<double> all;
    for (const Tensor& t : p) {
      auto v = values(t);
      all.insert(all.end(), v.begin(), v.end());
    }
    out.push_back(std::move(all));
  }
  return out;
}

TEST(StochasticRounding, WritesANeighbourOfTheFloat32ResultAndMasterIsExact) {
  for (const Config& c : configs()) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> lp = make_params(DType::bfloat16, 3), ref = widened(lp);
    OptPtr o_lp = c.make(lp, true, true, 12345);
    OptPtr o_ref = c.make(ref, false, false, -1);
    int64_t up = 0, down = 0;
    for (int s = 0; s < 4; ++s) {
      set_grads({&lp, &ref}, DType::bfloat16, static_cast<uint64_t>(s + 1));
      o_lp->step();
      o_ref->step();
      for (size_t i = 0; i < lp.size(); ++i) {
        EXPECT_TRUE(same_values(o_lp->state(lp[i]).at("master"), ref[i]));
        const auto got = values(lp[i]);
        const auto want = ref[i].detach().to_vector<float>();
        for (size_t k = 0; k < got.size(); ++k) {
          auto [a, b] = bf16_neighbours(want[k]);
          ASSERT_TRUE(got[k] == a || got[k] == b) << "element " << k << " = " << got[k] << " for " << want[k];
          if (a != b) (got[k] == a ? down : up)++;
        }
      }
    }
    EXPECT_GT(up, 0);  // both neighbours occur
    EXPECT_GT(down, 0);
  }
}

TEST(StochasticRounding, IsUnbiased) {
  // One SGD step from the same bf16 values, repeated: each repetition is a new step
  // count, so a new draw. Per element the result is x (the float32 value) rounded
  // down to a or up to b = a + ulp with P(b) = (x - a) / ulp.
  constexpr int64_t kN = 512;
  constexpr int kTrials = 400;
  Tensor p0 = test::random_tensor({kN}, DType::float64, 77).to(DType::bfloat16);
  Tensor g = test::random_tensor({kN}, DType::float64, 78).to(DType::bfloat16);
  Tensor ref = p0.to(DType::float32).requires_grad_();
  optim::SGD ref_opt(std::vector<Tensor>{ref}, {.lr = 3e-3});
  ref.set_grad(g.to(DType::float32));
  ref_opt.step();
  const std::vector<float> x = ref.detach().to_vector<float>();

  Tensor p = p0.clone().requires_grad_();
  optim::SGD opt(std::vector<Tensor>{p}, {.lr = 3e-3, .stochastic_rounding = true, .seed = 99});
  std::vector<double> sum(kN, 0.0);
  for (int t = 0; t < kTrials; ++t) {
    p.detach().copy_(p0);
    p.set_grad(g);
    opt.step();
    const auto v = values(p);
    for (int64_t i = 0; i < kN; ++i) sum[i] += v[i];
  }
  EXPECT_EQ(opt.state(p).at("step").item(), kTrials);
  double z_total = 0.0;
  int64_t inexact = 0;
  for (int64_t i = 0; i < kN; ++i) {
    auto [a, b] = bf16_neighbours(x[i]);
    if (a == b) {
      EXPECT_EQ(sum[i], a * kTrials);
      continue;
    }
    ++inexact;
    const double ulp = b - a, q = (x[i] - a) / ulp;  // P(up)
    const double sigma = std::abs(ulp) * std::sqrt(q * (1 - q) / kTrials) + 1e-30;
    const double z = (sum[i] / kTrials - x[i]) / sigma;
    EXPECT_LT(std::abs(z), 5.5) << "element " << i << ": mean " << sum[i] / kTrials << " vs " << x[i];
    z_total += z;
  }
  ASSERT_GT(inexact, kN / 2);
  EXPECT_LT(std::abs(z_total / std::sqrt(static_cast<double>(inexact))), 4.0) << "biased overall";
}

TEST(StochasticRounding, TinyUpdatesAccumulateOnAverageWithoutMasters) {
  // 20 SGD steps of -1e-3 from 1.0: round to nearest loses every one (1.0 stays), while
  // stochastic rounding is a martingale around the exact path, so the mean over many
  // elements ends near 0.98 (per element sigma <= sqrt(20) * 2^-8 / 2, of the mean /64).
  constexpr int64_t kN = 4096;
  for (bool sr : {false, true}) {
    Tensor p = full({kN}, 1.0, {.dtype = DType::bfloat16}).requires_grad_();
    optim::SGD opt(std::vector<Tensor>{p}, {.lr = 1e-3, .stochastic_rounding = sr, .seed = 5});
    for (int s = 0; s < 20; ++s) {
      p.set_grad(full({kN}, 1.0, {.dtype = DType::bfloat16}));
      opt.step();
    }
    double mean = 0;
    for (double v : values(p)) mean += v / kN;
    if (sr)
      EXPECT_NEAR(mean, 1.0 - 20e-3, 5 * std::sqrt(20.0) * 0.00390625 / 2 / 64);
    else
      EXPECT_EQ(mean, 1.0);
  }
}

TEST(StochasticRounding, SeedReproducesAndOtherSeedsDiffer) {
  const Config c = configs()[0];
  for (bool master : {false, true}) {
    SCOPED_TRACE(master ? "with masters" : "without masters");
    auto a = sr_run(c, master, 42), b = sr_run(c, master, 42), d = sr_run(c, master, 43);
    EXPECT_EQ(a, b);
    EXPECT_NE(a.back(), d.back());
    // seed -1 takes the default generator's seed at the step.
    manual_seed(42);
    EXPECT_EQ(sr_run(c, master, -1), a);
    manual_seed(0x5eed);
  }
}

TEST(StochasticRounding, Float16IgnoresIt) {
  const Config c = configs()[0];
  std::vector<Tensor> a = make_params(DType::float16, 4), b = make_params(DType::float16, 4);
  OptPtr oa = c.make(a, true, true, 5), ob = c.make(b, true, false, 5);
  for (int s = 0; s < 3; ++s) {
    set_grads({&a, &b}, DType::float16, static_cast<uint64_t>(s + 1));
    oa->step();
    ob->step();
  }
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_values(a[i], b[i]));
}

}  // namespace
