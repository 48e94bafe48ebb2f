// BatchingWorker: batches of at most max_batch, at most one send per interval, retries
// with doubling backoff then on_give_up with the batch intact, capacity overflow spooling
// the oldest items with one warning, on_idle cadence, flush_soon, stop with and without
// drain (and its timeout), callback exceptions reported and survived, a prompt
// destructor, and every item accounted for under concurrent producers.
// Timing bounds: lower bounds only where the contract demands them (interval, backoff,
// drain timeout); upper bounds generous for a loaded 2-core machine.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "io/loggers/batching_worker.h"

namespace zae::io {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Worker = BatchingWorker<int>;

/// What the callbacks saw, with the time of each call; thread-safe.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<int>> sent;       // every send attempt's batch
  std::vector<Clock::time_point> sent_at;
  std::vector<std::vector<int>> given_up;
  std::vector<std::string> why;
  std::vector<Clock::time_point> idle_at;
  std::function<std::string(const std::vector<int>&, size_t attempt)> result =
      [](const std::vector<int>&, size_t) { return std::string(); };

  Worker::SendFn send() {
    return [this](const std::vector<int>& batch) {
      std::function<std::string(const std::vector<int>&, size_t)> f;
      size_t attempt = 0;
      {
        std::lock_guard<std::mutex> lock(mu);
        sent.push_back(batch);
        sent_at.push_back(Clock::now());
        attempt = sent.size();
        f = result;
      }
      cv.notify_all();
      return f(batch, attempt);
    };
  }
  Worker::GiveUpFn give_up() {
    return [this](const std::vector<int>& batch, const std::string& reason) {
      {
        std::lock_guard<std::mutex> lock(mu);
        given_up.push_back(batch);
        why.push_back(reason);
      }
      cv.notify_all();
    };
  }
  Worker::IdleFn idle() {
    return [this] {
      {
        std::lock_guard<std::mutex> lock(mu);
        idle_at.push_back(Clock::now());
      }
      cv.notify_all();
    };
  }
  bool wait(const std::function<bool()>& pred, milliseconds timeout = milliseconds(3000)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
  std::vector<int> all_given_up() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<int> v;
    for (const auto& b : given_up) v.insert(v.end(), b.begin(), b.end());
    return v;
  }
};

BatchingWorkerOptions fast_options() {
  BatchingWorkerOptions o;
  o.interval = milliseconds(20);
  o.min_backoff = milliseconds(10);
  o.max_backoff = milliseconds(40);
  o.max_attempts = 3;
  o.idle_interval = milliseconds(0);
  o.drain_timeout = milliseconds(1000);
  o.name = "testlog";
  return o;
}

std::vector<int> iota(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

TEST(BatchingWorker, BatchesRespectMaxBatchAndInterval) {
  Recorder rec;
  auto o = fast_options();
  o.interval = milliseconds(50);
  o.max_batch = 4;
  Worker w(o, rec.send(), rec.give_up());
  for (int i = 0; i < 10; ++i) w.enqueue(i);
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() >= 3; }));
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.sent.size(), 3u);
  EXPECT_EQ(rec.sent[0], iota(0, 4));
  EXPECT_EQ(rec.sent[1], iota(4, 8));
  EXPECT_EQ(rec.sent[2], iota(8, 10));
  for (size_t i = 1; i < rec.sent_at.size(); ++i)
    EXPECT_GE(rec.sent_at[i] - rec.sent_at[i - 1], milliseconds(40)) << "send " << i << " came too soon";
  EXPECT_TRUE(rec.given_up.empty());
}

TEST(BatchingWorker, CountsSentBatchesAndSendsNothingWhenIdle) {
  Recorder rec;
  Worker w(fast_options(), rec.send(), rec.give_up());
  w.enqueue(1);
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 1; }));
  ASSERT_TRUE(rec.wait([&] { return w.batches_sent() == 1; }));
  std::this_thread::sleep_for(milliseconds(100));  // several intervals with an empty queue
  EXPECT_EQ(w.batches_sent(), 1u);
  EXPECT_EQ(w.given_up(), 0u);
}

