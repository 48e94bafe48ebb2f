// A GoogleTest fixture for tests that start launch_probe_child workers (through
// dist::ProcessSet or zae-launch): a scratch directory, $ZAE_PROBE_PID_DIR pointing at
// it (each worker writes pid.<RANK> there), no $OMP_NUM_THREADS, and helpers to wait for
// the workers, read what they wrote and check that none is left. Invariant: TearDown
// SIGKILLs every worker a failed test left running (only processes that are still
// launch_probe_child, so a recycled pid is never touched) and restores the environment.
// The test needs ZAE_LAUNCH_PROBE_CHILD defined as the child's path.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace zae::test {

class LaunchProbeTest : public TempDirTest {
 protected:
  using Clock = std::chrono::steady_clock;

  void SetUp() override {
    TempDirTest::SetUp();
    ::setenv("ZAE_PROBE_PID_DIR", dir_.c_str(), 1);
    ::unsetenv("OMP_NUM_THREADS");
  }
  void TearDown() override {
    for (pid_t pid : probe_pids())
      if (probe_alive(pid)) ::kill(pid, SIGKILL);
    ::unsetenv("ZAE_PROBE_PID_DIR");
    ::unsetenv("OMP_NUM_THREADS");
    TempDirTest::TearDown();
  }

  /// The probe's argv: its path, then `args`.
  static std::vector<std::string> probe(std::vector<std::string> args) {
    args.insert(args.begin(), ZAE_LAUNCH_PROBE_CHILD);
    return args;
  }
  /// Whether `pid` is (still) a launch_probe_child, running or a zombie.
  static bool probe_alive(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    return stat.find("(launch_probe_ch") != std::string::npos;  // comm is cut to 15 chars
  }
  /// The pid in <dir>/pid.<rank>, or -1.
  pid_t probe_pid(int rank) const {
    const std::string text = read(path("pid." + std::to_string(rank)));
    return text.empty() ? -1 : static_cast<pid_t>(std::stol(text));
  }
  /// Every pid that a worker wrote.
  std::vector<pid_t> probe_pids() const {
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("pid.", 0) == 0 && name.find(".tmp") == std::string::npos)
        pids.push_back(static_cast<pid_t>(std::stol(read(entry.path().string()))));
    }
    return pids;
  }
  /// Waits (up to 20 s) until `n` workers have written their pid (their handlers are set).
  bool wait_for_pids(size_t n) const {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      if (probe_pids().size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  void expect_no_probe_left() const {
    for (pid_t pid : probe_pids()) EXPECT_FALSE(probe_alive(pid)) << "worker " << pid << " is still there";
  }
  /// The KEY=VALUE lines of a file.
  static std::map<std::string, std::string> read_env(const std::string& p) {
    std::map<std::string, std::string> kv;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return kv;
  }
};

/// Reaps child `pid` and returns its wait status; after `timeout`, SIGKILLs and reaps it
/// and returns -1.
inline int wait_status_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

/// A shell-style exit code for a wait status (128 + signal); -1 for -1.
inline int exit_code_of(int status) {
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace zae::test
