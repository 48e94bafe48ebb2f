// The communication thread behind the Gloo process group (dist/comm_thread.h): jobs run
// in issue order on one thread, the first failure breaks the queue and is named by every
// later call, a stuck job makes its waiter give up (and breaks the queue), stop() fails
// queued jobs, and a Work outlives its CommThread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include "dist/comm_thread.h"
#include "engine/error.h"
#include "tests/support/test_util.h"

namespace zae::dist::detail {
namespace {

using namespace std::chrono_literals;
using zae::test::expect_throws_with;

std::string describe(const std::string& op, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return op + " failed on test: " + e.what();
  }
}

TEST(DistCommThread, RunsJobsInOrderOnOneThread) {
  CommThread comm("test", 2s, describe);
  std::vector<int> order;
  std::set<std::thread::id> threads;
  std::vector<std::shared_ptr<Work>> works;
  for (int i = 0; i < 50; ++i)
    works.push_back(comm.submit("job", [&, i] {
      order.push_back(i);
      threads.insert(std::this_thread::get_id());
    }));
  comm.run("last", [&] { order.push_back(50); });
  for (auto& w : works) EXPECT_TRUE(w->completed());
  ASSERT_EQ(order.size(), 51u);
  for (int i = 0; i <= 50; ++i) EXPECT_EQ(order[i], i);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(comm.failure(), "");
}

TEST(DistCommThread, FirstFailureBreaksTheQueue) {
  CommThread comm("rank 0 of 2 (test)", 2s, describe);
  std::atomic<bool> ran_after{false};
  auto bad = comm.submit("all_reduce", [] { throw std::runtime_error("wire cut"); });
  // The second submit races the first job: queued before it failed (then its Work fails),
  // or after (then submit itself refuses). Both must name the first failure.
  std::shared_ptr<Work> queued;
  std::string refused;
  try {
    queued = comm.submit("broadcast", [&] { ran_after = true; });
  } catch (const std::exception& e) {
    refused = e.what();
  }
  expect_throws_with([&] { bad->wait(); }, {"all_reduce failed on test: wire cut"});
  const std::vector<std::string> expected{"broadcast failed on rank 0 of 2 (test)", "unusable after an earlier failure",
                                          "wire cut"};
  if (queued) {
    expect_throws_with([&] { queued->wait(); }, expected);
  } else {
    for (const std::string& part : expected) EXPECT_NE(refused.find(part), std::string::npos) << refused;
  }
  EXPECT_FALSE(ran_after);
  expect_throws_with([&] { comm.run("barrier", [] {}); }, {"barrier failed on", "unusable", "wire cut"});
  EXPECT_NE(comm.failure().find("wire cut"), std::string::npos);
}

TEST(DistCommThread, WaiterGivesUpOnAStuckJob) {
  CommThread comm("rank 1 of 2 (test)", 100ms, describe, 0ms);
  const auto t0 = std::chrono::steady_clock::now();
  expect_throws_with([&] { comm.run("all_gather", [] { std::this_thread::sleep_for(800ms); }); },
                     {"all_gather on rank 1 of 2 (test) did not finish within 100 ms", "stuck"});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 700ms);
  expect_throws_with([&] { comm.run("barrier", [] {}); }, {"unusable after an earlier failure", "all_gather"});
}  // the destructor waits for the sleeping job

TEST(DistCommThread, StopFailsQueuedJobsAndWorkOutlivesIt) {
  std::shared_ptr<Work> running, queued;
  std::atomic<bool> queued_ran{false};
  {
    CommThread comm("test", 2s, describe);
    running = comm.submit("first", [] { std::this_thread::sleep_for(200ms); });
    queued = comm.submit("second", [&] { queued_ran = true; });
    std::this_thread::sleep_for(50ms);
    comm.stop();
    comm.stop();  // idempotent
    expect_throws_with([&] { comm.run("third", [] {}); }, {"third", "destroyed"});
  }
  running->wait();  // it was running: it finished
  EXPECT_TRUE(queued->completed());
  expect_throws_with([&] { queued->wait(); }, {"second on test: the process group was destroyed before it ran"});
  EXPECT_FALSE(queued_ran);
}

TEST(DistCommThread, HugeTimeoutDoesNotOverflow) {
  CommThread comm("test", std::chrono::milliseconds::max(), describe);
  int x = 0;
  comm.run("job", [&] { x = 1; });
  EXPECT_EQ(x, 1);
}

}  // namespace
}  // namespace zae::dist::detail