TEST(BatchingWorker, FlushSoonIgnoresTheIntervalOnce) {
  Recorder rec;
  auto o = fast_options();
  o.interval = milliseconds(10000);
  Worker w(o, rec.send(), rec.give_up());
  w.enqueue(1);
  w.enqueue(2);
  const auto t0 = Clock::now();
  w.flush_soon();
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 1; }));
  EXPECT_LT(Clock::now() - t0, milliseconds(2000));
  w.enqueue(3);  // the interval holds again: not sent by itself
  std::this_thread::sleep_for(milliseconds(150));
  {
    std::lock_guard<std::mutex> lock(rec.mu);
    ASSERT_EQ(rec.sent.size(), 1u);
    EXPECT_EQ(rec.sent[0], (std::vector<int>{1, 2}));
  }
  w.flush_soon();  // a request made before the items arrive holds until they are sent
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 2; }));
  w.flush_soon();
  w.enqueue(4);
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 3; }));
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.sent[1], std::vector<int>{3});
  EXPECT_EQ(rec.sent[2], std::vector<int>{4});
}

TEST(BatchingWorker, RetriesWithDoublingBackoffThenGivesUpTheBatchIntact) {
  Recorder rec;
  rec.result = [](const std::vector<int>&, size_t) { return std::string("HTTP 503: busy"); };
  auto o = fast_options();
  o.min_backoff = milliseconds(20);
  o.max_backoff = milliseconds(50);
  o.max_attempts = 4;
  ::testing::internal::CaptureStderr();
  {
    Worker w(o, rec.send(), rec.give_up());
    w.enqueue(7);
    w.enqueue(8);
    w.enqueue(9);
    w.flush_soon();
    ASSERT_TRUE(rec.wait([&] { return rec.given_up.size() == 1; }));
    EXPECT_EQ(w.given_up(), 3u);
    EXPECT_EQ(w.batches_sent(), 0u);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.sent.size(), 4u);  // max_attempts, no more
  ASSERT_EQ(rec.given_up.size(), 1u);
  for (const auto& b : rec.sent) EXPECT_EQ(b, (std::vector<int>{7, 8, 9}));
  EXPECT_EQ(rec.given_up[0], (std::vector<int>{7, 8, 9}));
  EXPECT_NE(rec.why[0].find("HTTP 503: busy"), std::string::npos) << rec.why[0];
  EXPECT_NE(rec.why[0].find("4 attempts"), std::string::npos) << rec.why[0];
  // Backoff before attempts 2, 3, 4: 20, 40, then 80 capped at 50 ms (never shorter).
  const milliseconds expected[] = {milliseconds(20), milliseconds(40), milliseconds(50)};
  for (size_t i = 1; i < rec.sent_at.size(); ++i)
    EXPECT_GE(rec.sent_at[i] - rec.sent_at[i - 1], expected[i - 1]) << "attempt " << i + 1;
  EXPECT_LT(rec.sent_at.back() - rec.sent_at.front(), milliseconds(1500));
  EXPECT_EQ(count(err, "testlog: gave up on a batch of 3 items after 4 attempts"), 1u) << err;
}

TEST(BatchingWorker, RetrySucceedsAndLaterBatchesFlow) {
  Recorder rec;
  rec.result = [](const std::vector<int>&, size_t attempt) {
    return attempt <= 2 ? std::string("connection failed: refused") : std::string();
  };
  Worker w(fast_options(), rec.send(), rec.give_up());
  w.enqueue(1);
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 3; }));
  w.enqueue(2);
  ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 4; }));
  ASSERT_TRUE(rec.wait([&] { return w.batches_sent() == 2; }));
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.sent[2], std::vector<int>{1});
  EXPECT_EQ(rec.sent[3], std::vector<int>{2});
  EXPECT_TRUE(rec.given_up.empty());
}

TEST(BatchingWorker, ExceptionsFromSendAreReportedAndRetried) {
  Recorder rec;
  rec.result = [](const std::vector<int>&, size_t attempt) -> std::string {
    if (attempt <= 2) throw std::runtime_error("socket exploded");
    return "";
  };
  ::testing::internal::CaptureStderr();
  {
    Worker w(fast_options(), rec.send(), rec.give_up());
    w.enqueue(5);
    w.flush_soon();
    ASSERT_TRUE(rec.wait([&] { return w.batches_sent() == 1; }));
    EXPECT_EQ(w.given_up(), 0u);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "testlog: send threw: socket exploded"), 2u) << err;
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.sent.size(), 3u);
  EXPECT_EQ(rec.sent[2], std::vector<int>{5});
}

