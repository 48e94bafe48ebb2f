// The process-wide default process group (torch.distributed's init_process_group):
// one group per process, set up once, that add-ons and user code reach without
// passing it around (MultiGPUAddon creates it; StateManagerAddon and the loggers ask
// is_main_process() before writing).
//
//   zae::dist::init_process_group({.init_method = "env://"});   // under zae-launch / srun
//   auto& group = zae::dist::default_group();  group.all_reduce(t, zae::dist::ReduceOp::avg);
//
// Invariants: before init (and after destroy) the process is a world of one: rank 0,
// world size 1, is_main_process() true; init twice is an error; the functions are
// meant for the thread that drives training.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "dist/process_group.h"
#include "dist/store.h"
#include "engine/device.h"

namespace zae::dist {

struct InitOptions {
  /// "env://", "tcp://host:port" or "file:///path" (dist/rendezvous.h).
  std::string init_method = "env://";
  /// "gloo", "nccl" or "auto" (nccl for a CUDA device, else gloo).
  std::string backend = "auto";
  int rank = -1;        ///< < 0: from the environment
  int world_size = -1;  ///< < 0: from the environment
  Device device = Device::cpu();  ///< this rank's device (NCCL: its CUDA device)
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  ///< rendezvous and every collective
  AllReduceAlgorithm all_reduce_algorithm = AllReduceAlgorithm::library;
};

/// Rendezvous and creates the default group. Throws when already initialised.
void init_process_group(const InitOptions& options);
/// Adopts an existing group (and the store it was built on) as the default.
void set_default_group(std::shared_ptr<ProcessGroup> group, std::shared_ptr<Store> store, int local_rank = 0);
bool is_initialized();
/// Leaves the group (closes connections; other ranks see this rank leave cleanly).
void destroy_process_group();

int get_rank();        ///< 0 when not initialised
int get_world_size();  ///< 1 when not initialised
int get_local_rank();  ///< 0 when not initialised
/// Rank 0 (or not distributed): the process that prints, logs and saves.
bool is_main_process();

/// The default group; throws naming init_process_group when there is none.
ProcessGroup& default_group();
std::shared_ptr<ProcessGroup> default_group_ptr();
/// The store the default group was built on (null when not initialised).
std::shared_ptr<Store> default_store();

/// The backend "auto" resolves to for a device: "nccl" for CUDA, else "gloo".
std::string resolve_backend(const std::string& backend, Device device);

}  // namespace zae::dist
