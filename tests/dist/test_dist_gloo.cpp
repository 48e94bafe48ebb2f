// The Gloo process group's operations, with ranks as threads of one process sharing a
// MemoryStore: all_reduce for every dtype x op x size on worlds of 1, 2 and 3 ranks with
// Gloo's algorithm and with our ring (and 4 ranks for the ring's uneven chunks), ring ==
// library on random data, issue-order completion of asynchronous ops, broadcast,
// all_gather, reduce_scatter, barrier, point to point, and input validation. Failures
// (timeouts, dead peers, destruction) are in test_dist_gloo_failure.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "dist/ring_all_reduce.h"
#include "engine/ops/factory.h"
#include "tests/dist/gloo_test_util.h"
#include "tests/support/test_util.h"

namespace zae::dist::test {
namespace {

using zae::test::expect_throws_with;
using Clock = std::chrono::steady_clock;

const std::vector<DType> kReduceDTypes = {DType::float32, DType::float64, DType::bfloat16, DType::float16,
                                          DType::int32,   DType::int64,   DType::uint8};
const std::vector<ReduceOp> kOps = {ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max};

void check_all_reduce(const std::shared_ptr<ProcessGroup>& pg, int r, const Shape& shape, DType d, ReduceOp op,
                      const char* what) {
  Tensor t = rank_tensor(shape, d, r);
  pg->all_reduce(t, op);
  EXPECT_EQ(t.shape(), shape);
  EXPECT_EQ(t.dtype(), d);
  EXPECT_TRUE(matches(t, [&](int64_t i) { return expected_reduce(op, pg->size(), i, d); }, tolerance(d)))
      << what << ": rank " << r << " of " << pg->size() << ", op " << reduce_op_name(op) << ", shape "
      << shape_str(shape);
}

void all_reduce_matrix(int n, AllReduceAlgorithm algorithm) {
  ProcessGroupOptions options;
  options.all_reduce_algorithm = algorithm;
  run_ranks(
      n,
      [&](int r, PG& pg) {
        for (DType d : kReduceDTypes)
          for (ReduceOp op : kOps) {
            if (op == ReduceOp::avg && !is_floating(d)) continue;
            for (const Shape& shape : {Shape{0}, Shape{1}, Shape{7}, Shape{1023}, Shape{3, 5}})
              check_all_reduce(pg, r, shape, d, op, algorithm_name(algorithm));
          }
        const Shape big{(1 << 20) + 3};
        for (ReduceOp op : kOps) check_all_reduce(pg, r, big, DType::float32, op, algorithm_name(algorithm));
        check_all_reduce(pg, r, big, DType::int64, ReduceOp::max, algorithm_name(algorithm));
        check_all_reduce(pg, r, big, DType::bfloat16, ReduceOp::sum, algorithm_name(algorithm));
      },
      options);
}

TEST(DistGloo, AllReduceWorldOfOne) {
  all_reduce_matrix(1, AllReduceAlgorithm::library);
  all_reduce_matrix(1, AllReduceAlgorithm::ring);
}
TEST(DistGloo, AllReduceTwoRanksLibrary) { all_reduce_matrix(2, AllReduceAlgorithm::library); }
TEST(DistGloo, AllReduceThreeRanksLibrary) { all_reduce_matrix(3, AllReduceAlgorithm::library); }
TEST(DistGloo, AllReduceTwoRanksRing) { all_reduce_matrix(2, AllReduceAlgorithm::ring); }
TEST(DistGloo, AllReduceThreeRanksRing) { all_reduce_matrix(3, AllReduceAlgorithm::ring); }

TEST(DistGloo, RingChunkBounds) {
  EXPECT_EQ(detail::ring_chunk_bounds(7, 3), (std::vector<int64_t>{0, 3, 5, 7}));
  EXPECT_EQ(detail::ring_chunk_bounds(2, 4), (std::vector<int64_t>{0, 1, 2, 2, 2}));
  EXPECT_EQ(detail::ring_chunk_bounds(8, 4), (std::vector<int64_t>{0, 2, 4, 6, 8}));
  EXPECT_EQ(detail::ring_chunk_bounds(0, 2), (std::vector<int64_t>{0, 0, 0}));
}

// Four ranks, sizes below, at and above the rank count, so that chunks are empty or uneven.
TEST(DistGloo, RingUnevenChunksFourRanks) {
  ProcessGroupOptions options;
  options.all_reduce_algorithm = AllReduceAlgorithm::ring;
  run_ranks(
      4,
      [&](int r, PG& pg) {
        for (int64_t numel : {1, 2, 3, 4, 5, 7, 9, 1023})
          for (DType d : {DType::int64, DType::float32, DType::float16})
            for (ReduceOp op : kOps) {
              if (op == ReduceOp::avg && !is_floating(d)) continue;
              check_all_reduce(pg, r, {numel}, d, op, "ring, 4 ranks");
            }
      },
      options);
}

// Gloo's all_reduce, the ring group's and the public ring_all_reduce over the library
// group's send_recv agree on random data: bit for bit on integers, within 1e-6 of the
// sum of magnitudes on floats. Two groups (prefixes "lib" and "ring") share one store.
TEST(DistGloo, RingMatchesLibrary) {
  const int n = 3;
  auto store = test_store();
  ProcessGroupOptions lib_options;
  lib_options.timeout = std::chrono::seconds(10);
  lib_options.store_prefix = "lib";
  ProcessGroupOptions ring_options = lib_options;
  ring_options.store_prefix = "ring";
  ring_options.all_reduce_algorithm = AllReduceAlgorithm::ring;
  run_ranks(
      n,
      [&](int r, PG& lib) {
        PG ring = make_gloo_process_group(store, r, n, ring_options);
        for (int64_t numel : {int64_t{1023}, int64_t{(1 << 20) + 3}}) {
          const Tensor x = zae::test::random_tensor({numel}, DType::int64, 100 + r);
          Tensor a = x.clone(), b = x.clone(), c = x.clone();
          lib->all_reduce(a);
          ring->all_reduce(b);
          ring_all_reduce(*lib, c);
          std::vector<int64_t> exact(static_cast<size_t>(numel), 0);
          for (int q = 0; q < n; ++q) {
            const std::vector<int64_t> v =
                zae::test::random_tensor({numel}, DType::int64, 100 + q).to_vector<int64_t>();
            for (size_t i = 0; i < v.size(); ++i) exact[i] += v[i];
          }
          EXPECT_EQ(a.to_vector<int64_t>(), exact) << "library, numel " << numel;
          EXPECT_EQ(b.to_vector<int64_t>(), exact) << "ring group, numel " << numel;
          EXPECT_EQ(c.to_vector<int64_t>(), exact) << "ring_all_reduce, numel " << numel;

          const Tensor y = zae::test::random_tensor({numel}, DType::float32, 200 + r);
          Tensor fa = y.clone(), fb = y.clone(), fc = y.clone();
          lib->all_reduce(fa);
          ring->all_reduce(fb);
          ring_all_reduce(*lib, fc);
          std::vector<double> sum(static_cast<size_t>(numel), 0.0), mag(static_cast<size_t>(numel), 0.0);
          for (int q = 0; q < n; ++q) {
            const std::vector<double> v =
                zae::test::random_tensor({numel}, DType::float32, 200 + q).to_vector<double>();
            for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i], mag[i] += std::abs(v[i]);
          }
          const std::vector<double> va = fa.to_vector<double>(), vb = fb.to_vector<double>();
          const std::vector<double> vc = fc.to_vector<double>();
          size_t bad = 0;
          for (size_t i = 0; i < sum.size(); ++i) {
            const double tol = 1e-6 * mag[i] + 1e-30;
            if (std::abs(va[i] - sum[i]) > tol || std::abs(vb[i] - va[i]) > tol || std::abs(vc[i] - va[i]) > tol) ++bad;
          }
          EXPECT_EQ(bad, 0u) << "float32 mismatches, numel " << numel;
        }
      },
      lib_options, store);
}

TEST(DistGloo, AsyncOpsCompleteInIssueOrder) {
  const int n = 3;
  run_ranks(n, [&](int r, PG& pg) {
    // sum then max leaves 1+2+3 = 6 everywhere; max then sum would give 3 * 3 = 9.
    Tensor t = full({1000}, r + 1.0);
    std::vector<std::shared_ptr<Work>> works;
    works.push_back(pg->all_reduce_async(t, ReduceOp::sum));
    works.push_back(pg->all_reduce_async(t, ReduceOp::max));
    std::vector<Tensor> others;
    for (int k = 0; k < 8; ++k) {
      others.push_back(full({4096}, k + r, {.dtype = DType::int32}));
      works.push_back(pg->all_reduce_async(others.back(), ReduceOp::sum));
    }
    // Poll from the last to the first: once one is seen completed, every earlier one must be.
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    bool all_done = false;
    while (!all_done && Clock::now() < deadline) {
      bool later_done = false;
      all_done = true;
      for (auto it = works.rbegin(); it != works.rend(); ++it) {
        const bool done = (*it)->completed();
        if (later_done && !done) ADD_FAILURE() << "rank " << r << ": a later op completed before an earlier one";
        later_done = later_done || done;
        all_done = all_done && done;
      }
    }
    for (auto& w : works) w->wait();
    works.front()->wait();  // waiting twice is fine
    EXPECT_TRUE(matches(t, [](int64_t) { return 6.0; }, 0.0)) << "rank " << r;
    for (int k = 0; k < 8; ++k) EXPECT_TRUE(matches(others[k], [&](int64_t) { return 3.0 * k + 3; }, 0.0));
    // A blocking op queued behind an asynchronous one returns after it.
    Tensor u = full({1 << 16}, 1.0);
    auto w = pg->all_reduce_async(u);
    pg->barrier();
    EXPECT_TRUE(w->completed());
    w->wait();
    EXPECT_TRUE(matches(u, [&](int64_t) { return n; }, 0.0));
  });
}

TEST(DistGloo, BroadcastEveryRootAndDType) {
  for (int n : {1, 3}) {
    run_ranks(n, [&](int r, PG& pg) {
      for (int root = 0; root < n; ++root)
        for (DType d : {DType::float32, DType::float64, DType::bfloat16, DType::float16, DType::int32, DType::int64,
                        DType::uint8, DType::bool_}) {
          Tensor t = rank_tensor({5, 3}, d, r);
          pg->broadcast(t, root);
          EXPECT_EQ(t.shape(), (Shape{5, 3}));
          EXPECT_TRUE(matches(t, [&](int64_t i) {
            const double v = value_at(root, i, d);
            return d == DType::bool_ ? (v != 0 ? 1.0 : 0.0) : v;
          }, tolerance(d))) << "rank " << r << ", root " << root << ", dtype " << d;
        }
      Tensor empty_t = Tensor::empty({0});
      pg->broadcast(empty_t, 0);
    });
  }
}

TEST(DistGloo, AllGatherStacksRanks) {
  for (int n : {1, 2, 3}) {
    run_ranks(n, [&](int r, PG& pg) {
      for (DType d : {DType::float32, DType::int64, DType::bfloat16, DType::uint8})
        for (const Shape& shape : {Shape{}, Shape{0}, Shape{1}, Shape{4, 3}}) {
          const Tensor in = shape.empty() ? scalar_tensor(value_at(r, 0, d), {.dtype = d}) : rank_tensor(shape, d, r);
          const Tensor out = pg->all_gather(in);
          Shape want = shape;
          want.insert(want.begin(), n);
          EXPECT_EQ(out.shape(), want);
          EXPECT_EQ(out.dtype(), d);
          const int64_t per = in.numel();
          EXPECT_TRUE(matches(out, [&](int64_t i) { return value_at(static_cast<int>(i / per), i % per, d); }, 0.0))
              << "rank " << r << " of " << n << ", shape " << shape_str(shape) << ", dtype " << d;
        }
    });
  }
}

TEST(DistGloo, ReduceScatterGivesEachRankItsRows) {
  for (int n : {1, 2, 3}) {
    for (AllReduceAlgorithm algorithm : {AllReduceAlgorithm::library, AllReduceAlgorithm::ring}) {
      ProcessGroupOptions options;
      options.all_reduce_algorithm = algorithm;
      run_ranks(
          n,
          [&](int r, PG& pg) {
            for (DType d : kReduceDTypes)
              for (ReduceOp op : kOps) {
                if (op == ReduceOp::avg && !is_floating(d)) continue;
                for (int64_t rows : {0, 1, 3}) {
                  const Tensor in = rank_tensor({n * rows, 2}, d, r);
                  const Tensor out = pg->reduce_scatter(in, op);
                  const Tensor via_ring = ring_reduce_scatter(*pg, in, op);
                  EXPECT_EQ(out.shape(), (Shape{rows, 2}));
                  EXPECT_EQ(out.dtype(), d);
                  auto want = [&](int64_t i) { return expected_reduce(op, n, r * rows * 2 + i, d); };
                  EXPECT_TRUE(matches(out, want, tolerance(d))) << "rank " << r << " of " << n << ", dtype " << d
                                                                << ", op " << reduce_op_name(op) << ", rows " << rows;
                  EXPECT_TRUE(matches(via_ring, want, tolerance(d))) << "ring_reduce_scatter, rank " << r;
                }
              }
            const Tensor flat = pg->reduce_scatter(rank_tensor({n * 5}, DType::float32, r));  // 1-D
            EXPECT_EQ(flat.shape(), (Shape{5}));
            auto want_flat = [&](int64_t i) { return expected_reduce(ReduceOp::sum, n, r * 5 + i, DType::float32); };
            EXPECT_TRUE(matches(flat, want_flat, 1e-6));
          },
          options);
    }
  }
}

TEST(DistGloo, BarrierWaitsForEveryRank) {
  run_ranks(3, [&](int r, PG& pg) {
    if (r == 2) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto t0 = Clock::now();
    pg->barrier();
    if (r != 2) {
      EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(150)) << "rank " << r << " did not wait";
    }
  });
}

