#include "trainer/trainer.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"
#include "io/safetensors.h"
#include "nn/clip_grad.h"
#include "trainer/progress_display.h"

namespace zae {

namespace {

// train_step's outputs must hold a one-element "loss" that requires grad.
const Tensor& checked_loss(const StepOutput& out) {
  ZAE_CHECK(out.contains("loss"), "train_step must return \"loss\" (it returned ", out.size(), " value(s)",
            out.size() ? ", e.g. \"" + out.items().front().first + "\"" : std::string(), ")");
  const Tensor& loss = out.at("loss");
  ZAE_CHECK(loss.numel() == 1, "train_step: \"loss\" must hold one element, got shape ", shape_str(loss.shape()));
  ZAE_CHECK(loss.requires_grad(), "train_step: \"loss\" does not require grad (was it computed under NoGradGuard "
                                  "or from detached tensors?)");
  return loss;
}

}  // namespace

const char* mode_name(Mode m) { return m == Mode::train ? "train" : "test"; }

double StepLog::mean(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end() || it->second.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double v : it->second) s += v;
  return s / static_cast<double>(it->second.size());
}

Trainer::Trainer(TrainerOptions options)
    : options_(std::move(options)), mode_(options_.mode), best_loss_(std::numeric_limits<double>::infinity()) {
  ZAE_CHECK(!options_.device.devices.empty(), "Trainer: the device list is empty");
  ZAE_CHECK(options_.accumulate_grad_batches >= 1, "Trainer: accumulate_grad_batches must be >= 1, got ",
            options_.accumulate_grad_batches);
  ZAE_CHECK(options_.gradient_clip >= 0 && std::isfinite(options_.gradient_clip),
            "Trainer: gradient_clip must be a finite value >= 0, got ", options_.gradient_clip);
  ZAE_CHECK(options_.cuda_graph_warmup_steps >= 1, "Trainer: cuda_graph_warmup_steps must be >= 1, got ",
            options_.cuda_graph_warmup_steps);
  ZAE_CHECK(!options_.max_steps || *options_.max_steps >= 1, "Trainer: max_steps must be >= 1, got ",
            options_.max_steps.value_or(0));
  if (options_.early_stopping) {
    ZAE_CHECK(options_.early_stopping->patience >= 1, "Trainer: early stopping patience must be >= 1, got ",
              options_.early_stopping->patience);
    ZAE_CHECK(options_.early_stopping->min_delta >= 0, "Trainer: early stopping min_delta must be >= 0, got ",
              options_.early_stopping->min_delta);
    early_best_ = options_.early_stopping->maximize ? -std::numeric_limits<double>::infinity()
                                                    : std::numeric_limits<double>::infinity();
  }
  if (options_.seed) manual_seed(*options_.seed);
  if (options_.model) options_.model->to(device());
}

Trainer::~Trainer() = default;

nn::Module& Trainer::model() const {
  ZAE_CHECK(options_.model != nullptr, "Trainer: no model was given (TrainerOptions::model or set_model)");
  return *options_.model;
}

void Trainer::set_model(std::shared_ptr<nn::Module> model) {
  graph_step_.reset();  // a captured step uses the old parameters' memory
  options_.model = std::move(model);
  if (options_.model) options_.model->to(device());
}

const std::vector<double>& Trainer::loss_history(Mode mode) const {
  return mode == Mode::train ? loss_history_train_ : loss_history_test_;
}

void Trainer::log_reset(bool epoch_end) {
  log_train_.clear();
  log_test_.clear();
  if (epoch_end) {
    train_metrics_.clear();
    test_metrics_.clear();
  }
}

void Trainer::set_best(double loss, int64_t epoch, nn::StateDict weights) {
  best_loss_ = loss;
  best_epoch_ = epoch;
  best_weights_ = std::move(weights);
}

void Trainer::request_stop(std::string reason) {
  if (!stop_requested_) stop_reason_ = std::move(reason);
  stop_requested_ = true;
}

void Trainer::interrupt(std::string reason) {
  request_stop(std::move(reason));
  interrupted_ = true;
}

std::optional<std::string> Trainer::save_checkpoint(const std::string&) { return std::nullopt; }

Trainer::LoopState Trainer::loop_state() const {
  LoopState s;
  s.skipped_batches = skipped_batches_;
  s.optimizer_steps = optimizer_steps_;
  s.accumulated = accumulated_;
  s.early_best = early_best_;
  s.early_bad_epochs = early_bad_epochs_;
  s.loss_history_train = loss_history_train_;
  s.loss_history_test = loss_history_test_;
  s.in_epoch = in_train_epoch_;
  if (in_train_epoch_) s.epoch_values = log_train_.values;
  return s;
}

