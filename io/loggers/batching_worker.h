// BatchingWorker: the background thread of a web logger. The training thread enqueues
// items (history rows, metrics) and returns at once; the worker sends them in batches at
// most every `interval`, retries a failed batch with exponential backoff (min_backoff ..
// max_backoff), and after `max_attempts` failures hands the batch to `on_give_up` (the
// offline spool) so nothing is lost. With nothing to send it calls `on_idle` every
// `idle_interval` (W&B heartbeats).
//
// Invariants: enqueue() never blocks the caller for longer than a mutex hold; when the
// queue holds `capacity` items the oldest unsent items go to on_give_up (spooled, not
// dropped) and one warning is printed; send / on_give_up / on_idle run only on the worker
// thread, never concurrently (except that an item enqueued after the worker has stopped
// goes straight to on_give_up on the caller's thread, so nothing logged late is lost);
// exceptions from them are caught and reported (the worker
// keeps running); stop(drain) sends what is queued (drain = true: trying up to
// `drain_timeout`, then giving the rest to on_give_up) and joins the thread; the
// destructor calls stop(true) and never throws.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zae::io {

struct BatchingWorkerOptions {
  std::chrono::milliseconds interval{std::chrono::seconds(5)};  ///< at most one send per interval
  std::chrono::milliseconds min_backoff{std::chrono::seconds(2)};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(60)};
  int max_attempts = 5;                        ///< then the batch goes to on_give_up
  size_t capacity = 100000;                    ///< queued items before the oldest are spooled
  size_t max_batch = 5000;                     ///< items per send
  std::chrono::milliseconds idle_interval{std::chrono::seconds(25)};  ///< on_idle cadence (0: never)
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(30)};  ///< stop(true) budget
  std::string name = "logger";                 ///< in warnings: "<name>: ..."
};

template <class Item>
class BatchingWorker {
 public:
  /// Sends a batch; returns "" on success or an error text (then it is retried).
  using SendFn = std::function<std::string(const std::vector<Item>& batch)>;
  using GiveUpFn = std::function<void(const std::vector<Item>& batch, const std::string& why)>;
  using IdleFn = std::function<void()>;

  BatchingWorker(BatchingWorkerOptions options, SendFn send, GiveUpFn on_give_up, IdleFn on_idle = nullptr);
  ~BatchingWorker();
  BatchingWorker(const BatchingWorker&) = delete;
  BatchingWorker& operator=(const BatchingWorker&) = delete;

  void enqueue(Item item);
  /// Asks for a send as soon as possible (ignores the interval once; backoff still applies).
  void flush_soon();
  /// Stops the thread (see the file comment). Idempotent.
  void stop(bool drain = true);
  /// Items given up so far (spooled), batches sent successfully so far.
  size_t given_up() const;
  size_t batches_sent() const;

 private:
  void loop();

  BatchingWorkerOptions options_;
  SendFn send_;
  GiveUpFn on_give_up_;
  IdleFn on_idle_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false, drain_ = true, flush_soon_ = false, stopped_ = false;
  size_t given_up_ = 0, batches_sent_ = 0;
  bool warned_full_ = false;
  std::thread thread_;
};

}  // namespace zae::io

#include "io/loggers/batching_worker_impl.h"
