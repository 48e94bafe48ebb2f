// The NCCL process group (dist/nccl_process_group.cpp), ctest label gpu. World size 1 on
// cuda:0 with a MemoryStore: every collective, the async path, send_recv to oneself, the
// ring algorithm, validation errors, and the init timeout when a peer never joins. With
// two GPUs, also two ranks as two threads (cuda:0 and cuda:1): results against values
// computed on the host, and the timeout that breaks the group when a peer skips an op.
// Every test skips cleanly where no CUDA device is present. Outputs are allocated after
// poisoning the caching allocator, so elements NCCL fails to write show up.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dist/memory_store.h"
#include "dist/process_group.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/ops/factory.h"
#include "engine/tensor.h"
#include "support/cuda_test_util.h"

namespace zae::dist {
namespace {

using namespace std::chrono_literals;
using PG = std::shared_ptr<ProcessGroup>;

std::shared_ptr<MemoryStore> test_store() {
  auto store = std::make_shared<MemoryStore>();
  store->set_timeout(10s);
  return store;
}

PG make_group1(ProcessGroupOptions options = {.timeout = 10s}) {
  return make_nccl_process_group(test_store(), 0, 1, Device::cuda(0), std::move(options));
}

/// Rank r's value at flat index i: small integers, exact in every dtype (sums over 2 ranks too).
double value_at(int r, int64_t i) { return static_cast<double>((i * 7 + r * 13 + 3) % 17) - 8.0; }

Tensor rank_tensor(const Shape& shape, DType dt, int r, Device device) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = value_at(r, static_cast<int64_t>(i));
  return tensor(v, shape, {.dtype = dt}).to(device);
}

std::vector<double> host_values(const Tensor& t) { return t.cpu().to(DType::float64).to_vector<double>(); }

/// The message of the zae::Error that fn throws ("" and a test failure when it throws none).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a zae::Error";
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

constexpr DType kFloatTypes[] = {DType::float32, DType::bfloat16};

TEST(NcclProcessGroupCuda, CreatesAGroupOfOne) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1();
  EXPECT_EQ(pg->backend(), "nccl");
  EXPECT_EQ(pg->rank(), 0);
  EXPECT_EQ(pg->size(), 1);
}

TEST(NcclProcessGroupCuda, AllReduceOfOneRankKeepsValues) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1();
  for (DType dt : kFloatTypes) {
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min}) {
      Tensor t = rank_tensor({3, 1001}, dt, 0, Device::cuda(0));
      const std::vector<double> want = host_values(t);
      pg->all_reduce(t, op);
      EXPECT_EQ(host_values(t), want) << dtype_name(dt) << " " << reduce_op_name(op);
    }
  }
}

TEST(NcclProcessGroupCuda, BroadcastAllGatherReduceScatterOfOneRank) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1();
  for (DType dt : kFloatTypes) {
    Tensor t = rank_tensor({4, 33}, dt, 0, Device::cuda(0));
    const std::vector<double> want = host_values(t);
    pg->broadcast(t, 0);
    EXPECT_EQ(host_values(t), want) << dtype_name(dt);

    test::poison_cuda_like(Tensor::empty({1, 4, 33}, {.dtype = dt}));
    const Tensor gathered = pg->all_gather(t);
    EXPECT_EQ(gathered.shape(), (Shape{1, 4, 33}));
    EXPECT_EQ(gathered.device(), Device::cuda(0));
    EXPECT_EQ(host_values(gathered), want) << dtype_name(dt);

    test::poison_cuda_like(Tensor::empty({4, 33}, {.dtype = dt}));
    const Tensor scattered = pg->reduce_scatter(t, ReduceOp::sum);
    EXPECT_EQ(scattered.shape(), (Shape{4, 33}));
    EXPECT_EQ(host_values(scattered), want) << dtype_name(dt);
  }
}

TEST(NcclProcessGroupCuda, BarrierAndEmptyTensorsReturn) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1();
  pg->barrier();
  pg->barrier();
  Tensor empty = Tensor::empty({0, 5}, {.device = Device::cuda(0)});
  pg->all_reduce(empty);
  EXPECT_TRUE(pg->all_reduce_async(empty)->completed());
  EXPECT_EQ(pg->all_gather(empty).shape(), (Shape{1, 0, 5}));
}

