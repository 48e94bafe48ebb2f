// ZeroRedundancyOptimizer (ZeRO-1) over Gloo, ranks as threads of this process: with the
// same (already averaged) gradients on every rank, parameters after several steps equal
// a plain optimizer's over all parameters bitwise, with a scheduler driving the lr; each
// rank holds state only for its shard and the shards partition the parameters; the
// consolidated state dict equals the plain optimizer's; loading it (also into another
// world size) and continuing equals the uninterrupted run; mismatched parameter lists
// and state_dict() without consolidation are clear errors (no hang).
#include "dist/zero_optimizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "engine/error.h"
#include "nn/optim/adam.h"
#include "nn/optim/sgd.h"
#include "nn/sched/cosine.h"
#include "tests/dist/ddp_test_util.h"
#include "tests/support/test_util.h"

namespace zae::dist {
namespace {

using namespace ddp_test;
using optim::OptimizerState;

const std::vector<Shape> kShapes = {{24, 16}, {16}, {8, 24}, {8}, {7, 5}, {3}, {1}, {40}};
constexpr int kSteps = 4;
constexpr int kTotalIters = 10;  // of the cosine schedule

/// The parameters (float32, the last one float64 to exercise per-dtype buckets), the
/// same values for every call.
std::vector<Tensor> make_params() {
  std::vector<Tensor> out;
  for (size_t i = 0; i < kShapes.size(); ++i) {
    const DType d = i + 1 == kShapes.size() ? DType::float64 : DType::float32;
    out.push_back(test::random_tensor(kShapes[i], d, 50 + i).requires_grad_());
  }
  return out;
}

/// The averaged gradients of step s (identical on every rank).
void set_grads(const std::vector<Tensor>& params, int s) {
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor h = params[i];
    h.set_grad(test::random_tensor(params[i].shape(), params[i].dtype(), 1000 + 31 * s + i));
  }
}

optim::AdamWOptions adamw_options() { return {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .weight_decay = 0.1}; }

std::vector<Tensor> snapshot(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.push_back(p.detach().clone());
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.dtype() == cb.dtype() && ca.shape() == cb.shape() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

::testing::AssertionResult same_state(const OptimizerState& got, const OptimizerState& want) {
  if (got.groups.size() != want.groups.size()) return ::testing::AssertionFailure() << "group counts differ";
  for (size_t g = 0; g < got.groups.size(); ++g) {
    if (got.groups[g].params != want.groups[g].params)
      return ::testing::AssertionFailure() << "group " << g << " indices differ";
    if (got.groups[g].options != want.groups[g].options)
      return ::testing::AssertionFailure() << "group " << g << " options differ";
  }
  if (got.state.size() != want.state.size())
    return ::testing::AssertionFailure() << got.state.size() << " states vs " << want.state.size();
  for (const auto& [idx, buffers] : want.state) {
    auto it = got.state.find(idx);
    if (it == got.state.end()) return ::testing::AssertionFailure() << "no state for parameter " << idx;
    if (it->second.size() != buffers.size()) return ::testing::AssertionFailure() << "keys differ at " << idx;
    for (const auto& [key, t] : buffers) {
      auto b = it->second.find(key);
      if (b == it->second.end()) return ::testing::AssertionFailure() << "no '" << key << "' at " << idx;
      if (!same_bits(b->second, t))
        return ::testing::AssertionFailure() << "'" << key << "' of parameter " << idx << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

/// A plain AdamW + cosine schedule over make_params(), `steps` steps from the start.
struct Reference {
  std::vector<Tensor> params = make_params();
  std::shared_ptr<optim::AdamW> opt = std::make_shared<optim::AdamW>(params, adamw_options());
  sched::CosineAnnealingScheduler sched{opt, kTotalIters, 1e-3};
  void run(int from, int to) {
    for (int s = from; s < to; ++s) {
      set_grads(params, s);
      opt->step();
      sched.step();
    }
  }
};

std::shared_ptr<ZeroRedundancyOptimizer> make_zero(const std::vector<Tensor>& params,
                                                   std::shared_ptr<ProcessGroup> group, double bucket_cap_mb = 25) {
  return std::make_shared<ZeroRedundancyOptimizer>(params, optimizer_factory<optim::AdamW>(adamw_options()),
                                                   std::move(group), ZeroOptions{.bucket_cap_mb = bucket_cap_mb});
}

struct WorldCase {
  int world;
  double bucket_cap_mb;
};

void PrintTo(const WorldCase& c, std::ostream* os) { *os << "world " << c.world << ", bucket cap " << c.bucket_cap_mb << " MiB"; }

class ZeroWorld : public ::testing::TestWithParam<WorldCase> {};

TEST_P(ZeroWorld, StepsEqualPlainAdamWAndStateIsSharded) {
  const int world = GetParam().world;
  Reference ref;
  ref.run(0, kSteps);
  std::vector<std::vector<Tensor>> got(world);
  std::vector<std::vector<int>> owners(world);
  std::vector<std::vector<size_t>> local(world);
  run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto params = make_params();
    auto zero = make_zero(params, group, GetParam().bucket_cap_mb);
    EXPECT_EQ(zero->name(), "AdamW");
    sched::CosineAnnealingScheduler sched(zero, kTotalIters, 1e-3);
    for (int s = 0; s < kSteps; ++s) {
      set_grads(params, s);
      zero->step();
      if (zero->local_optimizer()) {
        EXPECT_EQ(zero->local_optimizer()->lr(), zero->lr()) << "step " << s;
      }
      sched.step();
      zero->zero_grad();
      for (const Tensor& p : params) EXPECT_FALSE(p.grad().defined());
    }
    // The lr the scheduler set last reaches the inner optimizer at the next step.
    EXPECT_EQ(zero->lr(), ref.opt->lr());
    got[rank] = snapshot(params);
    owners[rank] = zero->owners();
    local[rank] = zero->local_indices();
    // State only for the owned parameters, and exactly a plain AdamW's state for them.
    int64_t state_numel = 0, owned_numel = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      const auto& st = zero->local_state(params[i]);
      const bool owned = zero->owners()[i] == rank;
      EXPECT_EQ(st.empty(), !owned) << "parameter " << i << " on rank " << rank;
      EXPECT_TRUE(zero->state(params[i]).empty());  // the outer optimizer keeps none
      for (const auto& [key, t] : st)
        if (key != "step") state_numel += t.numel();
      if (owned) {
        owned_numel += params[i].numel();
        EXPECT_TRUE(same_bits(st.at("exp_avg"), ref.opt->state(ref.params[i]).at("exp_avg")));
      }
    }
    EXPECT_EQ(state_numel, 2 * owned_numel) << "rank " << rank;
  });
  int64_t total = 0;
  for (const Tensor& p : ref.params) total += p.numel();
  std::vector<int64_t> load(world, 0);
  std::set<size_t> covered;
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(got[r].size(), ref.params.size()) << "rank " << r;
    for (size_t i = 0; i < ref.params.size(); ++i)
      EXPECT_TRUE(same_bits(got[r][i], ref.params[i])) << "parameter " << i << " on rank " << r;
    EXPECT_EQ(owners[r], owners[0]) << "the partition must be the same on every rank";
    for (size_t i : local[r]) {
      EXPECT_EQ(owners[0][i], r);
      EXPECT_TRUE(covered.insert(i).second) << "parameter " << i << " owned twice";
      load[r] += ref.params[i].numel();
    }
  }
  EXPECT_EQ(covered.size(), ref.params.size()) << "the shards must cover every parameter";
  // Greedy balance: no rank holds more than an even share plus the largest parameter.
  for (int r = 0; r < world; ++r) {
    EXPECT_GT(load[r], 0);
    EXPECT_LE(load[r], total / world + 24 * 16) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, ZeroWorld,
                         ::testing::Values(WorldCase{2, 25.0}, WorldCase{3, 25.0}, WorldCase{3, 1e-4}),
                         [](const auto& info) {
                           return "world" + std::to_string(info.param.world) +
                                  (info.param.bucket_cap_mb < 1 ? "_tiny_buckets" : "");
                         });

TEST(ZeroRedundancyOptimizer, ConsolidatedStateEqualsThePlainStateDict) {
  for (int world : {2, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    Reference ref;
    ref.run(0, kSteps);
    const OptimizerState want = ref.opt->state_dict();
    const int to = world - 1;
    run_world(world, [&](int rank, std::shared_ptr<ProcessGroup> group) {
      auto params = make_params();
      auto zero = make_zero(params, group);
      sched::CosineAnnealingScheduler sched(zero, kTotalIters, 1e-3);
      for (int s = 0; s < kSteps; ++s) {
        set_grads(params, s);
        zero->step();
        sched.step();
      }
      try {
        zero->state_dict();
        ADD_FAILURE() << "state_dict() before consolidate_state_dict must fail";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("consolidate_state_dict"), std::string::npos) << e.what();
      }
      zero->consolidate_state_dict(to);
      EXPECT_EQ(zero->consolidated_to(), to);
      if (rank == to) {
        EXPECT_TRUE(same_state(zero->state_dict(), want));
      } else {
        try {
          zero->state_dict();
          ADD_FAILURE() << "state_dict() on rank " << rank << " must fail";
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("consolidated on rank " + std::to_string(to)), std::string::npos)
              << e.what();
        }
      }
      set_grads(params, kSteps);
      zero->step();  // makes the consolidated copy stale
      EXPECT_THROW(zero->state_dict(), Error);
    });
  }
}

TEST(ZeroRedundancyOptimizer, LoadStateDictThenContinueEqualsUninterrupted) {
  constexpr int kFirst = 3, kAll = 6;
  Reference ref;
  ref.run(0, kAll);
  // Train kFirst steps on 2 ranks and consolidate; resume on 3 ranks (re-sharded).
  OptimizerState saved;
  std::vector<Tensor> saved_params;
  double saved_lr = 0;
  run_world(2, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto params = make_params();
    auto zero = make_zero(params, group);
    sched::CosineAnnealingScheduler sched(zero, kTotalIters, 1e-3);
    for (int s = 0; s < kFirst; ++s) {
      set_grads(params, s);
      zero->step();
      sched.step();
    }
    zero->consolidate_state_dict(0);
    if (rank == 0) {
      saved = zero->state_dict();
      saved_params = snapshot(params);
      saved_lr = zero->lr();
    }
  });
  ASSERT_EQ(saved_params.size(), kShapes.size());
  std::vector<std::vector<Tensor>> got(3);
  run_world(3, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    std::vector<Tensor> params;
    for (const Tensor& p : saved_params) params.push_back(p.clone().requires_grad_());
    auto zero = make_zero(params, group);
    sched::CosineAnnealingScheduler sched(zero, kTotalIters, 1e-3);
    zero->load_state_dict(saved);
    EXPECT_EQ(zero->lr(), saved_lr);
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_EQ(zero->local_state(params[i]).empty(), zero->owners()[i] != rank) << "parameter " << i;
    // The scheduler resumes where it was (the Trainer restores its state the same way).
    for (int s = 0; s < kFirst; ++s) sched.step();
    zero->set_lr(saved_lr);
    for (int s = kFirst; s < kAll; ++s) {
      set_grads(params, s);
      zero->step();
      sched.step();
    }
    got[rank] = snapshot(params);
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(got[r].size(), ref.params.size()) << "rank " << r;
    for (size_t i = 0; i < ref.params.size(); ++i)
      EXPECT_TRUE(same_bits(got[r][i], ref.params[i])) << "parameter " << i << " on rank " << r;
  }
}