void Trainer::restore_loop_state(LoopState s) {
  ZAE_CHECK(s.skipped_batches >= 0 && s.optimizer_steps >= 0 && s.early_bad_epochs >= 0,
            "Trainer::restore_loop_state: negative counters (skipped ", s.skipped_batches, ", optimizer steps ",
            s.optimizer_steps, ", early-stopping bad epochs ", s.early_bad_epochs, ")");
  ZAE_CHECK(s.accumulated >= 0 && s.accumulated < options_.accumulate_grad_batches,
            "Trainer::restore_loop_state: ", s.accumulated, " accumulated batches do not fit accumulate_grad_batches = ",
            options_.accumulate_grad_batches);
  skipped_batches_ = s.skipped_batches;
  optimizer_steps_ = s.optimizer_steps;
  accumulated_ = s.accumulated;
  early_best_ = s.early_best;
  early_bad_epochs_ = s.early_bad_epochs;
  loss_history_train_ = std::move(s.loss_history_train);
  loss_history_test_ = std::move(s.loss_history_test);
  log_train_.clear();
  if (s.in_epoch) {
    log_train_.values = std::move(s.epoch_values);
    resume_epoch_log_pending_ = true;
    resume_position_pending_ = true;
  }
}

void Trainer::toggle(std::optional<Mode> mode) {
  mode_ = mode ? *mode : (mode_ == Mode::train ? Mode::test : Mode::train);
}

void Trainer::check_scheduler_length(int64_t n_epoch, const DataLoader& loader) const {
  if (!options_.scheduler || !options_.scheduler_step_on_batch || mode_ != Mode::train) return;
  auto total = options_.scheduler->total_iters();
  if (!total) return;
  int64_t steps_per_epoch = (loader.size() + options_.accumulate_grad_batches - 1) / options_.accumulate_grad_batches;
  int64_t needed = options_.scheduler->last_step() + n_epoch * steps_per_epoch;
  if (resume_position_pending_ && n_epoch > 0)  // the first epoch continues where a resume left it
    needed -= loader.state().batches_consumed / options_.accumulate_grad_batches;
  ZAE_CHECK(*total >= needed, "Trainer: the scheduler ", options_.scheduler->name(), " is defined for total_iters = ",
            *total, " steps, but stepping it per batch for ", n_epoch, " epochs of ", steps_per_epoch,
            " optimizer steps needs ", needed, " (make total_iters at least that, or step per epoch)");
}

void Trainer::run(int64_t n_epoch, DataLoader& loader, DataLoader* valid_loader) {
  ZAE_CHECK(n_epoch >= 0, "Trainer::run: n_epoch must be >= 0, got ", n_epoch);
  if (mode_ == Mode::train) {
    model();
    ZAE_CHECK(options_.optimizer != nullptr, "Trainer::run: training needs an optimizer (TrainerOptions::optimizer)");
  }
  if (in_train_epoch_ && mode_ == Mode::train) {
    // The last run was interrupted mid-epoch: continue that epoch where the loader stands.
    loader.load_state(loader.state());
    resume_position_pending_ = true;
    resume_epoch_log_pending_ = true;
  }
  check_scheduler_length(n_epoch, loader);
  stop_requested_ = false;
  interrupted_ = false;
  stop_reason_.clear();
  const int64_t first = progress_.get_epoch();
  const int64_t last = first + n_epoch - 1;
  display_ = std::make_unique<ProgressDisplay>(options_.log_bar, !verbose_);
  display_->begin_run(first, last);
  for (int64_t epoch = first; epoch <= last && !stop_requested_; ++epoch) {
    // The shuffle order is a function of the epoch: every epoch differs, and a
    // resumed run sees the same order (upstream never advanced its sampler).
    if (mode_ == Mode::train && !resume_position_pending_) loader.set_epoch(epoch - 1);
    resume_position_pending_ = false;
    display_->begin_epoch(epoch, mode_name(mode_), loader.size());
    in_train_epoch_ = mode_ == Mode::train;
    try {
      run_epoch(loader);
    } catch (...) {
      in_train_epoch_ = false;
      throw;
    }
    if (interrupted_ && !epoch_finished_) {
      // Left mid-epoch on purpose: the epoch stays open (in_train_epoch_) for a checkpoint
      // and a resume, in this process or another.
      display_->end_epoch("Epoch " + std::to_string(epoch) + "/" + std::to_string(last) + " interrupted at step " +
                          std::to_string(progress_.get_step()));
      break;
    }
    // A stop for max_steps skips validation; an interrupt that came with the epoch's last
    // batch validates as usual, so that the epoch ends exactly as an uninterrupted one.
    in_train_epoch_ = false;
    const bool validated = valid_loader != nullptr && (!stop_requested_ || interrupted_);
    if (validated) {
      const Mode previous = mode_;
      toggle(Mode::test);
      display_->begin_epoch(epoch, "valid", valid_loader->size());
      run_epoch(*valid_loader);
      toggle(previous);
    }
    display_->end_epoch(epoch_summary(epoch, last));
    if (mode_ == Mode::train) {
      const double loss = epoch_loss(validated);
      check_better(epoch, loss);
      if (options_.scheduler && !options_.scheduler_step_on_batch) {
        if (options_.scheduler->needs_metric())
          options_.scheduler->step(loss);
        else
          options_.scheduler->step();
      }
      update_early_stopping(validated);
      progress_.update_epoch();
    }
    on_epoch_end(epoch);
  }
  display_->end_run();
  if (verbose_ && stop_requested_ && !stop_reason_.empty()) std::printf("stopped: %s\n", stop_reason_.c_str());
}

