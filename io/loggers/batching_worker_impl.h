// BatchingWorker's template implementation (included at the end of batching_worker.h;
// include that header, not this one).
//
// The worker thread's state machine, re-evaluated after every wake-up (so spurious
// wake-ups and notifications that race with a wait are harmless):
//   1. more than `capacity` items queued: the oldest surplus goes to on_give_up (one
//      warning per worker);
//   2. stopping: without drain, or once the drain deadline (first seen + drain_timeout)
//      has passed, everything left (a batch being retried and the queue) goes to
//      on_give_up and the thread ends; with drain, batches are sent back to back (the
//      interval no longer applies; backoff does, cut short by the deadline);
//   3. a failed batch waits out its backoff, min_backoff * 2^(failures-1) capped at
//      max_backoff, then is sent again unchanged; after max_attempts failures it goes to
//      on_give_up (a warning line the first time);
//   4. queued items are sent (up to max_batch) once `interval` has passed since the last
//      send began (since the start for the first), or at once after flush_soon() (the
//      request holds until a batch goes out, so flush_soon() then enqueue() works too);
//   5. nothing to send: on_idle once `idle_interval` has passed since the last send or
//      idle call (or the start).
// Callbacks run on the worker thread with the mutex released, so enqueue() only ever
// waits for a short critical section; what they throw is reported as "<name>: ..." (the
// first 10 reports per worker) and a throwing send counts as a failed attempt. A send that blocks (an HTTP timeout) delays
// stop(); the loggers bound that with their client timeout. An item enqueued after the
// worker thread has ended goes straight to on_give_up on the caller's thread (nothing is
// lost after finish()). The sleeps are condition-variable waits on steady_clock
// deadlines, woken by enqueue (queue was empty or over capacity), flush_soon and stop.
#pragma once

#include <algorithm>
#include <exception>
#include <iostream>
#include <optional>
#include <utility>

#include "engine/error.h"

namespace zae::io {

namespace batching_detail {

/// Prints "<name>: <text>" on stderr as one line; never throws.
inline void warn(const std::string& name, const std::string& text) noexcept {
  try {
    std::cerr << (name + ": " + text + "\n") << std::flush;
  } catch (...) {
  }
}

/// The backoff before attempt `failures + 1`: min * 2^(failures-1), capped at max.
inline std::chrono::milliseconds backoff_after(int failures, std::chrono::milliseconds min_backoff,
                                               std::chrono::milliseconds max_backoff) {
  std::chrono::milliseconds b = min_backoff;
  for (int i = 1; i < failures && b < max_backoff; ++i) b *= 2;
  return std::min(b, max_backoff);
}

}  // namespace batching_detail

template <class Item>
BatchingWorker<Item>::BatchingWorker(BatchingWorkerOptions options, SendFn send, GiveUpFn on_give_up, IdleFn on_idle)
    : options_(std::move(options)), send_(std::move(send)), on_give_up_(std::move(on_give_up)),
      on_idle_(std::move(on_idle)) {
  const auto& o = options_;
  ZAE_CHECK(send_ != nullptr, o.name, ": BatchingWorker needs a send function");
  ZAE_CHECK(on_give_up_ != nullptr, o.name, ": BatchingWorker needs an on_give_up function (the spool)");
  ZAE_CHECK(o.interval.count() >= 0, o.name, ": interval must be >= 0 ms, got ", o.interval.count());
  ZAE_CHECK(o.min_backoff.count() >= 0 && o.min_backoff <= o.max_backoff, o.name,
            ": need 0 <= min_backoff <= max_backoff, got ", o.min_backoff.count(), " ms and ",
            o.max_backoff.count(), " ms");
  ZAE_CHECK(o.max_attempts >= 1, o.name, ": max_attempts must be >= 1, got ", o.max_attempts);
  ZAE_CHECK(o.capacity >= 1, o.name, ": capacity must be >= 1, got ", o.capacity);
  ZAE_CHECK(o.max_batch >= 1, o.name, ": max_batch must be >= 1, got ", o.max_batch);
  ZAE_CHECK(o.idle_interval.count() >= 0, o.name, ": idle_interval must be >= 0 ms, got ", o.idle_interval.count());
  ZAE_CHECK(o.drain_timeout.count() >= 0, o.name, ": drain_timeout must be >= 0 ms, got ", o.drain_timeout.count());
  thread_ = std::thread([this] {
    try {
      loop();
    } catch (...) {  // out of memory in the worker's own bookkeeping: end it, never terminate()
      batching_detail::warn(options_.name, "the background sender failed; queued items are lost");
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  });
}

template <class Item>
BatchingWorker<Item>::~BatchingWorker() {
  try {
    stop(true);
  } catch (...) {
    batching_detail::warn(options_.name, "stopping the background sender failed");
  }
}

template <class Item>
void BatchingWorker<Item>::enqueue(Item item) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_) {  // the worker is gone: straight to the spool, on this thread
    ++given_up_;
    lock.unlock();
    std::vector<Item> one;
    one.push_back(std::move(item));
    try {
      on_give_up_(one, "enqueued after the sender stopped");
    } catch (const std::exception& e) {
      batching_detail::warn(options_.name, std::string("on_give_up failed: ") + e.what());
    } catch (...) {
      batching_detail::warn(options_.name, "on_give_up failed");
    }
    return;
  }
  queue_.push_back(std::move(item));
  const bool wake = queue_.size() == 1 || queue_.size() > options_.capacity;
  lock.unlock();
  if (wake) cv_.notify_all();
}