TEST(BatchingWorker, ExceptionsFromGiveUpAndIdleAreReportedAndSurvived) {
  std::atomic<int> idles{0};
  std::atomic<int> sends{0};
  auto o = fast_options();
  o.max_attempts = 1;
  o.idle_interval = milliseconds(20);
  ::testing::internal::CaptureStderr();
  {
    Worker w(
        o,
        [&](const std::vector<int>& b) {
          ++sends;
          return b[0] == 1 ? std::string("rejected") : std::string();
        },
        [](const std::vector<int>&, const std::string&) { throw std::runtime_error("disk full"); },
        [&] {
          ++idles;
          throw std::runtime_error("heartbeat failed");
        });
    w.enqueue(1);  // fails once, then on_give_up throws
    const auto deadline = Clock::now() + milliseconds(3000);
    while (idles < 2 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
    w.enqueue(2);  // the worker still sends
    while (sends < 2 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
    EXPECT_EQ(sends.load(), 2);
    EXPECT_GE(idles.load(), 2);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("testlog: on_give_up failed (1 items lost): disk full"), std::string::npos) << err;
  EXPECT_NE(err.find("testlog: on_idle failed: heartbeat failed"), std::string::npos) << err;
}

TEST(BatchingWorker, CapacityOverflowSpoolsTheOldestAndWarnsOnce) {
  Recorder rec;
  auto o = fast_options();
  o.interval = milliseconds(10000);  // nothing is sent until stop
  o.capacity = 5;
  ::testing::internal::CaptureStderr();
  {
    Worker w(o, rec.send(), rec.give_up());
    for (int i = 0; i < 8; ++i) w.enqueue(i);
    ASSERT_TRUE(rec.wait([&] {
      size_t n = 0;
      for (const auto& b : rec.given_up) n += b.size();
      return n == 3;
    }));
    for (int i = 8; i < 11; ++i) w.enqueue(i);
    ASSERT_TRUE(rec.wait([&] {
      size_t n = 0;
      for (const auto& b : rec.given_up) n += b.size();
      return n == 6;
    }));
    EXPECT_EQ(w.given_up(), 6u);
    EXPECT_EQ(rec.all_given_up(), iota(0, 6));  // the oldest, in order
    {
      std::lock_guard<std::mutex> lock(rec.mu);
      for (const auto& why : rec.why) EXPECT_NE(why.find("full"), std::string::npos) << why;
      EXPECT_TRUE(rec.sent.empty());
    }
    w.stop(true);  // the newest 5 are still there and drained
    EXPECT_EQ(w.given_up(), 6u);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "testlog: the send queue is full (5 items)"), 1u) << err;
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.sent.size(), 1u);
  EXPECT_EQ(rec.sent[0], iota(6, 11));
}

TEST(BatchingWorker, IdleCallbackCadence) {
  Recorder rec;
  auto o = fast_options();
  o.idle_interval = milliseconds(30);
  Worker w(o, rec.send(), rec.give_up(), rec.idle());
  ASSERT_TRUE(rec.wait([&] { return rec.idle_at.size() >= 4; }));
  const auto t_fourth = Clock::now();
  w.stop(true);
  std::lock_guard<std::mutex> lock(rec.mu);
  const size_t calls = rec.idle_at.size();
  EXPECT_LE(calls, 5u);  // stopped right after the fourth: at most one more slipped in
  for (size_t i = 1; i < calls; ++i)
    EXPECT_GE(rec.idle_at[i] - rec.idle_at[i - 1], milliseconds(25)) << "idle call " << i << " came too soon";
  EXPECT_LT(t_fourth - rec.idle_at.front(), milliseconds(2000));
  EXPECT_TRUE(rec.sent.empty());
}

TEST(BatchingWorker, NoIdleCallsWithAZeroIdleInterval) {
  Recorder rec;
  Worker w(fast_options(), rec.send(), rec.give_up(), rec.idle());
  std::this_thread::sleep_for(milliseconds(100));
  w.stop(true);
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_TRUE(rec.idle_at.empty());
}

TEST(BatchingWorker, StopWithDrainSendsEverythingPromptly) {
  Recorder rec;
  auto o = fast_options();
  o.interval = milliseconds(10000);
  o.max_batch = 3;
  Worker w(o, rec.send(), rec.give_up());
  for (int i = 0; i < 7; ++i) w.enqueue(i);
  const auto t0 = Clock::now();
  w.stop(true);
  EXPECT_LT(Clock::now() - t0, milliseconds(1500));
  EXPECT_EQ(w.batches_sent(), 3u);
  EXPECT_EQ(w.given_up(), 0u);
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.sent.size(), 3u);
  EXPECT_EQ(rec.sent[0], iota(0, 3));
  EXPECT_EQ(rec.sent[1], iota(3, 6));
  EXPECT_EQ(rec.sent[2], iota(6, 7));
}