void Trainer::run_epoch(DataLoader& loader) {
  const bool keep_log = mode_ == Mode::train && resume_epoch_log_pending_;
  resume_epoch_log_pending_ = false;
  if (!keep_log) (mode_ == Mode::train ? log_train_ : log_test_).clear();
  if (!display_) display_ = std::make_unique<ProgressDisplay>(options_.log_bar, !verbose_);
  int64_t done = 0;
  epoch_finished_ = true;
  for (const Batch& batch : loader) {
    run_batch(batch);
    ++done;
    const StepLog& log = mode_ == Mode::train ? log_train_ : log_test_;
    std::map<std::string, double> means;
    for (const auto& [k, v] : log.values) means[k] = log.mean(k);
    const int64_t samples = batch.size() > 0 && batch[0].dim() > 0 ? batch[0].size(0) : 1;
    display_->update(done, samples, means, options_.optimizer ? options_.optimizer->lr() : 0.0);
    if (stop_requested_ && mode_ == Mode::train) {  // evaluation always runs to its end
      // Inside an iteration, state() names the next epoch's batch 0 once all were delivered.
      epoch_finished_ = loader.state().batches_consumed == 0;
      break;
    }
  }
  if (interrupted_ && !epoch_finished_) return;  // the accumulation window and the log stay open
  if (mode_ == Mode::train && accumulated_ > 0 && (!stop_requested_ || interrupted_)) {
    // The epoch ended inside an accumulation window: apply what was gathered.
    optimizer_step();
  }
  Metrics& metrics = mode_ == Mode::train ? train_metrics_ : test_metrics_;
  metrics.clear();
  const StepLog& log = mode_ == Mode::train ? log_train_ : log_test_;
  for (const auto& [k, v] : log.values) metrics[k] = log.mean(k);
  for (const auto& [k, v] : metric_on_epoch_end()) metrics[k] = v;
}

void Trainer::run_batch(const Batch& batch_in) {
  Batch batch = to_device(batch_in);
  StepOutput out;
  if (mode_ == Mode::train) {
    ZAE_CHECK(options_.optimizer != nullptr, "Trainer::run_batch: training needs an optimizer");
    model().train();
    if (options_.cuda_graphs != CudaGraphs::off && run_graph_step(batch, out)) {
      log_step(out);
      progress_.update_step();
      on_step_end();
      return;
    }
    if (accumulated_ == 0) options_.optimizer->zero_grad();
    out = train_step(batch);
    const Tensor& loss = checked_loss(out);
    const double value = loss.item();
    if (!loss_is_finite(value)) {
      ZAE_CHECK(options_.on_nonfinite_loss == NonFiniteLoss::skip, "non-finite loss ", value,
                std::isfinite(value) ? " here, but not on another rank," : "", " at epoch ", progress_.get_epoch(),
                ", step ", progress_.get_step(), " (set on_nonfinite_loss = NonFiniteLoss::skip to drop such batches)");
      ++skipped_batches_;
      std::fprintf(stderr, "warning: skipped batch at epoch %lld, step %lld: non-finite loss %g%s (%lld skipped)\n",
                   static_cast<long long>(progress_.get_epoch()), static_cast<long long>(progress_.get_step()), value,
                   std::isfinite(value) ? " here, but not on another rank" : "",
                   static_cast<long long>(skipped_batches_));
      return;
    }
    const int64_t n = options_.accumulate_grad_batches;
    backward(n > 1 ? loss * (1.0 / static_cast<double>(n)) : loss);
    if (++accumulated_ == n) optimizer_step();
  } else {
    if (options_.model) model().eval();
    NoGradGuard no_grad;
    out = test_step(batch);
  }
  log_step(out);
  progress_.update_step();
  on_step_end();
}

