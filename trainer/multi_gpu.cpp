// MultiGPUAddon's session: joining or creating the job, spawning workers, sharding
// loaders and the small agreement collectives (trainer/multi_gpu_addon.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "dist/dist.h"
#include "dist/process_set.h"
#include "dist/rendezvous.h"
#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "engine/ops/factory.h"
#include "io/sampler.h"
#include "trainer/multi_gpu_addon.h"

namespace zae::detail {

namespace {

constexpr const char* kSpawnedVar = "ZAE_MULTIGPU_SPAWNED";

bool spawned_by_addon() {
  const char* v = std::getenv(kSpawnedVar);
  return v != nullptr && std::string(v) == "1";
}

/// This program's arguments, as the kernel recorded them (argv[0] included).
std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  ZAE_CHECK(in.good(), "MultiGPUAddon: cannot read /proc/self/cmdline to start the workers");
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == '\0') {
      args.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  ZAE_CHECK(!args.empty(), "MultiGPUAddon: /proc/self/cmdline is empty");
  return args;
}

std::string own_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  ZAE_CHECK(n > 0, "MultiGPUAddon: cannot resolve /proc/self/exe to start the workers");
  return std::string(buf, static_cast<size_t>(n));
}

/// A port on 127.0.0.1 that is free now (the OS picks it). Another process could take it
/// before rank 0 listens; that shows as the store's clear "address already in use" error.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ZAE_CHECK(fd >= 0, "MultiGPUAddon: socket(): ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int err = errno;
  ::close(fd);
  ZAE_CHECK(ok, "MultiGPUAddon: cannot find a free port on 127.0.0.1: ", std::strerror(err));
  return ntohs(addr.sin_port);
}

/// FNV-1a over the names (NUL-separated), cut to 52 bits so that a double holds it exactly.
double key_fingerprint(const std::vector<std::string>& keys) {
  uint64_t h = 1469598103934665603ull;
  for (const std::string& k : keys) {
    for (unsigned char c : k) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0u) * 1099511628211ull;
  }
  return static_cast<double>(h >> 12);
}

std::string join(const std::vector<std::string>& keys) {
  std::string s;
  for (const std::string& k : keys) s += (s.empty() ? "" : ", ") + k;
  return s.empty() ? "(none)" : s;
}

}  // namespace

const char* multi_gpu_role_name(MultiGPURole role) {
  switch (role) {
    case MultiGPURole::single: return "single";
    case MultiGPURole::launched: return "launched";
    case MultiGPURole::spawner: return "spawner";
    case MultiGPURole::spawned: return "spawned";
  }
  return "?";
}

MultiGPURole multi_gpu_role(const DeviceList& devices) {
  ZAE_CHECK(!devices.devices.empty(), "MultiGPUAddon: the device list is empty");
  if (spawned_by_addon()) return MultiGPURole::spawned;
  if (dist::launch_env_from_environment()) return MultiGPURole::launched;
  return devices.devices.size() > 1 ? MultiGPURole::spawner : MultiGPURole::single;
}

int multi_gpu_env_rank(MultiGPURole role) {
  if (role != MultiGPURole::launched && role != MultiGPURole::spawned) return 0;
  const auto env = dist::launch_env_from_environment();
  return env ? env->rank : 0;
}

Device multi_gpu_device(const DeviceList& devices, MultiGPURole role) {
  if (role != MultiGPURole::launched && role != MultiGPURole::spawned) return devices.primary();
  const auto env = dist::launch_env_from_environment();
  const int local = env ? env->local_rank : 0;
  const auto& list = devices.devices;
  if (list.size() > 1) {
    ZAE_CHECK(local < static_cast<int>(list.size()), "MultiGPUAddon: local rank ", local, " has no device: the list has ",
              list.size(), " (start as many processes per node as devices listed)");
    return list[static_cast<size_t>(local)];
  }
  return list[0].is_cuda() ? Device::cuda(local) : list[0];
}

TrainerOptions multi_gpu_trainer_options(TrainerOptions options) {
  options.device = DeviceList(multi_gpu_device(options.device, multi_gpu_role(options.device)));
  return options;
}

struct MultiGPUSession::Workers {
  dist::ProcessSet set;
};

MultiGPUSession::MultiGPUSession(const MultiGPUOptions& options, const DeviceList& devices, MultiGPURole role)
    : options_(options), devices_(devices), role_(role) {}

MultiGPUSession::~MultiGPUSession() = default;

int MultiGPUSession::rank() const { return dist::get_rank(); }
int MultiGPUSession::world_size() const { return dist::get_world_size(); }

