// dist::ProcessSet on its own, with launch_probe_child workers: start failures name the
// program and errno, the environment is inherited and overridden, poll reports each exit
// once, wait_all stops the others on the first failure (reporting it first) and forwards
// what `interrupted` returns, terminate_all escalates to SIGKILL after the grace period
// (and does not wait it out when SIGTERM suffices), and the destructor kills and reaps.
// zae-launch on top of it is tested in test_dist_launch.cpp.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "dist/process_set.h"
#include "engine/error.h"
#include "support/launch_probe_fixture.h"

namespace {

using namespace std::chrono_literals;
using zae::dist::ProcessExit;
using zae::dist::ProcessSet;
using zae::dist::ProcessSpec;
using Clock = std::chrono::steady_clock;

const std::string kProbe = ZAE_LAUNCH_PROBE_CHILD;

using ProcessSetTest = zae::test::LaunchProbeTest;

ProcessSpec spec_of(std::vector<std::string> argv, int rank, int world = 1) {
  return ProcessSpec{.argv = std::move(argv),
                     .env = {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)}},
                     .label = "rank " + std::to_string(rank)};
}

TEST_F(ProcessSetTest, StartFailureNamesProgramAndErrno) {
  ProcessSet set;
  for (const std::string program : {"/nonexistent/zae_no_such_program", "zae_no_such_program_in_path"}) {
    try {
      set.start(spec_of({program, "x"}, 0));
      ADD_FAILURE() << "started " << program;
    } catch (const zae::Error& e) {
      EXPECT_NE(e.message().find("rank 0"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("'" + program + "'"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.message();
    }
  }
  EXPECT_THROW(set.start(ProcessSpec{}), zae::Error);
  EXPECT_THROW(set.start(ProcessSpec{.argv = {kProbe}, .env = {{"A=B", "1"}}, .label = ""}), zae::Error);
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.wait_all(1s), std::nullopt);  // nothing to wait for
}

TEST_F(ProcessSetTest, EnvironmentIsInheritedAndOverridden) {
  ::setenv("MASTER_ADDR", "inherited", 1);
  ::setenv("MASTER_PORT", "1", 1);
  ProcessSet set;
  set.start(
      ProcessSpec{.argv = probe({"env", path("env")}), .env = {{"RANK", "5"}, {"MASTER_PORT", "2"}}, .label = ""});
  EXPECT_EQ(set.wait_all(10s), std::nullopt);
  ::unsetenv("MASTER_ADDR");
  ::unsetenv("MASTER_PORT");
  auto env = read_env(path("env.5"));
  EXPECT_EQ(env["MASTER_ADDR"], "inherited");
  EXPECT_EQ(env["MASTER_PORT"], "2");
  EXPECT_EQ(env["WORLD_SIZE"], "<unset>");
  ASSERT_TRUE(set.exit_of(0).has_value());
  EXPECT_TRUE(set.exit_of(0)->success());
  EXPECT_EQ(set.exit_of(0)->describe(), "process 0 exited with status 0");
}

TEST_F(ProcessSetTest, PollReportsEachExitOnce) {
  ProcessSet set;
  set.start(spec_of(probe({"exit", "5", "0"}), 0));
  set.start(spec_of(probe({"crash", "1"}), 1));
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(set.running(), 2u);
  std::vector<ProcessExit> seen;
  const auto deadline = Clock::now() + 20s;
  while (seen.size() < 2 && Clock::now() < deadline) {
    for (ProcessExit& e : set.poll()) seen.push_back(e);
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(set.running(), 0u);
  EXPECT_TRUE(set.poll().empty());
  for (const ProcessExit& e : seen) {
    EXPECT_FALSE(e.success());
    if (e.index == 0) {
      EXPECT_EQ(e.exit_code(), 5);
      EXPECT_EQ(e.describe(), "rank 0 exited with status 5");
    } else {
      EXPECT_EQ(e.exit_code(), 128 + SIGKILL);
      EXPECT_EQ(e.describe(), "rank 1 was killed by signal 9 (Killed)");
    }
    EXPECT_EQ(set.exit_of(e.index)->status, e.status);
  }
  expect_no_probe_left();
}

TEST_F(ProcessSetTest, WaitAllStopsTheOthersOnTheFirstFailure) {
  ProcessSet set;
  for (int r = 0; r < 3; ++r) set.start(spec_of(probe({"exit", "3", "1"}), r, 3));
  int failures_reported = 0;
  size_t running_at_failure = 0;
  const auto start = Clock::now();
  const auto failed = set.wait_all(20s, nullptr, [&](const ProcessExit& e) {
    ++failures_reported;
    running_at_failure = set.running();
    EXPECT_EQ(e.index, 1u);
  });
  EXPECT_LT(Clock::now() - start, 15s);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->index, 1u);
  EXPECT_EQ(failed->exit_code(), 3);
  EXPECT_EQ(failures_reported, 1);
  EXPECT_EQ(running_at_failure, 2u);
  EXPECT_EQ(set.running(), 0u);
  for (size_t i : {0u, 2u}) {
    ASSERT_TRUE(set.exit_of(i).has_value());
    EXPECT_EQ(set.exit_of(i)->exit_code(), 128 + SIGTERM) << set.exit_of(i)->describe();
  }
  expect_no_probe_left();
}

// The interrupted callback's signal reaches every child; wait_all keeps waiting.
int g_interrupt_calls = 0;
int interrupt_once_with_sighup() { return ++g_interrupt_calls == 3 ? SIGHUP : 0; }

TEST_F(ProcessSetTest, WaitAllForwardsWhatInterruptedReturns) {
  ProcessSet set;
  for (int r = 0; r < 2; ++r) set.start(spec_of(probe({"wait-signal", path("sig")}), r, 2));
  ASSERT_TRUE(wait_for_pids(2));  // handlers installed
  g_interrupt_calls = 0;
  const auto failed = set.wait_all(10s, &interrupt_once_with_sighup);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->exit_code(), 128 + SIGHUP);
  EXPECT_EQ(read(path("sig.0")), "signal 1 count 1\n");
  EXPECT_EQ(read(path("sig.1")), "signal 1 count 1\n");
}

// -sig: the children got sig elsewhere (as from a terminal); nothing is forwarded, and
// the failure that follows brings no SIGTERM on the others.
std::vector<pid_t> g_pids;
int signal_children_with_sigint_once() {
  if (++g_interrupt_calls != 3) return 0;
  for (pid_t pid : g_pids) ::kill(pid, SIGINT);
  return -SIGINT;
}

TEST_F(ProcessSetTest, WaitAllForwardsNothingForANegativeSignal) {
  ProcessSet set;
  for (int r = 0; r < 2; ++r) set.start(spec_of(probe({"wait-signal", path("sig")}), r, 2));
  ASSERT_TRUE(wait_for_pids(2));
  g_pids = {set.pid(0), set.pid(1)};
  g_interrupt_calls = 0;
  const auto failed = set.wait_all(10s, &signal_children_with_sigint_once);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->exit_code(), 128 + SIGINT);
  EXPECT_EQ(read(path("sig.0")), "signal 2 count 1\n");
  EXPECT_EQ(read(path("sig.1")), "signal 2 count 1\n");
  EXPECT_EQ(set.exit_of(0)->exit_code(), 128 + SIGINT);
  EXPECT_EQ(set.exit_of(1)->exit_code(), 128 + SIGINT);
}