TEST(DistGloo, SendRecvPairsWithTags) {
  run_ranks(2, [&](int r, PG& pg) {
    if (r == 0) {
      pg->send(full({10}, 1.5), 1, 7);
      pg->send(arange(int64_t{6}), 1, 8);
      Tensor back = zeros({3}, {.dtype = DType::float64});
      pg->recv(back, 1, 9);
      EXPECT_TRUE(matches(back, [](int64_t i) { return 4.0 + i; }, 0.0));
      Tensor nothing = Tensor::empty({0});
      pg->send(nothing, 1);
    } else {
      Tensor a = zeros({10});
      pg->recv(a, 0, 7);
      EXPECT_TRUE(matches(a, [](int64_t) { return 1.5; }, 0.0));
      Tensor b = zeros({6}, {.dtype = DType::int64});
      pg->recv(b, 0, 8);
      EXPECT_TRUE(matches(b, [](int64_t i) { return static_cast<double>(i); }, 0.0));
      pg->send(tensor({4.0, 5.0, 6.0}, {3}, {.dtype = DType::float64}), 0, 9);
      Tensor nothing = Tensor::empty({0});
      pg->recv(nothing, 0);
    }
  });
}

TEST(DistGloo, SendRecvRing) {
  for (int n : {2, 3, 4}) {
    run_ranks(n, [&](int r, PG& pg) {
      const int next = (r + 1) % n, prev = (r + n - 1) % n;
      const Tensor out = full({100}, r, {.dtype = DType::int32});
      Tensor in = full({100}, -1, {.dtype = DType::int32});
      pg->send_recv(out, next, in, prev, 3);
      EXPECT_TRUE(matches(in, [&](int64_t) { return prev; }, 0.0)) << "rank " << r << " of " << n;
      const Tensor big_out = full({(1 << 20) + 3}, r + 0.5);
      Tensor big_in = zeros({(1 << 20) + 3});
      pg->send_recv(big_out, prev, big_in, next);  // the other way round
      EXPECT_TRUE(matches(big_in, [&](int64_t) { return next + 0.5; }, 0.0));
      Tensor self_in = zeros({100}, {.dtype = DType::int32});
      pg->send_recv(out, r, self_in, r);  // with itself: a copy
      EXPECT_TRUE(matches(self_in, [&](int64_t) { return r; }, 0.0));
    });
  }
}

