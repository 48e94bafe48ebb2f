#include "apps/common/logger_flags.h"

#include "engine/error.h"
#include "io/loggers/csv_logger.h"
#include "io/loggers/jsonl_logger.h"
#include "io/loggers/mlflow_logger.h"
#include "io/loggers/tensorboard_writer.h"
#include "io/loggers/wandb_logger.h"

namespace zae::apps {

bool parse_logger_flag(const std::string& a, LoggerFlags& f, const std::function<std::string()>& value) {
  if (a == "--wandb") f.wandb = true;
  else if (a == "--wandb-project") f.wandb_project = value();
  else if (a == "--wandb-entity") f.wandb_entity = value();
  else if (a == "--wandb-run-id") f.wandb_run_id = value();
  else if (a == "--tensorboard") f.tensorboard_dir = value();
  else if (a == "--mlflow") f.mlflow_uri = value();
  else if (a == "--mlflow-experiment") f.mlflow_experiment = value();
  else if (a == "--csv") f.csv_path = value();
  else if (a == "--jsonl") f.jsonl_path = value();
  else return false;
  return true;
}

MetricLoggersOptions make_loggers(const LoggerFlags& o, const std::string& job) {
  ZAE_CHECK(o.wandb || (o.wandb_project.empty() && o.wandb_entity.empty() && o.wandb_run_id.empty()), job,
            ": --wandb-project / --wandb-entity / --wandb-run-id need --wandb");
  ZAE_CHECK(!o.mlflow_uri.empty() || o.mlflow_experiment.empty(), job, ": --mlflow-experiment needs --mlflow");
  MetricLoggersOptions m;
  if (o.wandb) {
    io::WandBOptions w;
    w.project = o.wandb_project;
    w.entity = o.wandb_entity;
    w.run_id = o.wandb_run_id;
    m.loggers.push_back(std::make_shared<io::WandBLogger>(w));
  }
  if (!o.tensorboard_dir.empty()) {
    io::TensorBoardOptions t;
    t.log_dir = o.tensorboard_dir;
    m.loggers.push_back(std::make_shared<io::TensorBoardLogger>(t));
  }
  if (!o.mlflow_uri.empty()) {
    io::MLflowOptions f;
    f.tracking_uri = o.mlflow_uri;
    f.experiment_name = o.mlflow_experiment;
    m.loggers.push_back(std::make_shared<io::MLflowLogger>(f));
  }
  if (!o.csv_path.empty()) {
    io::CsvLoggerOptions c;
    c.path = o.csv_path;
    m.loggers.push_back(std::make_shared<io::CsvLogger>(c));
  }
  if (!o.jsonl_path.empty()) {
    io::JsonlLoggerOptions j;
    j.path = o.jsonl_path;
    m.loggers.push_back(std::make_shared<io::JsonlLogger>(j));
  }
  return m;
}

const char* logger_flags_usage() {
  return "          loggers (any combination):\n"
         "          --wandb [--wandb-project P --wandb-entity E --wandb-run-id ID]  Weights & Biases (WANDB_API_KEY,\n"
         "                          WANDB_MODE=online|offline|disabled, WANDB_BASE_URL, WANDB_DIR, ... honoured)\n"
         "          --tensorboard DIR  --mlflow URI [--mlflow-experiment NAME]  --csv FILE  --jsonl FILE\n";
}

}  // namespace zae::apps
