// MultiGPUAddon: data parallel training with the seed's API. The trainer's device list
// names one device per process (several CUDA devices: NCCL; several CPU devices: that
// many CPU processes over Gloo); the user's train_step and loaders stay unchanged.
//
//   class MyTrainer : public zae::Trainer::add_on<zae::StateManagerAddon, zae::MultiGPUAddon> { ... };
//   MyTrainer trainer({.model = m, .device = {Device::cuda(0), Device::cuda(1)}, .optimizer = opt}, ...);
//   trainer.run(10, loader);
//
// How run() joins or creates the job (detail::multi_gpu_role):
// - launched: started by zae-launch, torchrun-style env, srun or mpirun (RANK/SLURM_PROCID/
//   OMPI_COMM_WORLD_RANK set): joins that job (init_method, default env://); the rank
//   trains on device[local_rank] of the list (a single CUDA device in the list means
//   cuda:<local_rank>, the torchrun idiom).
// - spawner: not launched, more than one device listed: this process becomes rank 0 and
//   starts one worker per other device by re-running this program (/proc/self/exe, same
//   arguments) with RANK etc. set; after run() the workers end and this process goes on
//   alone with the trained model (the seed's mp.spawn semantics).
// - spawned: such a worker; its run() does not return: the process exits when training
//   ends (status 0) or fails (status 1, the error on stderr).
// - single: one device, not launched: a plain trainer.
// In a job: the model's replicas are kept equal by DistributedDataParallel (dist/ddp.h);
// loaders are re-wrapped with a DistributedSampler (same batch size, shuffle and seed;
// the Trainer's set_epoch reshuffles every epoch); logged step values and epoch metrics
// are averaged over ranks before they are logged, so every rank sees the same numbers
// and takes the same decisions (best epoch, early stopping, schedulers); ranks agree,
// every step, on non-finite losses, stops and signal-triggered interrupts, so no rank is
// left waiting in a collective; only rank 0 prints and saves (StateManagerAddon asks
// dist::is_main_process()); gradient accumulation uses no_sync.
// Invariant: MultiGPUAddon must be the outermost add-on (listed last): it must see the
// decisions of all others (a signal, a stop) before the ranks agree on them; Trainer::add_on
// enforces this at compile time.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dist/ddp.h"
#include "dist/process_group.h"
#include "io/dataloader.h"
#include "trainer/signal_handler_addon.h"
#include "trainer/trainer.h"

namespace zae {

struct MultiGPUOptions {
  /// How ranks meet: "" = env:// when launched, a free loopback port when spawning;
  /// or "tcp://host:port" (the seed's default was tcp://localhost:12355), "file:///path".
  std::string init_method;
  /// "auto" (NCCL for CUDA devices, Gloo for CPU), "nccl" or "gloo".
  std::string backend = "auto";
  /// Rendezvous, every collective and the workers' start; a dead peer fails the job in this time.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  double bucket_cap_mb = 25.0;
  bool find_unused_parameters = false;
  bool broadcast_buffers = true;  ///< rank 0's buffers (batch-norm statistics) to all ranks before each step
  dist::AllReduceAlgorithm all_reduce_algorithm = dist::AllReduceAlgorithm::library;
};

namespace detail {

enum class MultiGPURole { single, launched, spawner, spawned };
const char* multi_gpu_role_name(MultiGPURole role);
/// What run() does for this device list in this process's environment (file comment).
MultiGPURole multi_gpu_role(const DeviceList& devices);
/// This process's rank as the environment gives it (0 for single and spawner).
int multi_gpu_env_rank(MultiGPURole role);
/// The device this process trains on.
Device multi_gpu_device(const DeviceList& devices, MultiGPURole role);
/// `options` with device = this process's device (the Trainer places the model there).
TrainerOptions multi_gpu_trainer_options(TrainerOptions options);

/// One run() of a data parallel job: the group, DDP, sharded loaders, spawned workers.
class MultiGPUSession {
 public:
  MultiGPUSession(const MultiGPUOptions& options, const DeviceList& devices, MultiGPURole role);
  ~MultiGPUSession();
  MultiGPUSession(const MultiGPUSession&) = delete;
  MultiGPUSession& operator=(const MultiGPUSession&) = delete;