TEST(NcclProcessGroupCuda, AsyncAllReduceOrdersTheComputeStream) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1();
  Tensor t = rank_tensor({1 << 20}, DType::float32, 0, Device::cuda(0));
  const std::vector<double> before = host_values(t);
  auto work = pg->all_reduce_async(t, ReduceOp::sum);
  ASSERT_NE(work, nullptr);
  work->wait();
  EXPECT_TRUE(work->completed());
  work->wait();  // a second wait returns at once
  t.mul_(2.0);   // on the compute stream, after the all-reduce
  const std::vector<double> after = host_values(t);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i += 4099) EXPECT_EQ(after[i], 2.0 * before[i]) << "index " << i;
  // A Work dropped without wait() must not break later ops.
  (void)pg->all_reduce_async(t, ReduceOp::max);
  pg->barrier();
  EXPECT_EQ(host_values(t)[1], 2.0 * before[1]);
}

TEST(NcclProcessGroupCuda, SendRecvToItself) {
  ZAE_SKIP_WITHOUT_CUDA();
  // NCCL runs a send and a recv to the own rank when both sit in one group (ncclGroupStart/End).
  PG pg = make_group1();
  const Tensor out = rank_tensor({257}, DType::bfloat16, 0, Device::cuda(0));
  Tensor in = zeros({257}, {.dtype = DType::bfloat16, .device = Device::cuda(0)});
  pg->send_recv(out, 0, in, 0);
  EXPECT_EQ(host_values(in), host_values(out));
  // A lone send or recv to itself would never complete: refused.
  EXPECT_TRUE(contains(error_of([&] { pg->send(out, 0); }), "itself"));
  EXPECT_TRUE(contains(error_of([&] { pg->recv(in, 0); }), "itself"));
  // Overlapping buffers are refused.
  Tensor buf = zeros({10}, {.device = Device::cuda(0)});
  Tensor a = buf.narrow(0, 0, 6);
  Tensor b = buf.narrow(0, 4, 6);
  EXPECT_TRUE(contains(error_of([&] { pg->send_recv(a, 0, b, 0); }), "overlap"));
}

TEST(NcclProcessGroupCuda, RingAlgorithmOfOneRank) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1({.timeout = 10s, .all_reduce_algorithm = AllReduceAlgorithm::ring});
  Tensor t = rank_tensor({1000}, DType::float32, 0, Device::cuda(0));
  const std::vector<double> want = host_values(t);
  pg->all_reduce(t, ReduceOp::avg);
  EXPECT_EQ(host_values(t), want);
  pg->all_reduce_async(t, ReduceOp::sum)->wait();
  EXPECT_EQ(host_values(t), want);
}

TEST(NcclProcessGroupCuda, ValidationErrorsNameOpTensorAndDevice) {
  ZAE_SKIP_WITHOUT_CUDA();
  PG pg = make_group1();
  Tensor cpu = rank_tensor({2, 3}, DType::float32, 0, Device::cpu());
  std::string e = error_of([&] { pg->all_reduce(cpu); });
  EXPECT_TRUE(contains(e, "all_reduce") && contains(e, "cpu") && contains(e, "cuda:0") && contains(e, "[2, 3]")) << e;

  Tensor strided = rank_tensor({4, 6}, DType::float32, 0, Device::cuda(0)).transpose(0, 1);
  e = error_of([&] { pg->broadcast(strided, 0); });
  EXPECT_TRUE(contains(e, "broadcast") && contains(e, "contiguous")) << e;

  Tensor flags = zeros({8}, {.dtype = DType::bool_, .device = Device::cuda(0)});
  e = error_of([&] { pg->all_reduce(flags); });
  EXPECT_TRUE(contains(e, "bool") && contains(e, "reduced")) << e;
  pg->broadcast(flags, 0);  // moving bools is fine

  Tensor ints = zeros({8}, {.dtype = DType::int32, .device = Device::cuda(0)});
  e = error_of([&] { pg->all_reduce(ints, ReduceOp::avg); });
  EXPECT_TRUE(contains(e, "avg") && contains(e, "int32")) << e;
  pg->all_reduce(ints, ReduceOp::sum);

  Tensor t = rank_tensor({4}, DType::float32, 0, Device::cuda(0));
  e = error_of([&] { pg->broadcast(t, 1); });
  EXPECT_TRUE(contains(e, "root") && contains(e, "out of range")) << e;
  e = error_of([&] { pg->send_recv(t, -1, ints, 0); });
  EXPECT_TRUE(contains(e, "dst") && contains(e, "-1")) << e;
  Tensor scalar = scalar_tensor(1.0, {.device = Device::cuda(0)});
  e = error_of([&] { (void)pg->reduce_scatter(scalar); });
  EXPECT_TRUE(contains(e, "reduce_scatter") && contains(e, "multiple of the group size")) << e;
  e = error_of([&] { pg->all_reduce(cpu); });  // validation failures leave the group usable
  pg->barrier();
}