void MultiGPUSession::begin(const std::shared_ptr<nn::Module>& model, Device device) {
  ZAE_CHECK(model != nullptr, "MultiGPUAddon: the trainer has no model to wrap in DistributedDataParallel");
  device_ = device;
  dist::InitOptions init;
  init.backend = options_.backend;
  init.device = device;
  init.timeout = options_.timeout;
  init.all_reduce_algorithm = options_.all_reduce_algorithm;
  if (role_ == MultiGPURole::spawner) {
    const int world = static_cast<int>(devices_.devices.size());
    std::string master_addr = "127.0.0.1";
    std::string master_port;
    init.init_method = options_.init_method;
    if (init.init_method.empty()) {
      master_port = std::to_string(free_loopback_port());
      init.init_method = "tcp://" + master_addr + ":" + master_port;
    }
    ZAE_CHECK(!dist::is_initialized(), "MultiGPUAddon: a default process group exists already, but this process "
                                       "was not launched as part of a job (no RANK/WORLD_SIZE in its environment)");
    workers_ = std::make_unique<Workers>();
    const std::vector<std::string> argv = own_command_line();
    std::vector<std::string> args = argv;
    args[0] = own_executable();
    for (int r = 1; r < world; ++r) {
      dist::ProcessSpec spec;
      spec.argv = args;
      spec.label = "rank " + std::to_string(r);
      spec.env = {{kSpawnedVar, "1"},
                  {"RANK", std::to_string(r)},
                  {"WORLD_SIZE", std::to_string(world)},
                  {"LOCAL_RANK", std::to_string(r)},
                  {"LOCAL_WORLD_SIZE", std::to_string(world)}};
      if (!master_port.empty()) {
        spec.env.emplace_back("MASTER_ADDR", master_addr);
        spec.env.emplace_back("MASTER_PORT", master_port);
      }
      workers_->set.start(spec);
    }
    init.rank = 0;
    init.world_size = world;
    dist::init_process_group(init);
    owns_group_ = true;
  } else if (!dist::is_initialized()) {
    init.init_method = options_.init_method.empty() ? "env://" : options_.init_method;
    dist::init_process_group(init);
    owns_group_ = true;
  }
  dist::DDPOptions ddp;
  ddp.bucket_cap_mb = options_.bucket_cap_mb;
  ddp.find_unused_parameters = options_.find_unused_parameters;
  ddp.broadcast_buffers = options_.broadcast_buffers;
  ddp_ = std::make_unique<dist::DistributedDataParallel>(model, dist::default_group_ptr(), ddp);
}

std::string MultiGPUSession::end(const std::string& error) {
  if (role_ == MultiGPURole::launched) return "";
  if (role_ == MultiGPURole::spawned) {
    if (!error.empty()) std::fprintf(stderr, "rank %d: %s\n", rank(), error.c_str());
    ddp_.reset();
    shards_.clear();
    if (error.empty()) dist::destroy_process_group();  // a clean goodbye to the store
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(error.empty() ? 0 : 1);
  }
  // The spawner.
  std::string fate;
  ddp_.reset();
  shards_.clear();
  if (workers_) {
    if (error.empty()) {
      if (auto failed = workers_->set.wait_all(std::chrono::seconds(10))) fate = failed->describe();
    } else {
      // Give the workers a moment to fail on their own (their error names the cause),
      // then stop them.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (workers_->set.running() > 0 && std::chrono::steady_clock::now() < deadline) {
        for (const auto& e : workers_->set.poll())
          if (!e.success()) fate += (fate.empty() ? "" : "; ") + e.describe();
        ::usleep(20 * 1000);
      }
      workers_->set.terminate_all(std::chrono::seconds(5));
    }
    workers_.reset();
  }
  if (owns_group_) dist::destroy_process_group();
  owns_group_ = false;
  if (error.empty() && !fate.empty()) ZAE_FAIL("MultiGPUAddon: a worker failed after training: ", fate);
  return fate;
}

DataLoader& MultiGPUSession::shard(DataLoader& loader) {
  if (loader.options().sampler) return loader;  // the user shards it already
  for (auto& [original, sharded] : shards_)
    if (original == &loader && &sharded->dataset() == &loader.dataset()) return *sharded;
  DataLoaderOptions o = loader.options();
  DistributedSampler::Options so;
  so.shuffle = o.shuffle;
  so.seed = o.seed;
  so.drop_last = false;  // padded: every rank gets as many batches as the others
  o.sampler = std::make_shared<DistributedSampler>(rank(), world_size(), so);
  o.shuffle = false;
  auto sharded = std::make_unique<DataLoader>(loader.dataset_ptr(), o);
  sharded->load_state(loader.state());
  shards_.emplace_back(&loader, std::move(sharded));
  return *shards_.back().second;
}

std::vector<double> MultiGPUSession::all_reduce(std::vector<double> values, dist::ReduceOp op) {
  NoGradGuard no_grad;
  const Device where = dist::default_group().backend() == "nccl" ? device_ : Device::cpu();
  Tensor t = tensor(values, {static_cast<int64_t>(values.size())}, {.dtype = DType::float64}).to(where);
  dist::default_group().all_reduce(t, op);
  return t.to_vector<double>();
}

std::vector<double> MultiGPUSession::reduce_keyed(const std::vector<std::string>& keys, std::vector<double> values,
                                                  const char* what) {
  const double fp = key_fingerprint(keys);
  const auto check = all_reduce({fp, -fp}, dist::ReduceOp::max);
  ZAE_CHECK(check[0] == fp && -check[1] == fp, "MultiGPUAddon: ", what,
            " returned different names on different ranks; every rank must return the same values (rank ", rank(),
            " returned: ", join(keys), ")");
  return values.empty() ? values : all_reduce(std::move(values), dist::ReduceOp::avg);
}

StepOutput MultiGPUSession::average_step_output(const StepOutput& out) {
  std::vector<std::string> keys;
  std::vector<double> values;
  for (const auto& [k, v] : out.items())
    if (v.defined() && v.numel() == 1) {
      keys.push_back(k);
      values.push_back(v.item());
    }
  const std::vector<double> mean = reduce_keyed(keys, std::move(values), "train_step/test_step");
  StepOutput reduced;
  size_t i = 0;
  for (const auto& [k, v] : out.items()) {
    if (v.defined() && v.numel() == 1)
      reduced.set(k, mean[i++]);
    else
      reduced.set(k, v);
  }
  return reduced;
}

Metrics MultiGPUSession::average_metrics(const Metrics& metrics, const char* what) {
  std::vector<std::string> keys;
  std::vector<double> values;
  for (const auto& [k, v] : metrics) {
    keys.push_back(k);
    values.push_back(v);
  }
  const std::vector<double> mean = reduce_keyed(keys, std::move(values), what);
  Metrics out;
  for (size_t i = 0; i < keys.size(); ++i) out[keys[i]] = mean[i];
  return out;
}

}  // namespace zae::detail
