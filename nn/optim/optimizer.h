// Optimizer: updates parameters from their .grad() in parameter groups, each with
// its own options (lr, weight_decay, ...). Options live in a name -> value map per
// group, as PyTorch's param_groups do, so schedulers, checkpoints and users can read
// and write them uniformly; each optimizer documents its keys and defaults, and
// offers a typed options struct (designated initializers) that converts to the map.
// Per-parameter state (step, moment buffers, ...) is keyed by parameter identity and
// round-trips through state_dict() / load_state_dict(). step() runs under no-grad and
// updates all parameters of a group with one multi-tensor kernel call (per dtype).
//
// Invariants:
// - Every group's map holds exactly the optimizer's keys (missing keys take the
//   defaults; unknown keys and out-of-range values are errors naming the optimizer,
//   the key and the value), and every value is finite.
// - Parameters are floating leaf tensors that require grad, each in exactly one group.
// - step() needs every parameter of the optimizer on one device (an error names two
//   that differ). On a CUDA device the update of a group runs as one multi-tensor
//   kernel launch per dtype (kernels/cuda/optim.h) on the device's current stream,
//   the CPU twin's math operation by operation; on the CPU, kernels/cpu/optim.h.
// - A parameter's state holds "step" (a CPU float64 scalar, where the optimizer counts
//   steps) and buffers of the parameter's shape on its device, in its dtype (float32
//   for float16 / bfloat16 parameters). Parameters without a gradient are skipped:
//   neither they nor their state change.
// - Failed calls (bad options, bad state dicts, bad gradients in step) change nothing.
// - Low precision (SGD, Adam, AdamW): option "master_weights" gives each float16 /
//   bfloat16 parameter a float32 state buffer "master", copied from the parameter at
//   its first step with the option on (and dropped when a step runs with it off); the
//   update runs on the master and the parameter receives the master rounded to its
//   dtype. Option "stochastic_rounding" writes bfloat16 parameters with stochastic
//   rounding (kernels/optim_math.h) keyed by "seed" (-1: the default generator's seed
//   at the step), the parameter's step and its index in parameters(). Other dtypes
//   ignore both options.
// - Capturable mode (set_capturable, for CUDA graphs; optimizers with hyper_keys()):
//   each group's hyper_keys() options live in a float64 tensor on the parameters'
//   device, uploaded by upload_hyperparameters() (and by step() when the stream is not
//   capturing), and "step" is a float32 scalar on that device that the kernel
//   increments. state_dict() still reports "step" as a CPU float64 scalar (a copy).
//   The results are bitwise those of the normal mode on the CPU.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tensor.h"

namespace zae::optim {

/// One group's options: key -> value (booleans are 0 / 1).
using Options = std::map<std::string, double>;

/// Parameters that share options. Keys missing from `options` take the optimizer's defaults.
struct ParamGroup {
  std::vector<Tensor> params;
  Options options;
};

/// The serialisable state: PyTorch's {"state": {index: {...}}, "param_groups": [...]}
/// with parameters numbered in group order.
struct OptimizerState {
  struct Group {
    Options options;
    std::vector<int64_t> params;  // indices into the flat parameter order
  };
  std::vector<Group> groups;
  std::map<int64_t, std::map<std::string, Tensor>> state;  // per-parameter buffers (CPU or device)
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// "SGD", "Adam", ...
  const std::string& name() const { return name_; }

  /// Clears the gradients of all parameters (to none, or to zeros).
  void zero_grad(bool set_to_none = true);

  size_t num_groups() const { return groups_.size(); }
  const ParamGroup& group(size_t i) const;
  /// The optimizer's default options (every key it knows).
  const Options& defaults() const { return defaults_; }
  /// Reads / writes one option of a group (error naming the key if it does not exist,
  /// or the value if it is out of range; nothing changes on error).
  double option(const std::string& key, size_t group = 0) const;
  void set_option(const std::string& key, double value, size_t group = 0);
  double lr(size_t group = 0) const { return option("lr", group); }
  void set_lr(double lr, size_t group = 0) { set_option("lr", lr, group); }
  /// All parameters in group order (the numbering state_dict uses).
  std::vector<Tensor> parameters() const;
  /// Adds a group; its parameters must not already be in this optimizer.
  void add_param_group(ParamGroup group);