TEST(BatchingWorker, DrainTimeoutHandsTheRestToGiveUp) {
  Recorder rec;
  rec.result = [](const std::vector<int>&, size_t) { return std::string("HTTP 500: down"); };
  auto o = fast_options();
  o.interval = milliseconds(10000);
  o.max_attempts = 1000;
  o.drain_timeout = milliseconds(200);
  o.max_batch = 2;
  ::testing::internal::CaptureStderr();
  Worker w(o, rec.send(), rec.give_up());
  for (int i = 0; i < 5; ++i) w.enqueue(i);
  const auto t0 = Clock::now();
  w.stop(true);
  const auto took = Clock::now() - t0;
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_GE(took, milliseconds(200));  // it kept trying for the whole budget
  EXPECT_LT(took, milliseconds(1500));
  EXPECT_EQ(w.given_up(), 5u);
  EXPECT_EQ(rec.all_given_up(), iota(0, 5));
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_GE(rec.sent.size(), 2u);  // retried during the drain
  for (const auto& b : rec.sent) EXPECT_EQ(b, iota(0, 2));
  ASSERT_FALSE(rec.why.empty());
  EXPECT_NE(rec.why.back().find("drain timeout"), std::string::npos) << rec.why.back();
  EXPECT_NE(err.find("testlog: 5 items unsent"), std::string::npos) << err;
}

TEST(BatchingWorker, StopWithoutDrainGivesTheRestUpAtOnce) {
  Recorder rec;
  auto o = fast_options();
  o.interval = milliseconds(10000);
  ::testing::internal::CaptureStderr();
  Worker w(o, rec.send(), rec.give_up());
  for (int i = 0; i < 5; ++i) w.enqueue(i);
  const auto t0 = Clock::now();
  w.stop(false);
  EXPECT_LT(Clock::now() - t0, milliseconds(1000));
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(w.batches_sent(), 0u);
  EXPECT_EQ(w.given_up(), 5u);
  EXPECT_EQ(rec.all_given_up(), iota(0, 5));
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_TRUE(rec.sent.empty());
  ASSERT_FALSE(rec.why.empty());
  EXPECT_NE(rec.why[0].find("without draining"), std::string::npos) << rec.why[0];
}

TEST(BatchingWorker, StopCutsALongBackoffShort) {
  for (bool drain : {false, true}) {
    Recorder rec;
    rec.result = [](const std::vector<int>&, size_t) { return std::string("HTTP 429"); };
    auto o = fast_options();
    o.min_backoff = milliseconds(10000);
    o.max_backoff = milliseconds(10000);
    o.drain_timeout = milliseconds(100);
    ::testing::internal::CaptureStderr();
    Worker w(o, rec.send(), rec.give_up());
    w.enqueue(1);
    w.flush_soon();
    ASSERT_TRUE(rec.wait([&] { return rec.sent.size() == 1; }));
    const auto t0 = Clock::now();
    w.stop(drain);
    EXPECT_LT(Clock::now() - t0, milliseconds(1500)) << "drain " << drain;
    ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(rec.all_given_up(), std::vector<int>{1}) << "drain " << drain;
  }
}

TEST(BatchingWorker, DestructorDrainsAndJoinsPromptly) {
  Recorder rec;
  auto o = fast_options();
  o.interval = milliseconds(10000);
  o.idle_interval = milliseconds(10000);
  const auto t0 = Clock::now();
  {
    Worker w(o, rec.send(), rec.give_up(), rec.idle());
    w.enqueue(1);
    w.enqueue(2);
  }
  EXPECT_LT(Clock::now() - t0, milliseconds(1500));
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.sent.size(), 1u);
  EXPECT_EQ(rec.sent[0], (std::vector<int>{1, 2}));
}

TEST(BatchingWorker, AnIdleWorkerStopsAtOnce) {
  auto o = fast_options();
  o.interval = milliseconds(10000);
  o.idle_interval = milliseconds(10000);
  const auto t0 = Clock::now();
  {
    Worker w(o, [](const std::vector<int>&) { return std::string(); },
             [](const std::vector<int>&, const std::string&) {}, [] {});
    std::this_thread::sleep_for(milliseconds(20));  // the worker is waiting now
  }
  EXPECT_LT(Clock::now() - t0, milliseconds(1000));
}

