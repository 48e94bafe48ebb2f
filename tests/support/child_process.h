// Starting, watching and reaping child programs in tests (crash and signal tests).
// Children are started with posix_spawn (never a bare fork of the multi-threaded test
// process); stdout can be captured through a pipe and read line by line with a
// deadline, stderr can go to a file. Invariants: every helper reports failures as
// GoogleTest failures or return values and never throws; a ChildProcess that is
// destroyed while its child still runs kills (SIGKILL) and reaps it, so a failing
// test leaves no process behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace zae::test {

/// "exited with status N", "killed by signal N", ...
inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

class ChildProcess {
 public:
  /// Starts argv[0] (an absolute path) with argv. capture_stdout: a pipe to read_line();
  /// stderr_path: the child's stderr goes there (appended), else it is inherited.
  ChildProcess(const std::vector<std::string>& argv, bool capture_stdout, const std::string& stderr_path = "") {
    int fds[2] = {-1, -1};
    if (capture_stdout && ::pipe2(fds, O_CLOEXEC) != 0) {
      error_ = std::string("pipe: ") + std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (capture_stdout) posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    if (!stderr_path.empty())
      posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (capture_stdout) ::close(fds[1]);
    if (rc != 0) {
      error_ = "posix_spawn " + argv[0] + ": " + std::strerror(rc);
      pid_ = -1;
      if (capture_stdout) ::close(fds[0]);
      return;
    }
    out_fd_ = capture_stdout ? fds[0] : -1;
  }
  ~ChildProcess() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Empty when the child started.
  const std::string& error() const { return error_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !reaped_; }

  bool signal(int signo) const { return running() && ::kill(pid_, signo) == 0; }

  /// Waits for the child to end and returns its wait status (-1: no child).
  int wait() {
    if (!running()) return reaped_ ? status_ : -1;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = status;
    return status_;
  }
  /// Reaps the child if it has ended; true when it has.
  bool poll_exit() {
    if (!running()) return reaped_;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = status;
    }
    return reaped_;
  }

  /// The next line of the child's stdout (without '\n'); false at end of output or when
  /// `timeout_ms` passes first (then timed_out() is true).
  bool read_line(std::string& line, int timeout_ms) {
    timed_out_ = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return true;
      }
      if (out_fd_ < 0 || eof_) {
        if (buffer_.empty()) return false;
        line = std::move(buffer_);
        buffer_.clear();
        return true;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) {
        timed_out_ = true;
        return false;
      }
      pollfd p{out_fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;  // the deadline check above decides
      char chunk[4096];
      const ssize_t n = ::read(out_fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  bool timed_out() const { return timed_out_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string error_;
  std::string buffer_;
  bool eof_ = false;
  bool timed_out_ = false;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace zae::test
