// Trainer: the training loop of zae-engine (upstream v0.7.6 semantics, without
// its listed defects). Users derive from it (or from Trainer::add_on<...>) and
// implement train_step / test_step; run() drives epochs, batches, validation,
// logging, best-weight tracking and scheduler stepping.
//
// Invariants: the step and epoch counters (ProgressChecker) start at 1 and only
// move forward; best weights are a deep copy taken at the best epoch; train mode
// records a graph and updates parameters, test mode does neither; every virtual
// hook is an extension point for add-ons, which must call through to their base.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "io/batch.h"
#include "io/dataloader.h"
#include "io/json.h"
#include "nn/module.h"
#include "nn/optim/optimizer.h"
#include "nn/sched/scheduler.h"
#include "trainer/addon.h"
#include "trainer/cuda_graph_step.h"
#include "trainer/progress_checker.h"
#include "trainer/step_output.h"

namespace zae {

class ProgressDisplay;

enum class Mode { train, test };
const char* mode_name(Mode m);

/// One device or several (multi-GPU add-ons use the list; the first is primary).
struct DeviceList {
  std::vector<Device> devices{Device::cpu()};
  DeviceList() = default;
  DeviceList(Device d) : devices{d} {}  // NOLINT: implicit on purpose (`.device = Device::cuda()`)
  DeviceList(std::initializer_list<Device> ds) : devices(ds) {}
  DeviceList(std::vector<Device> ds) : devices(std::move(ds)) {}  // NOLINT
  Device primary() const { return devices.front(); }
};

/// What to do when a train step's loss is NaN or infinite.
enum class NonFiniteLoss {
  stop,  ///< throw a zae::Error naming the epoch, step and value (default)
  skip,  ///< drop the batch (no backward, no update), count it, go on
};

/// Stop when a monitored epoch metric has not improved for `patience` epochs.
struct EarlyStopping {
  std::string monitor = "loss";  ///< a key of the epoch metrics: test metrics when validating, else train
  int64_t patience = 3;
  double min_delta = 0.0;  ///< an improvement must beat the best by more than this
  bool maximize = false;   ///< false: lower is better
};

struct TrainerOptions {
  std::shared_ptr<nn::Module> model;              ///< may be absent at construction (set later)
  DeviceList device;                              ///< `.device = Device::cuda()` or a list
  Mode mode = Mode::train;
  std::shared_ptr<optim::Optimizer> optimizer;    ///< required to train
  std::shared_ptr<sched::Scheduler> scheduler;    ///< optional
  bool log_bar = true;                            ///< progress bars on a terminal
  bool scheduler_step_on_batch = false;
  double gradient_clip = 0.0;                     ///< > 0: clip the global L2 norm of gradients
  int64_t accumulate_grad_batches = 1;            ///< optimizer step every N batches (loss scaled by 1/N)
  std::optional<int64_t> max_steps;               ///< stop after this many optimizer steps in total
  std::optional<EarlyStopping> early_stopping;
  NonFiniteLoss on_nonfinite_loss = NonFiniteLoss::stop;
  std::optional<uint64_t> seed;                   ///< seeds the default generator (deterministic mode)
  CudaGraphs cuda_graphs = CudaGraphs::automatic;  ///< whole train steps as CUDA graphs (trainer/cuda_graph_step.h)
  int64_t cuda_graph_warmup_steps = 3;            ///< eager steps before the capture (>= 1)
};

/// Per-epoch logs: every value a step returned, by name (upstream log_train / log_test).
struct StepLog {
  std::map<std::string, std::vector<double>> values;   ///< one-element step values
  std::map<std::string, std::vector<Tensor>> tensors;  ///< multi-element values (e.g. "output"), on the CPU
  void clear() {
    values.clear();
    tensors.clear();
  }
  /// Mean of values[key] (NaN when absent or empty).
  double mean(const std::string& key) const;
};

class Trainer {
 public:
  /// The trainer type with add-ons As... applied in order (the last is outermost).
  template <class... As>
  using add_on = detail::AddOnTrainer<Trainer, As...>;

  explicit Trainer(TrainerOptions options);
  virtual ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // ---- what users implement ----------------------------------------------------
  /// One training step on a batch already on the trainer's device; must return "loss".
  virtual StepOutput train_step(const Batch& batch) = 0;
  /// One evaluation step (no graph is recorded).
  virtual StepOutput test_step(const Batch& batch) = 0;
  /// Extra metrics at the end of each epoch, merged into train/test metrics.
  virtual Metrics metric_on_epoch_end() { return {}; }

