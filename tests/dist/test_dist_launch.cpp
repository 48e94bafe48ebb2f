// zae-launch: its command line (every error, in-process) and the built program running
// launch_probe_child workers: their environment for one node and for node 1 of 2, a
// failing rank (the launcher returns its status quickly and no worker is left), a rank
// killed by SIGKILL, SIGTERM forwarded to every worker, a second SIGTERM killing workers
// that ignore the first, and a Ctrl-C typed at a pseudo-terminal reaching each worker
// exactly once. dist::ProcessSet on its own is tested in test_dist_process_set.cpp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "apps/launch/launch_args.h"
#include "engine/error.h"
#include "support/child_process.h"
#include "support/launch_probe_fixture.h"

namespace {

using namespace std::chrono_literals;
using zae::apps::launch::LaunchArgs;
using zae::apps::launch::parse_launch_args;
using zae::test::exit_code_of;
using zae::test::wait_status_for;

const std::string kLaunch = ZAE_LAUNCH_BIN;

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---------------------------------------------------------------------------------------
// Command line

LaunchArgs parse(std::vector<std::string> args) { return parse_launch_args(args); }

TEST(LaunchArgs, DefaultsAndProgramArguments) {
  const LaunchArgs a = parse({"--nproc-per-node", "3", "train", "--lr", "0.1"});
  EXPECT_EQ(a.nproc_per_node, 3);
  EXPECT_EQ(a.nnodes, 1);
  EXPECT_EQ(a.node_rank, 0);
  EXPECT_EQ(a.master_addr, "127.0.0.1");
  EXPECT_EQ(a.master_port, 29500);
  EXPECT_DOUBLE_EQ(a.grace_seconds, 30.0);
  EXPECT_FALSE(a.help);
  EXPECT_EQ(a.program, (std::vector<std::string>{"train", "--lr", "0.1"}));
  EXPECT_EQ(a.world_size(), 3);
}

TEST(LaunchArgs, EqualsSpellingUnderscoresAndDoubleDash) {
  const LaunchArgs a = parse({"--nproc_per_node=2", "--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.7",
                              "--master_port=1234", "--grace-seconds=0.5", "--", "prog", "--nnodes", "9", "--help"});
  EXPECT_EQ(a.nproc_per_node, 2);
  EXPECT_EQ(a.nnodes, 2);
  EXPECT_EQ(a.node_rank, 1);
  EXPECT_EQ(a.master_addr, "10.0.0.7");
  EXPECT_EQ(a.master_port, 1234);
  EXPECT_DOUBLE_EQ(a.grace_seconds, 0.5);
  EXPECT_FALSE(a.help);  // after "--", --help is the program's
  EXPECT_EQ(a.program, (std::vector<std::string>{"prog", "--nnodes", "9", "--help"}));
  EXPECT_EQ(a.world_size(), 4);
  EXPECT_EQ(a.rank_of(0), 2);
  EXPECT_EQ(a.rank_of(1), 3);
  // Options end at the program even without "--"; later values win.
  const LaunchArgs b = parse({"--nproc-per-node", "1", "--nproc-per-node", "4", "prog", "--nproc-per-node", "7"});
  EXPECT_EQ(b.nproc_per_node, 4);
  EXPECT_EQ(b.program, (std::vector<std::string>{"prog", "--nproc-per-node", "7"}));
}

TEST(LaunchArgs, Help) {
  EXPECT_TRUE(parse({"--help"}).help);
  EXPECT_TRUE(parse({"-h"}).help);
  EXPECT_TRUE(parse({"--nproc-per-node", "2", "--help"}).help);
  EXPECT_NE(zae::apps::launch::launch_usage().find("--nproc-per-node N"), std::string::npos);
}

// Each bad command line is a zae::Error whose message holds `expected`.
TEST(LaunchArgs, EveryErrorNamesTheValue) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"prog"}, "--nproc-per-node is required"},
      {{}, "--nproc-per-node is required"},
      {{"--nproc-per-node", "abc", "prog"}, "'abc'"},
      {{"--nproc-per-node", "4x", "prog"}, "'4x'"},
      {{"--nproc-per-node=", "prog"}, "got ''"},
      {{"--nproc-per-node", "1.5", "prog"}, "'1.5'"},
      {{"--nproc-per-node", "0", "prog"}, "--nproc-per-node: 0 is out of range"},
      {{"--nproc-per-node", "-2", "prog"}, "--nproc-per-node: -2 is out of range"},
      {{"--nproc-per-node", "99999999999999999999", "prog"}, "'99999999999999999999'"},
      {{"--nproc-per-node", "2", "--nnodes", "0", "prog"}, "--nnodes: 0 is out of range"},
      {{"--nproc-per-node", "2", "--nnodes", "two", "prog"}, "'two'"},
      {{"--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "2", "prog"},
       "--node-rank: 2 is out of range; expected 0 to 1 for --nnodes 2"},
      {{"--nproc-per-node", "2", "--node-rank", "1", "prog"}, "--node-rank: 1 is out of range"},
      {{"--nproc-per-node", "2", "--node-rank", "-1", "prog"}, "--node-rank: -1 is out of range"},
      {{"--nproc-per-node", "2", "--master-port", "0", "prog"}, "--master-port: 0 is out of range"},
      {{"--nproc-per-node", "2", "--master-port", "65536", "prog"}, "--master-port: 65536 is out of range"},
      {{"--nproc-per-node", "2", "--master-port", "http", "prog"}, "'http'"},
      {{"--nproc-per-node", "2", "--master-addr=", "prog"}, "--master-addr: expected a host name"},
      {{"--nproc-per-node", "2", "--grace-seconds", "-1", "prog"}, "--grace-seconds: -1 is out of range"},
      {{"--nproc-per-node", "2", "--grace-seconds", "soon", "prog"}, "'soon'"},
      {{"--nproc-per-node", "2", "--grace-seconds", "inf", "prog"}, "'inf'"},
      {{"--nproc-per-node", "2", "--grace-seconds", "nan", "prog"}, "'nan'"},
      {{"--nproc-per-node", "2", "--nnodes"}, "--nnodes needs a value"},
      {{"--nproc-per-node"}, "--nproc-per-node needs a value"},
      {{"--nproc-per-node", "2", "--verbose", "prog"}, "unknown option '--verbose'"},
      {{"--nproc-per-node", "2", "-x", "prog"}, "unknown option '-x'"},
      {{"--nproc-per-node", "2"}, "no program to launch given"},
      {{"--nproc-per-node", "2", "--"}, "no program to launch given"},
      {{"--nproc-per-node", "2", "--", ""}, "no program to launch given"},
      {{"--nproc-per-node", "65536", "--nnodes", "65536", "prog"}, "processes"},
  };
  for (const auto& [args, expected] : cases) {
    std::string joined;
    for (const std::string& a : args) joined += "[" + a + "] ";
    try {
      parse(args);
      ADD_FAILURE() << "no error for " << joined;
    } catch (const zae::Error& e) {
      EXPECT_NE(e.message().find(expected), std::string::npos) << joined << "-> " << e.message();
    }
  }
}

