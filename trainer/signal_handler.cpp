// Flag-only signal handlers for SignalHandlerAddon (trainer/signal_handler_addon.h).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/error.h"
#include "trainer/signal_handler_addon.h"
#include "trainer/trainer.h"

namespace zae::detail {

namespace {
volatile std::sig_atomic_t g_received = 0;
std::atomic<bool> g_installed{false};

extern "C" void on_signal(int signo) {
  if (g_received != 0) _exit(128 + signo);  // second signal: leave now (async-signal-safe)
  g_received = signo;
}
}  // namespace

SignalScope::SignalScope(const std::vector<int>& signals) {
  ZAE_CHECK(!g_installed.exchange(true), "SignalHandlerAddon: another trainer's signal handlers are active "
                                         "(nested or concurrent run() with SignalHandlerAddon)");
  g_received = 0;
  for (int s : signals) {
    struct sigaction act {};
    act.sa_handler = on_signal;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    struct sigaction old {};
    if (sigaction(s, &act, &old) != 0) {
      const int err = errno;
      for (auto& [sig, prev] : previous_) sigaction(sig, &prev, nullptr);
      g_installed = false;
      ZAE_FAIL("SignalHandlerAddon: cannot handle signal ", s, ": ", std::strerror(err));
    }
    previous_.emplace_back(s, old);
  }
}

SignalScope::~SignalScope() {
  for (auto& [sig, prev] : previous_) sigaction(sig, &prev, nullptr);
  g_installed = false;
}

int SignalScope::received() { return g_received; }
void SignalScope::clear() { g_received = 0; }
bool SignalScope::active() { return g_installed; }
void SignalScope::note(int signo) {
  if (g_installed && g_received == 0) g_received = signo;
}

std::string signal_name(int signo) {
  switch (signo) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal " + std::to_string(signo);
  }
}

void finish_after_signal(Trainer& trainer, int signo, bool exit_process) {
  const std::string name = signal_name(signo);
  std::fflush(stdout);
  std::optional<std::string> saved;
  try {
    saved = trainer.save_checkpoint("received " + name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: saving the checkpoint failed: %s\n", name.c_str(), e.what());
    if (exit_process) {
      trainer.on_process_exit(128 + signo);
      std::exit(128 + signo);
    }
    throw;
  }
  if (saved)
    std::fprintf(stderr, "%s received at epoch %lld, step %lld: saved the training state to %s\n", name.c_str(),
                 static_cast<long long>(trainer.progress().get_epoch()),
                 static_cast<long long>(trainer.progress().get_step()), saved->c_str());
  else
    std::fprintf(stderr, "%s received at epoch %lld, step %lld: stopped (no StateManagerAddon, nothing saved)\n",
                 name.c_str(), static_cast<long long>(trainer.progress().get_epoch()),
                 static_cast<long long>(trainer.progress().get_step()));
  std::fflush(stderr);
  if (exit_process) {
    trainer.on_process_exit(128 + signo);  // loggers flush and close their runs
    std::exit(128 + signo);
  }
}

}  // namespace zae::detail
