// Tests of rendezvous: reading a job's coordinates from the environment (torchrun style,
// SLURM, Open MPI) with strict parsing, SLURM node lists, init_method URLs, and the join
// barrier over tcp://, env:// and file:// with threads as ranks, including a missing rank.
// Every test starts from an environment without any launcher variable and restores it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "dist/rendezvous.h"
#include "dist/tcp_store.h"
#include "engine/error.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace zae::dist {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using zae::test::expect_throws_with;

const char* const kLaunchVars[] = {
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
    "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_JOB_NUM_NODES", "SLURM_NNODES",
    "SLURM_JOB_NODELIST", "SLURM_NODELIST", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"};

/// Clears every launcher variable for the test and puts the original values back after.
class RendezvousTest : public zae::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    for (const char* v : kLaunchVars) {
      if (const char* old = std::getenv(v)) saved_[v] = old;
      ::unsetenv(v);
    }
  }
  void TearDown() override {
    for (const char* v : kLaunchVars) ::unsetenv(v);
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
    TempDirTest::TearDown();
  }
  static void set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }

  std::map<std::string, std::string> saved_;
};

/// A port that was free a moment ago (bound with port 0, read, closed).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Runs rendezvous(init_method, r, world) for every r in `ranks` on its own thread; the
/// results (or error messages) by rank.
struct Outcome {
  std::optional<Rendezvous> rv;
  std::string error;
};
std::vector<Outcome> join_threads(const std::string& init_method, const std::vector<int>& ranks, int world,
                                  std::chrono::milliseconds timeout) {
  std::vector<Outcome> out(world);
  std::vector<std::thread> threads;
  for (int r : ranks)
    threads.emplace_back([&, r] {
      try {
        out[r].rv = rendezvous(init_method, r, world, timeout);
      } catch (const std::exception& e) {
        out[r].error = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return out;
}

/// Each rank publishes a key and reads every other rank's, over the rendezvous store.
void exchange(std::vector<Outcome>& out) {
  const int world = static_cast<int>(out.size());
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      Store& s = *out[r].rv->store;
      s.set_string("hello/" + std::to_string(r), std::to_string(r * r));
      for (int o = 0; o < world; ++o) EXPECT_EQ(s.get_string("hello/" + std::to_string(o)), std::to_string(o * o));
    });
  for (auto& t : threads) t.join();
}

/// Destroys the stores, rank 0 (the server) last.
void release(std::vector<Outcome>& out) {
  for (size_t r = out.size(); r-- > 0;) out[r].rv.reset();
}

// ---------------------------------------------------------------------------------------------
// The environment

TEST_F(RendezvousTest, NoLauncherVariablesMeansNoJob) { EXPECT_FALSE(launch_env_from_environment().has_value()); }

TEST_F(RendezvousTest, TorchrunStyleVariables) {
  set("RANK", "5");
  set("WORLD_SIZE", "8");
  set("LOCAL_RANK", "1");
  set("LOCAL_WORLD_SIZE", "4");
  set("MASTER_ADDR", "10.1.2.3");
  set("MASTER_PORT", "12355");
  const auto e = launch_env_from_environment();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->rank, 5);
  EXPECT_EQ(e->world_size, 8);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 4);
  EXPECT_EQ(e->master_addr, "10.1.2.3");
  EXPECT_EQ(e->master_port, 12355);
  EXPECT_EQ(e->launcher, "env");
  // RANK wins over the SLURM and MPI variables.
  set("SLURM_PROCID", "0");
  set("OMPI_COMM_WORLD_RANK", "0");
  EXPECT_EQ(launch_env_from_environment()->launcher, "env");
}

TEST_F(RendezvousTest, WithoutLocalVariablesOneNodeIsAssumed) {
  set("RANK", "2");
  set("WORLD_SIZE", "3");
  const auto e = launch_env_from_environment();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->local_rank, 2);
  EXPECT_EQ(e->local_world_size, 3);
  EXPECT_EQ(e->master_addr, "");
  EXPECT_EQ(e->master_port, 0);
}

TEST_F(RendezvousTest, SlurmVariables) {
  set("SLURM_PROCID", "6");
  set("SLURM_NTASKS", "8");
  set("SLURM_LOCALID", "2");
  set("SLURM_NTASKS_PER_NODE", "4");
  set("SLURM_JOB_NODELIST", "node[03-05,07],gpu1");
  auto e = launch_env_from_environment();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->launcher, "slurm");
  EXPECT_EQ(e->rank, 6);
  EXPECT_EQ(e->world_size, 8);
  EXPECT_EQ(e->local_rank, 2);
  EXPECT_EQ(e->local_world_size, 4);
  EXPECT_EQ(e->master_addr, "node03");
  EXPECT_EQ(e->master_port, 0);
  // Without --ntasks-per-node: derived from the node count.
  ::unsetenv("SLURM_NTASKS_PER_NODE");
  set("SLURM_NNODES", "2");
  e = launch_env_from_environment();
  EXPECT_EQ(e->local_world_size, 4);
  // MASTER_ADDR, when set, wins over the node list.
  set("MASTER_ADDR", "head");
  set("MASTER_PORT", "2222");
  e = launch_env_from_environment();
  EXPECT_EQ(e->master_addr, "head");
  EXPECT_EQ(e->master_port, 2222);
}

