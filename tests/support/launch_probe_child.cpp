// Child program of tests/dist/test_dist_launch.cpp: a stand-in worker that zae-launch
// (or a dist::ProcessSet) starts. Its rank is $RANK (0 when unset). Modes:
//
//   launch_probe_child env FILE            writes FILE.<RANK>: one KEY=VALUE line for each of
//                                          RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR
//                                          MASTER_PORT GROUP_RANK OMP_NUM_THREADS (value
//                                          "<unset>" when missing); exits 0
//   launch_probe_child exit CODE [R]       rank R (default 0) exits with CODE after ~100 ms;
//                                          the others sleep up to 60 s, then exit 0
//   launch_probe_child wait-signal FILE    waits up to 60 s for SIGINT/SIGTERM/SIGHUP; on the
//                                          first, counts any more that arrive within 300 ms,
//                                          writes FILE.<RANK> "signal <sig> count <n>" and
//                                          exits 128 + sig (on timeout writes "timeout", exits 1)
//   launch_probe_child crash R             rank R raises SIGKILL on itself; others sleep 60 s
//   launch_probe_child ignore-term         ignores SIGTERM and sleeps up to 60 s, then exits 0
//
// When $ZAE_PROBE_PID_DIR is set, every mode first writes <dir>/pid.<RANK> holding its
// pid, once its signal handlers are in place; the ranks that exit or crash on purpose
// first wait (up to 10 s) for $WORLD_SIZE pid files, so that all workers have started.
// Files are written to a temporary name and renamed, so readers never see half a file.
// Uses only the C and C++ standard libraries and POSIX.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

int rank() { return env_int("RANK", 0); }

bool write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) return false;
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

void write_pid_file() {
  const char* dir = std::getenv("ZAE_PROBE_PID_DIR");
  if (dir == nullptr) return;
  write_file(std::string(dir) + "/pid." + std::to_string(rank()), std::to_string(::getpid()) + "\n");
}

// Waits (up to 10 s) until every rank of the job has written its pid file.
void wait_for_all_pid_files() {
  const char* dir = std::getenv("ZAE_PROBE_PID_DIR");
  if (dir == nullptr) return;
  const int world = env_int("WORLD_SIZE", 1);
  const int base = env_int("GROUP_RANK", 0) * env_int("LOCAL_WORLD_SIZE", world);
  const int local = env_int("LOCAL_WORLD_SIZE", world);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    int found = 0;
    for (int r = base; r < base + local; ++r)
      found += ::access((std::string(dir) + "/pid." + std::to_string(r)).c_str(), F_OK) == 0 ? 1 : 0;
    if (found == local) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void sleep_up_to_60s() {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

int mode_env(const std::string& file) {
  write_pid_file();
  std::string text;
  for (const char* key : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "GROUP_RANK", "OMP_NUM_THREADS"}) {
    const char* v = std::getenv(key);
    text += std::string(key) + "=" + (v ? v : "<unset>") + "\n";
  }
  return write_file(file + "." + std::to_string(rank()), text) ? 0 : 1;
}

int mode_exit(int code, int exiting_rank) {
  write_pid_file();
  if (rank() != exiting_rank) {
    sleep_up_to_60s();
    return 0;
  }
  wait_for_all_pid_files();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return code;
}

std::atomic<int> g_first_signal{0};
std::atomic<int> g_signal_count{0};

void on_signal(int sig) {
  int expected = 0;
  g_first_signal.compare_exchange_strong(expected, sig);
  g_signal_count.fetch_add(1);
}

int mode_wait_signal(const std::string& file) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  write_pid_file();
  const std::string out = file + "." + std::to_string(rank());
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (g_first_signal.load() == 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int sig = g_first_signal.load();
  if (sig == 0) {
    write_file(out, "timeout\n");
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a duplicate would land here
  write_file(out, "signal " + std::to_string(sig) + " count " + std::to_string(g_signal_count.load()) + "\n");
  return 128 + sig;
}

int mode_crash(int crashing_rank) {
  write_pid_file();
  if (rank() != crashing_rank) {
    sleep_up_to_60s();
    return 0;
  }
  wait_for_all_pid_files();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::raise(SIGKILL);
  return 1;  // not reached
}

int mode_ignore_term() {
  ::signal(SIGTERM, SIG_IGN);
  write_pid_file();
  sleep_up_to_60s();
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: launch_probe_child env FILE | exit CODE [RANK] | wait-signal FILE | crash RANK | "
               "ignore-term\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  if (mode == "env" && argc == 3) return mode_env(argv[2]);
  if (mode == "exit" && (argc == 3 || argc == 4))
    return mode_exit(std::atoi(argv[2]), argc == 4 ? std::atoi(argv[3]) : 0);
  if (mode == "wait-signal" && argc == 3) return mode_wait_signal(argv[2]);
  if (mode == "crash" && argc == 3) return mode_crash(std::atoi(argv[2]));
  if (mode == "ignore-term" && argc == 2) return mode_ignore_term();
  return usage();
}
