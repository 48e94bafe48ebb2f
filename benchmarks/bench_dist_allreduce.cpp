// All-reduce bandwidth of the Gloo process group: Gloo's own algorithm against our ring
// (dist/ring_all_reduce.h run inside the group, options.all_reduce_algorithm = ring), for
// 2 and 4 ranks as threads of this process talking TCP over loopback, float32 sum, sizes
// 4 KiB .. 64 MiB. Per size: the median over the repetitions of the slowest rank's time
// (a barrier starts every repetition), then
//   algbw = bytes / time                  (what the caller sees)
//   busbw = algbw * 2 (n-1) / n           (what each link of a ring carried: comparable
//                                          across n, and with NCCL's nccl-tests numbers)
// printed side by side with the ratio ring / gloo (above 1: our ring is faster). Both
// columns are the group's all_reduce as users call it: the hand-off to the group's
// communication thread and the ranks' agreement on the call (one 80-byte-per-rank
// allgather) are included, so small sizes measure latency, not bandwidth.
//
// Usage: bench_dist_allreduce [repetitions] [max MiB]   (defaults: 20 small / 5 large, 64)
// Invariants: both algorithms are checked before they are timed (every element equals
// n (n+1) / 2 after the sum of ranks' r+1) and again after the last timed run; a wrong
// result exits non-zero. The tensor is refilled outside the timed region; the two
// algorithms alternate repetition by repetition so that both see the same load. Ranks as
// threads share the machine's cores with Gloo's I/O threads, so on a small machine this
// measures CPU cost as much as the network stack.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dist/memory_store.h"
#include "dist/process_group.h"
#include "engine/ops/factory.h"

namespace {

using Clock = std::chrono::steady_clock;
using zae::Tensor;
using zae::dist::AllReduceAlgorithm;
using zae::dist::ProcessGroup;

struct Row {
  int64_t bytes = 0;
  double seconds[2] = {0, 0};  // [library, ring]
};

bool check(const Tensor& t, int n, const char* what, int64_t bytes) {
  const float want = static_cast<float>(n * (n + 1) / 2);
  const float* p = t.data<float>();
  const int64_t count = t.numel();
  for (int64_t i = 0; i < count; ++i) {
    if (p[i] != want) {
      std::fprintf(stderr, "%s, %lld bytes: wrong result at %lld: %g != %g\n", what, static_cast<long long>(bytes),
                   static_cast<long long>(i), p[i], want);
      return false;
    }
  }
  return true;
}

int repetitions_for(int64_t bytes, int forced) {
  if (forced > 0) return forced;
  return bytes <= (int64_t{1} << 20) ? 20 : bytes <= (int64_t{16} << 20) ? 10 : 5;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Runs the whole sweep for n ranks; returns false when a result was wrong.
bool sweep(int n, const std::vector<int64_t>& sizes, int forced_reps, std::vector<Row>& rows) {
  auto store = std::make_shared<zae::dist::MemoryStore>();
  store->set_timeout(std::chrono::seconds(60));
  rows.assign(sizes.size(), Row{});
  // times[size][algo][rep][rank]
  std::vector<std::vector<std::vector<std::vector<double>>>> times(sizes.size());
  for (size_t s = 0; s < sizes.size(); ++s) {
    const int reps = repetitions_for(sizes[s], forced_reps);
    times[s].assign(2, std::vector<std::vector<double>>(reps, std::vector<double>(n, 0.0)));
  }
  std::atomic<bool> ok{true};
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        zae::dist::ProcessGroupOptions lib_options;
        lib_options.timeout = std::chrono::seconds(120);
        lib_options.store_prefix = "lib";
        zae::dist::ProcessGroupOptions ring_options = lib_options;
        ring_options.store_prefix = "ring";
        ring_options.all_reduce_algorithm = AllReduceAlgorithm::ring;
        std::shared_ptr<ProcessGroup> groups[2] = {zae::dist::make_gloo_process_group(store, r, n, lib_options),
                                                   zae::dist::make_gloo_process_group(store, r, n, ring_options)};
        const char* what[2] = {"gloo", "ring"};
        for (size_t s = 0; s < sizes.size(); ++s) {
          Tensor t = zae::empty({sizes[s] / 4});  // float32
          for (int a = 0; a < 2; ++a) {           // validate (and warm up) before timing
            t.fill_(r + 1.0);
            groups[a]->all_reduce(t);
            if (!check(t, n, what[a], sizes[s])) ok = false;
          }
          // The two algorithms alternate, so that both see the same machine load.
          for (size_t rep = 0; rep < times[s][0].size(); ++rep) {
            for (int a = 0; a < 2; ++a) {
              t.fill_(r + 1.0);
              groups[0]->barrier();
              const auto t0 = Clock::now();
              groups[a]->all_reduce(t);
              times[s][a][rep][r] = std::chrono::duration<double>(Clock::now() - t0).count();
              if (rep + 1 == times[s][0].size() && !check(t, n, what[a], sizes[s])) ok = false;
            }
          }
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d of %d: %s\n", r, n, e.what());
        ok = false;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t s = 0; s < sizes.size(); ++s) {
    rows[s].bytes = sizes[s];
    for (int a = 0; a < 2; ++a) {
      std::vector<double> slowest;
      for (const auto& per_rank : times[s][a]) slowest.push_back(*std::max_element(per_rank.begin(), per_rank.end()));
      rows[s].seconds[a] = median(slowest);
    }
  }
  return ok;
}

std::string size_label(int64_t bytes) {
  return bytes >= (int64_t{1} << 20) ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
}

}  // namespace

int main(int argc, char** argv) {
  const int forced_reps = argc > 1 ? std::atoi(argv[1]) : 0;
  const int64_t max_mib = argc > 2 ? std::atoll(argv[2]) : 64;
  std::vector<int64_t> sizes;
  for (int64_t b = 4 << 10; b <= (max_mib << 20); b *= 4) sizes.push_back(b);

  bool all_ok = true;
  for (int n : {2, 4}) {
    std::vector<Row> rows;
    const bool ok = sweep(n, sizes, forced_reps, rows);
    all_ok = all_ok && ok;
    const double bus = 2.0 * (n - 1) / n;
    std::printf("\nall_reduce float32 sum, %d ranks as threads over loopback TCP (gloo transport), "
                "%u hardware threads\n",
                n, std::thread::hardware_concurrency());
    std::printf("| size | reps | gloo ms | gloo algbw GB/s | gloo busbw GB/s "
                "| ring ms | ring algbw GB/s | ring busbw GB/s | ring / gloo |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    for (const Row& row : rows) {
      const double b = static_cast<double>(row.bytes);
      const double alg_lib = b / row.seconds[0] / 1e9, alg_ring = b / row.seconds[1] / 1e9;
      std::printf("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f |\n", size_label(row.bytes).c_str(),
                  repetitions_for(row.bytes, forced_reps), row.seconds[0] * 1e3, alg_lib, alg_lib * bus,
                  row.seconds[1] * 1e3, alg_ring, alg_ring * bus, row.seconds[0] / row.seconds[1]);
    }
    std::fflush(stdout);
  }
  if (!all_ok) {
    std::fprintf(stderr, "bench_dist_allreduce: a result was wrong or a rank failed (see above)\n");
    return 1;
  }
  return 0;
}
