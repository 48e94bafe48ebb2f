// DataLoader internals. One LoaderRun per iteration: it owns the epoch's order, the
// worker threads and the delivery buffer. Worker w builds the batches b with
// b % W == w, in increasing order; workers wait on a condition variable while they
// are `capacity` batches ahead of the consumer and file each result (batch or error
// text) under its batch number; the consumer waits for exactly the next number, so
// delivery order never depends on thread timing. No thread ever spins.
#include "io/dataloader.h"

#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <utility>

#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "io/pinned_memory.h"
#include "io/sampler.h"

namespace zae {

namespace {

std::string exception_text(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

}  // namespace

namespace detail {

class LoaderRun {
 public:
  LoaderRun(std::shared_ptr<Dataset> dataset, const DataLoaderOptions& options, std::vector<int64_t> order,
            int64_t epoch, int64_t first, int64_t num_batches)
      : dataset_(std::move(dataset)),
        options_(options),
        order_(std::move(order)),
        epoch_(epoch),
        num_batches_(num_batches),
        next_(first),
        first_(first) {
    if (!options_.collate) options_.collate = default_collate;
    const int workers = options_.num_workers;
    if (workers == 0 || first_ >= num_batches_) return;
    capacity_ = static_cast<int64_t>(options_.prefetch_factor) * workers;
    try {
      for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { worker_loop(w); });
    } catch (...) {
      stop();
      throw;
    }
  }
  ~LoaderRun() { stop(); }
  LoaderRun(const LoaderRun&) = delete;
  LoaderRun& operator=(const LoaderRun&) = delete;

  int64_t epoch() const { return epoch_; }
  int64_t num_batches() const { return num_batches_; }
  /// Batches delivered so far, counting those skipped at the start.
  int64_t delivered() const { return next_; }
  bool finished() const { return finished_; }
  const Batch& current() const {
    ZAE_CHECK(has_current_ && !finished_, "DataLoader: dereferencing an iterator that is at the end");
    return current_;
  }

  /// Delivers the next batch into current(), or marks the run finished.
  void advance() {
    ZAE_CHECK(!finished_, "DataLoader: incrementing an iterator that is at the end");
    ZAE_CHECK(!stopped_, "DataLoader: this iteration was stopped because a new iteration began or the loader "
                         "was destroyed; restart the loop");
    if (next_ >= num_batches_) {
      finished_ = true;
      has_current_ = false;
      current_ = Batch();
      stop();
      return;
    }
    Slot slot;
    if (threads_.empty()) {
      slot = produce(next_, "");
      ++next_;
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [&] { return stopped_ || results_.count(next_) > 0; });
      ZAE_CHECK(!stopped_, "DataLoader: this iteration was stopped while waiting for a batch");
      auto node = results_.extract(next_);
      slot = std::move(node.mapped());
      ++next_;
      lock.unlock();
      space_.notify_all();
    }
    if (slot.failed) {
      finished_ = true;
      has_current_ = false;
      current_ = Batch();
      stop();
      ZAE_FAIL("DataLoader ", slot.error);
    }
    current_ = std::move(slot.batch);
    has_current_ = true;
  }

  /// Stops the workers and joins them; idempotent, never throws.
  void stop() noexcept {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    stopped_flag_.store(true, std::memory_order_relaxed);
    ready_.notify_all();
    space_.notify_all();
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    results_.clear();
  }

 private:
  struct Slot {
    Batch batch;
    bool failed = false;
    std::string error;  // "[worker N ]failed on sample i: <message>"
  };

