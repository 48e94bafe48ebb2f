// `zae-train fashion-mnist`: trains an MLP or a two-conv CNN on Fashion-MNIST with
// the Trainer and reports the test accuracy. Shared by the CLI and its tests.
//
// The trainer always carries SignalHandlerAddon (SIGINT/SIGTERM stop after the current
// step, exit 128 + signal). With save_dir it also carries StateManagerAddon: last.ckpt
// every epoch (and every save_every_steps optimizer steps, and on a signal) and the
// best epoch by test accuracy as best-epoch<E>.<save_format>; resume ("last" or a
// path) restores the complete state and trains up to `epochs` in all. Without
// save_dir no state manager exists at all (nothing is written anywhere), and the
// checkpoint options are errors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/device.h"
#include "apps/common/device_flag.h"
#include "apps/common/logger_flags.h"
#include "nn/container.h"

namespace zae::apps {

struct FashionMnistOptions {
  std::string model = "mlp";  ///< mlp | cnn
  int64_t epochs = 10;
  int64_t batch_size = 128;
  double lr = 1e-3;           ///< AdamW
  double weight_decay = 1e-4;
  std::string device = "auto";  ///< auto | cpu | cuda | cuda:N
  uint64_t seed = 0;
  std::string data_root = "/usr/share/datasets/fashion-mnist";
  int64_t limit_train = 0;    ///< > 0: use only the first N training images (smoke tests)
  int64_t limit_test = 0;
  int num_workers = 0;
  bool log_bar = true;
  std::string save_dir;       ///< checkpoint directory (StateManagerAddon); empty: no checkpoints
  std::string save_format;    ///< best-epoch files: "ckpt" (default when empty) or "safetensors"; needs save_dir
  std::string resume;         ///< "last" or a .ckpt path (empty: start fresh); needs save_dir
  int64_t save_every_steps = 0;  ///< > 0: also write last.ckpt every N optimizer steps; needs save_dir
  double target_accuracy = 0;    ///< in (0, 1]: stop after the first epoch whose test accuracy reaches it (0: off)
  LoggerFlags loggers;           ///< --wandb, --tensorboard, --mlflow, --csv, --jsonl (any combination)
};

struct FashionMnistResult {
  double test_accuracy = 0;   ///< fraction in [0, 1]
  double final_train_loss = 0;
  double seconds_per_epoch = 0;  ///< of the epochs this call ran (0 when it ran none)
  int64_t epochs_run = 0;        ///< epochs trained by this call (fewer than `epochs` after a resume)
  std::string resumed_from;      ///< the checkpoint resumed from, or empty
  /// With target_accuracy: seconds from the start of training to the end of the first epoch
  /// whose test accuracy reached it (-1: not reached).
  double seconds_to_target = -1;
};

/// "mlp": 784-512-256-10 with ReLU; "cnn": conv32-pool-conv64-pool-fc128-fc10.
std::shared_ptr<nn::Sequential> make_fashion_model(const std::string& name);
FashionMnistResult run_fashion_mnist(const FashionMnistOptions& options);

}  // namespace zae::apps
