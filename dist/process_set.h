// ProcessSet: the worker processes of one job on this machine, started and watched
// together (zae-launch, and MultiGPUAddon when it spawns its own workers).
// Children are started with posix_spawn (never a bare fork of a multi-threaded
// process), each with extra environment variables. The set fails as a whole: when one
// child fails (non-zero exit or killed by a signal), the others get SIGTERM and, after a
// grace period, SIGKILL. Signals given to forward() go to every live child.
// Invariants: every started child is reaped (the destructor kills and reaps what is
// left); methods never leave zombies; a failure to start names the program and errno.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zae::dist {

struct ProcessSpec {
  std::vector<std::string> argv;  ///< argv[0]: a path, or a name looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;  ///< set on top of this process's environment
  std::string label;              ///< how messages name it, e.g. "rank 2"
};

/// How a child ended.
struct ProcessExit {
  size_t index = 0;       ///< position in the set (start order)
  std::string label;
  int status = 0;         ///< raw wait status
  bool success() const;   ///< exited with status 0
  /// The exit code a launcher should return for it: the exit status, or 128 + signal.
  int exit_code() const;
  /// "rank 2 exited with status 3" / "rank 1 was killed by signal 9 (Killed)".
  std::string describe() const;
};

class ProcessSet {
 public:
  ProcessSet() = default;
  /// Kills (SIGKILL) and reaps every child still running.
  ~ProcessSet();
  ProcessSet(const ProcessSet&) = delete;
  ProcessSet& operator=(const ProcessSet&) = delete;

  /// Starts one child; throws zae::Error when it cannot be started.
  void start(const ProcessSpec& spec);
  size_t size() const { return pids_.size(); }
  size_t running() const;
  pid_t pid(size_t index) const { return pids_.at(index); }
  /// How child `index` ended, once it has been reaped (by poll, wait_all or
  /// terminate_all); nullopt while it is still running.
  std::optional<ProcessExit> exit_of(size_t index) const;

  /// Sends `sig` to every child still running.
  void forward(int sig);
  /// Reaps children that have ended, without blocking; returns them.
  std::vector<ProcessExit> poll();
  /// Waits until every child has ended or one has failed; on a failure, terminates the
  /// others (SIGTERM, then SIGKILL after `grace`) and returns the first failure. Returns
  /// nullopt when all succeeded. `interrupted`, when given, is polled every few ms (also
  /// during the grace period): a positive return is a signal, forwarded to every child
  /// (and waiting goes on); a negative one, -sig, says the children already got sig (a
  /// Ctrl-C at the terminal reaches the whole process group) and forwards nothing. After
  /// either, the job is stopping on request: a failure then sends the others no SIGTERM
  /// (they are shutting down already); they get `grace` to end, then SIGKILL.
  /// `on_failure`, when given, is called once with the first failure before the others
  /// are stopped (to report it at once).
  std::optional<ProcessExit> wait_all(std::chrono::milliseconds grace = std::chrono::seconds(10),
                                      int (*interrupted)() = nullptr,
                                      const std::function<void(const ProcessExit&)>& on_failure = {});
  /// SIGTERM to all live children, SIGKILL after `grace`, all reaped.
  void terminate_all(std::chrono::milliseconds grace);

 private:
  std::vector<pid_t> pids_;
  std::vector<std::string> labels_;
  std::vector<bool> done_;
  std::vector<int> statuses_;
};

}  // namespace zae::dist
