// Rendezvous: see dist/rendezvous.h.
//
// The join barrier, on the store every rank reaches: rank r adds 1 to "rendezvous/rank/<r>"
// (a result above 1 means two processes claim rank r), then adds 1 to "rendezvous/arrived";
// the rank whose add brings it to world_size sets "rendezvous/done"; everyone waits for
// "rendezvous/done". On a timeout the error names how many ranks arrived and which did not.
// Invariants: every environment value is parsed strictly (the whole string, in range) and a
// bad one is a zae::Error naming the variable and its value; the whole rendezvous (connect
// and barrier) waits at most `timeout`.
#include "dist/rendezvous.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <thread>

#include "dist/file_store.h"
#include "dist/tcp_store.h"
#include "engine/error.h"

namespace zae::dist {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kDefaultMasterPort = 29500;

/// The variable's value; nullopt when unset or empty.
std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

/// `text` as an integer in [lo, hi]; `what` names it (a variable) in the error.
int parse_int(const std::string& what, const std::string& text, int lo, int hi) {
  int v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  ZAE_CHECK(ec == std::errc() && ptr == text.data() + text.size() && !text.empty(), what, "='", text,
            "' is not an integer");
  ZAE_CHECK(v >= lo && v <= hi, what, "=", v, " is outside [", lo, ", ", hi, "]");
  return v;
}

int env_int(const char* name, int lo, int hi) { return parse_int(name, *env(name), lo, hi); }

std::optional<int> env_int_opt(const char* name, int lo, int hi) {
  if (!env(name)) return std::nullopt;
  return env_int(name, lo, hi);
}

constexpr int kIntMax = 0x7fffffff;

/// Required variable `name`, whose absence is explained by `context`.
int env_required(const char* name, const char* context, int lo, int hi) {
  ZAE_CHECK(env(name).has_value(), name, " is not set, but ", context);
  return env_int(name, lo, hi);
}

void check_coordinates(const LaunchEnv& e, const char* rank_var, const char* local_var) {
  ZAE_CHECK(e.rank < e.world_size, rank_var, "=", e.rank, " is not below the world size ", e.world_size);
  ZAE_CHECK(e.local_rank < e.local_world_size, local_var, "=", e.local_rank, " is not below the local world size ",
            e.local_world_size);
}

std::optional<LaunchEnv> from_torchrun_style() {
  if (!env("RANK")) return std::nullopt;
  LaunchEnv e;
  e.launcher = "env";
  e.rank = env_int("RANK", 0, kIntMax);
  e.world_size = env_required("WORLD_SIZE", "RANK is (set both, as zae-launch and torchrun do)", 1, kIntMax);
  // Without LOCAL_*, assume one node: local coordinates are the global ones.
  e.local_rank = env_int_opt("LOCAL_RANK", 0, kIntMax).value_or(e.rank);
  e.local_world_size = env_int_opt("LOCAL_WORLD_SIZE", 1, kIntMax).value_or(e.world_size);
  e.master_addr = env("MASTER_ADDR").value_or("");
  e.master_port = env_int_opt("MASTER_PORT", 1, 65535).value_or(0);
  check_coordinates(e, "RANK", "LOCAL_RANK");
  return e;
}

std::optional<LaunchEnv> from_slurm() {
  if (!env("SLURM_PROCID")) return std::nullopt;
  LaunchEnv e;
  e.launcher = "slurm";
  e.rank = env_int("SLURM_PROCID", 0, kIntMax);
  e.world_size = env("SLURM_NTASKS") ? env_int("SLURM_NTASKS", 1, kIntMax)
                                     : env_required("SLURM_NPROCS", "SLURM_PROCID is (srun sets SLURM_NTASKS)", 1,
                                                    kIntMax);
  e.local_rank = env_int_opt("SLURM_LOCALID", 0, kIntMax).value_or(0);
  // SLURM_NTASKS_PER_NODE is a plain number only with --ntasks-per-node; else derive it.
  const auto per_node = env("SLURM_NTASKS_PER_NODE");
  int nodes = 0;
  if (auto n = env("SLURM_JOB_NUM_NODES")) nodes = parse_int("SLURM_JOB_NUM_NODES", *n, 1, kIntMax);
  else if (auto n2 = env("SLURM_NNODES")) nodes = parse_int("SLURM_NNODES", *n2, 1, kIntMax);
  if (per_node) e.local_world_size = parse_int("SLURM_NTASKS_PER_NODE", *per_node, 1, kIntMax);
  else if (nodes > 0) e.local_world_size = (e.world_size + nodes - 1) / nodes;
  else e.local_world_size = e.world_size;
  if (e.local_world_size <= e.local_rank) e.local_world_size = e.local_rank + 1;  // uneven task layouts
  e.master_addr = env("MASTER_ADDR").value_or("");
  if (e.master_addr.empty()) {
    if (auto list = env("SLURM_JOB_NODELIST")) e.master_addr = first_slurm_host(*list);
    else if (auto list2 = env("SLURM_NODELIST")) e.master_addr = first_slurm_host(*list2);
  }
  e.master_port = env_int_opt("MASTER_PORT", 1, 65535).value_or(0);
  check_coordinates(e, "SLURM_PROCID", "SLURM_LOCALID");
  return e;
}

std::optional<LaunchEnv> from_open_mpi() {
  if (!env("OMPI_COMM_WORLD_RANK")) return std::nullopt;
  LaunchEnv e;
  e.launcher = "mpi";
  e.rank = env_int("OMPI_COMM_WORLD_RANK", 0, kIntMax);
  e.world_size = env_required("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK is (mpirun sets both)", 1, kIntMax);
  e.local_rank = env_int_opt("OMPI_COMM_WORLD_LOCAL_RANK", 0, kIntMax).value_or(0);
  e.local_world_size = env_int_opt("OMPI_COMM_WORLD_LOCAL_SIZE", 1, kIntMax).value_or(e.world_size);
  e.master_addr = env("MASTER_ADDR").value_or("");
  e.master_port = env_int_opt("MASTER_PORT", 1, 65535).value_or(0);
  check_coordinates(e, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK");
  return e;
}

/// Where the store is: a TCP host:port or a file path.
struct Target {
  std::string host;
  int port = 0;
  std::string file;
};

Target parse_init_method(const std::string& init_method, const std::optional<LaunchEnv>& launch, int world_size) {
  const auto sep = init_method.find("://");
  ZAE_CHECK(sep != std::string::npos && sep > 0, "rendezvous: init_method '", init_method,
            "' is not a URL; use env://, tcp://host:port or file:///absolute/path");
  const std::string scheme = init_method.substr(0, sep);
  const std::string rest = init_method.substr(sep + 3);
  Target t;
  if (scheme == "env") {
    ZAE_CHECK(rest.empty(), "rendezvous: init_method '", init_method,
              "' has text after env:// (the coordinates come from MASTER_ADDR and MASTER_PORT)");
    t.host = env("MASTER_ADDR").value_or(launch ? launch->master_addr : "");
    if (t.host.empty()) {
      ZAE_CHECK(world_size == 1, "rendezvous: init_method env:// with world_size ", world_size,
                " needs MASTER_ADDR, the address of rank 0's host (set it, or launch with zae-launch, which sets it)");
      t.host = "127.0.0.1";
    }
    if (env("MASTER_PORT")) t.port = env_int("MASTER_PORT", 1, 65535);
    else t.port = world_size == 1 ? 0 : kDefaultMasterPort;  // a lone process needs no well-known port
    return t;
  }
  if (scheme == "tcp") {
    ZAE_CHECK(!rest.empty() && rest[0] != '[', "rendezvous: init_method '", init_method,
              "' needs tcp://host:port with an IPv4 address or host name");
    const auto colon = rest.rfind(':');
    ZAE_CHECK(colon != std::string::npos && colon > 0, "rendezvous: init_method '", init_method,
              "' needs tcp://host:port (no port given)");
    t.host = rest.substr(0, colon);
    ZAE_CHECK(t.host.find_first_of(":/") == std::string::npos, "rendezvous: init_method '", init_method,
              "' has a malformed host '", t.host, "'");
    t.port = parse_int("the port of init_method '" + init_method + "'", rest.substr(colon + 1), 0, 65535);
    ZAE_CHECK(t.port != 0 || world_size == 1, "rendezvous: init_method '", init_method,
              "' has port 0, but the other ", world_size - 1, " rank(s) need to know the port; choose one");
    return t;
  }
  if (scheme == "file") {
    ZAE_CHECK(!rest.empty() && rest[0] == '/', "rendezvous: init_method '", init_method,
              "' needs an absolute path: file:///absolute/path (three slashes)");
    t.file = rest;
    return t;
  }
  ZAE_FAIL("rendezvous: unknown init_method scheme '", scheme, "://' in '", init_method,
           "'; use env://, tcp://host:port or file:///absolute/path");
}

/// "[1, 4, 7]" (at most 32 ranks, then "...").
std::string rank_list(const std::vector<int>& ranks) {
  std::string list = "[";
  for (size_t i = 0; i < ranks.size() && i < 32; ++i) list += (i ? ", " : "") + std::to_string(ranks[i]);
  return list + (ranks.size() > 32 ? ", ...]" : "]");
}

void join_barrier(Store& store, const std::string& init_method, int rank, int world_size, milliseconds timeout,
                  Clock::time_point t0, bool serving) {
  const std::string head = "rendezvous (" + init_method + "): ";
  const int64_t claims = store.add("rendezvous/rank/" + std::to_string(rank), 1);
  ZAE_CHECK(claims == 1, head, "rank ", rank,
            " joined more than once (two processes with the same rank, or a store left over from an earlier run)");
  int64_t arrived = store.add("rendezvous/arrived", 1);
  ZAE_CHECK(arrived <= world_size, head, arrived, " ranks joined a world of size ", world_size,
            " (do all ranks use the same WORLD_SIZE? or is the store left over from an earlier run?)");
  if (arrived == world_size) store.set_string("rendezvous/done", "1");
  // Wait in slices, noting how many ranks have arrived after each, so that a store that
  // goes away (rank 0 gave up first) still leaves this rank something to report.
  const auto deadline = t0 + timeout;
  const milliseconds slice = std::clamp(timeout / 10, milliseconds(50), milliseconds(2000));
  const auto hint = ". Were they started, with the same init_method / MASTER_ADDR / MASTER_PORT and WORLD_SIZE?";
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    std::optional<zae::Error> failure;
    try {
      store.wait({"rendezvous/done"}, std::clamp(left, milliseconds(1), slice));
      return;
    } catch (const zae::Error& e) {
      failure = e;
    }
    try {
      arrived = parse_store_integer("rendezvous/arrived", store.get("rendezvous/arrived"));
    } catch (...) {
      if (arrived >= world_size) throw *failure;
      ZAE_FAIL(head, "only ", arrived, " of ", world_size, " ranks had arrived when the store stopped answering (",
               failure->message(), "); missing ranks never connected", hint);
    }
    if (Clock::now() < deadline) continue;
    if (arrived >= world_size) throw *failure;  // everyone came: the failure is something else
    std::vector<int> missing;
    try {
      if (world_size <= 4096)
        for (int r = 0; r < world_size; ++r)
          if (!store.check({"rendezvous/rank/" + std::to_string(r)})) missing.push_back(r);
    } catch (...) {
      missing.clear();  // the store went away meanwhile: report without the list
    }
    // The server stays up a moment, so that the other ranks, which time out about now too,
    // can still read who is missing.
    if (serving) std::this_thread::sleep_for(std::min(timeout, milliseconds(250)));
    ZAE_FAIL(head, "only ", arrived, " of ", world_size, " ranks arrived within ", timeout.count(),
             " ms; missing ranks never connected", missing.empty() ? std::string() : ": " + rank_list(missing), hint);
  }
}

}  // namespace

