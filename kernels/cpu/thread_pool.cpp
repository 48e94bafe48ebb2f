// The CPU kernels' thread pool (contract and rationale in thread_pool.h).
//
// Invariants:
// - Job state (job_, tasks_, next_) changes only under mu_; a task index is claimed
//   under mu_, so a late-waking worker can never claim a task of a finished job.
//   avail_ (unclaimed tasks) and remaining_ (unfinished tasks) are atomics mirrored
//   from that state, read without the lock only to decide whether to keep spinning.
// - The caller claims tasks like a worker: when a worker is slow to wake (its core is
//   busy), the caller runs that worker's task itself instead of waiting for it.
// - The pool is never destroyed (tensors and threads may outlive static destruction);
//   idle workers block on a condition variable.
#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace zae::kernels::cpu {
namespace {

thread_local bool tl_in_parallel = false;

// How long an idle thread spins before it blocks: long enough to catch the next call of
// a sequence of kernels, short enough not to starve other processes of the core.
constexpr auto kSpin = std::chrono::microseconds(50);

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins for at most kSpin until pred() holds; returns pred().
template <class Pred>
bool spin_until(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() >= end) return pred();
  }
}

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);  // "4" or the first entry of "4,2"
    if (n >= 1) return static_cast<int>(std::min<long>(n, 1024));
  }
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) >= 1) return CPU_COUNT(&set);
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n >= 1 ? static_cast<int>(n) : 1;
}

class Pool {
 public:
  Pool() : threads_(default_threads()) {}

  int threads() const { return threads_.load(std::memory_order_relaxed); }
  void set_threads(int n) { threads_.store(std::max(1, n), std::memory_order_relaxed); }

  void run(int64_t tasks, const std::function<void(int64_t)>& task) {
    if (tasks <= 0) return;
    const int64_t width = std::min<int64_t>(tasks, threads());
    std::unique_lock<std::mutex> submit(submit_, std::defer_lock);
    if (width <= 1 || tl_in_parallel || !submit.try_lock()) {
      run_inline(tasks, task);
      return;
    }
    ensure_workers(static_cast<size_t>(width - 1));
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &task;
      tasks_ = tasks;
      next_ = 0;
      error_ = nullptr;
      remaining_.store(tasks, std::memory_order_relaxed);
      avail_.store(tasks, std::memory_order_release);
    }
    for (int64_t i = 0; i < width - 1; ++i) wake_.notify_one();

    tl_in_parallel = true;
    {
      std::unique_lock<std::mutex> lock(mu_);
      claim_and_run(lock);
    }
    tl_in_parallel = false;
    if (!spin_until([this] { return remaining_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [this] { return remaining_.load(std::memory_order_acquire) == 0; });
    }
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lock(mu_);
      error = error_;
      job_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  static void run_inline(int64_t tasks, const std::function<void(int64_t)>& task) {
    const bool outer = tl_in_parallel;
    tl_in_parallel = true;
    std::exception_ptr error;
    for (int64_t i = 0; i < tasks; ++i) {
      try {
        task(i);
      } catch (...) {
        if (!error) error = std::current_exception();
      }
    }
    tl_in_parallel = outer;
    if (error) std::rethrow_exception(error);
  }

  // Runs unclaimed tasks of the current job until none is left. `lock` holds mu_.
  void claim_and_run(std::unique_lock<std::mutex>& lock) {
    while (next_ < tasks_) {
      const int64_t i = next_++;
      avail_.store(tasks_ - next_, std::memory_order_relaxed);
      const std::function<void(int64_t)>* job = job_;
      lock.unlock();
      std::exception_ptr error;
      try {
        (*job)(i);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error && !error_) error_ = error;
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_all();
    }
  }

  void worker() {
    tl_in_parallel = true;  // calls made from inside a task run inline
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      claim_and_run(lock);
      lock.unlock();
      spin_until([this] { return avail_.load(std::memory_order_acquire) > 0; });
      lock.lock();
      wake_.wait(lock, [this] { return next_ < tasks_; });
    }
  }

  // Called with submit_ held: only the submitting thread grows the pool.
  void ensure_workers(size_t n) {
    while (workers_.size() < n) workers_.emplace_back([this] { worker(); });
  }

  std::atomic<int> threads_;
  std::mutex submit_;  // held by the one caller whose job is running
  std::mutex mu_;      // job state
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t tasks_ = 0, next_ = 0;
  std::atomic<int64_t> avail_{0}, remaining_{0};
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: see the file comment
  return *p;
}

}  // namespace

int num_threads() { return pool().threads(); }
void set_num_threads(int n) { pool().set_threads(n); }
bool in_parallel() { return tl_in_parallel; }
void run_tasks(int64_t tasks, const std::function<void(int64_t)>& task) { pool().run(tasks, task); }

}  // namespace zae::kernels::cpu