TEST(BatchingWorker, StopIsIdempotentAndLateItemsGoToGiveUp) {
  Recorder rec;
  Worker w(fast_options(), rec.send(), rec.give_up());
  w.stop(true);
  w.stop(false);
  w.stop(true);
  w.enqueue(42);  // after stop: straight to the spool, on this thread
  EXPECT_EQ(w.given_up(), 1u);
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.given_up.size(), 1u);
  EXPECT_EQ(rec.given_up[0], std::vector<int>{42});
  EXPECT_TRUE(rec.sent.empty());
}

TEST(BatchingWorker, StopFromACallbackDoesNotDeadlock) {
  Worker* self = nullptr;
  std::atomic<int> sends{0};
  auto o = fast_options();
  o.max_batch = 1;
  const auto t0 = Clock::now();
  {
    Worker w(
        o,
        [&](const std::vector<int>&) {
          ++sends;
          self->stop(true);  // the worker asks itself to stop: it drains and ends
          return std::string();
        },
        [](const std::vector<int>&, const std::string&) {});
    self = &w;
    w.enqueue(1);
    w.enqueue(2);
    w.flush_soon();
  }
  EXPECT_LT(Clock::now() - t0, milliseconds(1500));
  EXPECT_EQ(sends.load(), 2);
}

TEST(BatchingWorker, ConcurrentStopCallsAllReturnAfterTheDrain) {
  Recorder rec;
  rec.result = [](const std::vector<int>&, size_t) {
    std::this_thread::sleep_for(milliseconds(30));
    return std::string();
  };
  auto o = fast_options();
  o.max_batch = 1;
  Worker w(o, rec.send(), rec.give_up());
  for (int i = 0; i < 4; ++i) w.enqueue(i);
  std::vector<std::thread> stoppers;
  for (int t = 0; t < 3; ++t) stoppers.emplace_back([&] {
      w.stop(true);
      EXPECT_EQ(w.batches_sent(), 4u);  // nobody returns before the drain is over
    });
  for (auto& t : stoppers) t.join();
  EXPECT_EQ(w.given_up(), 0u);
}

TEST(BatchingWorker, EveryItemIsAccountedForUnderConcurrentProducers) {
  Recorder rec;
  rec.result = [](const std::vector<int>&, size_t attempt) {
    return attempt % 3 == 0 ? std::string("flaky") : std::string();
  };
  auto o = fast_options();
  o.interval = milliseconds(1);
  o.min_backoff = milliseconds(1);
  o.max_backoff = milliseconds(2);
  o.max_attempts = 2;
  o.max_batch = 64;
  o.capacity = 200;
  constexpr int kThreads = 4, kPerThread = 2500;
  ::testing::internal::CaptureStderr();
  {
    Worker w(o, rec.send(), rec.give_up());
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t)
      producers.emplace_back([&w, t] {
        for (int i = 0; i < kPerThread; ++i) w.enqueue(t * kPerThread + i);
      });
    for (auto& p : producers) p.join();
  }
  ::testing::internal::GetCapturedStderr();
  // Delivered = the last attempt of each batch that succeeded; plus everything given up.
  std::vector<int> seen(kThreads * kPerThread, 0);
  std::lock_guard<std::mutex> lock(rec.mu);
  for (size_t i = 0; i < rec.sent.size(); ++i)
    if ((i + 1) % 3 != 0)
      for (int v : rec.sent[i]) ++seen[v];
  for (const auto& b : rec.given_up)
    for (int v : b) ++seen[v];
  for (size_t v = 0; v < seen.size(); ++v) ASSERT_EQ(seen[v], 1) << "item " << v;
}

TEST(BatchingWorker, RejectsBadOptions) {
  auto send = [](const std::vector<int>&) { return std::string(); };
  auto give_up = [](const std::vector<int>&, const std::string&) {};
  auto o = fast_options();
  o.max_batch = 0;
  EXPECT_THROW(Worker(o, send, give_up), zae::Error);
  o = fast_options();
  o.min_backoff = milliseconds(100);
  o.max_backoff = milliseconds(10);
  EXPECT_THROW(Worker(o, send, give_up), zae::Error);
  o = fast_options();
  o.max_attempts = 0;
  EXPECT_THROW(Worker(o, send, give_up), zae::Error);
  EXPECT_THROW(Worker(fast_options(), nullptr, give_up), zae::Error);
  EXPECT_THROW(Worker(fast_options(), send, nullptr), zae::Error);
}

}  // namespace
}  // namespace zae::io