TEST_F(RendezvousTest, OpenMpiVariables) {
  set("OMPI_COMM_WORLD_RANK", "3");
  set("OMPI_COMM_WORLD_SIZE", "4");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  set("OMPI_COMM_WORLD_LOCAL_SIZE", "2");
  const auto e = launch_env_from_environment();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->launcher, "mpi");
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 2);
  EXPECT_EQ(e->master_addr, "");
}

TEST_F(RendezvousTest, BadValuesAreErrorsNamingTheVariable) {
  set("RANK", "abc");
  set("WORLD_SIZE", "2");
  expect_throws_with([] { launch_env_from_environment(); }, {"RANK", "'abc'", "not an integer"});
  set("RANK", "1x");
  expect_throws_with([] { launch_env_from_environment(); }, {"RANK", "'1x'"});
  set("RANK", " 1");
  expect_throws_with([] { launch_env_from_environment(); }, {"RANK", "' 1'"});
  set("RANK", "2");
  expect_throws_with([] { launch_env_from_environment(); }, {"RANK=2", "world size 2"});
  set("RANK", "-1");
  expect_throws_with([] { launch_env_from_environment(); }, {"RANK=-1"});
  set("RANK", "0");
  set("WORLD_SIZE", "0");
  expect_throws_with([] { launch_env_from_environment(); }, {"WORLD_SIZE=0"});
  set("WORLD_SIZE", "99999999999999999999");
  expect_throws_with([] { launch_env_from_environment(); }, {"WORLD_SIZE", "99999999999999999999"});
  set("WORLD_SIZE", "2");
  set("MASTER_PORT", "70000");
  expect_throws_with([] { launch_env_from_environment(); }, {"MASTER_PORT=70000", "65535"});
  set("MASTER_PORT", "http");
  expect_throws_with([] { launch_env_from_environment(); }, {"MASTER_PORT", "'http'"});
  ::unsetenv("MASTER_PORT");
  ::unsetenv("WORLD_SIZE");
  expect_throws_with([] { launch_env_from_environment(); }, {"WORLD_SIZE is not set"});
  ::unsetenv("RANK");
  set("SLURM_PROCID", "0");
  set("SLURM_NTASKS", "four");
  expect_throws_with([] { launch_env_from_environment(); }, {"SLURM_NTASKS", "'four'"});
  ::unsetenv("SLURM_PROCID");
  ::unsetenv("SLURM_NTASKS");
  set("OMPI_COMM_WORLD_RANK", "0");
  expect_throws_with([] { launch_env_from_environment(); }, {"OMPI_COMM_WORLD_SIZE is not set"});
}

TEST(FirstSlurmHost, Examples) {
  EXPECT_EQ(first_slurm_host("node[03-05,07],gpu1"), "node03");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
  EXPECT_EQ(first_slurm_host("gpu-[1-2]"), "gpu-1");
  EXPECT_EQ(first_slurm_host("single"), "single");
  EXPECT_EQ(first_slurm_host("n[7]"), "n7");
  EXPECT_EQ(first_slurm_host("rack[2-3]-n[10-11]"), "rack2-n10");
  expect_throws_with([] { first_slurm_host(""); }, {"empty"});
  expect_throws_with([] { first_slurm_host("node[01-03"); }, {"unclosed", "node[01-03"});
  expect_throws_with([] { first_slurm_host(",a"); }, {"empty host"});
}

// ---------------------------------------------------------------------------------------------
// init_method

TEST_F(RendezvousTest, MalformedInitMethodsAreErrors) {
  expect_throws_with([] { rendezvous("localhost:1234", 0, 1, 1s); }, {"'localhost:1234'", "not a URL"});
  expect_throws_with([] { rendezvous("udp://h:1", 0, 1, 1s); }, {"unknown init_method scheme", "udp://"});
  expect_throws_with([] { rendezvous("tcp://localhost", 0, 2, 1s); }, {"tcp://host:port"});
  expect_throws_with([] { rendezvous("tcp://localhost:abc", 0, 2, 1s); }, {"'abc'", "not an integer"});
  expect_throws_with([] { rendezvous("tcp://localhost:99999", 0, 2, 1s); }, {"99999", "65535"});
  expect_throws_with([] { rendezvous("tcp://:1234", 0, 2, 1s); }, {"tcp://host:port"});
  expect_throws_with([] { rendezvous("tcp://localhost:0", 0, 2, 1s); }, {"port 0"});
  expect_throws_with([] { rendezvous("file://relative/path", 0, 1, 1s); }, {"absolute path"});
  expect_throws_with([] { rendezvous("env://x", 0, 1, 1s); }, {"after env://"});
  expect_throws_with([] { rendezvous("env://", 0, 2, 1s); }, {"MASTER_ADDR", "world_size 2"});
  expect_throws_with([] { rendezvous("tcp://127.0.0.1:1", 2, 2, 1s); }, {"rank 2", "[0, 2)"});
  expect_throws_with([] { rendezvous("tcp://127.0.0.1:1", 0, 0, 1s); }, {"world_size", "0"});
  expect_throws_with([] { rendezvous("env://", -1, -1, 1s); }, {"not given", "RANK and WORLD_SIZE"});
}

