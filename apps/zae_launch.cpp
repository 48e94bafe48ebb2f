// zae-launch: starts the worker processes of a data-parallel job on one node (the
// command line is in apps/launch/launch_args.h), watches them as one dist::ProcessSet,
// and returns the job's status.
//
// Signals. SIGINT, SIGTERM and SIGHUP only set flags here (the handler touches nothing
// but lock-free atomics); ProcessSet::wait_all polls them through interrupted() and
// forwards the signal to every worker. The workers stay in our process group, so a
// signal the kernel sends to the whole foreground group (Ctrl-C at the terminal, a
// hangup) has already reached them: such signals arrive with si_code SI_KERNEL and are
// not forwarded again (interrupted() returns -sig), so a worker never sees one Ctrl-C
// twice. Once a signal has reached the workers they are shutting down on request: the
// first to exit non-zero does not bring SIGTERM on the others (which may be saving a
// checkpoint); they get the grace period, then SIGKILL. Signals sent to this
// process alone (kill, a scheduler's SIGTERM) have si_code SI_USER/SI_QUEUE and are
// forwarded. A second SIGINT/SIGTERM/SIGHUP, from anywhere, kills the workers (SIGKILL).
// (A signal sent with kill() to the whole process group does reach the workers twice.)
//
// Exit status: 0 when every worker succeeded; otherwise the first failed worker's status
// (128 + signal when a signal killed it); 2 for a bad command line; 127 when a worker
// could not be started.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "apps/launch/launch_args.h"
#include "dist/process_set.h"
#include "engine/error.h"

namespace {

using zae::apps::launch::LaunchArgs;

std::atomic<int> g_signal_count{0};  // SIGINT/SIGTERM/SIGHUP received so far
std::atomic<int> g_last_signal{0};   // the latest one
std::atomic<bool> g_last_from_terminal{false};
std::atomic<int> g_to_forward{0};  // what interrupted() hands to wait_all next
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

void on_signal(int sig, siginfo_t* info, void*) {
  const bool from_terminal = info != nullptr && info->si_code == SI_KERNEL;
  const int count = g_signal_count.fetch_add(1) + 1;
  g_last_signal.store(sig);
  g_last_from_terminal.store(from_terminal);
  if (count >= 2)
    g_to_forward.store(SIGKILL);
  else
    g_to_forward.store(from_terminal ? -sig : sig);  // -sig: the workers have it already
}

void install_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sa.sa_mask, sig);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

std::string signal_text(int sig) {
  const char* name = ::strsignal(sig);
  return "signal " + std::to_string(sig) + " (" + (name ? name : "unknown") + ")";
}

// Polled by ProcessSet::wait_all every few ms, in normal (not signal) context: reports
// each newly received signal once on stderr and returns the one to forward (0: none;
// -sig: sig came from the terminal and the workers got it too).
int interrupted() {
  static int reported = 0;
  const int count = g_signal_count.load();
  const int sig = g_to_forward.exchange(0);
  if (count != reported) {
    reported = count;
    const int last = g_last_signal.load();
    if (count >= 2)
      std::fprintf(stderr, "zae-launch: got %s again; killing the workers (SIGKILL)\n", signal_text(last).c_str());
    else if (g_last_from_terminal.load())
      std::fprintf(stderr, "zae-launch: got %s from the terminal, which the workers got too; waiting for them\n",
                   signal_text(last).c_str());
    else
      std::fprintf(stderr, "zae-launch: got %s; forwarding it to the workers\n", signal_text(last).c_str());
  }
  return sig;
}

std::string with_pid(const zae::dist::ProcessSet& set, const zae::dist::ProcessExit& e) {
  zae::dist::ProcessExit copy = e;
  copy.label = e.label + " (pid " + std::to_string(set.pid(e.index)) + ")";
  return copy.describe();
}

int run(const LaunchArgs& args) {
  const bool set_omp = zae::apps::launch::should_set_omp_threads(args, std::getenv("OMP_NUM_THREADS"));
  install_handlers();

  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(args.grace_seconds * 1000));
  zae::dist::ProcessSet set;
  for (int i = 0; i < args.nproc_per_node; ++i) {
    zae::dist::ProcessSpec spec;
    spec.argv = args.program;
    spec.env = zae::apps::launch::worker_env(args, i, set_omp);
    spec.label = "rank " + std::to_string(args.rank_of(i));
    try {
      set.start(spec);
    } catch (const zae::Error& e) {
      std::fprintf(stderr, "zae-launch: %s\n", e.message().c_str());
      if (set.size() > 0) {
        std::fprintf(stderr, "zae-launch: stopping the %zu processes already started\n", set.size());
        set.terminate_all(grace);
      }
      return zae::apps::launch::kExitCannotStart;
    }
  }

  if (set_omp)
    std::fprintf(stderr,
                 "zae-launch: OMP_NUM_THREADS is not set; setting it to 1 for each of the %d processes so "
                 "they do not overload the machine (set it yourself to tune)\n",
                 args.nproc_per_node);

  std::vector<size_t> stopped;  // workers still running when the first one failed
  const auto failure = set.wait_all(grace, &interrupted, [&](const zae::dist::ProcessExit& failed) {
    for (size_t i = 0; i < set.size(); ++i)
      if (i != failed.index && !set.exit_of(i)) stopped.push_back(i);
    const char* plural = stopped.size() == 1 ? "" : "es";
    if (stopped.empty())
      std::fprintf(stderr, "zae-launch: %s; no other process is running\n", with_pid(set, failed).c_str());
    else if (g_signal_count.load() > 0)  // they got the signal too: wait_all gives them the grace period
      std::fprintf(stderr, "zae-launch: %s; waiting up to %g s for the other %zu process%s to stop\n",
                   with_pid(set, failed).c_str(), args.grace_seconds, stopped.size(), plural);
    else
      std::fprintf(stderr, "zae-launch: %s; stopping the other %zu process%s\n", with_pid(set, failed).c_str(),
                   stopped.size(), plural);
  });
  if (!failure) {
    if (g_signal_count.load() > 0) std::fprintf(stderr, "zae-launch: every process exited with status 0\n");
    return 0;
  }
  if (!stopped.empty()) {
    std::string line = "zae-launch: after " + failure->label + " failed:";
    for (size_t k = 0; k < stopped.size(); ++k) {
      const auto e = set.exit_of(stopped[k]);
      line += (k ? "; " : " ") + (e ? with_pid(set, *e) : "rank ? still running");
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  return failure->exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> raw(argv + 1, argv + argc);
  LaunchArgs args;
  try {
    args = zae::apps::launch::parse_launch_args(raw);
  } catch (const zae::Error& e) {
    std::cerr << "zae-launch: " << e.message() << "\n" << zae::apps::launch::launch_usage();
    return zae::apps::launch::kExitUsage;
  }
  if (args.help) {
    std::cout << zae::apps::launch::launch_usage();
    return 0;
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::cerr << "zae-launch: " << e.what() << "\n";
    return 1;
  }
}
