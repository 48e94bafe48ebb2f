// The CPU kernels' thread pool (kernels/cpu/thread_pool.h) and parallel_for over it:
// every task runs exactly once, nested calls run inline, exceptions reach the caller
// after all tasks ran, concurrent callers do not mix their jobs, one thread means the
// caller runs everything.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/thread_pool.h"

namespace zae::kernels::cpu {
namespace {

// Sets the pool's thread count for one test and restores it.
class ThreadPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = num_threads(); }
  void TearDown() override { set_num_threads(saved_); }
  int saved_ = 1;
};

TEST_F(ThreadPoolTest, EveryTaskRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 4}) {
    set_num_threads(threads);
    for (int64_t tasks : {1, 2, 3, 5, 8, 17}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
      for (int rep = 0; rep < 20; ++rep) run_tasks(tasks, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
      for (int64_t i = 0; i < tasks; ++i)
        EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 20) << "threads " << threads << " tasks " << tasks << " i " << i;
    }
  }
  run_tasks(0, [](int64_t) { FAIL() << "no task expected"; });
}

TEST_F(ThreadPoolTest, TasksSeeInParallelAndNestedCallsRunInline) {
  set_num_threads(2);
  EXPECT_FALSE(in_parallel());
  std::atomic<int> inner{0}, flagged{0};
  run_tasks(2, [&](int64_t) {
    flagged += in_parallel();
    const auto self = std::this_thread::get_id();
    run_tasks(3, [&](int64_t) {
      EXPECT_EQ(std::this_thread::get_id(), self);  // inline on the task's thread
      inner++;
    });
  });
  EXPECT_EQ(flagged.load(), 2);
  EXPECT_EQ(inner.load(), 6);
  EXPECT_FALSE(in_parallel());
}

TEST_F(ThreadPoolTest, OneThreadRunsEverythingOnTheCaller) {
  set_num_threads(1);
  const auto self = std::this_thread::get_id();
  int count = 0;  // no synchronisation needed: all on this thread
  run_tasks(4, [&](int64_t) {
    EXPECT_EQ(std::this_thread::get_id(), self);
    ++count;
  });
  EXPECT_EQ(count, 4);
}

TEST_F(ThreadPoolTest, AnExceptionReachesTheCallerAfterAllTasksRan) {
  set_num_threads(2);
  for (int rep = 0; rep < 10; ++rep) {
    std::atomic<int> ran{0};
    EXPECT_THROW(run_tasks(4,
                           [&](int64_t i) {
                             ran++;
                             if (i == 1) throw std::runtime_error("task 1 failed");
                           }),
                 std::runtime_error);
    EXPECT_EQ(ran.load(), 4);
  }
  // The pool still works afterwards.
  std::atomic<int> ok{0};
  run_tasks(2, [&](int64_t) { ok++; });
  EXPECT_EQ(ok.load(), 2);
}

TEST_F(ThreadPoolTest, ConcurrentCallersKeepTheirJobsApart) {
  set_num_threads(2);
  constexpr int kCallers = 4, kCalls = 200;
  std::vector<int> bad(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int k = 0; k < kCalls; ++k) {
        std::vector<std::atomic<int>> hits(3);
        run_tasks(3, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
        for (auto& h : hits) bad[c] += h.load() != 1;
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(bad[c], 0) << "caller " << c;
}

TEST_F(ThreadPoolTest, ParallelForCoversTheRangeOnceInFixedChunks) {
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    for (int64_t n : {int64_t{1}, int64_t{100}, int64_t{100000}, int64_t{1000003}}) {
      std::vector<unsigned char> seen(static_cast<size_t>(n), 0);
      std::atomic<int> chunks{0};
      parallel_for(n, 1000, [&](int64_t b, int64_t e) {
        chunks++;
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)], 1) << "n " << n << " i " << i;
      const int expected = n > 1000 ? std::min<int>(threads, static_cast<int>((n + 999) / 1000)) : 1;
      EXPECT_EQ(chunks.load(), expected) << "threads " << threads << " n " << n;
    }
  }
}

}  // namespace
}  // namespace zae::kernels::cpu