  // ---- the loop (hooks for add-ons) -------------------------------------------
  /// n_epoch epochs over `loader`, validating on `valid_loader` after each when given.
  virtual void run(int64_t n_epoch, DataLoader& loader, DataLoader* valid_loader = nullptr);
  virtual void run_epoch(DataLoader& loader);
  virtual void run_batch(const Batch& batch);
  /// Switches train <-> test, or to the given mode.
  virtual void toggle(std::optional<Mode> mode = std::nullopt);
  /// Runs test steps over `loader` and returns each batch's "output"; restores mode and logs.
  virtual std::vector<Tensor> inference(DataLoader& loader);
  /// Records a deep copy of the weights when `loss` beats the best so far; returns whether it did.
  virtual bool check_better(int64_t epoch, double loss);
  /// Called after each epoch's summary with the epoch number (add-ons: loggers, checkpoints).
  virtual void on_epoch_end(int64_t epoch);
  /// Called after each batch has been logged and the step counter advanced.
  virtual void on_step_end();
  /// Called when the trainer ends the process itself (SignalHandlerAddon exits with
  /// 128 + signal): the last chance to flush and close loggers. `status` is the exit status.
  virtual void on_process_exit(int status);
  /// Backward of the (already scaled) loss; mixed precision overrides it.
  virtual void backward(const Tensor& loss);
  /// Clipping + optimizer step; multi-GPU and mixed precision override it.
  virtual void optimizer_step();
  /// Moves a batch to the primary device.
  virtual Batch to_device(const Batch& batch);
  /// Saves the model weights (.safetensors).
  virtual void save_model(const std::string& path);
  /// Loads weights from a file, or the best weights in memory when path is empty.
  virtual void apply_weights(const std::string& path = "", bool strict = true);
  /// Add-ons' own state for checkpoints: each adds its member to the JSON object `extras`
  /// (and calls through); load_addon_state reads it back (absent members: keep defaults).
  virtual void save_addon_state(io::json::Value& extras) const;
  virtual void load_addon_state(const io::json::Value& extras);
  /// Saves the complete training state now, when an add-on knows how (StateManagerAddon);
  /// returns the file written, or nothing when no add-on saves checkpoints.
  virtual std::optional<std::string> save_checkpoint(const std::string& reason);

  // ---- state ------------------------------------------------------------------
  Mode mode() const { return mode_; }
  const TrainerOptions& options() const { return options_; }
  nn::Module& model() const;
  std::shared_ptr<nn::Module> model_ptr() const { return options_.model; }
  void set_model(std::shared_ptr<nn::Module> model);
  void set_optimizer(std::shared_ptr<optim::Optimizer> optimizer) {
    graph_step_.reset();  // a captured step uses the old optimizer's state
    options_.optimizer = std::move(optimizer);
  }
  void set_scheduler(std::shared_ptr<sched::Scheduler> scheduler) { options_.scheduler = std::move(scheduler); }
  Device device() const { return options_.device.primary(); }
  ProgressChecker& progress() { return progress_; }
  const ProgressChecker& progress() const { return progress_; }
  const StepLog& log_train() const { return log_train_; }
  const StepLog& log_test() const { return log_test_; }
  const Metrics& train_metrics() const { return train_metrics_; }
  const Metrics& test_metrics() const { return test_metrics_; }
  /// Every step's loss in order, per mode.
  const std::vector<double>& loss_history(Mode mode = Mode::train) const;
  /// Clears both step logs; with epoch_end also both metric maps (the four stores).
  void log_reset(bool epoch_end = false);
  /// Best loss and epoch so far (infinity / 0 before any).
  double best_loss() const { return best_loss_; }
  int64_t best_epoch() const { return best_epoch_; }
  const nn::StateDict& best_weights() const { return best_weights_; }
  /// Restores the best-so-far record (resume).
  void set_best(double loss, int64_t epoch, nn::StateDict weights);
  /// Marks the train loader as positioned by a resume (its epoch/batch are kept by the next run).
  void keep_loader_position() { resume_position_pending_ = true; }
  /// Asks the loop to stop after the current step; the epoch's end-of-epoch work (best
  /// weights, scheduler, counters) still runs (early stopping, max_steps).
  void request_stop(std::string reason);
  /// Stops after the current step like request_stop, but an unfinished train epoch stays
  /// unfinished: no end-of-epoch work, so a checkpoint taken now resumes mid-epoch (signals).
  void interrupt(std::string reason);
  bool interrupted() const { return interrupted_; }
  /// True while a train epoch is open: inside run()'s train epoch, and after a run that
  /// was interrupted mid-epoch (the next run() continues that epoch).
  bool in_train_epoch() const { return in_train_epoch_; }

