#include "trainer/logging_driver.h"

#include <cstdio>
#include <exception>

#include "dist/dist.h"
#include "io/state_json.h"
#include "trainer/trainer.h"

namespace zae::detail {

namespace json = io::json;
namespace st = io::state;

json::Value trainer_config(const Trainer& trainer) {
  json::Value config = json::Value::make_object();
  const TrainerOptions& o = trainer.options();
  if (o.model) {
    json::Value model = json::Value::make_object();
    st::put(model, "type", st::string(o.model->type_name()));
    st::put(model, "parameters", st::integer(o.model->num_parameters()));
    st::put(model, "trainable_parameters", st::integer(o.model->num_parameters(/*trainable_only=*/true)));
    st::put(config, "model", std::move(model));
  }
  if (o.optimizer) {
    json::Value opt = json::Value::make_object();
    st::put(opt, "name", st::string(o.optimizer->name()));
    for (const auto& [key, value] : o.optimizer->group(0).options) st::put(opt, key, st::number(value));
    st::put(opt, "param_groups", st::integer(static_cast<int64_t>(o.optimizer->num_groups())));
    st::put(config, "optimizer", std::move(opt));
  }
  if (o.scheduler) st::put(config, "scheduler", st::string(o.scheduler->name()));
  json::Value t = json::Value::make_object();
  st::put(t, "device", st::string(trainer.device().str()));
  st::put(t, "gradient_clip", st::number(o.gradient_clip));
  st::put(t, "accumulate_grad_batches", st::integer(o.accumulate_grad_batches));
  st::put(t, "scheduler_step_on_batch", st::boolean(o.scheduler_step_on_batch));
  if (o.max_steps) st::put(t, "max_steps", st::integer(*o.max_steps));
  if (o.seed) st::put(t, "seed", st::integer(static_cast<int64_t>(*o.seed)));
  st::put(t, "world_size", st::integer(dist::get_world_size()));
  st::put(config, "trainer", std::move(t));
  return config;
}

LoggingDriver::LoggingDriver(Factory make) : make_(std::move(make)) {}

LoggingDriver::~LoggingDriver() { finish(true); }

void LoggingDriver::begin_run(const Trainer& trainer) {
  if (!dist::is_main_process() || finished_) return;
  if (!logger_) logger_ = make_();  // bad options throw here, before any training
  if (!config_logged_) {
    config_logged_ = true;
    try {
      logger_->log_config(trainer_config(trainer));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s logger: log_config failed: %s\n", logger_->name().c_str(), e.what());
    }
  }
}

void LoggingDriver::before_batch(const Batch& batch) {
  batch_samples_ = batch.size() > 0 && batch[0].dim() > 0 ? batch[0].size(0) : 1;
  batch_start_ = Clock::now();
}

void LoggingDriver::after_step(const Trainer& trainer) {
  if (!logger_ || finished_ || trainer.mode() != Mode::train) return;
  io::MetricValues row;
  for (const auto& [key, values] : trainer.log_train().values)
    if (!values.empty()) row["train/" + key] = values.back();
  if (trainer.options().optimizer) row["lr"] = trainer.options().optimizer->lr();
  const double seconds = std::chrono::duration<double>(Clock::now() - batch_start_).count();
  if (seconds > 0) row["samples_per_sec"] = static_cast<double>(batch_samples_) * dist::get_world_size() / seconds;
  // The step just finished (the counter has moved on to the next one).
  logger_->log_metrics(row, trainer.progress().get_step() - 1);
}

void LoggingDriver::after_epoch(const Trainer& trainer, int64_t epoch) {
  if (!logger_ || finished_) return;
  io::MetricValues row;
  for (const auto& [key, v] : trainer.train_metrics()) row["train/" + key + "_epoch"] = v;
  for (const auto& [key, v] : trainer.test_metrics()) row["test/" + key + "_epoch"] = v;
  row["epoch"] = static_cast<double>(epoch);
  logger_->log_metrics(row, trainer.progress().get_step() - 1);
}

void LoggingDriver::end_run(const Trainer& trainer) {
  if (!logger_ || finished_) return;
  io::MetricValues summary;
  if (trainer.best_epoch() > 0) {
    summary["best_loss"] = trainer.best_loss();
    summary["best_epoch"] = static_cast<double>(trainer.best_epoch());
  }
  for (const auto& [key, v] : trainer.train_metrics()) summary["train/" + key + "_epoch"] = v;
  for (const auto& [key, v] : trainer.test_metrics()) summary["test/" + key + "_epoch"] = v;
  summary["epochs"] = static_cast<double>(trainer.progress().get_epoch() - 1);
  summary["steps"] = static_cast<double>(trainer.progress().get_step() - 1);
  logger_->log_summary(summary);
  logger_->flush();
}

void LoggingDriver::finish(bool success) {
  if (finished_) return;
  finished_ = true;
  if (!logger_) return;
  try {
    logger_->finish(success);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s logger: finish failed: %s\n", logger_->name().c_str(), e.what());
  }
}

}  // namespace zae::detail