TEST(LaunchArgs, WorkerEnvironment) {
  const LaunchArgs a = parse({"--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "1", "--master-addr", "node0",
                              "--master-port", "4000", "prog"});
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(zae::apps::launch::worker_env(a, 1, true), (Env{{"RANK", "3"},
                                                            {"WORLD_SIZE", "4"},
                                                            {"LOCAL_RANK", "1"},
                                                            {"LOCAL_WORLD_SIZE", "2"},
                                                            {"GROUP_RANK", "1"},
                                                            {"MASTER_ADDR", "node0"},
                                                            {"MASTER_PORT", "4000"},
                                                            {"OMP_NUM_THREADS", "1"}}));
  EXPECT_EQ(zae::apps::launch::worker_env(a, 0, false).size(), 7u);
  EXPECT_TRUE(zae::apps::launch::should_set_omp_threads(a, nullptr));
  EXPECT_FALSE(zae::apps::launch::should_set_omp_threads(a, "4"));
  EXPECT_FALSE(zae::apps::launch::should_set_omp_threads(parse({"--nproc-per-node", "1", "prog"}), nullptr));
}

// ---------------------------------------------------------------------------------------
// The zae-launch program

class LaunchCliTest : public zae::test::LaunchProbeTest {
 protected:
  /// zae-launch `args` (stderr to err.txt); returns its exit code, -1 after `timeout`.
  int run_launch(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) {
    args.insert(args.begin(), kLaunch);
    zae::test::ChildProcess launcher(args, false, path("err.txt"));
    EXPECT_EQ(launcher.error(), "");
    return exit_code_of(wait_status_for(launcher.pid(), timeout));
  }
  std::string err() const { return read(path("err.txt")); }
  static bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }
};