void Trainer::backward(const Tensor& loss) { loss.backward(); }

bool Trainer::loss_is_finite(double value) { return std::isfinite(value); }

void Trainer::optimizer_step() {
  if (options_.gradient_clip > 0) nn::clip_grad_norm_(model().parameters(), options_.gradient_clip);
  if (defer_step_bookkeeping_) {  // a graph step's body (maybe captured): no host work here
    options_.optimizer->step();
    return;
  }
  options_.optimizer->step();  // (a capturable optimizer uploads its hyperparameters itself here)
  finish_optimizer_step();
}

std::string Trainer::cuda_graph_blocker() {
  if (options_.accumulate_grad_batches > 1)
    return "gradient accumulation (accumulate_grad_batches = " + std::to_string(options_.accumulate_grad_batches) +
           ": the optimizer does not step every batch)";
  if (options_.on_nonfinite_loss == NonFiniteLoss::skip)
    return "on_nonfinite_loss = skip (the loss is read on the host before backward)";
  if (autocast::enabled() && autocast::low_dtype() == DType::float16)
    return "float16 autocast (loss scaling decides skipped steps on the host)";
  if (options_.device.devices.size() > 1) return "training on several devices";
  return {};
}

bool Trainer::run_graph_step(const Batch& batch, StepOutput& out) {
  if (!graph_step_) {
    std::string why;
    auto backend = make_cuda_graph_backend(device(), &why);
    graph_step_ = std::make_unique<CudaGraphStep>(options_.cuda_graphs, options_.cuda_graph_warmup_steps,
                                                  std::move(backend), why, [this](const std::string& message) {
                                                    if (verbose_) std::fprintf(stderr, "%s\n", message.c_str());
                                                  });
  }
  optim::Optimizer& opt = *options_.optimizer;
  CudaGraphStep::Hooks hooks;
  hooks.prepare = [&opt]() -> std::string {
    try {
      opt.set_capturable(true);  // lr and step counts in device memory; an error where unsupported
    } catch (const Error& e) {
      return "the optimizer " + opt.name() + " cannot be captured (" + e.what() + ")";
    }
    return {};
  };
  hooks.before_step = [&opt] { opt.upload_hyperparameters(); };
  hooks.body = [this, &opt](const Batch& b) {
    opt.zero_grad();
    StepOutput o = train_step(b);
    backward(checked_loss(o));
    defer_step_bookkeeping_ = true;
    try {
      optimizer_step();
    } catch (...) {
      defer_step_bookkeeping_ = false;
      throw;
    }
    defer_step_bookkeeping_ = false;
    return o;
  };
  auto result = graph_step_->try_run(batch, cuda_graph_blocker(), hooks);
  if (!result) return false;
  finish_optimizer_step();
  out = std::move(result->out);
  // The step has been applied already: a graph cannot stop half-way on a host decision.
  const double value = out.at("loss").item();
  ZAE_CHECK(loss_is_finite(value), "non-finite loss ", value, std::isfinite(value) ? " here, but not on another rank," : "",
            " at epoch ", progress_.get_epoch(), ", step ", progress_.get_step(),
            " (with CUDA graphs the step was already applied; set on_nonfinite_loss = NonFiniteLoss::skip to drop such "
            "batches, which trains eagerly)");
  return true;
}

void Trainer::finish_optimizer_step() {
  accumulated_ = 0;
  ++optimizer_steps_;
  if (options_.scheduler && options_.scheduler_step_on_batch) options_.scheduler->step();
  if (options_.max_steps && optimizer_steps_ >= *options_.max_steps)
    request_stop("reached max_steps = " + std::to_string(*options_.max_steps));
}

void Trainer::log_step(const StepOutput& out) {
  StepLog& log = mode_ == Mode::train ? log_train_ : log_test_;
  for (const auto& [k, v] : out.items()) {
    if (v.numel() == 1) {
      const double x = v.item();
      log.values[k].push_back(x);
      if (k == "loss") (mode_ == Mode::train ? loss_history_train_ : loss_history_test_).push_back(x);
    } else {
      log.tensors[k].push_back(v.detach().to(Device::cpu()));
    }
  }
}