  // Builds batch b (get, collate, pin). Never throws: errors come back in the Slot.
  Slot produce(int64_t b, const std::string& who) const {
    NoGradGuard no_grad;
    Slot slot;
    const int64_t n = static_cast<int64_t>(order_.size());
    const int64_t lo = b * options_.batch_size;
    const int64_t hi = std::min(n, lo + options_.batch_size);
    std::vector<Batch> samples;
    samples.reserve(static_cast<size_t>(hi - lo));
    for (int64_t k = lo; k < hi; ++k) {
      if (stopped_flag_.load(std::memory_order_relaxed)) return slot;  // result unused
      const int64_t index = order_[static_cast<size_t>(k)];
      try {
        samples.push_back(dataset_->get(index));
      } catch (...) {
        slot.failed = true;
        slot.error = who + "failed on sample " + std::to_string(index) + ": " + exception_text(std::current_exception());
        return slot;
      }
    }
    try {
      slot.batch = options_.collate(std::move(samples));
    } catch (...) {
      slot.failed = true;
      slot.error = who + "failed collating batch " + std::to_string(b) + " (samples at positions " +
                   std::to_string(lo) + ".." + std::to_string(hi - 1) + " of epoch " + std::to_string(epoch_) +
                   "): " + exception_text(std::current_exception());
      return slot;
    }
    if (options_.pin_memory && pinned_memory_available()) {
      try {
        slot.batch = slot.batch.pin_memory();
      } catch (...) {
        slot.failed = true;
        slot.error = who + "failed pinning batch " + std::to_string(b) + ": " +
                     exception_text(std::current_exception());
      }
    }
    return slot;
  }

  void worker_loop(int w) {
    const int64_t workers = options_.num_workers;
    const std::string who = "worker " + std::to_string(w) + " ";
    const int64_t lead = ((w - first_ % workers) % workers + workers) % workers;  // first b >= first_ with b % W == w
    for (int64_t b = first_ + lead; b < num_batches_; b += workers) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        space_.wait(lock, [&] { return stopped_ || b < next_ + capacity_; });
        if (stopped_) return;
      }
      Slot slot;
      try {
        slot = produce(b, who);
      } catch (...) {  // allocation failures outside produce's own guards
        slot = Slot{Batch(), true, who + "failed on batch " + std::to_string(b) + ": " +
                                       exception_text(std::current_exception())};
      }
      const bool failed = slot.failed;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopped_) return;
        results_.emplace(b, std::move(slot));
      }
      ready_.notify_all();
      if (failed) return;  // the consumer stops at this batch
    }
  }

  std::shared_ptr<Dataset> dataset_;
  DataLoaderOptions options_;
  std::vector<int64_t> order_;
  int64_t epoch_;
  int64_t num_batches_;
  int64_t next_;   // the next batch to deliver (guarded by mu_ while workers run)
  int64_t first_;  // the first batch of this run
  int64_t capacity_ = 0;

  // Consumer-side state (the driving thread only).
  Batch current_;
  bool has_current_ = false;
  bool finished_ = false;

  std::mutex mu_;
  std::condition_variable ready_;  // a result was filed (consumer waits)
  std::condition_variable space_;  // the consumer took a result (workers wait)
  std::map<int64_t, Slot> results_;
  bool stopped_ = false;
  std::atomic<bool> stopped_flag_{false};  // lock-free early exit inside a batch
  std::vector<std::thread> threads_;
};

}  // namespace detail

// ---- DataLoader ---------------------------------------------------------------

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  ZAE_CHECK(dataset_ != nullptr, "DataLoader: the dataset is null");
  ZAE_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", options_.batch_size);
  ZAE_CHECK(options_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ", options_.num_workers);
  ZAE_CHECK(options_.prefetch_factor >= 1, "DataLoader: prefetch_factor must be >= 1, got ",
            options_.prefetch_factor);
  ZAE_CHECK(!(options_.shuffle && options_.sampler), "DataLoader: options.shuffle must be false when a sampler is "
            "given: shuffle is the sampler's job (e.g. DistributedSampler::Options::shuffle)");
  if (!options_.collate) options_.collate = default_collate;
}

DataLoader::~DataLoader() {
  if (current_) current_->stop();
}

int64_t DataLoader::samples_per_epoch() const {
  const int64_t n = dataset_->size();
  ZAE_CHECK(n >= 0, "DataLoader: the dataset reports a negative size ", n);
  if (!options_.sampler) return n;
  const int64_t m = options_.sampler->size(n);
  ZAE_CHECK(m >= 0, "DataLoader: the sampler reports a negative size ", m, " for a dataset of ", n, " samples");
  return m;
}