TEST(ZeroRedundancyOptimizer, SgdWithTwoGroupsMatchesPlainSgd) {
  auto groups_of = [](const std::vector<Tensor>& p) {
    return std::vector<optim::ParamGroup>{{{p[0], p[1], p[2]}, {{"lr", 0.05}}}, {{p[3], p[4], p[5], p[6], p[7]}, {}}};
  };
  const optim::SGDOptions sgd{.lr = 0.1, .momentum = 0.9, .dampening = 0.0, .weight_decay = 1e-3, .nesterov = true};
  auto ref_params = make_params();
  optim::SGD ref(groups_of(ref_params), sgd);
  auto relax = [](optim::Optimizer& o) {  // nesterov off, dampening on: valid only in this order
    o.set_option("nesterov", 0.0, 1);
    o.set_option("dampening", 0.5, 1);
  };
  for (int s = 0; s < kSteps; ++s) {
    if (s == 2) relax(ref);
    set_grads(ref_params, s);
    ref.step();
  }
  run_world(3, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto params = make_params();
    ZeroRedundancyOptimizer zero(groups_of(params), optimizer_factory<optim::SGD>(sgd), group);
    EXPECT_EQ(zero.num_groups(), 2u);
    EXPECT_EQ(zero.lr(0), 0.05);
    EXPECT_EQ(zero.lr(1), 0.1);
    for (int s = 0; s < kSteps; ++s) {
      // Options that depend on each other reach the inner optimizer together (key by key,
      // dampening = 0.5 would come first and be invalid with nesterov = 1).
      if (s == 2) relax(zero);
      set_grads(params, s);
      zero.step();
      if (s == 2 && zero.local_optimizer() != nullptr) {
        EXPECT_EQ(zero.local_optimizer()->option("dampening", 1), 0.5);
        EXPECT_EQ(zero.local_optimizer()->option("nesterov", 1), 0.0);
      }
    }
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(same_bits(params[i], ref_params[i])) << "parameter " << i << " on rank " << rank;
  });
}

