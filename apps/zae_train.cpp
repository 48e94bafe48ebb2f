// zae-train: the command-line entry point of zae-engine's training jobs.
// Subcommands: `fashion-mnist` (the main job: an MLP or CNN trained with the
// Trainer) and `demo` (a 2-layer MLP trained with hand-written SGD on the autograd
// core).
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "apps/demo/mlp_demo.h"
#include "apps/fashion_mnist/fashion_mnist_job.h"
#include "apps/gpt2/gpt2_job.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: zae-train <subcommand> [options]\n"
               "subcommands:\n"
               "  fashion-mnist  train on Fashion-MNIST (Debian package dataset-fashion-mnist) and report test accuracy\n"
               "          --model mlp|cnn (mlp)  --epochs N (10)  --batch-size N (128)  --lr X (1e-3)\n"
               "          --device auto|cpu|cuda[:i] (auto)  --seed N (0)  --workers N (0)  --no-bar\n"
               "          --limit-train N  --limit-test N (use the first N images; 0 = all)\n"
               "          --target-accuracy X  stop after the first epoch whose test accuracy reaches X (e.g. 0.91)\n"
               "                          and print the wall time to it\n"
               "          --save-dir DIR  checkpoints: DIR/last.ckpt (every epoch, and on SIGINT/SIGTERM) and the\n"
               "                          best epoch by test accuracy, DIR/best-epoch<E>.<format>\n"
               "          --save-format ckpt|safetensors (ckpt)  the best-epoch file: full state or weights only\n"
               "          --save-every-steps N (0 = off)  also rewrite last.ckpt every N optimizer steps\n"
               "          --resume last|PATH  continue from DIR/last.ckpt (fresh start if none yet) or a .ckpt,\n"
               "                          training up to --epochs in all (needs --save-dir)\n"
               "%s"
               "  gpt2    train GPT-2 (nn/gpt2.h) on llm.c token shards (random-token shards when --data is absent)\n"
               "          --config tiny|d12|d24|d36|d48 (tiny)  --data FILES|DIR|GLOB  --batch-size N (4)  --seq-len T (64)\n"
               "          --steps N (20; 0 = only sample)  --warmup N (0)  --lr X (6e-4)  --weight-decay X (0.1)\n"
               "          --device auto|cpu|cuda[:i]  --precision auto|bf16|fp16|fp32 (fp32)  --seed N  --workers N  --no-bar\n"
               "          --init-from HF_MODEL.safetensors  --save-dir DIR  --save-every-steps N  --resume last|PATH\n"
               "          --zero  shard AdamW's state across the ranks of a zae-launch job (ZeRO-1)\n"
               "          --recompute-gelu  recompute the MLP's GELU input in backward (less memory, one more GEMM)\n"
               "          --checkpoint-blocks  keep only each block's input, rerun the block in backward\n"
               "          --bf16-weights  bfloat16 parameters, AdamW with float32 master weights and stochastic rounding\n"
               "          --sample N  --temperature X (1)  --top-k K (40)   (plus the logger flags above)\n"
               "  demo    train a 2-layer MLP with hand-written SGD on four Gaussian blobs\n"
               "          --steps N (300)  --lr X (0.5)  --hidden N (32)  --seed N (0)\n",
               zae::apps::logger_flags_usage());
}

int run_fashion_mnist(int argc, char** argv) {
  zae::apps::FashionMnistOptions opts;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") opts.model = value();
    else if (a == "--epochs") opts.epochs = std::stoll(value());
    else if (a == "--batch-size") opts.batch_size = std::stoll(value());
    else if (a == "--lr") opts.lr = std::stod(value());
    else if (a == "--device") opts.device = value();
    else if (a == "--seed") opts.seed = std::stoull(value());
    else if (a == "--workers") opts.num_workers = std::stoi(value());
    else if (a == "--limit-train") opts.limit_train = std::stoll(value());
    else if (a == "--limit-test") opts.limit_test = std::stoll(value());
    else if (a == "--target-accuracy") opts.target_accuracy = std::stod(value());
    else if (a == "--data") opts.data_root = value();
    else if (a == "--save-dir") opts.save_dir = value();
    else if (a == "--save-format") opts.save_format = value();
    else if (a == "--save-every-steps") opts.save_every_steps = std::stoll(value());
    else if (a == "--resume") opts.resume = value();
    else if (a == "--no-bar") opts.log_bar = false;
    else if (zae::apps::parse_logger_flag(a, opts.loggers, value)) {
    }    else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      throw std::runtime_error("unknown option '" + a + "' for fashion-mnist");
    }
  }
  zae::apps::run_fashion_mnist(opts);
  return 0;
}

int run_gpt2(int argc, char** argv) {
  zae::apps::Gpt2JobOptions o;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--config") o.config = value();
    else if (a == "--data") o.data = value();
    else if (a == "--batch-size") o.batch_size = std::stoll(value());
    else if (a == "--seq-len") o.seq_len = std::stoll(value());
    else if (a == "--steps") o.steps = std::stoll(value());
    else if (a == "--warmup") o.warmup = std::stoll(value());
    else if (a == "--lr") o.lr = std::stod(value());
    else if (a == "--weight-decay") o.weight_decay = std::stod(value());
    else if (a == "--device") o.device = value();
    else if (a == "--precision") o.precision = value();
    else if (a == "--seed") o.seed = std::stoull(value());
    else if (a == "--workers") o.num_workers = std::stoi(value());
    else if (a == "--no-bar") o.log_bar = false;
    else if (a == "--zero") o.zero = true;
    else if (a == "--recompute-gelu") o.recompute_gelu = true;
    else if (a == "--checkpoint-blocks") o.checkpoint_blocks = true;
    else if (a == "--bf16-weights") o.bf16_weights = true;
    else if (a == "--init-from") o.init_from = value();
    else if (a == "--save-dir") o.save_dir = value();
    else if (a == "--save-every-steps") o.save_every_steps = std::stoll(value());
    else if (a == "--resume") o.resume = value();
    else if (a == "--sample") o.sample_tokens = std::stoll(value());
    else if (a == "--temperature") o.temperature = std::stod(value());
    else if (a == "--top-k") o.top_k = std::stoll(value());
    else if (zae::apps::parse_logger_flag(a, o.loggers, value)) {
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      throw std::runtime_error("unknown option '" + a + "' for gpt2");
    }
  }
  zae::apps::run_gpt2(o);
  return 0;
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
    if (cmd == "fashion-mnist") return run_fashion_mnist(argc - 2, argv + 2);
    if (cmd == "gpt2") return run_gpt2(argc - 2, argv + 2);
    if (cmd == "demo") return run_demo(argc - 2, argv + 2);
    std::fprintf(stderr, "zae-train: unknown subcommand '%s'\n", cmd.c_str());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae-train: error: %s\n", e.what());
    return 1;
  }
}