TEST(NcclProcessGroupCuda, FactoryRejectsBadArguments) {
  ZAE_SKIP_WITHOUT_CUDA();
  auto store = test_store();
  std::string e = error_of([&] { (void)make_nccl_process_group(store, 0, 1, Device::cpu()); });
  EXPECT_TRUE(contains(e, "CUDA device") && contains(e, "cpu")) << e;
  e = error_of([&] { (void)make_nccl_process_group(store, 0, 1, Device::cuda(cuda::device_count())); });
  EXPECT_TRUE(contains(e, "CUDA device(s) exist")) << e;
  e = error_of([&] { (void)make_nccl_process_group(store, 2, 2, Device::cuda(0)); });
  EXPECT_TRUE(contains(e, "rank 2")) << e;
  e = error_of([&] { (void)make_nccl_process_group(nullptr, 0, 1, Device::cuda(0)); });
  EXPECT_TRUE(contains(e, "store")) << e;
}

TEST(NcclProcessGroupCuda, InitTimesOutWhenAPeerNeverJoins) {
  ZAE_SKIP_WITHOUT_CUDA();
  // Rank 0 of 2 publishes the id and waits in the (non-blocking) NCCL init for rank 1,
  // which never comes: the deadline aborts the communicator and names the problem.
  const auto start = std::chrono::steady_clock::now();
  const std::string e = error_of(
      [&] { (void)make_nccl_process_group(test_store(), 0, 2, Device::cuda(0), {.timeout = 2s, .store_prefix = "t"}); });
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(contains(e, "init failed on rank 0 of 2 (nccl)") && contains(e, "timed out")) << e;
  EXPECT_LT(took, 30s);
  // Rank 1 without rank 0: the store's get times out naming the key.
  auto store = std::make_shared<MemoryStore>();
  store->set_timeout(500ms);
  const std::string e1 = error_of([&] { (void)make_nccl_process_group(store, 1, 2, Device::cuda(0)); });
  EXPECT_TRUE(contains(e1, "pg0/nccl_id")) << e1;
}

// ---- Two ranks, two GPUs, two threads ----

bool two_gpus() { return cuda::is_available() && cuda::device_count() >= 2; }

