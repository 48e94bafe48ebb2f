// MultiGPUAddon end to end on CPU devices over Gloo, in real processes: the add-on
// spawning its own workers, and processes started by zae-launch. The child program
// (tests/support/multi_gpu_child.cpp) writes each rank's parameters, losses and the
// rows it trained on; the tests compare them across ranks and against one process
// training on the concatenated batches.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"

namespace {

using zae::test::ChildProcess;

struct RankFile {
  std::vector<double> params, losses, test_losses;
  std::vector<long long> samples;
  long long epochs = 0, skipped = 0;
};

std::vector<double> parse_doubles(const std::string& csv) {
  std::vector<double> out;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::strtod(item.c_str(), nullptr));
  return out;
}

bool read_rank(const std::string& path, RankFile& r) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {  // "key value" per line; the value may be empty
    const size_t space = line.find(' ');
    const std::string key = line.substr(0, space);
    const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    if (key == "params") r.params = parse_doubles(value);
    if (key == "losses") r.losses = parse_doubles(value);
    if (key == "test_losses") r.test_losses = parse_doubles(value);
    if (key == "samples")
      for (double d : parse_doubles(value)) r.samples.push_back(static_cast<long long>(d));
    if (key == "epochs") std::sscanf(value.c_str(), "%lld skipped %lld", &r.epochs, &r.skipped);
  }
  return true;
}

class MultiGpuAddonTest : public zae::test::TempDirTest {
 protected:
  /// Runs argv to completion (at most `limit`); returns the wait status, stderr in err_.
  int run(std::vector<std::string> argv, int limit_ms = 120000) {
    const std::string err_path = path("stderr.txt");
    std::filesystem::remove(err_path);
    stdout_.clear();
    ChildProcess child(argv, /*capture_stdout=*/true, err_path);
    EXPECT_TRUE(child.error().empty()) << child.error();
    std::string line;
    while (child.read_line(line, limit_ms)) stdout_ += line + "\n";
    if (child.timed_out()) {
      ADD_FAILURE() << argv[0] << " did not finish within " << limit_ms << " ms";
      child.signal(SIGKILL);
    }
    const int status = child.wait();
    err_ = read(err_path);
    return status;
  }
  std::vector<std::string> child(const std::string& out, std::vector<std::string> args) {
    std::vector<std::string> argv{ZAE_MULTI_GPU_CHILD, "out=" + out};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  std::string out_dir(const std::string& name) {
    const std::string d = path(name);
    std::filesystem::create_directories(d);
    return d;
  }
  std::string stdout_, err_;
};

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << " element " << i;
}

/// The ranks of the job in `job` ended with bitwise identical parameters, equal (within
/// float32 reduction-order noise) to one process's in `reference` on the concatenated batches;
/// with same_steps, also its logged losses (not so with gradient accumulation: more steps).
void expect_job_matches_reference(const std::string& job, int ranks, const std::string& reference, const char* what,
                                  bool same_steps = true) {
  RankFile first, ref;
  ASSERT_TRUE(read_rank(job + "/rank0.txt", first));
  ASSERT_TRUE(read_rank(reference + "/rank0.txt", ref));
  for (int k = 1; k < ranks; ++k) {
    RankFile other;
    ASSERT_TRUE(read_rank(job + "/rank" + std::to_string(k) + ".txt", other)) << k;
    EXPECT_EQ(other.params, first.params) << what << ": rank " << k << " differs from rank 0 (bitwise)";
    EXPECT_EQ(other.losses, first.losses) << what << ": logged losses are averaged over ranks";
    EXPECT_EQ(other.test_losses, first.test_losses) << what;
  }
  expect_close(first.params, ref.params, 2e-6, what);
  if (!same_steps) return;
  expect_close(first.losses, ref.losses, 2e-6, what);
  expect_close(first.test_losses, ref.test_losses, 2e-6, what);
}

