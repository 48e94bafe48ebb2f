#include "dist/comm_thread.h"

#include <algorithm>

#include "engine/error.h"

namespace zae::dist::detail {

using Clock = std::chrono::steady_clock;

struct CommThread::Job {
  std::string op;
  std::function<void()> fn;
  Clock::time_point deadline;  // the waiters' safety net
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;

  void finish(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      error = std::move(e);
    }
    cv.notify_all();
  }
};

// Shared with every Work so that a Work outlives its group safely.
struct CommThread::Queue {
  std::string who;
  std::chrono::milliseconds timeout;
  std::chrono::milliseconds grace;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> jobs;
  bool running = false;  // a job is executing now
  bool stopped = false;
  std::string failure;  // first failure; non-empty = broken

  // Records `message` as the failure unless one is recorded already.
  void set_failure(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    if (failure.empty()) failure = message;
  }
};

namespace {

// now + factor * timeout + grace, capped at about ten years (a "wait forever" timeout
// must not overflow).
Clock::time_point deadline_after(std::chrono::milliseconds timeout, int64_t factor,
                                 std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
  const std::chrono::milliseconds cap = std::chrono::hours(24 * 3650);
  const std::chrono::milliseconds span = timeout >= cap / factor ? cap : timeout * factor;
  return Clock::now() + std::min(cap, span + grace);
}

std::exception_ptr make_error(const std::string& message) {
  return std::make_exception_ptr(Error(message, "", __FILE__, __LINE__));
}

std::string broken_message(const std::string& op, const std::string& who, const std::string& failure) {
  return op + " failed on " + who + ": the process group is unusable after an earlier failure: " + failure;
}

class JobWork final : public Work {
 public:
  JobWork(std::shared_ptr<CommThread::Queue> queue, std::shared_ptr<CommThread::Job> job)
      : queue_(std::move(queue)), job_(std::move(job)) {}

  void wait() override {
    std::unique_lock<std::mutex> lock(job_->mu);
    const Clock::time_point until = std::max(job_->deadline, deadline_after(queue_->timeout, 1));
    if (!job_->cv.wait_until(lock, until, [&] { return job_->done; })) {
      lock.unlock();
      const std::string message = job_->op + " on " + queue_->who + " did not finish within " +
                                  std::to_string(queue_->timeout.count()) +
                                  " ms of its turn (the communication thread is stuck); the process group is unusable";
      queue_->set_failure(message);
      std::rethrow_exception(make_error(message));
    }
    if (job_->error) std::rethrow_exception(job_->error);
  }

  bool completed() override {
    std::lock_guard<std::mutex> lock(job_->mu);
    return job_->done;
  }

 private:
  std::shared_ptr<CommThread::Queue> queue_;
  std::shared_ptr<CommThread::Job> job_;
};

}  // namespace

CommThread::CommThread(std::string who, std::chrono::milliseconds timeout, Describe describe,
                       std::chrono::milliseconds grace)
    : queue_(std::make_shared<Queue>()), describe_(std::move(describe)) {
  queue_->who = std::move(who);
  queue_->timeout = timeout;
  queue_->grace = grace;
  thread_ = std::thread([this] { loop(); });
}

CommThread::~CommThread() { stop(); }

std::shared_ptr<Work> CommThread::submit(std::string op, std::function<void()> fn) {
  auto job = std::make_shared<Job>();
  job->op = std::move(op);
  job->fn = std::move(fn);
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    if (!queue_->failure.empty()) ZAE_FAIL(broken_message(job->op, queue_->who, queue_->failure));
    ZAE_CHECK(!queue_->stopped, job->op, " on ", queue_->who, ": the process group has been destroyed");
    const auto ahead = static_cast<int64_t>(queue_->jobs.size()) + (queue_->running ? 1 : 0);
    // Every job ahead and this one end within about 2 timeouts each (the op's own timeout,
    // then reporting the failure); the grace absorbs a loaded machine.
    job->deadline = deadline_after(queue_->timeout, 2 * (ahead + 1), queue_->grace);
    queue_->jobs.push_back(job);
  }
  queue_->cv.notify_all();
  return std::make_shared<JobWork>(queue_, job);
}

void CommThread::run(std::string op, std::function<void()> fn) { submit(std::move(op), std::move(fn))->wait(); }

std::string CommThread::failure() const {
  std::lock_guard<std::mutex> lock(queue_->mu);
  return queue_->failure;
}

void CommThread::loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    std::string failure;
    {
      std::unique_lock<std::mutex> lock(queue_->mu);
      queue_->cv.wait(lock, [&] { return queue_->stopped || !queue_->jobs.empty(); });
      if (queue_->jobs.empty()) return;  // stopped
      job = std::move(queue_->jobs.front());
      queue_->jobs.pop_front();
      queue_->running = true;
      failure = queue_->failure;
    }
    std::exception_ptr error;
    if (!failure.empty()) {
      error = make_error(broken_message(job->op, queue_->who, failure));
    } else {
      try {
        job->fn();
      } catch (...) {
        std::string message;
        try {
          message = describe_(job->op, std::current_exception());
        } catch (...) {
          message = job->op + " failed on " + queue_->who;
        }
        queue_->set_failure(message);
        error = make_error(message);
      }
    }
    job->fn = nullptr;  // release the job's tensors before anyone is told it is done
    job->finish(error);
    {
      std::lock_guard<std::mutex> lock(queue_->mu);
      queue_->running = false;
    }
  }
}

void CommThread::stop() noexcept {
  try {
    std::deque<std::shared_ptr<Job>> orphans;
    {
      std::lock_guard<std::mutex> lock(queue_->mu);
      queue_->stopped = true;
      orphans.swap(queue_->jobs);
    }
    queue_->cv.notify_all();
    for (auto& job : orphans) {
      job->fn = nullptr;
      job->finish(make_error(job->op + " on " + queue_->who + ": the process group was destroyed before it ran"));
    }
    if (thread_.joinable()) thread_.join();
  } catch (...) {
    // Nothing sensible is left to do; a destructor must not throw.
  }
}

}  // namespace zae::dist::detail