  /// The loop's own counters and logs that an exact resume needs (checkpoints).
  struct LoopState {
    int64_t skipped_batches = 0;
    int64_t optimizer_steps = 0;
    int64_t accumulated = 0;  ///< batches whose gradients wait for an optimizer step
    double early_best = 0;
    int64_t early_bad_epochs = 0;
    std::vector<double> loss_history_train, loss_history_test;
    /// Taken inside a train epoch: that epoch's step values so far (its log_train).
    bool in_epoch = false;
    std::map<std::string, std::vector<double>> epoch_values;
  };
  LoopState loop_state() const;
  /// Restores loop_state(); with in_epoch, the next run() continues that epoch: its log is
  /// kept and the train loader's position is kept (as keep_loader_position()).
  void restore_loop_state(LoopState state);
  bool stop_requested() const { return stop_requested_; }
  const std::string& stop_reason() const { return stop_reason_; }
  int64_t skipped_batches() const { return skipped_batches_; }
  int64_t optimizer_steps() const { return optimizer_steps_; }
  /// Optimizer steps skipped by skip_optimizer_step() (fp16 overflows).
  int64_t skipped_optimizer_steps() const { return skipped_optimizer_steps_; }
  /// Batches whose gradients wait for the next optimizer step (gradient accumulation).
  int64_t accumulated_batches() const { return accumulated_; }
  /// Whether this trainer prints (progress, epoch summaries, stop messages); data
  /// parallel ranks other than 0 do not.
  bool verbose() const { return verbose_; }
  /// The CUDA graph policy (null before the first train batch, and with cuda_graphs = off).
  const CudaGraphStep* cuda_graph_step() const { return graph_step_.get(); }

 protected:
  /// Used by add-on mixins: ignores the add-ons' options (each mixin picks its own).
  template <class... AddOnOptions>
  Trainer(const TrainerOptions& options, const AddOnOptions&...) : Trainer(options) {}

  /// Records a step's values into the current mode's log.
  virtual void log_step(const StepOutput& out);
  /// Whether a train step's loss value counts as finite (on_nonfinite_loss); data
  /// parallel overrides it so that all ranks agree before any of them runs backward.
  virtual bool loss_is_finite(double value);
  /// Why a train step cannot be captured as a CUDA graph now ("" = it can): gradient
  /// accumulation, on_nonfinite_loss = skip, float16 autocast (loss scaling decides on the
  /// host), several devices, an optimizer without a capturable mode. Add-ons whose hooks
  /// read device values on the host mid-step override it (and call through).
  virtual std::string cuda_graph_blocker();
  /// Ends an accumulation window without updating the parameters (mixed precision: a
  /// gradient overflowed); the step and epoch counters go on, optimizer_steps() does not.
  void skip_optimizer_step();
  /// Turns printing on or off (see verbose()).
  void set_verbose(bool verbose) { verbose_ = verbose; }
  /// The per-epoch summary line "Epoch e/E | train_loss: ... | test_loss: ...".
  std::string epoch_summary(int64_t epoch, int64_t total) const;
  /// The epoch loss that check_better compares (validation loss when validating).
  double epoch_loss(bool validated) const;

 private:
  void check_scheduler_length(int64_t n_epoch, const DataLoader& loader) const;
  void update_early_stopping(bool validated);
  /// Runs a train batch through the CUDA graph policy; false: run it eagerly instead.
  bool run_graph_step(const Batch& batch, StepOutput& out);
  /// The host bookkeeping after an optimizer step (counters, per-batch scheduler, max_steps).
  void finish_optimizer_step();

  TrainerOptions options_;
  Mode mode_;
  ProgressChecker progress_;
  StepLog log_train_, log_test_;
  Metrics train_metrics_, test_metrics_;
  std::vector<double> loss_history_train_, loss_history_test_;
  double best_loss_;
  int64_t best_epoch_ = 0;
  nn::StateDict best_weights_;
  bool stop_requested_ = false;
  std::string stop_reason_;
  int64_t skipped_batches_ = 0;
  int64_t optimizer_steps_ = 0;
  int64_t accumulated_ = 0;  // batches whose gradients are waiting for an optimizer step
  bool resume_position_pending_ = false;  // a restored loader position must not be overwritten
  bool resume_epoch_log_pending_ = false;  // a restored mid-epoch log must not be cleared
  bool interrupted_ = false;
  bool in_train_epoch_ = false;
  bool epoch_finished_ = true;  // the last run_epoch delivered every batch of its loader
  bool verbose_ = true;
  int64_t skipped_optimizer_steps_ = 0;
  double early_best_ = 0;
  int64_t early_bad_epochs_ = 0;
  std::unique_ptr<ProgressDisplay> display_;
  std::unique_ptr<CudaGraphStep> graph_step_;
  bool defer_step_bookkeeping_ = false;  // inside a graph step's body: run_graph_step finishes it
};

}  // namespace zae