TEST_F(MultiGpuAddonTest, SpawnedWorkersTrainLikeOneProcessOnTheConcatenatedBatch) {
  const std::string three = out_dir("three"), one = out_dir("one");
  ASSERT_EQ(run(child(three, {"devices=3", "batch=4", "epochs=2", "valid=1"})), 0) << err_;
  // Only rank 0 prints the epoch summaries.
  EXPECT_EQ(std::count(stdout_.begin(), stdout_.end(), '\n') > 0, true);
  size_t epoch_lines = 0;
  for (size_t p = stdout_.find("Epoch "); p != std::string::npos; p = stdout_.find("Epoch ", p + 1)) ++epoch_lines;
  EXPECT_EQ(epoch_lines, 2u) << stdout_;
  EXPECT_NE(stdout_.find("test_loss"), std::string::npos) << stdout_;
  ASSERT_EQ(run(child(one, {"devices=1", "batch=12", "epochs=2", "valid=1"})), 0) << err_;

  expect_job_matches_reference(three, 3, one, "3 ranks x 4 vs 1 process x 12");
  RankFile r[3];
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(read_rank(three + "/rank" + std::to_string(k) + ".txt", r[k])) << k;
  // The shards: every row once per epoch, no row on two ranks.
  std::multiset<long long> all;
  for (const RankFile& f : r) {
    EXPECT_EQ(f.samples.size(), 32u);  // 48 rows / 3 ranks x 2 epochs
    all.insert(f.samples.begin(), f.samples.end());
  }
  for (long long i = 0; i < 48; ++i) EXPECT_EQ(all.count(i), 2u) << "row " << i;

  // Only rank 0 logs: one row per step (4 steps x 2 epochs), the rank-averaged losses.
  std::vector<double> logged;
  std::stringstream jsonl(read(three + "/log.jsonl"));
  for (std::string line; std::getline(jsonl, line);) {
    const size_t at = line.find("\"train/loss\":");
    if (line.rfind("{\"step\"", 0) == 0 && at != std::string::npos)
      logged.push_back(std::strtod(line.c_str() + at + 13, nullptr));
  }
  EXPECT_EQ(logged, r[0].losses) << "rows logged by more than one rank, or not the averaged losses";
}

TEST_F(MultiGpuAddonTest, DataParallelStepsStayEagerWithCudaGraphsOn) {
  // A graph backend that fails on any use is installed in every rank: the job only passes
  // when MultiGPUAddon's cuda_graph_blocker keeps every step eager, and rank 0 says why once.
  const std::string graphs = out_dir("graphs"), plain = out_dir("plain");
  ASSERT_EQ(run(child(graphs, {"devices=2", "batch=4", "epochs=2", "graphs=1"})), 0) << err_;
  const std::string notice = "data parallel training";
  size_t notices = 0;
  for (size_t p = err_.find(notice); p != std::string::npos; p = err_.find(notice, p + 1)) ++notices;
  EXPECT_EQ(notices, 1u) << err_;
  ASSERT_EQ(run(child(plain, {"devices=2", "batch=4", "epochs=2"})), 0) << err_;
  RankFile a, b;
  ASSERT_TRUE(read_rank(graphs + "/rank0.txt", a));
  ASSERT_TRUE(read_rank(plain + "/rank0.txt", b));
  EXPECT_EQ(a.params, b.params) << "cuda_graphs = on changed an eager data parallel job";
}

TEST_F(MultiGpuAddonTest, ShuffledShardsCoverEveryRowAndChangeEveryEpoch) {
  const std::string d = out_dir("shuffled");
  ASSERT_EQ(run(child(d, {"devices=2", "batch=4", "epochs=2", "shuffle=1"})), 0) << err_;
  RankFile r[2];
  for (int k = 0; k < 2; ++k) ASSERT_TRUE(read_rank(d + "/rank" + std::to_string(k) + ".txt", r[k]));
  ASSERT_EQ(r[0].samples.size(), 48u);
  ASSERT_EQ(r[1].samples.size(), 48u);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::set<long long> rows;
    for (const RankFile& f : r) rows.insert(f.samples.begin() + epoch * 24, f.samples.begin() + (epoch + 1) * 24);
    EXPECT_EQ(rows.size(), 48u) << "epoch " << epoch << ": the two shards together hold every row once";
  }
  EXPECT_NE(std::vector<long long>(r[0].samples.begin(), r[0].samples.begin() + 24),
            std::vector<long long>(r[0].samples.begin() + 24, r[0].samples.end()))
      << "set_epoch reshuffles every epoch";
  EXPECT_EQ(r[0].params, r[1].params);
}