  /// Joins or creates the job (spawning workers when this process is the spawner) and
  /// wraps `model` in DDP.
  void begin(const std::shared_ptr<nn::Module>& model, Device device);
  /// After run(). Launched: nothing (the job goes on; later runs reuse the session).
  /// Spawner: on success waits for the workers to finish, on failure (`error` non-empty)
  /// stops them; then leaves the group; returns what happened to the workers (for the
  /// error message). Spawned worker: exits the process (0, or 1 after printing `error`).
  std::string end(const std::string& error);

  int rank() const;
  int world_size() const;
  dist::DistributedDataParallel& ddp() { return *ddp_; }
  MultiGPURole role() const { return role_; }

  /// A loader over the same dataset that yields this rank's shard (or `loader` itself when
  /// it already has a sampler), made once per loader and kept for later runs (so an
  /// interrupted epoch continues where the shard stands).
  DataLoader& shard(DataLoader& loader);

  /// Element-wise op over ranks of `values` (float64; on the group's device).
  std::vector<double> all_reduce(std::vector<double> values, dist::ReduceOp op);
  /// The mean over ranks of every one-element value (the keys must be the same on every
  /// rank: an error naming this rank's keys otherwise); other values stay local.
  StepOutput average_step_output(const StepOutput& out);
  Metrics average_metrics(const Metrics& metrics, const char* what);

 private:
  std::vector<double> reduce_keyed(const std::vector<std::string>& keys, std::vector<double> values,
                                   const char* what);

  MultiGPUOptions options_;
  DeviceList devices_;
  MultiGPURole role_;
  Device device_ = Device::cpu();
  bool owns_group_ = false;
  struct Workers;
  std::unique_ptr<Workers> workers_;
  std::unique_ptr<dist::DistributedDataParallel> ddp_;
  std::vector<std::pair<DataLoader*, std::unique_ptr<DataLoader>>> shards_;
};

}  // namespace detail

struct MultiGPUAddon : AddOnBase {
  using Options = MultiGPUOptions;
  static constexpr bool must_be_outermost = true;

  template <class Base>
  class Mixin : public Base {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : Base(detail::multi_gpu_trainer_options(t), args...),
          opts_(detail::pick_options<Options>(args...)),
          devices_(t.device),
          role_(detail::multi_gpu_role(t.device)) {
      this->set_verbose(detail::multi_gpu_env_rank(role_) == 0);
    }

    void run(int64_t n_epoch, DataLoader& loader, DataLoader* valid_loader = nullptr) override {
      if (role_ == detail::MultiGPURole::single) {
        Base::run(n_epoch, loader, valid_loader);
        return;
      }
      // Spawned workers re-run the program up to its first run(), so a spawning process
      // can train in one run() only; a launched job may call run() any number of times.
      ZAE_CHECK(!(role_ == detail::MultiGPURole::spawner && spawned_once_),
                "MultiGPUAddon: a process that starts its own workers can call run() once; for several run() "
                "calls launch the job with zae-launch (or srun / mpirun)");
      std::string error;
      try {
        if (!session_) {
          session_ = std::make_unique<detail::MultiGPUSession>(opts_, devices_, role_);
          spawned_once_ = role_ == detail::MultiGPURole::spawner;
          session_->begin(this->model_ptr(), this->device());
        }
        this->set_verbose(session_->rank() == 0);
        DataLoader& train = session_->shard(loader);
        DataLoader* valid = valid_loader ? &session_->shard(*valid_loader) : nullptr;
        in_job_ = true;
        Base::run(n_epoch, train, valid);
        in_job_ = false;
      } catch (const std::exception& e) {
        in_job_ = false;
        error = e.what();
      }
      std::string workers;
      if (session_) {
        workers = session_->end(error);
        if (role_ != detail::MultiGPURole::launched) session_.reset();
      }
      if (!error.empty()) ZAE_FAIL(error, workers.empty() ? "" : "; ", workers);
    }