// Bad arguments throw on the caller's thread before anything is sent, naming the op and
// the tensor; the group stays usable afterwards.
TEST(DistGloo, InvalidInputsAreClearErrors) {
  run_ranks(2, [&](int r, PG& pg) {
    Tensor undefined;
    expect_throws_with([&] { pg->all_reduce(undefined); }, {"all_reduce (gloo)", "undefined"});
    Tensor strided = zeros({3, 4}).t();
    expect_throws_with([&] { pg->all_reduce(strided); },
                       {"all_reduce (gloo)", "contiguous", "[4, 3]", "float32", "cpu", ".contiguous()"});
    Tensor flags = zeros({4}, {.dtype = DType::bool_});
    expect_throws_with([&] { pg->all_reduce(flags); }, {"all_reduce (gloo)", "bool", "cannot be reduced", "[4]"});
    Tensor ints = zeros({4}, {.dtype = DType::int32});
    expect_throws_with([&] { pg->all_reduce(ints, ReduceOp::avg); }, {"all_reduce (gloo)", "avg", "int32"});
    expect_throws_with([&] { pg->all_reduce_async(ints, ReduceOp::avg); }, {"avg", "int32"});
    Tensor t = zeros({4});
    expect_throws_with([&] { pg->broadcast(t, 2); }, {"broadcast (gloo)", "root rank 2", "size 2"});
    expect_throws_with([&] { pg->broadcast(t, -1); }, {"broadcast (gloo)", "root rank -1"});
    expect_throws_with([&] { pg->send(t, 5); }, {"send to rank 5", "destination rank 5", "size 2"});
    expect_throws_with([&] { pg->send(t, r); }, {"cannot send to itself"});
    expect_throws_with([&] { pg->recv(t, -1); }, {"recv from rank -1", "source rank -1"});
    expect_throws_with([&] { pg->recv(t, r); }, {"cannot receive from itself"});
    expect_throws_with([&] { pg->send_recv(t, r, t, 1 - r); }, {"send_recv", "itself only as both"});
    expect_throws_with([&] { pg->send(strided, 1 - r); }, {"send to rank", "contiguous"});
    expect_throws_with([&] { (void)pg->all_gather(undefined); }, {"all_gather (gloo)", "undefined"});
    expect_throws_with([&] { (void)pg->reduce_scatter(zeros({3, 2})); },
                       {"reduce_scatter (gloo)", "divisible", "size 2", "[3, 2]", "float32", "cpu"});
    expect_throws_with([&] { (void)pg->reduce_scatter(scalar_tensor(1.0)); }, {"reduce_scatter (gloo)", "divisible"});
    expect_throws_with([&] { (void)pg->reduce_scatter(zeros({4}, {.dtype = DType::int64}), ReduceOp::avg); },
                       {"reduce_scatter (gloo)", "avg", "int64"});
    expect_throws_with([&] { ring_all_reduce(*pg, strided); }, {"ring_all_reduce", "contiguous"});
    // Still usable.
    Tensor ok = full({4}, r + 1.0);
    pg->all_reduce(ok);
    EXPECT_TRUE(matches(ok, [](int64_t) { return 3.0; }, 0.0));
  });
}

TEST(DistGloo, FactoryRejectsBadArguments) {
  auto store = test_store();
  expect_throws_with([&] { make_gloo_process_group(nullptr, 0, 1); }, {"make_gloo_process_group", "store is null"});
  expect_throws_with([&] { make_gloo_process_group(store, 2, 2); }, {"make_gloo_process_group", "rank 2", "size 2"});
  expect_throws_with([&] { make_gloo_process_group(store, 0, 0); }, {"make_gloo_process_group", "size must be >= 1"});
  ProcessGroupOptions zero;
  zero.timeout = std::chrono::milliseconds(0);
  expect_throws_with([&] { make_gloo_process_group(store, 0, 1, zero); }, {"timeout must be positive"});
  auto pg = make_gloo_process_group(store, 0, 1);
  EXPECT_EQ(pg->backend(), "gloo");
  EXPECT_EQ(pg->rank(), 0);
  EXPECT_EQ(pg->size(), 1);
}

}  // namespace
}  // namespace zae::dist::test