// After a forwarded signal, a child that fails does not bring SIGTERM on the others; one
// that never ends gets SIGKILL after the grace period.
int interrupt_once_with_sigterm() { return ++g_interrupt_calls == 3 ? SIGTERM : 0; }

TEST_F(ProcessSetTest, WaitAllAfterASignalKillsAStragglerAfterGrace) {
  ProcessSet set;
  set.start(spec_of(probe({"wait-signal", path("sig")}), 0, 2));
  set.start(spec_of(probe({"ignore-term"}), 1, 2));
  ASSERT_TRUE(wait_for_pids(2));
  g_interrupt_calls = 0;
  const auto start = Clock::now();
  const auto failed = set.wait_all(500ms, &interrupt_once_with_sigterm);
  const auto took = Clock::now() - start;
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->index, 0u);
  EXPECT_EQ(failed->exit_code(), 128 + SIGTERM);
  EXPECT_EQ(read(path("sig.0")), "signal 15 count 1\n");
  EXPECT_EQ(set.exit_of(1)->exit_code(), 128 + SIGKILL) << set.exit_of(1)->describe();
  EXPECT_GE(took, 800ms);  // 300 ms in the probe's handler, then the 500 ms grace
  EXPECT_LT(took, 10s);
  expect_no_probe_left();
}

TEST_F(ProcessSetTest, TerminateAllKillsAChildThatIgnoresSigterm) {
  ProcessSet set;
  set.start(spec_of(probe({"ignore-term"}), 0));
  set.start(spec_of(probe({"exit", "0", "7"}), 1));  // sleeps; SIGTERM ends it
  ASSERT_TRUE(wait_for_pids(2));
  const auto start = Clock::now();
  set.terminate_all(400ms);
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, 10s);
  EXPECT_EQ(set.running(), 0u);
  EXPECT_EQ(set.exit_of(0)->exit_code(), 128 + SIGKILL) << set.exit_of(0)->describe();
  EXPECT_EQ(set.exit_of(1)->exit_code(), 128 + SIGTERM) << set.exit_of(1)->describe();
  expect_no_probe_left();

  // Without a stubborn child, terminate_all does not wait out the grace period.
  ProcessSet quick;
  quick.start(spec_of(probe({"exit", "0", "7"}), 0));
  const auto start2 = Clock::now();
  quick.terminate_all(30s);
  EXPECT_LT(Clock::now() - start2, 10s);
  EXPECT_EQ(quick.exit_of(0)->exit_code(), 128 + SIGTERM);
}

TEST_F(ProcessSetTest, DestructorKillsAndReaps) {
  pid_t pid = -1;
  {
    ProcessSet set;
    set.start(spec_of(probe({"ignore-term"}), 0));
    pid = set.pid(0);
    EXPECT_EQ(set.running(), 1u);
    EXPECT_FALSE(set.exit_of(0).has_value());
  }
  EXPECT_FALSE(probe_alive(pid));                   // neither running nor a zombie
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);  // already reaped
}

}  // namespace