  /// Options of every group and the state of every parameter that has some, as handles
  /// to the live buffers (like Module::state_dict): clone them to keep a snapshot.
  /// Virtual: a sharded optimizer (dist/zero_optimizer.h) returns its consolidated state.
  virtual OptimizerState state_dict() const;
  /// Called on every process of a data parallel job before the one that saves a
  /// checkpoint calls state_dict() (that one has rank `to`). A no-op here; a sharded
  /// optimizer gathers its shards to rank `to` (collective: every rank must call it).
  virtual void prepare_state_dict(int /*to*/) {}
  /// Restores options and per-parameter state (copied; saved indices map to this
  /// optimizer's parameters by position, as in PyTorch). The group structure (count,
  /// sizes), every option and each buffer's name and shape must be valid, else a clear
  /// error and nothing is changed. Parameters absent from `state.state` lose their state.
  virtual void load_state_dict(const OptimizerState& state);

  /// The state of one parameter of this optimizer (empty until its first step).
  const std::map<std::string, Tensor>& state(const Tensor& param) const;

  // ---- capturable steps (CUDA graphs) -----------------------------------------------
  /// Switches capturable mode: step() reads lr (and the other hyper_keys()) from a device
  /// tensor per group and keeps each parameter's step count on the device, so a step
  /// captured once into a CUDA graph and replayed follows the current options and step.
  /// Error for optimizers without a capturable step (RMSprop, Adagrad). Turning it off
  /// brings the step counts back to the host (a sync). Run at least one step in this mode
  /// (after switching it on, and after load_state_dict) before capturing one: that step
  /// creates the device counters, masters and moments and uploads the hyperparameters,
  /// which a capture cannot do.
  void set_capturable(bool on);
  bool capturable() const { return capturable_; }
  /// Copies every group's hyper_keys() options into its device tensor (allocating it on
  /// first use or after the parameters moved), stream-ordered on the device's current
  /// stream, without a host sync. step() does this itself unless the stream is
  /// capturing; call it before replaying a captured step. Error while capturing.
  void upload_hyperparameters();

 protected:
  /// `defaults` holds every option key the optimizer knows with its default value.
  /// Derived constructors validate the defaults and then add their groups with
  /// add_param_group (validate is virtual, so it cannot run from this constructor).
  Optimizer(std::string name, Options defaults);
  /// Adds `groups`; the list must hold at least one parameter.
  void init_groups(std::vector<ParamGroup> groups);

  /// Rejects option values that are out of range (negative lr, betas outside [0, 1), ...).
  /// Keys are already known and values finite when it is called.
  virtual void validate(const Options& options) const = 0;
  /// The per-parameter state names this optimizer may keep (checked by load_state_dict).
  virtual std::vector<std::string> state_keys() const = 0;
  /// The options a capturable step reads from device memory, in the kernel's slot order
  /// (kernels/optim_math.h); empty: no capturable step.
  virtual std::vector<std::string> hyper_keys() const { return {}; }

  /// The state buffers of a parameter (created empty on first use).
  std::map<std::string, Tensor>& state_of(const Tensor& param);
  std::vector<ParamGroup>& groups() { return groups_; }

  // ---- helpers for derived optimizers' validate() ------------------------------
  /// Fails with "<name>: invalid <key> = <value> (expected <expectation>)" unless ok.
  void require(const Options& o, const std::string& key, bool ok, const char* expectation) const;
  void require_non_negative(const Options& o, const std::string& key) const;
  /// Value in [0, 1) (betas, ...).
  void require_unit_interval(const Options& o, const std::string& key) const;
  /// Value 0 or 1.
  void require_bool(const Options& o, const std::string& key) const;
  /// "master_weights" and "stochastic_rounding" 0 / 1, "seed" -1 or an integer in [0, 2^53].
  void require_low_precision(const Options& o) const;

  // ---- helpers for derived optimizers' step() ----------------------------------
  /// A group's parameters that have a gradient, all of one dtype on one device, with
  /// dense working copies: what one multi-tensor kernel call takes.
  struct Batch {
    DType dtype = DType::float32;
    Device device = Device::cpu();
    std::vector<Tensor> params;  ///< the optimizer's handles
    std::vector<Tensor> work;    ///< contiguous: params[i] itself unless it is strided
    std::vector<Tensor> grads;   ///< contiguous, dtype == params[i].dtype()
    std::vector<int64_t> sizes;  ///< numel of each
    std::vector<uint32_t> ids;   ///< index of each in parameters() (stochastic rounding streams)
    std::vector<std::map<std::string, Tensor>*> states;

