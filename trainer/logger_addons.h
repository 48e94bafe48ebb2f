// The logger add-ons: each sends what the Trainer logs (trainer/logging_driver.h) to one
// tool, with its own options; list several to log to several at once (no add-on touches
// another's options or config):
//
//   class MyTrainer : public zae::Trainer::add_on<zae::WandBLoggerAddon, zae::TensorBoardLoggerAddon> { ... };
//   MyTrainer t(options, zae::io::WandBOptions{.project = "fashion"},
//               zae::TensorBoardLoggerAddon::Options{{.log_dir = "runs/a"}, .histogram_every_n_steps = 100});
//
// MetricLoggersAddon (trainer/logging_addon.h) takes loggers built at run time.
// With MultiGPUAddon (listed after them) only rank 0 creates loggers and logs, and the
// values it logs are already averaged over ranks.
// Neptune: its hosted service shut down on 2026-03-05 and its API is gone, so there is no
// NeptuneLoggerAddon; use W&B, MLflow or TensorBoard.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/loggers/csv_logger.h"
#include "io/loggers/jsonl_logger.h"
#include "io/loggers/metric_logger.h"
#include "io/loggers/mlflow_logger.h"
#include "io/loggers/tensorboard_writer.h"
#include "io/loggers/wandb_logger.h"
#include "trainer/logging_addon.h"
#include "trainer/trainer.h"

namespace zae {

namespace detail {

/// An add-on whose Mixin logs to the logger `Make(options)` builds.
template <class Opt, class Logger>
struct SimpleLoggerAddon : AddOnBase {
  using Options = Opt;
  template <class Base>
  class Mixin : public LoggingMixin<Base> {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : LoggingMixin<Base>(t, {factory(pick_options<Options>(args...))}, args...) {}

   private:
    static LoggingDriver::Factory factory(Options o) {
      return [o] { return std::make_shared<Logger>(o); };
    }
  };
};

}  // namespace detail

/// Weights & Biases over its HTTP API (io/loggers/wandb_logger.h; WANDB_* variables honoured).
struct WandBLoggerAddon : detail::SimpleLoggerAddon<io::WandBOptions, io::WandBLogger> {};
/// An MLflow tracking server (io/loggers/mlflow_logger.h; MLFLOW_TRACKING_URI honoured).
struct MLflowLoggerAddon : detail::SimpleLoggerAddon<io::MLflowOptions, io::MLflowLogger> {};
/// One row per step and per epoch in a CSV file (io/loggers/csv_logger.h).
struct CSVLoggerAddon : detail::SimpleLoggerAddon<io::CsvLoggerOptions, io::CsvLogger> {};
/// One JSON object per line (io/loggers/jsonl_logger.h).
struct JsonlLoggerAddon : detail::SimpleLoggerAddon<io::JsonlLoggerOptions, io::JsonlLogger> {};

struct TensorBoardAddonOptions {
  io::TensorBoardOptions writer;
  /// > 0: histograms of every parameter ("params/<name>") and gradient ("grads/<name>")
  /// every N optimizer steps.
  int64_t histogram_every_n_steps = 0;
};

/// TensorBoard event files (io/loggers/tensorboard_writer.h), optionally with histograms.
struct TensorBoardLoggerAddon : AddOnBase {
  using Options = TensorBoardAddonOptions;
  template <class Base>
  class Mixin : public detail::LoggingMixin<Base> {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : detail::LoggingMixin<Base>(t, {factory(detail::pick_options<Options>(args...).writer)}, args...),
          every_(detail::pick_options<Options>(args...).histogram_every_n_steps) {
      ZAE_CHECK(every_ >= 0, "TensorBoardLoggerAddon: histogram_every_n_steps must be >= 0, got ", every_);
    }

    void on_step_end() override {
      detail::LoggingMixin<Base>::on_step_end();
      auto* tb = dynamic_cast<io::TensorBoardLogger*>(this->driver().logger());
      const int64_t steps = this->optimizer_steps();
      if (tb == nullptr || every_ == 0 || this->mode() != Mode::train || steps == 0 || steps % every_ != 0 ||
          steps == last_histogram_step_)
        return;
      last_histogram_step_ = steps;
      const int64_t step = this->progress().get_step() - 1;
      for (const auto& [name, p] : this->model().named_parameters()) {
        tb->log_histogram("params/" + name, p.detach().to(Device::cpu()).template to_vector<double>(), step);
        const Tensor g = p.grad();
        if (g.defined()) tb->log_histogram("grads/" + name, g.to(Device::cpu()).template to_vector<double>(), step);
      }
    }

   private:
    static detail::LoggingDriver::Factory factory(io::TensorBoardOptions o) {
      return [o] { return std::make_shared<io::TensorBoardLogger>(o); };
    }
    int64_t every_;
    int64_t last_histogram_step_ = -1;
  };
};

}  // namespace zae