template <class Item>
void BatchingWorker<Item>::flush_soon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    flush_soon_ = true;
  }
  cv_.notify_all();
}

template <class Item>
void BatchingWorker<Item>::stop(bool drain) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    // Another call started the stop: a later stop(false) cuts a drain short; wait for the end.
    if (!drain) drain_ = false;
    cv_.notify_all();
    if (thread_.get_id() != std::this_thread::get_id()) cv_.wait(lock, [this] { return stopped_; });
    return;
  }
  stopping_ = true;
  drain_ = drain;
  lock.unlock();
  cv_.notify_all();
  // From a callback (the worker thread itself): the loop ends after it returns; no join.
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

template <class Item>
size_t BatchingWorker<Item>::given_up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return given_up_;
}

template <class Item>
size_t BatchingWorker<Item>::batches_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_sent_;
}

template <class Item>
void BatchingWorker<Item>::loop() {
  using Clock = std::chrono::steady_clock;
  const auto& o = options_;
  const std::string& name = o.name;

  std::vector<Item> batch;  // the batch in flight or waiting to be retried (empty: none)
  int failures = 0;         // of `batch`
  std::string last_error;
  Clock::time_point retry_at{};
  const Clock::time_point start = Clock::now();
  Clock::time_point next_send = start + o.interval;
  Clock::time_point last_activity = start;
  std::optional<Clock::time_point> drain_deadline;
  bool warned_give_up = false;  // the "gave up on a batch" line is printed once
  int reports = 0;              // callback exceptions reported so far
  auto report = [&](const std::string& text) {
    constexpr int kMaxReports = 10;
    if (reports < kMaxReports) batching_detail::warn(name, text);
    if (++reports == kMaxReports) batching_detail::warn(name, "(further errors are not shown)");
  };

  // Runs a callback with the mutex released; reports what it throws.
  std::unique_lock<std::mutex> lock(mu_);
  auto give_up = [&](std::vector<Item> items, const std::string& why) {
    given_up_ += items.size();
    lock.unlock();
    try {
      on_give_up_(items, why);
    } catch (const std::exception& e) {
      report("on_give_up failed (" + std::to_string(items.size()) + " items lost): " + e.what());
    } catch (...) {
      report("on_give_up failed (" + std::to_string(items.size()) + " items lost)");
    }
    lock.lock();
  };
  auto take_batch = [&] {
    const size_t n = std::min(queue_.size(), o.max_batch);
    batch.clear();
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    failures = 0;
  };

  for (;;) {
    // 1. Over capacity: the oldest surplus goes to the spool.
    if (queue_.size() > o.capacity) {
      const size_t surplus = queue_.size() - o.capacity;
      std::vector<Item> spill;
      spill.reserve(surplus);
      for (size_t i = 0; i < surplus; ++i) {
        spill.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!warned_full_) {
        warned_full_ = true;
        batching_detail::warn(name, "the send queue is full (" + std::to_string(o.capacity) +
                                        " items): sending is not keeping up, the oldest items go to the offline spool");
      }
      give_up(std::move(spill), "the send queue was full");
      continue;
    }

    const auto now = Clock::now();
    if (stopping_) {
      if (!drain_deadline) drain_deadline = now + o.drain_timeout;
      if (!drain_ || now >= *drain_deadline) {
        std::vector<Item> rest = std::move(batch);
        batch.clear();
        rest.reserve(rest.size() + queue_.size());
        for (auto& item : queue_) rest.push_back(std::move(item));
        queue_.clear();
        if (!rest.empty()) {
          const std::string why = !drain_ ? "stopped without draining"
                                          : "stopped: the drain timeout (" + std::to_string(o.drain_timeout.count()) +
                                                " ms) ran out";
          batching_detail::warn(name, std::to_string(rest.size()) + " items unsent (" + why +
                                          (last_error.empty() ? "" : "; last error: " + last_error) +
                                          "), handed to the offline spool");
          give_up(std::move(rest), why);
          continue;  // give_up released the lock: look again (a late enqueue, capacity)
        }
        break;
      }
      if (batch.empty()) {
        if (queue_.empty()) break;  // drained
        take_batch();
      } else if (failures > 0 && now < retry_at) {
        cv_.wait_until(lock, std::min(retry_at, *drain_deadline));
        continue;
      }
    } else if (batch.empty()) {
      if (queue_.empty()) {
        if (on_idle_ && o.idle_interval.count() > 0) {
          const auto idle_at = last_activity + o.idle_interval;
          if (now >= idle_at) {
            last_activity = now;
            lock.unlock();
            try {
              on_idle_();
            } catch (const std::exception& e) {
              report(std::string("on_idle failed: ") + e.what());
            } catch (...) {
              report("on_idle failed");
            }
            lock.lock();
            continue;
          }
          cv_.wait_until(lock, idle_at);
        } else {
          cv_.wait(lock);
        }
        continue;
      }
      if (!flush_soon_ && now < next_send) {
        cv_.wait_until(lock, next_send);
        continue;
      }
      flush_soon_ = false;
      take_batch();
    } else if (now < retry_at) {
      cv_.wait_until(lock, retry_at);
      continue;
    }

    // Send `batch` (a first attempt or a retry), the mutex released.
    const auto t0 = Clock::now();
    std::string error;
    lock.unlock();
    try {
      error = send_(batch);
    } catch (const std::exception& e) {
      error = std::string("send threw: ") + e.what();
      report(error);
    } catch (...) {
      error = "send threw an unknown exception";
      report(error);
    }
    lock.lock();
    const auto t1 = Clock::now();
    last_activity = t0;
    if (error.empty()) {
      ++batches_sent_;
      batch.clear();
      failures = 0;
      last_error.clear();
      next_send = t0 + o.interval;
      continue;
    }
    ++failures;
    last_error = error;
    if (failures >= o.max_attempts) {
      if (!warned_give_up) {
        warned_give_up = true;
        batching_detail::warn(name, "gave up on a batch of " + std::to_string(batch.size()) + " items after " +
                                        std::to_string(failures) + " attempts (last error: " + error +
                                        "), handed to the offline spool; later give-ups are not shown");
      }
      std::vector<Item> failed = std::move(batch);
      batch.clear();
      failures = 0;
      next_send = t0 + o.interval;
      give_up(std::move(failed), "gave up after " + std::to_string(o.max_attempts) + " attempts: " + error);
      continue;
    }
    retry_at = t1 + batching_detail::backoff_after(failures, o.min_backoff, o.max_backoff);
  }
  stopped_ = true;
}

}  // namespace zae::io
