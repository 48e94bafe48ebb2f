// CommThread: the one thread on which a process group runs its communication, in the
// order it was issued (a FIFO of jobs). Blocking calls submit a job and wait for it;
// asynchronous calls hand the job back as a Work. Internal to dist/.
// Invariants: jobs run one at a time, in submission order, all on this one thread (so a
// backend that must not be used from two threads at once, like a Gloo context, is only
// ever touched here); the first job that throws breaks the queue: jobs still queued and
// every later submit fail at once naming that first failure; every wait is bounded (a
// job's own operations are bounded by the backend's timeout; a waiter gives up after
// 2 (jobs ahead + 1) x timeout + a grace (5 s), a safety net against a stuck thread
// that also breaks the queue); stop() fails the queued jobs, lets the running one
// finish and joins; nothing here throws from a destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dist/process_group.h"

namespace zae::dist::detail {

class CommThread {
 public:
  /// Turns a job's exception into the message of the zae::Error its waiters get
  /// ("<op> failed on rank R of N (gloo): ..."). Must not throw.
  using Describe = std::function<std::string(const std::string& op, std::exception_ptr error)>;

  /// who: "rank R of N (gloo)", used in the messages this class writes itself; grace:
  /// the slack a waiter adds to its 2 (jobs ahead + 1) x timeout before giving up.
  CommThread(std::string who, std::chrono::milliseconds timeout, Describe describe,
             std::chrono::milliseconds grace = std::chrono::seconds(5));
  ~CommThread();
  CommThread(const CommThread&) = delete;
  CommThread& operator=(const CommThread&) = delete;

  /// Queues fn to run after every earlier job and returns at once. Throws (without
  /// queuing) when the queue is broken or stopped.
  std::shared_ptr<Work> submit(std::string op, std::function<void()> fn);
  /// submit(), then waits for the job; rethrows its error.
  void run(std::string op, std::function<void()> fn);
  /// Empty while healthy, else the message of the first failure.
  std::string failure() const;
  /// Fails queued jobs ("destroyed before it ran"), waits for the running one, joins.
  /// Idempotent; never throws.
  void stop() noexcept;

  struct Job;
  struct Queue;

 private:
  void loop();

  std::shared_ptr<Queue> queue_;
  Describe describe_;
  std::thread thread_;
};

}  // namespace zae::dist::detail