TEST_F(MultiGpuAddonTest, GradientAccumulationWithNoSyncEqualsTheLargeBatch) {
  const std::string two = out_dir("two"), one = out_dir("one");
  ASSERT_EQ(run(child(two, {"devices=2", "batch=4", "accumulate=2", "epochs=2"})), 0) << err_;
  ASSERT_EQ(run(child(one, {"devices=1", "batch=16", "epochs=2"})), 0) << err_;
  expect_job_matches_reference(two, 2, one, "2 ranks x 2 micro-batches x 4 vs 1 x 16", /*same_steps=*/false);
}

TEST_F(MultiGpuAddonTest, ANonFiniteLossOnOneRankIsSkippedByAllRanks) {
  const std::string d = out_dir("nan");
  ASSERT_EQ(run(child(d, {"devices=2", "nan_rank=1", "nan_step=3"})), 0) << err_;
  RankFile r0, r1;
  ASSERT_TRUE(read_rank(d + "/rank0.txt", r0));
  ASSERT_TRUE(read_rank(d + "/rank1.txt", r1));
  EXPECT_EQ(r0.skipped, 1);
  EXPECT_EQ(r1.skipped, 1);
  EXPECT_EQ(r0.params, r1.params);
}

TEST_F(MultiGpuAddonTest, AKilledWorkerFailsTheJobWithinTheTimeout) {
  const std::string d = out_dir("die");
  const auto start = std::chrono::steady_clock::now();
  const int status = run(child(d, {"devices=3", "die_rank=2", "die_step=3", "timeout_ms=5000", "samples=480"}));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << zae::test::describe_wait_status(status);
  EXPECT_LT(seconds, 30.0) << "the survivors must give up within the timeout";
  EXPECT_NE(err_.find("rank 2"), std::string::npos) << "the error names the dead rank:\n" << err_;
}

TEST_F(MultiGpuAddonTest, APortInUseIsAClearError) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  const std::string d = out_dir("port");
  const int status =
      run(child(d, {"devices=2", "timeout_ms=5000", "init=tcp://127.0.0.1:" + std::to_string(port)}));
  ::close(fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << zae::test::describe_wait_status(status);
  EXPECT_NE(err_.find("already in use"), std::string::npos) << err_;
  EXPECT_NE(err_.find(std::to_string(port)), std::string::npos) << err_;
}

TEST_F(MultiGpuAddonTest, OnlyRankZeroWritesCheckpoints) {
  const std::string d = out_dir("ckpt");
  ASSERT_EQ(run(child(d, {"devices=2", "save=1"})), 0) << err_;
  EXPECT_TRUE(std::filesystem::exists(d + "/ckpt/last.ckpt"));
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(d + "/ckpt")) files += e.is_regular_file();
  EXPECT_EQ(files, 1u) << "no temporaries or per-rank copies";
}

TEST_F(MultiGpuAddonTest, ASignalToOneWorkerStopsEveryRankAndTheResumeIsExact) {
  const std::string straight = out_dir("straight"), stopped = out_dir("stopped");
  const std::vector<std::string> common{"devices=2", "save=1", "samples=96", "epochs=2"};
  auto with = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return child(out, a);
  };
  ASSERT_EQ(run(with(straight, {})), 0) << err_;

  // Interrupted: SIGTERM to rank 1 only (a worker), in the middle of epoch 1.
  const std::string err_path = path("stderr_stopped.txt");
  ChildProcess job(with(stopped, {"sleep_ms=40"}), /*capture_stdout=*/false, err_path);
  ASSERT_TRUE(job.error().empty()) << job.error();
  const std::string pid_file = stopped + "/pid1";
  for (int i = 0; i < 500 && !std::filesystem::exists(pid_file); ++i) ::usleep(10 * 1000);
  ASSERT_TRUE(std::filesystem::exists(pid_file)) << "rank 1 never started training";
  ::usleep(150 * 1000);  // a few steps into the epoch
  const pid_t worker = static_cast<pid_t>(std::stol(read(pid_file)));
  ASSERT_EQ(::kill(worker, SIGTERM), 0);
  const int status = job.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM)
      << "rank 0 did not get the signal, but stops, saves and exits like rank 1: "
      << zae::test::describe_wait_status(status) << "\n" << read(err_path);
  ASSERT_TRUE(std::filesystem::exists(stopped + "/ckpt/last.ckpt")) << read(err_path);
  EXPECT_FALSE(std::filesystem::exists(stopped + "/rank0.txt")) << "the signal came before the last epoch ended";

  // Resumed: the same command line with resume=last finishes the job.
  ASSERT_EQ(run(with(stopped, {"resume=last"})), 0) << err_;
  RankFile a0, b0, b1;
  ASSERT_TRUE(read_rank(straight + "/rank0.txt", a0));
  ASSERT_TRUE(read_rank(stopped + "/rank0.txt", b0));
  ASSERT_TRUE(read_rank(stopped + "/rank1.txt", b1));
  EXPECT_EQ(b0.params, b1.params);
  EXPECT_EQ(b0.params, a0.params) << "stop + resume must train exactly like the uninterrupted job";
  EXPECT_EQ(b0.losses, a0.losses);
}