std::optional<LaunchEnv> launch_env_from_environment() {
  if (auto e = from_torchrun_style()) return e;
  if (auto e = from_slurm()) return e;
  return from_open_mpi();
}

std::string first_slurm_host(const std::string& nodelist) {
  ZAE_CHECK(!nodelist.empty(), "first_slurm_host: the SLURM node list is empty");
  std::string host;
  size_t i = 0;
  while (i < nodelist.size() && nodelist[i] != ',') {
    if (nodelist[i] != '[') {
      ZAE_CHECK(nodelist[i] != ']', "first_slurm_host: unbalanced ']' in SLURM node list '", nodelist, "'");
      host += nodelist[i++];
      continue;
    }
    const size_t close = nodelist.find(']', i);
    ZAE_CHECK(close != std::string::npos, "first_slurm_host: unclosed '[' in SLURM node list '", nodelist, "'");
    // The first item of the range list, and of that item the start of its range: "03-05,07" -> "03".
    const std::string ranges = nodelist.substr(i + 1, close - i - 1);
    const std::string first = ranges.substr(0, ranges.find_first_of(",-"));
    ZAE_CHECK(!first.empty(), "first_slurm_host: empty range '[", ranges, "]' in SLURM node list '", nodelist, "'");
    host += first;
    i = close + 1;
  }
  ZAE_CHECK(!host.empty(), "first_slurm_host: SLURM node list '", nodelist, "' starts with an empty host name");
  return host;
}