Batch Trainer::to_device(const Batch& batch) {
  if (batch.size() == 0) return batch;
  bool all_there = true;
  for (size_t i = 0; i < batch.size(); ++i) all_there = all_there && batch[i].device() == device();
  return all_there ? batch : batch.to(device(), /*non_blocking=*/true);
}

void Trainer::on_epoch_end(int64_t) {}
void Trainer::on_step_end() {}
void Trainer::on_process_exit(int) {}
void Trainer::save_addon_state(io::json::Value&) const {}

void Trainer::skip_optimizer_step() {
  accumulated_ = 0;
  ++skipped_optimizer_steps_;
}
void Trainer::load_addon_state(const io::json::Value&) {}

double Trainer::epoch_loss(bool validated) const {
  const StepLog& log = validated ? log_test_ : log_train_;
  return log.mean("loss");
}

bool Trainer::check_better(int64_t epoch, double loss) {
  if (!(loss < best_loss_)) return false;
  best_loss_ = loss;
  best_epoch_ = epoch;
  // A deep copy: later updates of the live weights must not change the best ones.
  NoGradGuard no_grad;
  best_weights_.clear();
  for (const auto& [name, t] : model().state_dict()) best_weights_.emplace_back(name, t.detach().clone());
  return true;
}

void Trainer::update_early_stopping(bool validated) {
  if (!options_.early_stopping) return;
  const EarlyStopping& es = *options_.early_stopping;
  const Metrics& metrics = validated ? test_metrics_ : train_metrics_;
  auto it = metrics.find(es.monitor);
  ZAE_CHECK(it != metrics.end(), "early stopping monitors '", es.monitor, "', which is not among the ",
            validated ? "test" : "train", " metrics of this epoch");
  const double v = it->second;
  const bool better = es.maximize ? v > early_best_ + es.min_delta : v < early_best_ - es.min_delta;
  if (better) {
    early_best_ = v;
    early_bad_epochs_ = 0;
  } else if (++early_bad_epochs_ >= es.patience) {
    std::ostringstream os;
    os << "early stopping: " << (validated ? "test_" : "train_") << es.monitor << " has not improved on " << early_best_
       << " for " << es.patience << " epoch(s)";
    request_stop(os.str());
  }
}

std::string Trainer::epoch_summary(int64_t epoch, int64_t total) const {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(4);
  os << "Epoch " << epoch << "/" << total;
  auto section = [&](const char* prefix, const Metrics& m) {
    if (m.empty()) return;
    os << " |";
    bool first = true;
    for (const auto& [k, v] : m) {
      os << (first ? " " : ", ") << prefix << k << ": " << v;
      first = false;
    }
  };
  section("train_", train_metrics_);
  section("test_", test_metrics_);
  return os.str();
}

std::vector<Tensor> Trainer::inference(DataLoader& loader) {
  // Leaves the training state as it found it: mode, logs, metrics and counters.
  const Mode previous = mode_;
  StepLog saved_log = log_test_;
  Metrics saved_metrics = test_metrics_;
  std::vector<double> saved_history = loss_history_test_;
  const int64_t saved_step = progress_.get_step();
  toggle(Mode::test);
  run_epoch(loader);
  std::vector<Tensor> outputs;
  if (auto it = log_test_.tensors.find("output"); it != log_test_.tensors.end()) {
    outputs = it->second;
  } else if (auto iv = log_test_.values.find("output"); iv != log_test_.values.end()) {
    for (double v : iv->second) outputs.push_back(scalar_tensor(v, {.dtype = DType::float64}));
  }
  log_test_ = std::move(saved_log);
  test_metrics_ = std::move(saved_metrics);
  loss_history_test_ = std::move(saved_history);
  progress_.set_step(saved_step);
  toggle(previous);
  return outputs;
}

void Trainer::save_model(const std::string& path) { io::save_module_safetensors(model(), path); }

void Trainer::apply_weights(const std::string& path, bool strict) {
  if (!path.empty()) {
    io::load_safetensors_into(model(), path, strict);
    return;
  }
  ZAE_CHECK(!best_weights_.empty(), "apply_weights: there are no best weights yet (no epoch has finished in train mode)");
  model().load_state_dict(best_weights_, strict);
}

}  // namespace zae
