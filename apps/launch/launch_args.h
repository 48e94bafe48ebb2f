// zae-launch's command line and the environment it gives each worker. Kept apart from
// main (apps/zae_launch.cpp) so that tests parse command lines directly.
//
//   zae-launch --nproc-per-node N [--nnodes M] [--node-rank K] [--master-addr A]
//              [--master-port P] [--grace-seconds S] [--] program [args...]
//
// Invariants: parse_launch_args returns only arguments that make a valid job
// (1 <= N, 1 <= M, 0 <= K < M, 1 <= P <= 65535, S >= 0, a program) or help = true;
// anything else is a zae::Error whose message names the option and the bad value.
// Options end at the first argument that is not an option (or after "--"); every
// argument after that belongs to the program, even ones that look like options.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace zae::apps::launch {

inline constexpr int kExitUsage = 2;          ///< bad command line
inline constexpr int kExitCannotStart = 127;  ///< a worker program could not be started

struct LaunchArgs {
  int nproc_per_node = 0;  ///< workers on this node (required)
  int nnodes = 1;          ///< nodes in the job
  int node_rank = 0;       ///< this node's index, 0 .. nnodes-1
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double grace_seconds = 30.0;       ///< after a failure: SIGTERM, then SIGKILL this much later
  std::vector<std::string> program;  ///< the worker's argv (argv[0] found in PATH)
  bool help = false;                 ///< --help / -h: print usage, start nothing

  int world_size() const { return nnodes * nproc_per_node; }
  /// Global rank of local rank `local_rank` on this node.
  int rank_of(int local_rank) const { return node_rank * nproc_per_node + local_rank; }
};

/// Parses the arguments after the program name. Accepts "--opt value" and "--opt=value",
/// and '_' for '-' inside option names (--nproc_per_node). Throws zae::Error naming the
/// option and the value on any mistake.
LaunchArgs parse_launch_args(const std::vector<std::string>& args);

/// The usage text (several lines, ending in a newline).
std::string launch_usage();

/// The variables set for local rank `local_rank`: RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT, and OMP_NUM_THREADS=1 when
/// `set_omp_threads`.
std::vector<std::pair<std::string, std::string>> worker_env(const LaunchArgs& args, int local_rank,
                                                            bool set_omp_threads);

/// Whether zae-launch sets OMP_NUM_THREADS=1: the user has not set it (`user_value` is
/// null) and more than one worker shares this node, as torchrun does.
bool should_set_omp_threads(const LaunchArgs& args, const char* user_value);

}  // namespace zae::apps::launch