Rendezvous rendezvous(const std::string& init_method, int rank, int world_size, milliseconds timeout) {
  const auto t0 = Clock::now();
  ZAE_CHECK(timeout.count() > 0, "rendezvous: timeout must be positive, got ", timeout.count(), " ms");
  const std::optional<LaunchEnv> launch = launch_env_from_environment();
  if (rank < 0 || world_size < 0)
    ZAE_CHECK(launch.has_value(), "rendezvous (", init_method, "): rank ", rank, " / world_size ", world_size,
              " not given and this process was not launched as part of a job (set RANK and WORLD_SIZE, or start it "
              "with zae-launch, torchrun, srun or mpirun)");
  if (world_size < 0) world_size = launch->world_size;
  if (rank < 0) rank = launch->rank;
  ZAE_CHECK(world_size >= 1, "rendezvous (", init_method, "): world_size must be >= 1, got ", world_size);
  ZAE_CHECK(rank < world_size, "rendezvous (", init_method, "): rank ", rank, " is outside [0, ", world_size, ")");

  Rendezvous rv;
  rv.rank = rank;
  rv.world_size = world_size;
  rv.local_rank = launch && launch->rank == rank && launch->world_size == world_size ? launch->local_rank : rank;

  const Target target = parse_init_method(init_method, launch, world_size);
  if (!target.file.empty()) rv.store = std::make_shared<FileStore>(target.file, world_size, timeout);
  else rv.store = std::make_shared<TCPStore>(target.host, target.port, rank, rank == 0, timeout);
  rv.store->set_timeout(timeout);
  join_barrier(*rv.store, init_method, rank, world_size, timeout, t0, target.file.empty() && rank == 0);
  return rv;
}

}  // namespace zae::dist