    /// This rank and the job's size (0 and 1 outside a job).
    int rank() const { return session_ ? session_->rank() : 0; }
    int world_size() const { return session_ ? session_->world_size() : 1; }
    /// The DDP wrapper of the running job (throws outside run()).
    dist::DistributedDataParallel& ddp() {
      ZAE_CHECK(session_ != nullptr, "MultiGPUAddon::ddp(): no data parallel job is running");
      return session_->ddp();
    }

    void run_batch(const Batch& batch) override {
      if (in_job_ && this->mode() == Mode::train && opts_.broadcast_buffers) session_->ddp().sync_buffers();
      Base::run_batch(batch);
    }

    void backward(const Tensor& loss) override {
      if (!in_job_) return Base::backward(loss);
      const bool last_micro_batch = this->accumulated_batches() + 1 >= this->options().accumulate_grad_batches;
      if (last_micro_batch) {
        Base::backward(loss);
        session_->ddp().finish_gradient_sync();
      } else {
        auto no_sync = session_->ddp().no_sync();
        Base::backward(loss);
      }
    }

    void optimizer_step() override {
      // An epoch that ended inside an accumulation window: its gradients are still local.
      if (in_job_ && session_->ddp().has_unsynced_gradients()) session_->ddp().sync_gradients();
      Base::optimizer_step();
    }

    Metrics metric_on_epoch_end() override {
      Metrics m = Base::metric_on_epoch_end();
      return in_job_ ? session_->average_metrics(m, "metric_on_epoch_end") : m;
    }

    void save_model(const std::string& path) override {
      if (session_ == nullptr || session_->rank() == 0) Base::save_model(path);
    }

   protected:
    std::string cuda_graph_blocker() override {
      // DDP's bucket all-reduces start from backward's hooks and are waited on from the
      // host with deadlines: a data parallel step stays eager.
      if (in_job_) return "data parallel training (DDP's gradient all-reduce waits on the host)";
      return Base::cuda_graph_blocker();
    }

    bool loss_is_finite(double value) override {
      const bool finite = Base::loss_is_finite(value);
      if (!in_job_) return finite;
      return session_->all_reduce({finite ? 1.0 : 0.0}, dist::ReduceOp::min)[0] > 0.5;
    }

    void log_step(const StepOutput& out) override {
      Base::log_step(in_job_ ? session_->average_step_output(out) : out);
    }

    void on_step_end() override {
      Base::on_step_end();  // inner add-ons decide first (a signal handler may interrupt)
      if (!in_job_) return;
      const int me = session_->rank() + 1;
      const auto agreed = session_->all_reduce(
          {this->interrupted() ? double(me) : 0.0, this->stop_requested() ? double(me) : 0.0,
           double(detail::SignalScope::received())},
          dist::ReduceOp::max);
      const int signal = static_cast<int>(agreed[2]);
      if (signal != 0) detail::SignalScope::note(signal);
      if (agreed[0] > 0 && !this->interrupted())
        this->interrupt("rank " + std::to_string(static_cast<int>(agreed[0]) - 1) + " was interrupted" +
                        (signal ? " (" + detail::signal_name(signal) + ")" : std::string()));
      else if (agreed[1] > 0 && !this->stop_requested())
        this->request_stop("rank " + std::to_string(static_cast<int>(agreed[1]) - 1) + " stopped");
    }

   private:
    Options opts_;
    DeviceList devices_;
    detail::MultiGPURole role_;
    std::unique_ptr<detail::MultiGPUSession> session_;
    bool in_job_ = false;
    bool spawned_once_ = false;
  };
};

}  // namespace zae