// ---------------------------------------------------------------------------------------------
// Joining

TEST_F(RendezvousTest, TcpRendezvousOfThreeRanks) {
  const std::string url = "tcp://127.0.0.1:" + std::to_string(free_port());
  auto out = join_threads(url, {0, 1, 2}, 3, 5s);
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(out[r].rv.has_value()) << "rank " << r << ": " << out[r].error;
    EXPECT_EQ(out[r].rv->rank, r);
    EXPECT_EQ(out[r].rv->world_size, 3);
    EXPECT_EQ(out[r].rv->local_rank, r);
  }
  exchange(out);
  EXPECT_TRUE(out[0].rv->store->lost_ranks().empty());
  release(out);
}

TEST_F(RendezvousTest, EnvRendezvousOfThreeRanks) {
  set("MASTER_ADDR", "localhost");
  set("MASTER_PORT", std::to_string(free_port()));
  auto out = join_threads("env://", {0, 1, 2}, 3, 5s);
  for (int r = 0; r < 3; ++r) ASSERT_TRUE(out[r].rv.has_value()) << "rank " << r << ": " << out[r].error;
  exchange(out);
  release(out);
}

TEST_F(RendezvousTest, EnvRendezvousOfOneProcessFromTheEnvironment) {
  set("RANK", "0");
  set("WORLD_SIZE", "1");
  const Rendezvous rv = rendezvous("env://", -1, -1, 2s);  // no MASTER_*: loopback, a free port
  EXPECT_EQ(rv.rank, 0);
  EXPECT_EQ(rv.world_size, 1);
  EXPECT_EQ(rv.local_rank, 0);
  ASSERT_NE(rv.store, nullptr);
  rv.store->set_string("k", "v");
  EXPECT_EQ(rv.store->get_string("k"), "v");
  auto* tcp = dynamic_cast<TCPStore*>(rv.store.get());
  ASSERT_NE(tcp, nullptr);
  EXPECT_GT(tcp->port(), 0);
}

TEST_F(RendezvousTest, FileRendezvousOfThreeRanks) {
  const std::string file = path("rdzv");
  auto out = join_threads("file://" + file, {0, 1, 2}, 3, 5s);
  for (int r = 0; r < 3; ++r) ASSERT_TRUE(out[r].rv.has_value()) << "rank " << r << ": " << out[r].error;
  exchange(out);
  EXPECT_TRUE(std::filesystem::exists(file));
  release(out);
  EXPECT_FALSE(std::filesystem::exists(file));  // the last rank cleaned up
}

TEST_F(RendezvousTest, AMissingRankIsATimeoutNamingIt) {
  const std::string url = "tcp://127.0.0.1:" + std::to_string(free_port());
  const auto t0 = Clock::now();
  auto out = join_threads(url, {0, 1}, 3, 400ms);  // rank 2 never comes
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(waited, 3000);
  for (int r = 0; r < 2; ++r) {
    EXPECT_FALSE(out[r].rv.has_value());
    EXPECT_NE(out[r].error.find("only 2 of 3 ranks"), std::string::npos) << out[r].error;
    EXPECT_NE(out[r].error.find("missing ranks never connected"), std::string::npos) << out[r].error;
  }
  // Rank 0 serves the store and so can always say who is missing (rank 1 usually can too,
  // unless rank 0's store is gone before rank 1 asks).
  EXPECT_NE(out[0].error.find("only 2 of 3 ranks arrived within 400 ms; missing ranks never connected: [2]"),
            std::string::npos)
      << out[0].error;
}

TEST_F(RendezvousTest, AMissingRankOverAFileIsATimeoutNamingIt) {
  auto out = join_threads("file://" + path("rdzv"), {0, 2}, 3, 300ms);
  for (int r : {0, 2}) {
    EXPECT_NE(out[r].error.find("only 2 of 3 ranks arrived"), std::string::npos) << out[r].error;
    EXPECT_NE(out[r].error.find("[1]"), std::string::npos) << out[r].error;
  }
}

TEST_F(RendezvousTest, TwoProcessesClaimingOneRankAreAnError) {
  const std::string url = "file://" + path("rdzv");
  auto out = join_threads(url, {0, 1}, 2, 2s);
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(out[r].rv.has_value()) << out[r].error;
  // A third process that also thinks it is rank 1 joins the same, still open, store.
  expect_throws_with([&] { rendezvous(url, 1, 2, 1s); }, {"rank 1", "more than once"});
  release(out);
}

}  // namespace
}  // namespace zae::dist