TEST(ZeroRedundancyOptimizer, ARankThatOwnsNothingStillStepsConsolidatesAndLoads) {
  auto make = [] {
    return std::vector<Tensor>{test::random_tensor({5}, DType::float32, 1).requires_grad_(),
                               test::random_tensor({2, 2}, DType::float32, 2).requires_grad_()};
  };
  auto ref_params = make();
  optim::AdamW ref(ref_params, adamw_options());
  for (int s = 0; s < 2; ++s) {
    set_grads(ref_params, s);
    ref.step();
  }
  run_world(3, [&](int rank, std::shared_ptr<ProcessGroup> group) {
    auto params = make();
    auto zero = make_zero(params, group);
    EXPECT_EQ(zero->owners(), (std::vector<int>{0, 1}));
    EXPECT_EQ(zero->local_optimizer() == nullptr, rank == 2);
    for (int s = 0; s < 2; ++s) {
      set_grads(params, s);
      zero->step();
    }
    for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(same_bits(params[i], ref_params[i])) << i;
    zero->consolidate_state_dict(2);  // onto the rank that owns nothing
    if (rank == 2) {
      EXPECT_TRUE(same_state(zero->state_dict(), ref.state_dict()));
    }
    zero->load_state_dict(ref.state_dict());
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_EQ(zero->local_state(params[i]).empty(), zero->owners()[i] != rank);
  });
}