    int n() const { return static_cast<int>(params.size()); }
    /// Raw pointers to the working parameters / the gradients.
    template <class T>
    std::vector<T*> param_ptrs() const;
    template <class T>
    std::vector<const T*> grad_ptrs() const;
    /// Raw pointers to one state buffer of every parameter (nullptrs when `key` is absent).
    template <class S>
    std::vector<S*> state_ptrs(const std::string& key) const;
  };
  /// Batches of every group (outer index = group), validated before anything is
  /// updated: all parameters must be on one device that has kernels (the CPU, or a CUDA
  /// device in CUDA builds), gradients must match their parameter's dtype and device,
  /// existing state buffers must have the parameter's shape (they are moved to its
  /// device and state dtype if it changed).
  std::vector<std::vector<Batch>> prepare_step();
  /// Copies strided parameters back from their working copies and bumps versions.
  static void finish(const Batch& batch);
  /// The dtype state buffers of a parameter of dtype `t` use (float32 for 16-bit floats).
  static DType state_dtype(DType t);
  /// Returns st[key], creating it filled with `init` (shape, device and state dtype of `param`).
  static Tensor& buffer(std::map<std::string, Tensor>& st, const std::string& key, const Tensor& param,
                        double init = 0.0);
  /// Increments st["step"] (created at 0) and returns the new count.
  static double increment_step(std::map<std::string, Tensor>& st);

  // ---- low precision and capturable helpers -----------------------------------------
  /// float16 / bfloat16.
  static bool is_low_precision(DType t);
  /// With `on` and a 16-bit `param`: st["master"] (float32, created from the parameter)
  /// and its data; otherwise drops any "master" and returns null.
  static float* master_buffer(std::map<std::string, Tensor>& st, const Tensor& param, bool on);
  /// The stochastic-rounding key of group g: its "seed", or the default generator's seed.
  uint64_t rounding_seed(size_t g) const;
  /// Capturable step, first thing: uploads the hyperparameters unless the parameters'
  /// device's current stream is capturing.
  void begin_capturable_step();
  /// Group g's device hyperparameters (after begin_capturable_step / upload).
  const double* hyper_data(size_t g) const;
  /// st["step"] as a float32 scalar on `param`'s device (created at 0; a CPU float64
  /// count is moved there), the counter a capturable kernel increments.
  static float* step_counter(std::map<std::string, Tensor>& st, const Tensor& param);

 private:
  void check_options(const Options& options, const std::string& where) const;
  /// Fails naming two parameters (and their devices) that are not on the same device.
  void check_devices() const;
  Options complete(const Options& given, const std::string& where) const;

  std::string name_;
  Options defaults_;
  std::vector<ParamGroup> groups_;
  std::unordered_map<const TensorImpl*, std::map<std::string, Tensor>> state_;
  bool capturable_ = false;
  /// Per group, capturable mode: the host copy of the hyper options (kept alive for the
  /// asynchronous upload) and the device tensor the kernels read.
  std::vector<std::vector<double>> hyper_host_;
  std::vector<Tensor> hyper_device_;
};

template <class T>
std::vector<T*> Optimizer::Batch::param_ptrs() const {
  std::vector<T*> out;
  out.reserve(work.size());
  for (const Tensor& t : work) out.push_back(t.data<T>());
  return out;
}

template <class T>
std::vector<const T*> Optimizer::Batch::grad_ptrs() const {
  std::vector<const T*> out;
  out.reserve(grads.size());
  for (const Tensor& t : grads) out.push_back(t.data<T>());
  return out;
}

template <class S>
std::vector<S*> Optimizer::Batch::state_ptrs(const std::string& key) const {
  std::vector<S*> out;
  out.reserve(states.size());
  for (auto* st : states) {
    auto it = st->find(key);
    out.push_back(it == st->end() ? nullptr : it->second.template data<S>());
  }
  return out;
}

}  // namespace zae::optim
