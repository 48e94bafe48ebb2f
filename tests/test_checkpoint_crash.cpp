// Crash safety of save_checkpoint (io/checkpoint.h over io/atomic_file.h): a child
// program (tests/support/ckpt_writer_child.cpp) rewrites one multi-MB checkpoint in a
// tight loop; it is killed with SIGKILL after a random 5-100 ms, again and again, each
// new child continuing the counter of the file the last one left. After every kill the
// file must verify and load completely (state, user metadata and every tensor byte
// agree on one counter) and the counter never goes back. The temporary file of a write
// that was killed stays behind (".<name>.tmp.<pid>.<n>", io/atomic_file.h): the test
// checks that there is at most one per killed child, named with its pid, and reports
// how many there were.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "engine/error.h"
#include "engine/zae.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/state_json.h"
#include "tests/support/child_process.h"

#ifndef ZAE_CKPT_WRITER_CHILD
#error "ZAE_CKPT_WRITER_CHILD (the path of ckpt_writer_child) must be defined by the build"
#endif

namespace zae {
namespace {

namespace fs = std::filesystem;
namespace st = io::state;

constexpr int kIterations = 80;
constexpr int kMegabytes = 4;

// The temporary files write_file_atomic leaves for `name` in `dir`.
std::set<std::string> temp_files(const fs::path& dir, const std::string& name) {
  std::set<std::string> out;
  const std::string prefix = "." + name + ".tmp.";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) == 0) out.insert(f);
  }
  return out;
}

// Checks that every part of the checkpoint names the same counter; returns it (-1: bad).
int64_t checked_counter(const std::string& path) {
  const io::CheckpointInfo info = io::verify_checkpoint(path);
  const io::Checkpoint ck = io::load_checkpoint(path);
  const int64_t counter = st::get_int(ck.state, "counter", path);
  EXPECT_EQ(st::get_int(info.state, "counter", path), counter);
  EXPECT_EQ(ck.user_metadata.at("counter"), std::to_string(counter));
  const Tensor scalar = ck.find("counter");
  const Tensor payload = ck.find("payload");
  if (!scalar.defined() || !payload.defined()) {
    ADD_FAILURE() << path << ": tensors missing";
    return -1;
  }
  EXPECT_EQ(scalar.item(), static_cast<double>(counter));
  EXPECT_EQ(payload.numel(), int64_t{kMegabytes} * (1 << 20) / 4);
  const uint32_t base = static_cast<uint32_t>(counter) * 1000003u;
  const int32_t* p = payload.data<int32_t>();
  for (int64_t i = 0; i < payload.numel(); ++i) {
    if (p[i] != static_cast<int32_t>(base + static_cast<uint32_t>(i))) {
      ADD_FAILURE() << path << ": payload[" << i << "] belongs to another counter than " << counter;
      return -1;
    }
  }
  return counter;
}

TEST(CheckpointCrash, KillNineDuringSavesNeverLeavesATornFile) {
  const fs::path dir = fs::temp_directory_path() / ("zae_ckpt_crash_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct RemoveDir {
    fs::path dir;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove_dir{dir};
  const std::string name = "state.ckpt";
  const std::string path = (dir / name).string();
  const std::string err_path = (dir / "child_stderr.txt").string();

  const uint64_t seed = std::random_device{}();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> wait_ms(5, 100);
  SCOPED_TRACE("random seed " + std::to_string(seed));

  const auto start = std::chrono::steady_clock::now();
  int64_t previous = 0;      // counter after the last kill (0: no file yet)
  int advanced = 0;          // kills after which the counter had moved on
  int killed_mid_write = 0;  // kills that left a temporary file behind
  std::set<std::string> temps_seen;
  for (int it = 0; it < kIterations; ++it) {
    test::ChildProcess child({ZAE_CKPT_WRITER_CHILD, path, std::to_string(kMegabytes)}, true, err_path);
    ASSERT_EQ(child.error(), "");
    std::string ready;
    ASSERT_TRUE(child.read_line(ready, 60000) && ready == "ready")
        << "iteration " << it << ": the writer did not start (see " << err_path << ")";
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(rng)));
    ASSERT_TRUE(child.signal(SIGKILL)) << "the writer ended on its own (see " << err_path << ")";
    const int status = child.wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "iteration " << it << ": the writer " << test::describe_wait_status(status);

    if (!fs::exists(path)) {
      ASSERT_EQ(previous, 0) << "iteration " << it << ": the checkpoint disappeared";
    } else {
      int64_t counter = -1;
      try {
        counter = checked_counter(path);
      } catch (const Error& e) {
        FAIL() << "iteration " << it << ": the checkpoint left by a kill does not load: " << e.what();
      }
      ASSERT_GE(counter, previous) << "iteration " << it;
      ASSERT_GE(counter, 1);
      if (counter > previous) ++advanced;
      previous = counter;
    }

    // At most one new temporary file per killed writer, and it is that writer's.
    const std::set<std::string> temps = temp_files(dir, name);
    int fresh = 0;
    for (const std::string& t : temps) {
      if (temps_seen.count(t)) continue;
      ++fresh;
      EXPECT_EQ(t.rfind("." + name + ".tmp." + std::to_string(child.pid()) + ".", 0), 0u)
          << t << " is not the killed writer's (pid " << child.pid() << ")";
    }
    EXPECT_LE(fresh, 1) << "iteration " << it;
    if (fresh == 1) ++killed_mid_write;
    temps_seen.insert(temps.begin(), temps.end());
    EXPECT_LE(temps.size(), static_cast<size_t>(it + 1));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::set<std::string> left = temp_files(dir, name);
  std::printf("[ crash    ] %d kills in %.1f s: final counter %lld, counter advanced after %d kills, %d kills "
              "landed inside a write (temporary file left), %zu temporary files in the directory at the end\n",
              kIterations, seconds, static_cast<long long>(previous), advanced, killed_mid_write, left.size());
  // The kills must have hit a writer that was writing, or the test proved nothing.
  EXPECT_GT(advanced, 0) << "the writer never completed a save";
  EXPECT_GT(killed_mid_write, 0) << "no kill landed inside a write";
  if (fs::exists(err_path)) {
    std::ifstream in(err_path);
    std::stringstream s;
    s << in.rdbuf();
    EXPECT_EQ(s.str(), "") << "the writer reported errors";
  }
  // The killed writers' temporary files are what a state manager sweeps at start: every
  // writer is dead, so all of them go (min age 0 here), and a live process's file stays.
  const std::string live = "." + name + ".tmp." + std::to_string(::getpid()) + ".0";
  { std::ofstream(dir / live) << "in progress"; }
  EXPECT_EQ(io::remove_stale_temporaries(dir.string(), 0.0), left.size());
  EXPECT_EQ(temp_files(dir, name), std::set<std::string>{live});
  // With the default minimum age (60 s), the fresh files are kept.
  const std::string recent = "." + name + ".tmp.999999999.3";
  { std::ofstream(dir / recent) << "x"; }
  EXPECT_EQ(io::remove_stale_temporaries(dir.string()), 0u);
  fs::last_write_time(dir / recent, fs::file_time_type::clock::now() - std::chrono::minutes(5));
  EXPECT_EQ(io::remove_stale_temporaries(dir.string()), 1u);
  EXPECT_TRUE(fs::exists(dir / live));
}

}  // namespace
}  // namespace zae