TEST(ZeroRedundancyOptimizer, MismatchedParameterListsAreAClearErrorOnEveryRank) {
  struct Case {
    const char* what;
    std::function<std::vector<Tensor>(int)> params;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"a different shape",
       [](int rank) {
         auto p = make_params();
         if (rank == 1) p[2] = test::random_tensor({24, 8}, DType::float32, 1).requires_grad_();
         return p;
       },
       "parameter 2 is float32 (8, 24) in param group 0 on rank 0 but float32 (24, 8) in param group 0 on rank 1"},
      {"a different dtype",
       [](int rank) {
         auto p = make_params();
         if (rank == 2) p[5] = test::random_tensor({3}, DType::float64, 1).requires_grad_();
         return p;
       },
       "parameter 5 is float32 (3) in param group 0 on rank 0 but float64 (3) in param group 0 on rank 2"},
      {"an extra parameter",
       [](int rank) {
         auto p = make_params();
         if (rank == 1) p.push_back(test::random_tensor({2}, DType::float32, 1).requires_grad_());
         return p;
       },
       "parameter 8 is absent on rank 0 but float32 (2) in param group 0 on rank 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::string> errors(3);
    const auto start = std::chrono::steady_clock::now();
    run_world(
        3,
        [&](int rank, std::shared_ptr<ProcessGroup> group) {
          try {
            make_zero(c.params(rank), group);
          } catch (const Error& e) {
            errors[rank] = e.what();
          }
        },
        std::chrono::seconds(5));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4)) << "must fail at once, not time out";
    for (int r = 0; r < 3; ++r) {
      EXPECT_NE(errors[r].find(c.expect), std::string::npos) << "rank " << r << ": " << errors[r];
      EXPECT_NE(errors[r].find("different parameter lists"), std::string::npos) << errors[r];
    }
  }
}

TEST(ZeroRedundancyOptimizer, OptionsAreValidatedAsTheInnerOptimizerDoes) {
  auto params = make_params();
  // No group: binding waits for the first collective call.
  ZeroRedundancyOptimizer zero(params, optimizer_factory<optim::AdamW>(adamw_options()));
  EXPECT_FALSE(zero.is_bound());
  EXPECT_EQ(zero.option("weight_decay"), 0.1);
  EXPECT_THROW(zero.set_lr(-1.0), Error);
  EXPECT_EQ(zero.lr(), 1e-2);
  EXPECT_THROW(zero.set_option("beta1", 1.5), Error);
  EXPECT_THROW(zero.set_option("momentum", 0.9), Error);
  zero.set_lr(3e-3);
  EXPECT_EQ(zero.lr(), 3e-3);
  EXPECT_THROW(zero.owners(), Error);
  EXPECT_THROW(zero.state_dict(), Error);
  // Without a default process group, the first step is a clear error.
  set_grads(params, 0);
  try {
    zero.step();
    ADD_FAILURE() << "step() without a process group must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no process group"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ZeroRedundancyOptimizer(params, nullptr), Error);
}

}  // namespace
}  // namespace zae::dist