#ifdef ZAE_EXAMPLE_MULTI_GPU
TEST_F(MultiGpuAddonTest, TheSeedsExampleRunsOnCpuProcesses) {
  const std::string model = path("dummy_model_mgpu.safetensors");
  ASSERT_EQ(run({ZAE_EXAMPLE_MULTI_GPU, "--devices", "cpu:3", "--epochs", "3", "--out", model}), 0) << err_;
  EXPECT_NE(stdout_.find("Epoch 3/3 | train_loss: "), std::string::npos) << stdout_;
  EXPECT_EQ(stdout_.find("Epoch 3/3"), stdout_.rfind("Epoch 3/3")) << "printed by rank 0 only:\n" << stdout_;
  EXPECT_TRUE(std::filesystem::exists(model));

  const std::string launched = path("launched.safetensors");
  const int port = 20000 + static_cast<int>((::getpid() + 13) % 20000);
  ASSERT_EQ(run({ZAE_LAUNCH_BIN, "--nproc-per-node", "2", "--master-port", std::to_string(port), ZAE_EXAMPLE_MULTI_GPU,
                 "--devices", "cpu:2", "--epochs", "2", "--out", launched}),
            0)
      << err_;
  EXPECT_EQ(stdout_.find("Epoch 2/2"), stdout_.rfind("Epoch 2/2")) << stdout_;
  EXPECT_TRUE(std::filesystem::exists(launched));

  ASSERT_EQ(run({ZAE_EXAMPLE_MULTI_GPU, "--devices", "cpu:1"}), 1 << 8);
  EXPECT_NE(err_.find("needs several devices"), std::string::npos) << err_;
}
#endif

#ifdef ZAE_LAUNCH_BIN
TEST_F(MultiGpuAddonTest, ZaeLaunchedRanksJoinOneJob) {
  const std::string two = out_dir("two"), one = out_dir("one");
  const int port = 20000 + static_cast<int>(::getpid() % 20000);
  ASSERT_EQ(run({ZAE_LAUNCH_BIN, "--nproc-per-node", "2", "--master-port", std::to_string(port), ZAE_MULTI_GPU_CHILD,
                 "out=" + two, "devices=2", "batch=4"}),
            0)
      << err_;
  ASSERT_EQ(run(child(one, {"devices=1", "batch=8"})), 0) << err_;
  expect_job_matches_reference(two, 2, one, "zae-launch 2 x 4 vs 1 x 8");
}

TEST_F(MultiGpuAddonTest, ZaeLaunchFailsWhenARankIsKilled) {
  const std::string d = out_dir("die");
  const int port = 20000 + static_cast<int>((::getpid() + 7) % 20000);
  const auto start = std::chrono::steady_clock::now();
  const int status = run({ZAE_LAUNCH_BIN, "--nproc-per-node", "3", "--master-port", std::to_string(port),
                          ZAE_MULTI_GPU_CHILD, "out=" + d, "devices=3", "die_rank=1", "die_step=2", "timeout_ms=5000",
                          "samples=480"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << zae::test::describe_wait_status(status);
  EXPECT_LT(seconds, 30.0);
  EXPECT_NE(err_.find("rank 1"), std::string::npos) << err_;
}
#endif

}  // namespace
