// CudaGraphStep: the policy that runs whole training steps as CUDA graphs. Plain C++:
// what touches CUDA sits behind GraphBackend (make_cuda_graph_backend on a CUDA
// device; tests drive the policy with a fake backend on the CPU).
//
// Policy (TrainerOptions::cuda_graphs):
// - off: never. automatic (default): graphs on a CUDA device when the step is capturable,
//   silently eager otherwise. on: as automatic, but a one-line notice when a step cannot
//   be captured for a standing reason (the CPU, a blocker named by the trainer).
// - The capture key is the batch's entry names, shapes, dtypes and devices (Batch::str()).
//   The first routed batch fixes the key; warmup_steps (>= 1) steps with that key run
//   eagerly through the backend (a side stream: lazily created state, e.g. optimizer
//   moments and library workspaces, exists before the capture); the next batch with the
//   key is copied into static inputs (clones made before the capture), the step is
//   captured on them and replayed at once; every later batch with the key is copied into
//   the static inputs and replayed, and its outputs are the static outputs (overwritten
//   by the next replay). A batch with another key runs eagerly (try_run returns nothing)
//   with one notice per key, in every mode; the graph is kept for the original key.
// - A step that draws random numbers (the default generator moved during a warm-up step)
//   is not captured: its seed and offset would be frozen into the graph.
// - An exception during capture abandons the graph for good: the backend is reset, the
//   generator's offset restored, one notice names the reason, and this and every later
//   batch run eagerly (the caller's own path). Nothing of the failed step ran on the
//   device, so running the batch eagerly then is exact, provided the captured body
//   left host state alone (the Trainer defers its host bookkeeping, see trainer.cpp).
// Invariants: the backend is called only from try_run / reset; notices go through the
// Notice callback, at most once per distinct message kind and key; a step is never run
// twice on the device.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "engine/device.h"
#include "io/batch.h"
#include "trainer/step_output.h"

namespace zae {

/// When the Trainer runs train steps as CUDA graphs (see trainer/cuda_graph_step.h).
enum class CudaGraphs {
  automatic,  ///< on a CUDA device when the step is capturable, silently eager otherwise
  on,         ///< as automatic, with a one-line notice when it cannot
  off,        ///< never
};
const char* cuda_graphs_name(CudaGraphs mode);

/// The CUDA side of graph steps. Calls may throw zae::Error.
class GraphBackend {
 public:
  virtual ~GraphBackend() = default;
  /// Runs `fn` eagerly the way the capture will (on the side stream), ordered after the
  /// work queued so far and before what comes next.
  virtual void warmup(const std::function<void()>& fn) = 0;
  /// Captures what `fn` launches into the graph (once). On any failure the backend is
  /// left with no graph and the exception propagates.
  virtual void capture(const std::function<void()>& fn) = 0;
  /// Launches the captured graph on the current stream.
  virtual void replay() = 0;
  /// Drops the graph (and its memory pool). Never throws.
  virtual void reset() noexcept = 0;
};

/// The backend for `device`: CUDA graphs on a CUDA device of a CUDA build, else nullptr
/// with `why_not` saying why (e.g. "the device is cpu").
std::unique_ptr<GraphBackend> make_cuda_graph_backend(Device device, std::string* why_not);
/// Tests only: make_cuda_graph_backend returns what `factory` returns instead (an empty
/// function restores the real one). Not thread-safe; set it before creating trainers.
void set_graph_backend_factory_for_testing(std::function<std::unique_ptr<GraphBackend>(Device, std::string*)> factory);

class CudaGraphStep {
 public:
  using Notice = std::function<void(const std::string&)>;
  /// What a step is, for the policy.
  struct Hooks {
    /// The device work of one whole step on `batch` (zero_grad, forward, backward,
    /// update); returns the step's outputs. It must not read device values on the host.
    std::function<StepOutput(const Batch&)> body;
    /// Called once, before the first warm-up step (e.g. optimizer.set_capturable(true));
    /// returns why the step cannot be captured after all ("" = it can).
    std::function<std::string()> prepare;
    /// Called before every step the policy runs (warm-up, capture, replay), outside any
    /// capture (e.g. upload the optimizer's lr to device memory).
    std::function<void()> before_step;
  };
  enum class Phase { idle, warming, captured, abandoned };
  /// How try_run ran a step.
  enum class Route { warmup, capture, replay };
  struct Result {
    StepOutput out;
    Route route;
  };

  /// `backend` null: graphs are impossible here, `why_not` says why (noticed once with on).
  CudaGraphStep(CudaGraphs mode, int64_t warmup_steps, std::unique_ptr<GraphBackend> backend,
                std::string why_not = "", Notice notice = {});
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;

  /// Runs the step on `batch` as a warm-up, a capture (+ its first replay) or a replay;
  /// nothing (and no work done) when the caller must run it eagerly its own way.
  /// `blocker` non-empty: this step cannot be captured, for that reason.
  std::optional<Result> try_run(const Batch& batch, const std::string& blocker, const Hooks& hooks);
  /// Drops the graph and starts over (the next routed batch starts a new warm-up).
  void reset();

  CudaGraphs mode() const { return mode_; }
  Phase phase() const { return phase_; }
  int64_t warmup_steps() const { return warmup_steps_; }
  /// Counters since construction.
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  int64_t eager_steps() const { return eager_steps_; }
  /// Why the graph was abandoned ("" when it was not).
  const std::string& abandon_reason() const { return abandon_reason_; }

 private:
  std::optional<Result> eager(const std::string& notice_key, const std::string& message, bool always);
  void notice(const std::string& message);
  void abandon(const std::string& reason);

  CudaGraphs mode_;
  int64_t warmup_steps_;
  std::unique_ptr<GraphBackend> backend_;
  std::string why_not_;
  Notice notice_;
  Phase phase_ = Phase::idle;
  std::string key_;       // the batch key being warmed up / captured
  int64_t warmed_ = 0;    // warm-up steps done with key_
  Batch static_in_;       // captured inputs (clones; replays copy into them)
  StepOutput static_out_;
  std::function<StepOutput(const Batch&)> captured_body_;  // the body the graph was captured from
  std::set<std::string> noticed_;  // notice kinds + keys already printed
  std::string abandon_reason_;
  int64_t captures_ = 0, replays_ = 0, eager_steps_ = 0;
};

}  // namespace zae
