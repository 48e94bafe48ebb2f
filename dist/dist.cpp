#include "dist/dist.h"

#include "dist/rendezvous.h"
#include "engine/error.h"

namespace zae::dist {

namespace {
struct DefaultGroup {
  std::shared_ptr<ProcessGroup> group;
  std::shared_ptr<Store> store;
  int local_rank = 0;
};
DefaultGroup& state() {
  static DefaultGroup s;
  return s;
}
}  // namespace

std::string resolve_backend(const std::string& backend, Device device) {
  if (backend == "auto") return device.is_cuda() ? "nccl" : "gloo";
  ZAE_CHECK(backend == "gloo" || backend == "nccl", "unknown distributed backend \"", backend,
            "\" (expected \"gloo\", \"nccl\" or \"auto\")");
  ZAE_CHECK(backend != "nccl" || device.is_cuda(), "the nccl backend needs a CUDA device, got ", device,
            " (use \"gloo\" for CPU tensors)");
  ZAE_CHECK(backend != "gloo" || !device.is_cuda(), "the gloo backend reduces CPU tensors, but this rank's device is ",
            device, " (use \"nccl\" or \"auto\")");
  return backend;
}

void init_process_group(const InitOptions& options) {
  ZAE_CHECK(!is_initialized(), "init_process_group: the default process group already exists (rank ", get_rank(),
            " of ", get_world_size(), "); call destroy_process_group() first");
  const std::string backend = resolve_backend(options.backend, options.device);
  Rendezvous rv = rendezvous(options.init_method, options.rank, options.world_size, options.timeout);
  ProcessGroupOptions pg;
  pg.timeout = options.timeout;
  pg.all_reduce_algorithm = options.all_reduce_algorithm;
  pg.store_prefix = "default";
  std::shared_ptr<ProcessGroup> group =
      backend == "nccl" ? make_nccl_process_group(rv.store, rv.rank, rv.world_size, options.device, pg)
                        : make_gloo_process_group(rv.store, rv.rank, rv.world_size, pg);
  set_default_group(std::move(group), std::move(rv.store), rv.local_rank);
}

void set_default_group(std::shared_ptr<ProcessGroup> group, std::shared_ptr<Store> store, int local_rank) {
  ZAE_CHECK(group != nullptr, "set_default_group: the group is null");
  ZAE_CHECK(!is_initialized(), "set_default_group: a default process group already exists");
  state() = DefaultGroup{std::move(group), std::move(store), local_rank};
}

bool is_initialized() { return state().group != nullptr; }

void destroy_process_group() {
  // The group first (it may still talk through the store while closing), then the store.
  state().group.reset();
  state().store.reset();
  state().local_rank = 0;
}

int get_rank() { return is_initialized() ? state().group->rank() : 0; }
int get_world_size() { return is_initialized() ? state().group->size() : 1; }
int get_local_rank() { return is_initialized() ? state().local_rank : 0; }
bool is_main_process() { return get_rank() == 0; }

ProcessGroup& default_group() { return *default_group_ptr(); }

std::shared_ptr<ProcessGroup> default_group_ptr() {
  ZAE_CHECK(is_initialized(), "no default process group: call zae::dist::init_process_group() first (or use "
                              "MultiGPUAddon, which does)");
  return state().group;
}

std::shared_ptr<Store> default_store() { return state().store; }

}  // namespace zae::dist
