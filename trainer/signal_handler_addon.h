// SignalHandlerAddon: SIGINT / SIGTERM stop training cleanly and save the state.
//
// While run() is active, the add-on's handlers are installed (the previous ones are
// restored when run() returns). A handler only records the signal in a flag; the loop
// sees it after the current train step (or at the end of a validation pass), stops
// without closing the unfinished epoch (Trainer::interrupt), and then the add-on
// saves a checkpoint through save_checkpoint() (a StateManagerAddon in the same trainer
// writes last.ckpt, resumable mid-epoch), says what happened on stderr and exits the
// process with status 128 + signal number (exit_process) or returns from run() with
// received_signal() set. A second signal while the first is handled ends the process
// at once (_exit(128 + signal)), for a job that hangs in its save.
#pragma once

#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include "io/dataloader.h"
#include "trainer/trainer.h"

namespace zae {

class Trainer;

struct SignalHandlerOptions {
  std::vector<int> signals{SIGINT, SIGTERM};
  /// After saving: exit with 128 + signal (true), or return from run() (false).
  bool exit_process = true;
};

namespace detail {

/// Installs flag-only handlers for `signals` for its lifetime (one at a time per process).
class SignalScope {
 public:
  explicit SignalScope(const std::vector<int>& signals);
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  /// The first signal received since installation (0: none).
  static int received();
  /// Forgets a received signal.
  static void clear();
  /// Whether a SignalHandlerAddon's handlers are installed now (inside its run()).
  static bool active();
  /// Records `signo` as received when the handlers are active and none was yet: data
  /// parallel training uses it so that a signal one rank got stops and saves every rank.
  static void note(int signo);

 private:
  std::vector<std::pair<int, struct sigaction>> previous_;
};

/// "SIGINT", "SIGTERM", or "signal N".
std::string signal_name(int signo);

/// After run(): saves through trainer.save_checkpoint, reports, and exits or returns.
void finish_after_signal(Trainer& trainer, int signo, bool exit_process);

}  // namespace detail

struct SignalHandlerAddon : AddOnBase {
  using Options = SignalHandlerOptions;

  template <class Base>
  class Mixin : public Base {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : Base(t, args...), opts_(detail::pick_options<Options>(args...)) {}

    void run(int64_t n_epoch, DataLoader& loader, DataLoader* valid_loader = nullptr) override {
      received_ = 0;
      // The handlers stay installed during the save, so that a second signal there still
      // ends the process at once with 128 + signal (not the previous disposition).
      detail::SignalScope scope(opts_.signals);
      Base::run(n_epoch, loader, valid_loader);
      const int signo = detail::SignalScope::received();
      if (signo != 0) {
        received_ = signo;
        detail::finish_after_signal(*this, signo, opts_.exit_process);
      }
    }
    void on_step_end() override {
      Base::on_step_end();
      check(this->mode() == Mode::train);
    }
    void on_epoch_end(int64_t epoch) override {
      Base::on_epoch_end(epoch);
      check(true);
    }
    /// The signal that stopped the last run() (0: none).
    int received_signal() const { return received_; }

   private:
    void check(bool now) {
      const int s = detail::SignalScope::received();
      if (s != 0 && now && !this->interrupted()) this->interrupt("received " + detail::signal_name(s));
    }
    Options opts_;
    int received_ = 0;
  };
};

}  // namespace zae
