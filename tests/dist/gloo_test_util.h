// Helpers for the Gloo process group tests: ranks as threads of one process sharing a
// MemoryStore, deterministic per-rank values, and element-wise comparison that reports
// the first mismatch only (tensors here have up to a million elements).
// Invariants: run_ranks joins every thread before it returns and reports each rank's
// uncaught exception as a test failure naming the rank; values are pure functions of
// (rank, index, dtype) and small enough that sums over 4 ranks are exact in every dtype.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dist/memory_store.h"
#include "dist/process_group.h"
#include "engine/ops/factory.h"

namespace zae::dist::test {

using namespace std::chrono_literals;
using PG = std::shared_ptr<ProcessGroup>;

inline std::shared_ptr<MemoryStore> test_store(std::chrono::milliseconds timeout = 10s) {
  auto store = std::make_shared<MemoryStore>();
  store->set_timeout(timeout);
  return store;
}

/// Runs fn(rank, group) on `n` threads, each with its own make_gloo_process_group.
inline void run_ranks(int n, const std::function<void(int, PG&)>& fn, ProcessGroupOptions options = {},
                      std::shared_ptr<Store> store = nullptr) {
  if (options.timeout == std::chrono::milliseconds(std::chrono::minutes(5))) options.timeout = 10s;  // fail fast
  if (!store) store = test_store();
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        PG pg = make_gloo_process_group(store, r, n, options);
        fn(r, pg);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r << " of " << n;
}

/// Rank r's value at flat index i: a small integer (0..16 for uint8, -8..8 otherwise).
inline double value_at(int r, int64_t i, DType d) {
  const auto v = static_cast<double>((i * 7 + r * 13 + 3) % 17);
  return d == DType::uint8 ? v : v - 8;
}

inline Tensor rank_tensor(const Shape& shape, DType d, int r) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = value_at(r, static_cast<int64_t>(i), d);
  return tensor(v, shape, {.dtype = d});
}

/// The reduction over ranks 0..n-1 of value_at(r, i) (avg = sum / n).
inline double expected_reduce(ReduceOp op, int n, int64_t i, DType d) {
  double acc = value_at(0, i, d);
  for (int r = 1; r < n; ++r) {
    const double v = value_at(r, i, d);
    acc = op == ReduceOp::min ? std::min(acc, v) : op == ReduceOp::max ? std::max(acc, v) : acc + v;
  }
  return op == ReduceOp::avg ? acc / n : acc;
}

inline double tolerance(DType d) {
  switch (d) {
    case DType::float32: return 1e-6;
    case DType::float64: return 1e-12;
    case DType::bfloat16: return 1e-2;
    case DType::float16: return 1e-3;
    default: return 0.0;
  }
}

/// Every element of t (row-major) equals expected(i) within rtol (relative, plus rtol
/// absolute); reports the first mismatch.
inline ::testing::AssertionResult matches(const Tensor& t, const std::function<double(int64_t)>& expected,
                                          double rtol) {
  const std::vector<double> got = t.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = expected(static_cast<int64_t>(i));
    if (std::abs(got[i] - want) > rtol * (1.0 + std::abs(want)))
      return ::testing::AssertionFailure() << "element " << i << " of " << got.size() << ": got " << got[i]
                                           << ", expected " << want << " (dtype " << t.dtype() << ")";
  }
  return ::testing::AssertionSuccess();
}

inline const char* algorithm_name(AllReduceAlgorithm a) { return a == AllReduceAlgorithm::ring ? "ring" : "library"; }

}  // namespace zae::dist::test
