// Rendezvous: how the processes of a job find each other.
//
// init_method (PyTorch's spelling):
//   "env://"            MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE (and LOCAL_RANK) from the
//                       environment, as zae-launch and torchrun set them; under srun the
//                       SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID variables, under mpirun
//                       OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK are read when RANK is
//                       not set (MASTER_ADDR then defaults to the first host of
//                       SLURM_JOB_NODELIST, resp. must be set; MASTER_PORT defaults to 29500).
//   "tcp://host:port"   rank 0 serves a TCPStore on host:port, every rank connects to it.
//   "file:///path"      a FileStore at /path on a filesystem all ranks share.
// Invariants: inconsistent or missing coordinates (rank outside [0, world), a world size of
// 0, a non-numeric port, a malformed URL) are a zae::Error naming the variable and value.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "dist/store.h"

namespace zae::dist {

/// Where this process sits in a launched job, and who launched it.
struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;  ///< may be empty (init_method tcp:// or file:// supply their own)
  int master_port = 0;      ///< 0 when not given
  std::string launcher;     ///< "env" (zae-launch, torchrun), "slurm" or "mpi"
};

/// The job's coordinates from the environment: RANK/WORLD_SIZE first, then SLURM_*, then
/// OMPI_COMM_WORLD_*; nullopt when this process was not launched as part of a job.
std::optional<LaunchEnv> launch_env_from_environment();

/// The first host name of a SLURM node list: "node[03-05,07],gpu1" -> "node03".
std::string first_slurm_host(const std::string& nodelist);

struct Rendezvous {
  std::shared_ptr<Store> store;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
};

/// Connects to (rank 0: serves) the store named by init_method. rank / world_size < 0 are
/// taken from the environment (launch_env_from_environment; an error when absent).
/// Waits at most `timeout` for the store and for all world_size ranks to arrive; a missing
/// peer is a timeout error naming how many ranks arrived.
Rendezvous rendezvous(const std::string& init_method, int rank, int world_size,
                      std::chrono::milliseconds timeout = std::chrono::minutes(5));

}  // namespace zae::dist
