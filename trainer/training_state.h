// The complete training state of a Trainer as an io::Checkpoint (.ckpt), and back.
//
// Tensors: "model.<name>" (parameters and persistent buffers), "optim.<i>.<key>"
// (optimizer state of parameter i in group order), "best.<name>" (the best weights so
// far), "grad.<name>" (gradients waiting in an unfinished accumulation window).
// State JSON: progress (epoch, step), mode, best (loss, epoch), loop counters and loss
// histories, the unfinished epoch's step values when taken mid-epoch, the default
// generator's (seed, offset) (it drives rand/randn/dropout on every device: CUDA
// draws use the same Philox stream positions), the train loader's position,
// optimizer groups (options, parameter indices), scheduler state, and add-on extras.
//
// Invariant: restore(capture(t)) on a trainer built the same way (model, optimizer,
// scheduler, options) and a loader built the same way continues bit-identically:
// same batches, same random numbers, same updates, same logs. Restoring checks
// everything before changing anything it cannot roll back; mismatches (another
// model, optimizer or scheduler) are errors naming the part and the values.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "io/checkpoint.h"
#include "io/dataloader.h"
#include "trainer/trainer.h"

namespace zae {

/// Where a train loader stands, and its epoch length (checked on resume).
struct LoaderPosition {
  DataLoaderState state;
  int64_t batches_per_epoch = 0;
};
LoaderPosition loader_position(const DataLoader& loader);

/// The trainer's state (and the train loader's position when given) as a checkpoint.
/// `extras` is stored as state["extras"] (add-ons keep their own records there).
io::Checkpoint capture_training_state(const Trainer& trainer, const std::optional<LoaderPosition>& train_loader,
                                      const io::json::Value& extras = io::json::Value::make_object(),
                                      const std::map<std::string, std::string>& user_metadata = {});

/// What restore_training_state found.
struct RestoredState {
  int64_t epoch = 1;
  int64_t step = 1;
  bool mid_epoch = false;       ///< the next run() continues an unfinished epoch
  io::json::Value extras;          ///< state["extras"]
};

/// Loads `ckpt` into `trainer` (model, optimizer, scheduler, counters, logs, best record,
/// generator) and, when taken mid-epoch, positions `train_loader` where it stood (an
/// error if the checkpoint is mid-epoch and no loader is given).
RestoredState restore_training_state(Trainer& trainer, const io::Checkpoint& ckpt, DataLoader* train_loader);

}  // namespace zae
