// The experiment-logger flags every zae-train job takes (--wandb, --tensorboard, --mlflow,
// --csv, --jsonl and their companions): parsing and building the loggers.
#pragma once

#include <functional>
#include <string>

#include "trainer/logging_addon.h"

namespace zae::apps {

struct LoggerFlags {
  bool wandb = false;            ///< Weights & Biases (WANDB_* variables fill what is not given)
  std::string wandb_project, wandb_entity, wandb_run_id;
  std::string tensorboard_dir;   ///< TensorBoard event files in this directory
  std::string mlflow_uri;        ///< an MLflow tracking server, http(s)://host:port
  std::string mlflow_experiment; ///< MLflow experiment name (MLFLOW_EXPERIMENT_NAME, else "Default")
  std::string csv_path;          ///< one row per step and per epoch
  std::string jsonl_path;        ///< one JSON object per line
};

/// Takes argv[i] (and its value, advancing i) when it is a logger flag; false otherwise.
/// `value` returns the next argument or throws naming the flag.
bool parse_logger_flag(const std::string& arg, LoggerFlags& flags, const std::function<std::string()>& value);

/// The loggers the flags ask for (built now: bad options fail before any work); `job`
/// prefixes error messages ("fashion-mnist").
MetricLoggersOptions make_loggers(const LoggerFlags& flags, const std::string& job);

/// The usage lines of the logger flags.
const char* logger_flags_usage();

}  // namespace zae::apps