int64_t DataLoader::size() const {
  const int64_t n = samples_per_epoch();
  const int64_t bs = options_.batch_size;
  return options_.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> DataLoader::order_for_epoch(int64_t epoch) const {
  ZAE_CHECK(epoch >= 0, "DataLoader: epoch must be >= 0, got ", epoch);
  const int64_t n = dataset_->size();
  ZAE_CHECK(n >= 0, "DataLoader: the dataset reports a negative size ", n);
  if (!options_.sampler) {
    if (options_.shuffle) return shuffled_order(n, options_.seed, epoch);
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    return order;
  }
  std::vector<int64_t> order = options_.sampler->indices(epoch, n);
  const int64_t expected = samples_per_epoch();
  ZAE_CHECK(static_cast<int64_t>(order.size()) == expected, "DataLoader: the sampler returned ", order.size(),
            " indices for epoch ", epoch, " but its size() is ", expected, " (dataset of ", n, " samples)");
  for (size_t k = 0; k < order.size(); ++k)
    ZAE_CHECK(order[k] >= 0 && order[k] < n, "DataLoader: the sampler returned index ", order[k], " (position ", k,
              " of epoch ", epoch, ") for a dataset of ", n, " samples (expected 0 <= index < ", n, ")");
  return order;
}

DataLoader::Iterator DataLoader::begin() {
  if (current_) {
    current_->stop();
    current_.reset();
  }
  const int64_t epoch = next_epoch_;
  const int64_t first = next_start_;
  const int64_t batches = size();
  ZAE_CHECK(first <= batches, "DataLoader: cannot start epoch ", epoch, " at batch ", first, ": an epoch has only ",
            batches, " batches (", samples_per_epoch(), options_.sampler ? " sampled" : "", " samples, batch_size ",
            options_.batch_size, options_.drop_last ? ", drop_last" : "",
            "); did the dataset or batch size change since the state was saved?");
  next_epoch_ = epoch + 1;
  next_start_ = 0;
  explicit_next_ = false;
  current_ = std::make_shared<detail::LoaderRun>(dataset_, options_, order_for_epoch(epoch), epoch, first, batches);
  // The iterators share a handle whose release (the loop ended, by break or by an
  // exception) stops and joins the workers; the loader's own handle keeps the run,
  // and with it the position state() reports.
  std::shared_ptr<detail::LoaderRun> handle(current_.get(),
                                            [keep = current_](detail::LoaderRun* run) { run->stop(); });
  current_->advance();
  return Iterator(std::move(handle));
}

void DataLoader::set_epoch(int64_t epoch) {
  ZAE_CHECK(epoch >= 0, "DataLoader::set_epoch: epoch must be >= 0, got ", epoch);
  next_epoch_ = epoch;
  explicit_next_ = true;
}

int64_t DataLoader::epoch() const { return current_ ? current_->epoch() : next_epoch_; }

void DataLoader::skip_batches(int64_t count) {
  ZAE_CHECK(count >= 0, "DataLoader::skip_batches: count must be >= 0, got ", count);
  next_start_ = count;
  explicit_next_ = true;
}

DataLoaderState DataLoader::state() const {
  if (current_ && !current_->finished() && !explicit_next_) {
    if (current_->delivered() >= current_->num_batches())
      return {options_.seed, current_->epoch() + 1, 0};
    return {options_.seed, current_->epoch(), current_->delivered()};
  }
  return {options_.seed, next_epoch_, next_start_};
}

void DataLoader::load_state(const DataLoaderState& s) {
  ZAE_CHECK(s.epoch >= 0 && s.batches_consumed >= 0, "DataLoader::load_state: epoch and batches_consumed must be "
            ">= 0, got epoch ", s.epoch, ", batches_consumed ", s.batches_consumed);
  options_.seed = s.seed;
  next_epoch_ = s.epoch;
  next_start_ = s.batches_consumed;
  explicit_next_ = true;
}

// ---- Iterator -------------------------------------------------------------------

bool DataLoader::Iterator::at_end() const { return !run_ || run_->finished(); }

const Batch& DataLoader::Iterator::operator*() const {
  ZAE_CHECK(run_ != nullptr, "DataLoader: dereferencing the end iterator");
  return run_->current();
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ZAE_CHECK(run_ != nullptr, "DataLoader: incrementing the end iterator");
  run_->advance();
  return *this;
}

bool DataLoader::Iterator::operator==(const Iterator& other) const {
  if (at_end() || other.at_end()) return at_end() && other.at_end();
  return run_ == other.run_;
}

}  // namespace zae
