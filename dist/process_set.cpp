// ProcessSet: start, watch, signal and reap the worker processes of one job.
//
// Invariants: pids_, labels_, done_ and statuses_ always have one entry per started
// child; done_[i] is set exactly when pids_[i] has been reaped by waitpid, and only then
// is statuses_[i] meaningful. A pid is signalled only while it is not reaped, so a
// signal can never reach a recycled pid (an exited, unreaped child stays a zombie).
//
// Children are started with posix_spawnp (glibc runs it with CLONE_VFORK, safe in a
// multi-threaded parent, and reports exec failures such as ENOENT as its return value),
// with an empty signal mask and otherwise the parent's signal dispositions (an ignored
// SIGHUP under nohup stays ignored, as with a plain exec). They stay in the parent's
// process group: a terminal's Ctrl-C (and Ctrl-Z, tty reads) reaches them directly, as it
// does for any foreground job; a launcher that also forwards signals must then not
// forward the terminal's own (zae-launch tells them apart by si_code, see
// apps/zae_launch.cpp).
#include "dist/process_set.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include "engine/error.h"

extern char** environ;

namespace zae::dist {

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(5);

// waitpid that retries on EINTR; returns its result.
pid_t waitpid_retry(pid_t pid, int* status, int flags) {
  for (;;) {
    const pid_t r = ::waitpid(pid, status, flags);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

// A wait status for a child that someone else reaped (SIGCHLD set to SIG_IGN, or a
// stray waitpid(-1)): reported as "exited with status 255", a failure.
constexpr int kLostChildStatus = 255 << 8;

std::string name_of(const std::string& label, size_t index) {
  return label.empty() ? "process " + std::to_string(index) : label;
}

std::string signal_name(int sig) {
  const char* text = ::strsignal(sig);
  return text ? std::string(text) : "unknown signal";
}

// Waits up to `grace` for every child to end (polling `interrupted` and forwarding the
// signals it returns), then SIGKILLs and reaps what is left. With `sigterm_first`, the
// children get SIGTERM before the wait.
void stop_all(ProcessSet& set, std::chrono::milliseconds grace, int (*interrupted)(), bool sigterm_first) {
  set.poll();
  if (set.running() == 0) return;
  if (sigterm_first) set.forward(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (set.running() > 0 && std::chrono::steady_clock::now() < deadline) {
    if (interrupted != nullptr) {
      const int sig = interrupted();
      if (sig > 0) set.forward(sig);
    }
    std::this_thread::sleep_for(kPollInterval);
    set.poll();
  }
  if (set.running() == 0) return;
  set.forward(SIGKILL);
  // SIGKILL cannot be caught: poll until all are reaped. A child in uninterruptible
  // sleep delays this, as it would any reaper.
  while (set.running() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    set.poll();
  }
}

}  // namespace

bool ProcessExit::success() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

int ProcessExit::exit_code() const {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string ProcessExit::describe() const {
  const std::string who = name_of(label, index);
  if (WIFEXITED(status)) return who + " exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return who + " was killed by signal " + std::to_string(sig) + " (" + signal_name(sig) + ")";
  }
  return who + " ended with wait status " + std::to_string(status);
}

ProcessSet::~ProcessSet() {
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (done_[i]) continue;
    ::kill(pids_[i], SIGKILL);
    int status = 0;
    waitpid_retry(pids_[i], &status, 0);
    done_[i] = true;
  }
}

void ProcessSet::start(const ProcessSpec& spec) {
  const std::string who = name_of(spec.label, pids_.size());
  ZAE_CHECK(!spec.argv.empty() && !spec.argv[0].empty(), "cannot start ", who, ": no program given");
  std::set<std::string> overridden;
  for (const auto& [key, value] : spec.env) {
    ZAE_CHECK(!key.empty() && key.find('=') == std::string::npos && key.find('\0') == std::string::npos,
              "cannot start ", who, " (", spec.argv[0], "): bad environment variable name '", key, "'");
    overridden.insert(key);
  }

  // Environment: ours without the overridden names, then spec.env in order.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    const std::string key = eq ? std::string(*e, static_cast<size_t>(eq - *e)) : std::string(*e);
    if (!overridden.count(key)) env_strings.emplace_back(*e);
  }
  for (const auto& [key, value] : spec.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv;
  argv.reserve(argv_strings.size() + 1);
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  // Make room first, so that a bad_alloc cannot leave a started child untracked.
  pids_.reserve(pids_.size() + 1);
  labels_.reserve(labels_.size() + 1);
  done_.reserve(done_.size() + 1);
  statuses_.reserve(statuses_.size() + 1);

  posix_spawnattr_t attr;
  int rc = ::posix_spawnattr_init(&attr);
  ZAE_CHECK(rc == 0, "cannot start ", who, " (", spec.argv[0], "): posix_spawnattr_init: ", std::strerror(rc));
  sigset_t empty;
  sigemptyset(&empty);
  rc = ::posix_spawnattr_setsigmask(&attr, &empty);
  if (rc == 0) rc = ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  if (rc == 0) rc = ::posix_spawnp(&pid, argv_strings[0].c_str(), nullptr, &attr, argv.data(), envp.data());
  ::posix_spawnattr_destroy(&attr);
  ZAE_CHECK(rc == 0, "cannot start ", who, ": program '", spec.argv[0], "': ", std::strerror(rc));

  pids_.push_back(pid);
  labels_.push_back(spec.label);
  done_.push_back(false);
  statuses_.push_back(0);
}

size_t ProcessSet::running() const {
  size_t n = 0;
  for (bool d : done_) n += d ? 0 : 1;
  return n;
}

std::optional<ProcessExit> ProcessSet::exit_of(size_t index) const {
  if (!done_.at(index)) return std::nullopt;
  return ProcessExit{.index = index, .label = labels_[index], .status = statuses_[index]};
}

void ProcessSet::forward(int sig) {
  for (size_t i = 0; i < pids_.size(); ++i)
    if (!done_[i]) ::kill(pids_[i], sig);  // an exited, unreaped child is a zombie: harmless
}

std::vector<ProcessExit> ProcessSet::poll() {
  std::vector<ProcessExit> ended;
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (done_[i]) continue;
    int status = 0;
    const pid_t r = waitpid_retry(pids_[i], &status, WNOHANG);
    if (r == 0) continue;  // still running
    done_[i] = true;
    statuses_[i] = r == pids_[i] ? status : kLostChildStatus;  // r < 0: ECHILD, reaped elsewhere
    ended.push_back(ProcessExit{.index = i, .label = labels_[i], .status = statuses_[i]});
  }
  return ended;
}

std::optional<ProcessExit> ProcessSet::wait_all(std::chrono::milliseconds grace, int (*interrupted)(),
                                                const std::function<void(const ProcessExit&)>& on_failure) {
  bool stopping = false;  // a signal reached the children: they are shutting down on request
  for (;;) {
    if (interrupted != nullptr) {
      const int sig = interrupted();
      if (sig > 0) forward(sig);
      if (sig != 0) stopping = true;
    }
    for (ProcessExit& e : poll()) {
      if (e.success()) continue;
      if (on_failure) on_failure(e);
      stop_all(*this, grace, interrupted, /*sigterm_first=*/!stopping);
      return std::move(e);
    }
    if (running() == 0) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
}

void ProcessSet::terminate_all(std::chrono::milliseconds grace) { stop_all(*this, grace, nullptr, true); }

}  // namespace zae::dist