TEST_F(LaunchCliTest, HelpAndUsageErrors) {
  zae::test::ChildProcess help({kLaunch, "--help"}, true);
  std::string line, out;
  while (help.read_line(line, 10000)) out += line + "\n";
  EXPECT_EQ(exit_code_of(wait_status_for(help.pid(), 10s)), 0);
  EXPECT_TRUE(contains(out, "usage: zae-launch --nproc-per-node N")) << out;

  EXPECT_EQ(run_launch({"--nproc-per-node", "abc", "prog"}), 2);
  EXPECT_TRUE(contains(err(), "zae-launch: --nproc-per-node: expected a whole number >= 1, got 'abc'")) << err();
  EXPECT_TRUE(contains(err(), "usage: zae-launch")) << err();
  EXPECT_EQ(run_launch({"--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "5", "prog"}), 2);
  EXPECT_TRUE(contains(err(), "--node-rank: 5 is out of range")) << err();
  EXPECT_EQ(run_launch({"--nproc-per-node=2", "--master-port=70000", "prog"}), 2);
  EXPECT_TRUE(contains(err(), "--master-port: 70000 is out of range")) << err();
  EXPECT_EQ(run_launch({"--nproc-per-node", "2"}), 2);
  EXPECT_TRUE(contains(err(), "no program to launch given")) << err();
}

TEST_F(LaunchCliTest, ProgramThatCannotStart) {
  EXPECT_EQ(run_launch({"--nproc-per-node", "2", "/nonexistent/zae_no_such_worker"}), 127);
  EXPECT_TRUE(contains(err(), "cannot start rank 0: program '/nonexistent/zae_no_such_worker': No such file")) << err();
}

TEST_F(LaunchCliTest, EnvironmentOfThreeWorkers) {
  ASSERT_EQ(run_launch(concat({"--nproc-per-node", "3", "--"}, probe({"env", path("env")}))), 0) << err();
  for (int r = 0; r < 3; ++r) {
    auto env = read_env(path("env." + std::to_string(r)));
    EXPECT_EQ(env["RANK"], std::to_string(r));
    EXPECT_EQ(env["WORLD_SIZE"], "3");
    EXPECT_EQ(env["LOCAL_RANK"], std::to_string(r));
    EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "3");
    EXPECT_EQ(env["GROUP_RANK"], "0");
    EXPECT_EQ(env["MASTER_ADDR"], "127.0.0.1");
    EXPECT_EQ(env["MASTER_PORT"], "29500");
    EXPECT_EQ(env["OMP_NUM_THREADS"], "1");
  }
  const std::string e = err();
  const size_t first = e.find("OMP_NUM_THREADS is not set");
  EXPECT_NE(first, std::string::npos) << e;
  EXPECT_EQ(e.find("OMP_NUM_THREADS is not set", first + 1), std::string::npos) << "said twice: " << e;
  expect_no_probe_left();
}

TEST_F(LaunchCliTest, SecondOfTwoNodes) {
  ::setenv("OMP_NUM_THREADS", "3", 1);  // the user's choice stays
  ASSERT_EQ(run_launch(concat({"--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "1", "--master-addr",
                               "10.1.2.3", "--master-port=4567"},
                              probe({"env", path("env")}))),
            0)
      << err();
  EXPECT_FALSE(std::filesystem::exists(path("env.0")));
  EXPECT_FALSE(std::filesystem::exists(path("env.1")));
  for (int r : {2, 3}) {
    auto env = read_env(path("env." + std::to_string(r)));
    EXPECT_EQ(env["RANK"], std::to_string(r));
    EXPECT_EQ(env["WORLD_SIZE"], "4");
    EXPECT_EQ(env["LOCAL_RANK"], std::to_string(r - 2));
    EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "2");
    EXPECT_EQ(env["GROUP_RANK"], "1");
    EXPECT_EQ(env["MASTER_ADDR"], "10.1.2.3");
    EXPECT_EQ(env["MASTER_PORT"], "4567");
    EXPECT_EQ(env["OMP_NUM_THREADS"], "3");
  }
  EXPECT_FALSE(contains(err(), "OMP_NUM_THREADS")) << err();
}

TEST_F(LaunchCliTest, FailingRankStopsTheOthersQuickly) {
  const auto start = Clock::now();
  EXPECT_EQ(run_launch(concat({"--nproc-per-node", "3", "--grace-seconds", "5"}, probe({"exit", "3", "1"}))), 3)
      << err();
  EXPECT_LT(Clock::now() - start, 20s);  // the others would sleep 60 s
  const std::string e = err();
  EXPECT_TRUE(contains(e, "zae-launch: rank 1 (pid " + std::to_string(probe_pid(1)) +
                              ") exited with status 3; stopping the other 2 processes\n"))
      << e;
  EXPECT_TRUE(contains(
      e, "zae-launch: after rank 1 failed: rank 0 (pid " + std::to_string(probe_pid(0)) + ") was killed by signal 15"))
      << e;
  EXPECT_TRUE(contains(e, "; rank 2 (pid " + std::to_string(probe_pid(2)) + ") was killed by signal 15")) << e;
  EXPECT_EQ(probe_pids().size(), 3u);
  expect_no_probe_left();
}

TEST_F(LaunchCliTest, RankKilledBySignal) {
  EXPECT_EQ(run_launch(concat({"--nproc-per-node", "2", "--grace-seconds", "5"}, probe({"crash", "1"}))), 137) << err();
  EXPECT_TRUE(contains(err(), "zae-launch: rank 1 (pid " + std::to_string(probe_pid(1)) +
                                  ") was killed by signal 9 (Killed); stopping the other 1 process\n"))
      << err();
  expect_no_probe_left();
}

TEST_F(LaunchCliTest, SigtermIsForwardedToEveryWorker) {
  zae::test::ChildProcess launcher(
      concat({kLaunch, "--nproc-per-node", "2", "--grace-seconds", "5"}, probe({"wait-signal", path("sig")})), false,
      path("err.txt"));
  ASSERT_EQ(launcher.error(), "");
  ASSERT_TRUE(wait_for_pids(2)) << err();
  ASSERT_TRUE(launcher.signal(SIGTERM));
  EXPECT_EQ(exit_code_of(wait_status_for(launcher.pid(), 30s)), 128 + SIGTERM) << err();
  EXPECT_EQ(read(path("sig.0")), "signal 15 count 1\n");
  EXPECT_EQ(read(path("sig.1")), "signal 15 count 1\n");
  EXPECT_TRUE(contains(err(), "got signal 15 (Terminated); forwarding it to the workers")) << err();
  expect_no_probe_left();
}

TEST_F(LaunchCliTest, SecondSigtermKillsTheWorkers) {
  zae::test::ChildProcess launcher(
      concat({kLaunch, "--nproc-per-node", "2", "--grace-seconds", "60"}, probe({"ignore-term"})), false,
      path("err.txt"));
  ASSERT_EQ(launcher.error(), "");
  ASSERT_TRUE(wait_for_pids(2)) << err();
  const auto start = Clock::now();
  ASSERT_TRUE(launcher.signal(SIGTERM));
  std::this_thread::sleep_for(200ms);  // forwarded and ignored
  for (pid_t pid : probe_pids()) EXPECT_TRUE(probe_alive(pid));
  ASSERT_TRUE(launcher.signal(SIGTERM));
  EXPECT_EQ(exit_code_of(wait_status_for(launcher.pid(), 30s)), 128 + SIGKILL) << err();
  EXPECT_LT(Clock::now() - start, 20s);  // not the 60 s grace period
  EXPECT_TRUE(contains(err(), "again; killing the workers (SIGKILL)")) << err();
  expect_no_probe_left();
}

// zae-launch runs as the session leader of a new pseudo-terminal; a Ctrl-C written to
// the terminal goes to its whole foreground process group, workers included. The
// launcher must not forward it again: each worker counts exactly one SIGINT.
TEST_F(LaunchCliTest, CtrlCAtTheTerminalReachesEachWorkerOnce) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) GTEST_SKIP() << "no pseudo-terminal: " << std::strerror(errno);
  if (::grantpt(master) != 0 || ::unlockpt(master) != 0) {
    ::close(master);
    GTEST_SKIP() << "cannot set up a pseudo-terminal: " << std::strerror(errno);
  }
  const std::string slave = ::ptsname(master);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);  // a new session: the terminal becomes ours
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, slave.c_str(), O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&actions, 0, 1);
  posix_spawn_file_actions_addopen(&actions, 2, path("err.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args =
      concat({kLaunch, "--nproc-per-node", "2", "--grace-seconds", "5"}, probe({"wait-signal", path("sig")}));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, kLaunch.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ASSERT_EQ(rc, 0) << std::strerror(rc);
  const bool started = wait_for_pids(2);
  if (started) {
    EXPECT_EQ(::write(master, "\x03", 1), 1);  // the terminal's VINTR: Ctrl-C
  }
  const int code = exit_code_of(wait_status_for(pid, started ? 30s : 1s));
  ::close(master);
  ASSERT_TRUE(started) << err();
  EXPECT_EQ(code, 128 + SIGINT) << err();
  EXPECT_EQ(read(path("sig.0")), "signal 2 count 1\n");
  EXPECT_EQ(read(path("sig.1")), "signal 2 count 1\n");
  EXPECT_TRUE(contains(err(), "from the terminal, which the workers got too")) << err();
  expect_no_probe_left();
}

}  // namespace
