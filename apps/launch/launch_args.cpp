// zae-launch's command-line parser: options first, then the program and its arguments.
// Each numeric option is parsed whole (std::from_chars over the full text), so "4x",
// " 4", "" and "1e3" are errors naming the value, never a silent 4 or 0.
#include "apps/launch/launch_args.h"

#include <charconv>
#include <cmath>
#include <cstdint>

#include "engine/error.h"

namespace zae::apps::launch {

namespace {

constexpr int64_t kMaxWorldSize = int64_t{1} << 24;
constexpr double kMaxGraceSeconds = 24.0 * 3600.0;

// The whole of `text` as an integer in [lo, hi], else zae::Error naming the option.
int parse_int(const std::string& option, const std::string& text, int64_t lo, int64_t hi, const char* what) {
  int64_t value = 0;
  const char* first = text.data();
  const char* last = first + text.size();
  const auto [ptr, ec] = std::from_chars(first, last, value);
  ZAE_CHECK(!text.empty() && ec == std::errc() && ptr == last, option, ": expected ", what, ", got '", text, "'");
  ZAE_CHECK(value >= lo && value <= hi, option, ": ", value, " is out of range; expected ", what);
  return static_cast<int>(value);
}

double parse_seconds(const std::string& option, const std::string& text) {
  double value = 0;
  const char* first = text.data();
  const char* last = first + text.size();
  const auto [ptr, ec] = std::from_chars(first, last, value, std::chars_format::fixed);
  ZAE_CHECK(!text.empty() && ec == std::errc() && ptr == last && std::isfinite(value), option,
            ": expected a number of seconds, got '", text, "'");
  ZAE_CHECK(value >= 0 && value <= kMaxGraceSeconds, option, ": ", text, " is out of range; expected 0 to ",
            kMaxGraceSeconds, " seconds");
  return value;
}

// "--nproc_per_node" -> "--nproc-per-node"
std::string normalize_option(std::string name) {
  for (size_t i = 2; i < name.size(); ++i)
    if (name[i] == '_') name[i] = '-';
  return name;
}

bool takes_value(const std::string& option) {
  return option == "--nproc-per-node" || option == "--nnodes" || option == "--node-rank" || option == "--master-addr" ||
         option == "--master-port" || option == "--grace-seconds";
}

}  // namespace

LaunchArgs parse_launch_args(const std::vector<std::string>& args) {
  LaunchArgs out;
  bool have_nproc = false;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;  // the program ("-" alone is a program name)
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      return out;
    }
    const size_t eq = arg.find('=');
    const std::string option = normalize_option(arg.substr(0, eq));
    ZAE_CHECK(takes_value(option), "unknown option '", arg, "'");
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else {
      ZAE_CHECK(i + 1 < args.size(), option, " needs a value");
      value = args[++i];
    }
    if (option == "--nproc-per-node") {
      out.nproc_per_node = parse_int(option, value, 1, kMaxWorldSize, "a whole number >= 1");
      have_nproc = true;
    } else if (option == "--nnodes") {
      out.nnodes = parse_int(option, value, 1, kMaxWorldSize, "a whole number >= 1");
    } else if (option == "--node-rank") {
      out.node_rank = parse_int(option, value, 0, kMaxWorldSize, "a whole number >= 0");
    } else if (option == "--master-addr") {
      ZAE_CHECK(!value.empty(), option, ": expected a host name or address, got ''");
      out.master_addr = value;
    } else if (option == "--master-port") {
      out.master_port = parse_int(option, value, 1, 65535, "a port number from 1 to 65535");
    } else {
      out.grace_seconds = parse_seconds(option, value);
    }
  }
  out.program.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());

  ZAE_CHECK(have_nproc, "--nproc-per-node is required");
  ZAE_CHECK(out.node_rank < out.nnodes, "--node-rank: ", out.node_rank, " is out of range; expected 0 to ",
            out.nnodes - 1, " for --nnodes ", out.nnodes);
  ZAE_CHECK(int64_t{out.nnodes} * out.nproc_per_node <= kMaxWorldSize, "--nnodes ", out.nnodes, " x --nproc-per-node ",
            out.nproc_per_node, " is more than ", kMaxWorldSize, " processes");
  ZAE_CHECK(!out.program.empty() && !out.program[0].empty(), "no program to launch given");
  return out;
}

std::string launch_usage() {
  return "usage: zae-launch --nproc-per-node N [--nnodes M] [--node-rank K] [--master-addr A]\n"
         "                  [--master-port P] [--grace-seconds S] [--] program [args...]\n"
         "\n"
         "Starts N copies of program on this node, the node-rank'th of M nodes, and watches them.\n"
         "Each copy gets RANK (node_rank * N + local rank), WORLD_SIZE (M * N), LOCAL_RANK,\n"
         "LOCAL_WORLD_SIZE (N), GROUP_RANK (K), MASTER_ADDR, MASTER_PORT, and OMP_NUM_THREADS=1\n"
         "when N > 1 and OMP_NUM_THREADS is not set.\n"
         "\n"
         "  --nproc-per-node N   processes on this node (required)\n"
         "  --nnodes M           nodes in the job (default 1)\n"
         "  --node-rank K        this node, 0 to M-1 (default 0)\n"
         "  --master-addr A      rank 0's host (default 127.0.0.1)\n"
         "  --master-port P      rank 0's rendezvous port, 1 to 65535 (default 29500)\n"
         "  --grace-seconds S    after a failure, SIGKILL what SIGTERM left after S seconds (default 30)\n"
         "  -h, --help           this text\n"
         "Options also take the --opt=value spelling; '_' may replace '-' in their names.\n"
         "\n"
         "When one process fails, the others get SIGTERM, then SIGKILL after the grace period, and\n"
         "zae-launch exits with the failed process's status (128 + signal when killed by one); 0\n"
         "when all succeed. SIGINT, SIGTERM and SIGHUP are forwarded to every process (a Ctrl-C\n"
         "typed at the terminal already reaches them and is not sent twice); they then get the\n"
         "grace period to stop, and a second signal kills them (SIGKILL). Exit status 2: bad\n"
         "command line; 127: the program could not be started.\n";
}

std::vector<std::pair<std::string, std::string>> worker_env(const LaunchArgs& args, int local_rank,
                                                            bool set_omp_threads) {
  std::vector<std::pair<std::string, std::string>> env = {
      {"RANK", std::to_string(args.rank_of(local_rank))}, {"WORLD_SIZE", std::to_string(args.world_size())},
      {"LOCAL_RANK", std::to_string(local_rank)},         {"LOCAL_WORLD_SIZE", std::to_string(args.nproc_per_node)},
      {"GROUP_RANK", std::to_string(args.node_rank)},     {"MASTER_ADDR", args.master_addr},
      {"MASTER_PORT", std::to_string(args.master_port)},
  };
  if (set_omp_threads) env.emplace_back("OMP_NUM_THREADS", "1");
  return env;
}

bool should_set_omp_threads(const LaunchArgs& args, const char* user_value) {
  return user_value == nullptr && args.nproc_per_node > 1;
}

}  // namespace zae::apps::launch
