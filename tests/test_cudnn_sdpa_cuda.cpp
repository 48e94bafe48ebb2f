// cuDNN fused attention (engine/cuda/cudnn_sdpa.h, ctest label gpu): the cuDNN path of
// scaled_dot_product_attention against our CUDA flash kernel (ZAE_CUDNN_ATTENTION=0) and
// the CPU twin, forward and backward (dq, dk, dv through autograd), bfloat16 and float16,
// causal and not, odd sequence lengths (7, 130, 1024), head dims 64 and 128; the cuDNN
// path must really run (its counters move). Also: the plan cache (a second call with the
// same shape builds nothing), the environment switch, and inputs cuDNN does not take
// (float32, a head dim not a multiple of 8) running our kernel. Every test skips without
// a CUDA device; in a CPU-only build the cuDNN API is not compiled in and they all skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "engine/device.h"
#include "engine/ops/nn.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

#ifdef ZAE_TESTS_WITH_CUDA
#include "engine/cuda/cudnn_sdpa.h"
#endif

namespace {

using namespace zae;

constexpr const char* kEnv = "ZAE_CUDNN_ATTENTION";

// Sets (value) or unsets (nullopt) one environment variable for a scope, then restores it.
class EnvGuard {
 public:
  EnvGuard(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~EnvGuard() { old_ ? (void)::setenv(name_, old_->c_str(), 1) : (void)::unsetenv(name_); }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

#ifdef ZAE_TESTS_WITH_CUDA

// cuDNN rounds P and dS to the i/o type before its second and last matmuls (as the
// flash kernel does), so float16 gets a little more room than the kernel-vs-CPU test.
double rtol_for(DType dt) { return dt == DType::bfloat16 ? 2e-2 : 1e-2; }

struct Result {
  Tensor out, dq, dk, dv;
};

// Forward, then backward of sum(out * w), on fresh leaves with the values of q0, k0, v0.
Result run(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& w, Device dev, bool causal) {
  Tensor q = q0.to(dev).detach(), k = k0.to(dev).detach(), v = v0.to(dev).detach();
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  Tensor out = scaled_dot_product_attention(q, k, v, AttentionOptions{.causal = causal});
  (out * w.to(dev)).sum().backward();
  return Result{out.detach(), q.grad(), k.grad(), v.grad()};
}

void expect_match(const Result& got, const Result& want, double rtol, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_TRUE(test::cuda_matches_cpu(got.out, want.out, rtol)) << "out";
  EXPECT_TRUE(test::cuda_matches_cpu(got.dq, want.dq, 2 * rtol)) << "dq";
  EXPECT_TRUE(test::cuda_matches_cpu(got.dk, want.dk, 2 * rtol)) << "dk";
  EXPECT_TRUE(test::cuda_matches_cpu(got.dv, want.dv, 2 * rtol)) << "dv";
}

Result to_cpu(const Result& r) {
  return Result{r.out.to(Device::cpu()), r.dq.to(Device::cpu()), r.dk.to(Device::cpu()), r.dv.to(Device::cpu())};
}

TEST(CudnnSdpaCuda, MatchesOurKernelAndTheCpuTwin) {
  ZAE_SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t b, h, t, d;
  };
  const Case cases[] = {{2, 3, 7, 64}, {1, 2, 130, 128}, {2, 2, 130, 64}, {1, 1, 1024, 64}, {1, 1, 1024, 128}};
  uint64_t seed = 100;
  for (const Case& c : cases)
    for (DType dt : {DType::bfloat16, DType::float16})
      for (bool causal : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " B " + std::to_string(c.b) + " H " + std::to_string(c.h) +
                     " T " + std::to_string(c.t) + " D " + std::to_string(c.d) + (causal ? " causal" : ""));
        const Shape shape{c.b, c.h, c.t, c.d};
        const Tensor q = test::random_tensor(shape, dt, ++seed), k = test::random_tensor(shape, dt, ++seed),
                     v = test::random_tensor(shape, dt, ++seed), w = test::random_tensor(shape, dt, ++seed);
        const Result want = run(q, k, v, w, Device::cpu(), causal);

        const cuda::CudnnSdpaCounters before = cuda::cudnn_sdpa_counters();
        Result fused;
        {
          EnvGuard env(kEnv, std::nullopt);
          test::poison_cuda_like(want.out);
          fused = run(q, k, v, w, Device::cuda(), causal);
        }
        const cuda::CudnnSdpaCounters mid = cuda::cudnn_sdpa_counters();
        EXPECT_EQ(mid.forward_runs, before.forward_runs + 1) << "the forward did not run on cuDNN";
        EXPECT_EQ(mid.backward_runs, before.backward_runs + 1) << "the backward did not run on cuDNN";
        EXPECT_EQ(mid.plan_failures, before.plan_failures) << "cuDNN could not plan this attention";

        Result ours;
        {
          EnvGuard env(kEnv, "0");
          test::poison_cuda_like(want.out);
          ours = run(q, k, v, w, Device::cuda(), causal);
        }
        const cuda::CudnnSdpaCounters after = cuda::cudnn_sdpa_counters();
        EXPECT_EQ(after.forward_runs, mid.forward_runs) << "ZAE_CUDNN_ATTENTION=0 still ran cuDNN";
        EXPECT_EQ(after.backward_runs, mid.backward_runs) << "ZAE_CUDNN_ATTENTION=0 still ran cuDNN";

        expect_match(fused, want, rtol_for(dt), "cuDNN vs CPU");
        expect_match(ours, want, rtol_for(dt), "our kernel vs CPU");
        expect_match(fused, to_cpu(ours), rtol_for(dt), "cuDNN vs our kernel");
      }
}

TEST(CudnnSdpaCuda, SecondCallWithTheSameShapeBuildsNothing) {
  ZAE_SKIP_WITHOUT_CUDA();
  EnvGuard env(kEnv, std::nullopt);
  const Shape shape{2, 4, 33, 64};  // a shape no other test here uses
  const Tensor q = test::random_tensor(shape, DType::bfloat16, 1).to(Device::cuda());
  const Tensor k = test::random_tensor(shape, DType::bfloat16, 2).to(Device::cuda());
  const Tensor v = test::random_tensor(shape, DType::bfloat16, 3).to(Device::cuda());
  const AttentionOptions opts{.causal = true};

  const cuda::CudnnSdpaCounters c0 = cuda::cudnn_sdpa_counters();
  const size_t size0 = cuda::cudnn_sdpa_cache_size();
  const Tensor first = scaled_dot_product_attention(q, k, v, opts);
  const cuda::CudnnSdpaCounters c1 = cuda::cudnn_sdpa_counters();
  EXPECT_EQ(c1.plans_built, c0.plans_built + 1);
  EXPECT_EQ(c1.forward_runs, c0.forward_runs + 1);
  EXPECT_EQ(cuda::cudnn_sdpa_cache_size(), size0 + 1);

  const Tensor second = scaled_dot_product_attention(q, k, v, opts);
  const cuda::CudnnSdpaCounters c2 = cuda::cudnn_sdpa_counters();
  EXPECT_EQ(c2.plans_built, c1.plans_built) << "the second call built a plan again";
  EXPECT_EQ(c2.forward_runs, c1.forward_runs + 1);
  EXPECT_EQ(cuda::cudnn_sdpa_cache_size(), size0 + 1);
  EXPECT_TRUE(test::cuda_matches_cpu(second, first.to(Device::cpu()), 0.0)) << "same plan, same inputs";

  // Another scale is another key.
  const Tensor scaled = scaled_dot_product_attention(q, k, v, AttentionOptions{.causal = true, .scale = 0.25});
  EXPECT_EQ(cuda::cudnn_sdpa_counters().plans_built, c2.plans_built + 1);
  (void)scaled;
}

TEST(CudnnSdpaCuda, EnvironmentSwitchTurnsItOff) {
  ZAE_SKIP_WITHOUT_CUDA();
  const cuda::SdpaProblem p{.device = 0, .batch = 1, .heads = 2, .tq = 16, .tk = 16, .d = 64,
                            .dtype = DType::bfloat16, .causal = false, .scale = 0.125};
  {
    EnvGuard env(kEnv, "0");
    EXPECT_FALSE(cuda::cudnn_sdpa_env_enabled());
    EXPECT_NE(cuda::cudnn_sdpa_ineligible_reason(p).find("ZAE_CUDNN_ATTENTION"), std::string::npos);
    const Tensor x = test::random_tensor({1, 2, 16, 64}, DType::bfloat16, 9).to(Device::cuda());
    const uint64_t runs = cuda::cudnn_sdpa_counters().forward_runs;
    (void)scaled_dot_product_attention(x, x, x);
    EXPECT_EQ(cuda::cudnn_sdpa_counters().forward_runs, runs);
  }
  {
    EnvGuard env(kEnv, "1");
    EXPECT_TRUE(cuda::cudnn_sdpa_env_enabled());
    EXPECT_EQ(cuda::cudnn_sdpa_ineligible_reason(p), "");
  }
}

TEST(CudnnSdpaCuda, IneligibleInputsRunOurKernel) {
  ZAE_SKIP_WITHOUT_CUDA();
  EnvGuard env(kEnv, std::nullopt);
  struct Case {
    DType dt;
    int64_t d;
    const char* reason;  // a word of cudnn_sdpa_ineligible_reason
  };
  // float32 is not a cuDNN attention type; 36 is not a multiple of 8 (72 would be, and runs on cuDNN).
  const Case cases[] = {
      {DType::float32, 64, "dtype"}, {DType::bfloat16, 36, "head dim"}, {DType::float16, 36, "head dim"}};
  uint64_t seed = 500;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(dtype_name(c.dt)) + " D " + std::to_string(c.d));
    const cuda::SdpaProblem p{.device = 0, .batch = 1, .heads = 2, .tq = 19, .tk = 19, .d = c.d, .dtype = c.dt,
                              .causal = true, .scale = 0.2};
    EXPECT_NE(cuda::cudnn_sdpa_ineligible_reason(p).find(c.reason), std::string::npos)
        << cuda::cudnn_sdpa_ineligible_reason(p);
    const Shape shape{1, 2, 19, c.d};
    const Tensor q = test::random_tensor(shape, c.dt, ++seed), k = test::random_tensor(shape, c.dt, ++seed),
                 v = test::random_tensor(shape, c.dt, ++seed), w = test::random_tensor(shape, c.dt, ++seed);
    const Result want = run(q, k, v, w, Device::cpu(), true);
    const cuda::CudnnSdpaCounters before = cuda::cudnn_sdpa_counters();
    const Result got = run(q, k, v, w, Device::cuda(), true);
    const cuda::CudnnSdpaCounters after = cuda::cudnn_sdpa_counters();
    EXPECT_EQ(after.forward_runs, before.forward_runs);
    EXPECT_EQ(after.backward_runs, before.backward_runs);
    EXPECT_EQ(after.plans_built, before.plans_built);
    EXPECT_EQ(after.plan_failures, before.plan_failures);
    expect_match(got, want, c.dt == DType::float32 ? 1e-5 : rtol_for(c.dt), "our kernel vs CPU");
  }
}

#else  // CPU-only build: the cuDNN path does not exist.

TEST(CudnnSdpaCuda, NeedsACudaBuild) {
  ZAE_SKIP_WITHOUT_CUDA();
  EnvGuard env(kEnv, std::nullopt);
  GTEST_SKIP() << "built without CUDA";
}

#endif

}  // namespace
