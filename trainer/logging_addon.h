// LoggingMixin: the trainer hooks that feed metric loggers (through LoggingDriver), shared
// by every logger add-on (trainer/logger_addons.h); and MetricLoggersAddon, which takes
// loggers built at run time, any mix of them (zae-train's --wandb/--tensorboard/--mlflow/
// --csv/--jsonl flags).
// Invariants: every hook calls through to its base first (on_step_end, on_epoch_end) or
// around it (run, run_batch); a failed run() finishes the loggers as failed and rethrows;
// a process exit from inside the trainer (signals) flushes and finishes them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "io/loggers/metric_logger.h"
#include "trainer/logging_driver.h"
#include "trainer/trainer.h"

namespace zae {

namespace detail {

/// Drives LoggingDrivers (one per logger) from the trainer's hooks.
template <class Base>
class LoggingMixin : public Base {
 public:
  template <class... Args>
  LoggingMixin(const TrainerOptions& t, const std::vector<LoggingDriver::Factory>& makers, const Args&... args)
      : Base(t, args...) {
    for (const auto& make : makers) drivers_.push_back(std::make_unique<LoggingDriver>(make));
  }

  void run(int64_t n_epoch, DataLoader& loader, DataLoader* valid_loader = nullptr) override {
    for (auto& d : drivers_) d->begin_run(*this);
    try {
      Base::run(n_epoch, loader, valid_loader);
    } catch (...) {
      for (auto& d : drivers_) d->finish(false);
      throw;
    }
    for (auto& d : drivers_) d->end_run(*this);
  }
  void run_batch(const Batch& batch) override {
    for (auto& d : drivers_) d->before_batch(batch);
    Base::run_batch(batch);
  }
  void on_step_end() override {
    Base::on_step_end();
    for (auto& d : drivers_) d->after_step(*this);
  }
  void on_epoch_end(int64_t epoch) override {
    Base::on_epoch_end(epoch);
    for (auto& d : drivers_) d->after_epoch(*this, epoch);
  }
  void on_process_exit(int status) override {
    for (auto& d : drivers_) {
      d->end_run(*this);
      d->finish(status == 0);
    }
    Base::on_process_exit(status);
  }

 protected:
  /// The first (for single-logger add-ons: the only) driver.
  LoggingDriver& driver() { return *drivers_.front(); }

 private:
  std::vector<std::unique_ptr<LoggingDriver>> drivers_;
};

}  // namespace detail

/// Loggers built at run time (any mix): zae-train's --wandb/--mlflow/--tensorboard/--csv/--jsonl.
struct MetricLoggersOptions {
  std::vector<std::shared_ptr<io::MetricLogger>> loggers;
};

struct MetricLoggersAddon : AddOnBase {
  using Options = MetricLoggersOptions;
  template <class Base>
  class Mixin : public detail::LoggingMixin<Base> {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : detail::LoggingMixin<Base>(t, factories(detail::pick_options<Options>(args...)), args...) {}

   private:
    static std::vector<detail::LoggingDriver::Factory> factories(const Options& o) {
      std::vector<detail::LoggingDriver::Factory> out;
      for (const auto& logger : o.loggers) out.push_back([logger] { return logger; });
      return out;
    }
  };
};

}  // namespace zae
