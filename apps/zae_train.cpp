// zae-train: the command-line entry point of zae-engine's training jobs.
// Subcommands: `demo` (a 2-layer MLP trained with hand-written SGD on the autograd
// core). Later issues add fashion-mnist and gpt2.
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "apps/demo/mlp_demo.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: zae-train <subcommand> [options]\n"
               "subcommands:\n"
               "  demo    train a 2-layer MLP with hand-written SGD on four Gaussian blobs\n"
               "          --steps N (300)  --lr X (0.5)  --hidden N (32)  --seed N (0)\n");
}

int run_demo(int argc, char** argv) {
  zae::demo::MlpDemoOptions opts;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--steps") opts.steps = std::stoll(value());
    else if (a == "--lr") opts.lr = std::stod(value());
    else if (a == "--hidden") opts.hidden = std::stoll(value());
    else if (a == "--seed") opts.seed = std::stoull(value());
    else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      throw std::runtime_error("unknown option '" + a + "' for demo");
    }
  }
  std::printf("demo: 2-layer MLP (2-%lld-4, tanh), SGD lr %.3g, %lld steps\n", static_cast<long long>(opts.hidden),
              opts.lr, static_cast<long long>(opts.steps));
  auto losses = zae::demo::train_mlp_demo(opts, [&](int64_t step, double loss) {
    if (step % 25 == 0 || step + 1 == opts.steps)
      std::printf("step %4lld | loss %.6f\n", static_cast<long long>(step), loss);
  });
  std::printf("final loss: %.6f\n", losses.back());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  try {
    std::string cmd = argv[1];
    if (cmd == "demo") return run_demo(argc - 2, argv + 2);
    std::fprintf(stderr, "zae-train: unknown subcommand '%s'\n", cmd.c_str());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae-train: error: %s\n", e.what());
    return 1;
  }
}
