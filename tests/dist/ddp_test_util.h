// Helpers of the DistributedDataParallel tests (test_dist_ddp*.cpp): ranks as threads of
// one process, each with its own Gloo group over one shared MemoryStore; a small MLP built
// identically per rank from a seed; comparisons of parameter and gradient lists.
// Invariants: every helper is a pure function of its arguments except run_world (threads)
// and make_mlp (reseeds the default generator: call it before starting threads).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dist/memory_store.h"
#include "dist/process_group.h"
#include "engine/generator.h"
#include "engine/tensor.h"
#include "nn/activation.h"
#include "nn/container.h"
#include "nn/linear.h"

namespace zae::dist::ddp_test {

using namespace std::chrono_literals;

// Runs fn(rank, group) on `world` threads, each with its own Gloo group over one shared
// MemoryStore; an exception on any rank fails the test (naming the rank).
inline void run_world(int world, const std::function<void(int, std::shared_ptr<ProcessGroup>)>& fn,
                      std::chrono::milliseconds timeout = 30s) {
  auto store = std::make_shared<MemoryStore>();
  store->set_timeout(timeout);
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto group = make_gloo_process_group(store, r, world, {.timeout = timeout});
        fn(r, group);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    if (!errors[r]) continue;
    try {
      std::rethrow_exception(errors[r]);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "rank " << r << " threw: " << e.what();
    }
  }
}

inline std::shared_ptr<nn::Sequential> make_mlp(uint64_t seed, DType dtype = DType::float64) {
  manual_seed(seed);
  auto m = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(8, 3)});
  m->to(dtype);
  return m;
}

// The same MLP `world` times (one replica per rank) plus one for the reference.
inline std::vector<std::shared_ptr<nn::Sequential>> make_replicas(int n, uint64_t seed, DType dtype = DType::float64) {
  std::vector<std::shared_ptr<nn::Sequential>> out;
  for (int i = 0; i < n; ++i) out.push_back(make_mlp(seed, dtype));
  return out;
}

inline Tensor mse(const Tensor& y, const Tensor& target) {
  Tensor d = y - target;
  return (d * d).mean();
}

// Rows [rank * n, (rank + 1) * n) of x.
inline Tensor shard(const Tensor& x, int rank, int64_t n) { return x.narrow(0, rank * n, n).contiguous(); }

inline std::vector<Tensor> grads_of(const nn::Module& m) {
  std::vector<Tensor> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : Tensor());
  return out;
}

inline std::vector<Tensor> params_of(const nn::Module& m) {
  std::vector<Tensor> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

// max |a - b| <= rtol * max |b| (per tensor).
inline ::testing::AssertionResult rel_close(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double rtol) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " tensors vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].defined() || !b[i].defined())
      return ::testing::AssertionFailure() << "tensor " << i << " undefined (" << a[i].defined() << ", "
                                           << b[i].defined() << ")";
    const auto va = a[i].to_vector<double>();
    const auto vb = b[i].to_vector<double>();
    if (va.size() != vb.size()) return ::testing::AssertionFailure() << "tensor " << i << " sizes differ";
    double err = 0, scale = 0;
    for (size_t k = 0; k < va.size(); ++k) {
      err = std::max(err, std::abs(va[k] - vb[k]));
      scale = std::max(scale, std::abs(vb[k]));
    }
    if (!(err <= rtol * std::max(scale, 1e-300)))
      return ::testing::AssertionFailure() << "tensor " << i << ": max error " << err << " > " << rtol << " * "
                                           << scale;
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult bitwise_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " tensors vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor ca = a[i].contiguous(), cb = b[i].contiguous();
    if (ca.dtype() != cb.dtype() || ca.shape() != cb.shape() ||
        std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) != 0)
      return ::testing::AssertionFailure() << "tensor " << i << " differs: " << ca << " vs " << cb;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace zae::dist::ddp_test