/// Runs fn(rank, group) for ranks 0 and 1 on cuda:0 and cuda:1, one thread each.
void run_two_ranks(const std::function<void(int, PG&)>& fn, ProcessGroupOptions options = {.timeout = 20s}) {
  auto store = test_store();
  std::string errors[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        PG pg = make_nccl_process_group(store, r, 2, Device::cuda(r), options);
        fn(r, pg);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(NcclProcessGroupCuda, TwoRanksCollectives) {
  ZAE_SKIP_WITHOUT_CUDA();
  if (!two_gpus()) GTEST_SKIP() << "needs two CUDA devices";
  run_two_ranks([](int r, PG& pg) {
    const Device dev = Device::cuda(r);
    const int64_t n = 1003;
    for (DType dt : kFloatTypes) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min}) {
        Tensor t = rank_tensor({n}, dt, r, dev);
        pg->all_reduce(t, op);
        const std::vector<double> got = host_values(t);
        for (int64_t i = 0; i < n; ++i) {
          const double a = value_at(0, i), b = value_at(1, i);
          const double want = op == ReduceOp::sum   ? a + b
                              : op == ReduceOp::avg ? (a + b) / 2
                              : op == ReduceOp::max ? std::max(a, b)
                                                    : std::min(a, b);
          ASSERT_EQ(got[i], want) << "rank " << r << " " << dtype_name(dt) << " " << reduce_op_name(op) << " i " << i;
        }
      }
    }
    Tensor b = rank_tensor({n}, DType::float32, r, dev);
    pg->broadcast(b, 1);
    EXPECT_EQ(host_values(b), host_values(rank_tensor({n}, DType::float32, 1, Device::cpu())));

    const Tensor g = pg->all_gather(rank_tensor({2, 5}, DType::bfloat16, r, dev));
    EXPECT_EQ(g.shape(), (Shape{2, 2, 5}));
    const std::vector<double> gv = host_values(g);
    for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(gv[i], value_at(static_cast<int>(i / 10), i % 10));

    const Tensor s = pg->reduce_scatter(rank_tensor({4, 3}, DType::float32, r, dev), ReduceOp::sum);
    EXPECT_EQ(s.shape(), (Shape{2, 3}));
    const std::vector<double> sv = host_values(s);
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(sv[i], value_at(0, r * 6 + i) + value_at(1, r * 6 + i));

    Tensor a = rank_tensor({n}, DType::float32, r, dev);
    auto work = pg->all_reduce_async(a, ReduceOp::sum);
    work->wait();
    EXPECT_EQ(host_values(a)[5], value_at(0, 5) + value_at(1, 5));

    const Tensor out = rank_tensor({7}, DType::int64, r, dev);
    Tensor in = zeros({7}, {.dtype = DType::int64, .device = dev});
    pg->send_recv(out, 1 - r, in, 1 - r);
    EXPECT_EQ(host_values(in), host_values(rank_tensor({7}, DType::int64, 1 - r, Device::cpu())));
    if (r == 0) {
      pg->send(out, 1);
    } else {
      pg->recv(in, 0);
      EXPECT_EQ(host_values(in), host_values(rank_tensor({7}, DType::int64, 0, Device::cpu())));
    }
    pg->barrier();
  });
}

TEST(NcclProcessGroupCuda, TwoRanksRingAllReduce) {
  ZAE_SKIP_WITHOUT_CUDA();
  if (!two_gpus()) GTEST_SKIP() << "needs two CUDA devices";
  run_two_ranks(
      [](int r, PG& pg) {
        Tensor t = rank_tensor({1001}, DType::bfloat16, r, Device::cuda(r));
        pg->all_reduce(t, ReduceOp::sum);
        const std::vector<double> got = host_values(t);
        for (int64_t i = 0; i < 1001; ++i) ASSERT_EQ(got[i], value_at(0, i) + value_at(1, i)) << "i " << i;
      },
      {.timeout = 20s, .all_reduce_algorithm = AllReduceAlgorithm::ring});
}

TEST(NcclProcessGroupCuda, TwoRanksTimeoutBreaksTheGroup) {
  ZAE_SKIP_WITHOUT_CUDA();
  if (!two_gpus()) GTEST_SKIP() << "needs two CUDA devices";
  // Rank 1 skips the all-reduce: rank 0 times out, aborts, and is broken afterwards.
  std::promise<void> rank0_done;
  std::shared_future<void> done = rank0_done.get_future().share();
  run_two_ranks(
      [&](int r, PG& pg) {
        if (r == 1) {
          (void)done.wait_for(60s);
          return;
        }
        Tensor t = rank_tensor({64}, DType::float32, 0, Device::cuda(0));
        const auto start = std::chrono::steady_clock::now();
        const std::string e = error_of([&] { pg->all_reduce(t); });
        EXPECT_TRUE(contains(e, "all_reduce failed on rank 0 of 2 (nccl)") && contains(e, "timed out")) << e;
        EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
        const std::string again = error_of([&] { pg->barrier(); });
        EXPECT_TRUE(contains(again, "broken")) << again;
        rank0_done.set_value();
      },
      {.timeout = 2s});
}

}  // namespace
}  // namespace zae::dist
