// StateManagerAddon: checkpoints during training and exact resume.
//
//   class MyTrainer : public zae::Trainer::add_on<zae::StateManagerAddon> { ... };
//   MyTrainer t({...}, zae::StateManagerAddon::Options{.save_path = "ckpt", .resume = "last"});
//   t.run(10, loader, &valid);   // after a resume: up to epoch 10 in all
//
// Files in save_path (created if missing; an unwritable path is an error at construction):
//   last.ckpt                     the complete training state (io/checkpoint.h), rewritten
//                                 every epoch (every_epoch), every N optimizer steps
//                                 (every_n_steps) and when a signal stops training
//   best-epoch<E>.<ckpt|safetensors>   the keep_best_k best epochs by `monitor`
//                                 (save_format: the full state, or weights only)
// Every write is crash-safe (temporary file, fsync, rename, directory fsync): a kill at
// any moment leaves the previous file or the new one.
//
// Resume ("last" or a path), at the first run(): the model, optimizer, scheduler,
// counters, logs, best record, RNG and the train loader's position are restored, so the
// run continues bit-identically, mid-epoch included. "last" with no last.ckpt yet starts
// fresh (a restarted job's first launch); a path that does not exist is an error at
// construction. With epochs_are_total (default), run(n) after a resume trains up to
// epoch n in all, so a restarted script with the same run(n) finishes the same plan.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/dataloader.h"
#include "io/json.h"
#include "trainer/addon.h"
#include "trainer/training_state.h"

namespace zae {

class Trainer;

enum class SaveFormat { ckpt, safetensors };
/// "ckpt" / "safetensors"; parse_save_format fails clearly on anything else.
const char* save_format_name(SaveFormat f);
SaveFormat parse_save_format(const std::string& text);

struct StateManagerOptions {
  std::string save_path = "./checkpoints";
  SaveFormat save_format = SaveFormat::ckpt;  ///< of the best-k files (last is always .ckpt)
  int64_t keep_best_k = 1;                    ///< best files kept (0: none)
  std::string monitor = "loss";               ///< an epoch metric: test metrics when validating, else train
  bool maximize = false;                      ///< false: lower is better
  int64_t every_n_steps = 0;                  ///< also save last.ckpt every N optimizer steps (0: off)
  bool every_epoch = true;                    ///< save last.ckpt at the end of every epoch
  std::string resume = "none";                ///< "none", "last" or a checkpoint path
  bool epochs_are_total = true;               ///< after a resume, run(n) trains up to epoch n in all
  std::map<std::string, std::string> metadata;  ///< stored in every checkpoint ("user.<key>")
};

/// The add-on's machinery, independent of the trainer type (so it lives in a .cpp).
class StateManager {
 public:
  explicit StateManager(StateManagerOptions options);

  const StateManagerOptions& options() const { return options_; }
  /// save_path/last.ckpt
  std::string last_path() const;
  /// The best files kept, best first: (monitored value, epoch, path).
  struct BestEntry {
    double value;
    int64_t epoch;
    std::string path;
  };
  const std::vector<BestEntry>& best_files() const { return best_; }
  /// The checkpoint resumed from, if any.
  const std::optional<std::string>& resumed_from() const { return resumed_from_; }

  /// Called by run(): resumes once when asked; returns the epochs to run.
  int64_t before_run(Trainer& trainer, DataLoader& loader, int64_t n_epoch);
  /// Called when run() returns or throws: keeps the loader's position if the epoch is still open.
  void after_run(const Trainer& trainer);
  void on_step_end(Trainer& trainer);
  void on_epoch_end(Trainer& trainer, int64_t epoch);
  /// Writes last.ckpt now and returns its path.
  std::string save_last(const Trainer& trainer, const std::string& reason);

 private:
  io::json::Value extras() const;
  void save_best(const Trainer& trainer, int64_t epoch);

  StateManagerOptions options_;
  DataLoader* loader_ = nullptr;  // the running train loader (between before_run and after_run)
  std::optional<LoaderPosition> open_epoch_;  // its position after a run left an epoch open
  std::vector<BestEntry> best_;
  bool resume_done_ = false;
  std::optional<std::string> resumed_from_;
  int64_t last_step_saved_ = -1;  // optimizer step of the last every_n_steps save
};

struct StateManagerAddon : AddOnBase {
  using Options = StateManagerOptions;

  template <class Base>
  class Mixin : public Base {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : Base(t, args...), manager_(detail::pick_options<Options>(args...)) {}

    void run(int64_t n_epoch, DataLoader& loader, DataLoader* valid_loader = nullptr) override {
      const int64_t n = manager_.before_run(*this, loader, n_epoch);
      try {
        Base::run(n, loader, valid_loader);
      } catch (...) {
        manager_.after_run(*this);
        throw;
      }
      manager_.after_run(*this);
    }
    void on_step_end() override {
      Base::on_step_end();
      manager_.on_step_end(*this);
    }
    void on_epoch_end(int64_t epoch) override {
      Base::on_epoch_end(epoch);
      manager_.on_epoch_end(*this, epoch);
    }
    std::optional<std::string> save_checkpoint(const std::string& reason) override {
      Base::save_checkpoint(reason);
      return manager_.save_last(*this, reason);
    }
    StateManager& state_manager() { return manager_; }
    const StateManager& state_manager() const { return manager_; }

   private:
    StateManager manager_;
  };
};

}  // namespace zae
