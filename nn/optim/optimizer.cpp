// Optimizer base: groups and their option maps, per-parameter state, state dicts, and
// the gathering of a step's multi-tensor batches. See optimizer.h for the invariants.
#include "nn/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "engine/autograd/grad_mode.h"
#include "engine/generator.h"
#include "engine/ops/factory.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/stream.h"
#include "kernels/cuda/optim.h"
#endif

namespace zae::optim {

namespace {

std::string known_keys(const Options& defaults) {
  std::string out;
  for (const auto& [k, v] : defaults) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::string group_where(size_t g) { return "param group " + std::to_string(g); }

}  // namespace

Optimizer::Optimizer(std::string name, Options defaults) : name_(std::move(name)), defaults_(std::move(defaults)) {
  ZAE_CHECK(defaults_.count("lr"), name_, ": the defaults must hold \"lr\"");
}

void Optimizer::init_groups(std::vector<ParamGroup> groups) {
  check_options(defaults_, "defaults");
  validate(defaults_);
  size_t total = 0;
  for (const ParamGroup& g : groups) total += g.params.size();
  ZAE_CHECK(total > 0, name_, ": got an empty parameter list");
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

// ---- options -------------------------------------------------------------------------

void Optimizer::check_options(const Options& options, const std::string& where) const {
  for (const auto& [key, value] : options) {
    ZAE_CHECK(defaults_.count(key), name_, ": unknown option '", key, "' = ", value, " in ", where,
              " (known options: ", known_keys(defaults_), ")");
    ZAE_CHECK(std::isfinite(value), name_, ": invalid ", key, " = ", value, " in ", where,
              " (expected a finite value)");
  }
}

Options Optimizer::complete(const Options& given, const std::string& where) const {
  check_options(given, where);
  Options out = defaults_;
  for (const auto& [key, value] : given) out[key] = value;
  validate(out);
  return out;
}

void Optimizer::require(const Options& o, const std::string& key, bool ok, const char* expectation) const {
  if (ok) return;
  auto it = o.find(key);
  ZAE_FAIL(name_, ": invalid ", key, " = ", it == o.end() ? NAN : it->second, " (expected ", expectation, ")");
}

void Optimizer::require_non_negative(const Options& o, const std::string& key) const {
  require(o, key, o.at(key) >= 0.0, ">= 0");
}

void Optimizer::require_unit_interval(const Options& o, const std::string& key) const {
  double v = o.at(key);
  require(o, key, v >= 0.0 && v < 1.0, "in [0, 1)");
}

void Optimizer::require_bool(const Options& o, const std::string& key) const {
  double v = o.at(key);
  require(o, key, v == 0.0 || v == 1.0, "0 or 1");
}

void Optimizer::require_low_precision(const Options& o) const {
  require_bool(o, "master_weights");
  require_bool(o, "stochastic_rounding");
  const double seed = o.at("seed");
  require(o, "seed", seed == -1.0 || (seed >= 0.0 && seed <= 9007199254740992.0 && seed == std::floor(seed)),
          "-1 (the default generator's seed) or an integer in [0, 2^53]");
}

const ParamGroup& Optimizer::group(size_t i) const {
  ZAE_CHECK(i < groups_.size(), name_, ": param group ", i, " does not exist (", groups_.size(), " groups)");
  return groups_[i];
}

double Optimizer::option(const std::string& key, size_t g) const {
  const ParamGroup& pg = group(g);
  auto it = pg.options.find(key);
  ZAE_CHECK(it != pg.options.end(), name_, ": unknown option '", key, "' (known options: ", known_keys(defaults_),
            ")");
  return it->second;
}

void Optimizer::set_option(const std::string& key, double value, size_t g) {
  group(g);  // range check
  Options updated = groups_[g].options;
  updated[key] = value;
  groups_[g].options = complete(updated, group_where(g));
}

// ---- parameters ------------------------------------------------------------------------

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const ParamGroup& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

void Optimizer::add_param_group(ParamGroup group) {
  const size_t gi = groups_.size();
  std::unordered_set<const TensorImpl*> seen;
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) seen.insert(p.impl_ptr().get());
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    ZAE_CHECK(p.defined(), name_, ": parameter ", i, " of ", group_where(gi), " is an undefined tensor");
    ZAE_CHECK(is_floating(p.dtype()), name_, ": parameter ", i, " of ", group_where(gi), " has dtype ", p.dtype(),
              " (shape ", shape_str(p.shape()), "); only floating tensors can be optimized");
    ZAE_CHECK(p.is_leaf(), name_, ": parameter ", i, " of ", group_where(gi), " (shape ", shape_str(p.shape()),
              ") is not a leaf tensor; optimize leaves (use detach().requires_grad_())");
    ZAE_CHECK(p.requires_grad(), name_, ": parameter ", i, " of ", group_where(gi), " (shape ", shape_str(p.shape()),
              ") does not require grad");
    ZAE_CHECK(seen.insert(p.impl_ptr().get()).second, name_, ": parameter ", i, " of ", group_where(gi),
              " (shape ", shape_str(p.shape()), ") appears more than once (a parameter may be in one group only)");
  }
  group.options = complete(group.options, group_where(gi));
  groups_.push_back(std::move(group));
}

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (set_to_none) {
        Tensor handle = p;
        handle.set_grad(Tensor());
      } else
        grad.zero_();
    }
}

// ---- state ---------------------------------------------------------------------------

std::map<std::string, Tensor>& Optimizer::state_of(const Tensor& param) { return state_[param.impl_ptr().get()]; }

const std::map<std::string, Tensor>& Optimizer::state(const Tensor& param) const {
  static const std::map<std::string, Tensor> empty;
  ZAE_CHECK(param.defined(), name_, ": state() of an undefined tensor");
  auto it = state_.find(param.impl_ptr().get());
  return it == state_.end() ? empty : it->second;
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  int64_t index = 0;
  for (const ParamGroup& g : groups_) {
    OptimizerState::Group sg;
    sg.options = g.options;
    for (const Tensor& p : g.params) {
      auto it = state_.find(p.impl_ptr().get());
      if (it != state_.end() && !it->second.empty()) {
        auto& entry = out.state[index] = it->second;
        auto step = entry.find("step");  // a capturable counter: report the count as usual
        if (step != entry.end() && (step->second.dtype() != DType::float64 || !step->second.device().is_cpu()))
          step->second = scalar_tensor(step->second.item(), {.dtype = DType::float64});
      }
      sg.params.push_back(index++);
    }
    out.groups.push_back(std::move(sg));
  }
  return out;
}

void Optimizer::load_state_dict(const OptimizerState& saved) {
  ZAE_CHECK(saved.groups.size() == groups_.size(), name_, ": load_state_dict got ", saved.groups.size(),
            " param groups, the optimizer has ", groups_.size());
  // Validate everything into new values first; commit only at the end.
  std::vector<Options> new_options;
  std::map<int64_t, const Tensor*> by_index;  // saved index -> this optimizer's parameter
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& sg = saved.groups[g];
    ZAE_CHECK(sg.params.size() == groups_[g].params.size(), name_, ": load_state_dict: ", group_where(g), " has ",
              sg.params.size(), " parameters in the state dict, ", groups_[g].params.size(), " in the optimizer");
    for (size_t i = 0; i < sg.params.size(); ++i)
      ZAE_CHECK(by_index.emplace(sg.params[i], &groups_[g].params[i]).second, name_,
                ": load_state_dict: parameter index ", sg.params[i], " appears more than once");
    new_options.push_back(complete(sg.options, group_where(g) + " of the state dict"));
  }
  std::vector<std::string> allowed = state_keys();
  std::unordered_map<const TensorImpl*, std::map<std::string, Tensor>> new_state;
  for (const auto& [index, buffers] : saved.state) {
    auto it = by_index.find(index);
    ZAE_CHECK(it != by_index.end(), name_, ": load_state_dict: state for parameter index ", index,
              ", which no param group lists");
    const Tensor& p = *it->second;
    std::map<std::string, Tensor> copied;
    for (const auto& [key, t] : buffers) {
      bool known = false;
      for (const auto& a : allowed) known |= a == key;
      ZAE_CHECK(known, name_, ": load_state_dict: unknown state '", key, "' for parameter ", index);
      ZAE_CHECK(t.defined(), name_, ": load_state_dict: state '", key, "' of parameter ", index, " is undefined");
      if (key == "step") {
        ZAE_CHECK(t.numel() == 1, name_, ": load_state_dict: 'step' of parameter ", index,
                  " must hold one value, got shape ", shape_str(t.shape()));
        double v = t.item();
        ZAE_CHECK(std::isfinite(v) && v >= 0, name_, ": load_state_dict: 'step' of parameter ", index, " is ", v);
        copied[key] = scalar_tensor(v, {.dtype = DType::float64});
      } else {
        ZAE_CHECK(t.shape() == p.shape(), name_, ": load_state_dict: state '", key, "' of parameter ", index,
                  " has shape ", shape_str(t.shape()), ", the parameter has shape ", shape_str(p.shape()));
        ZAE_CHECK(is_floating(t.dtype()), name_, ": load_state_dict: state '", key, "' of parameter ", index,
                  " has dtype ", t.dtype(), " (expected a floating dtype)");
        Tensor c = t.to(p.device(), state_dtype(p.dtype())).contiguous();
        if (c.storage() == t.storage()) c = c.clone();
        copied[key] = c;
      }
    }
    new_state[p.impl_ptr().get()] = std::move(copied);
  }
  // Commit.
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = std::move(new_options[g]);
  state_ = std::move(new_state);
}

// ---- step helpers ------------------------------------------------------------------------

DType Optimizer::state_dtype(DType t) {
  return (t == DType::float16 || t == DType::bfloat16) ? DType::float32 : t;
}

Tensor& Optimizer::buffer(std::map<std::string, Tensor>& st, const std::string& key, const Tensor& param,
                          double init) {
  auto it = st.find(key);
  if (it != st.end()) return it->second;
  return st[key] = full(param.shape(), init, {.dtype = state_dtype(param.dtype()), .device = param.device()});
}

double Optimizer::increment_step(std::map<std::string, Tensor>& st) {
  auto it = st.find("step");
  if (it == st.end()) it = st.emplace("step", scalar_tensor(0.0, {.dtype = DType::float64})).first;
  if (it->second.dtype() != DType::float64 || !it->second.device().is_cpu())  // a capturable counter
    it->second = scalar_tensor(it->second.item(), {.dtype = DType::float64});
  double* s = it->second.data<double>();
  *s += 1.0;
  it->second.storage()->bump_version();
  return *s;
}

void Optimizer::check_devices() const {
  const Tensor* first = nullptr;
  size_t first_g = 0, first_i = 0;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Tensor& p = groups_[g].params[i];
      if (first == nullptr) {
        first = &p;
        first_g = g;
        first_i = i;
        continue;
      }
      ZAE_CHECK(p.device() == first->device(), name_, ": parameters on different devices: parameter ", first_i,
                " of ", group_where(first_g), " is on ", first->device(), ", parameter ", i, " of ", group_where(g),
                " is on ", p.device(), " (one optimizer updates the parameters of one device)");
    }
}

std::vector<std::vector<Optimizer::Batch>> Optimizer::prepare_step() {
  // Validate everything before any state is created or changed.
  check_devices();
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Tensor& p = groups_[g].params[i];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      ZAE_CHECK(grad.dtype() == p.dtype(), name_, ": the gradient of parameter ", i, " of ", group_where(g),
                " (shape ", shape_str(p.shape()), ") has dtype ", grad.dtype(), ", the parameter ", p.dtype());
      ZAE_CHECK(grad.shape() == p.shape() && grad.device() == p.device(), name_, ": the gradient of parameter ", i,
                " of ", group_where(g), " has shape ", shape_str(grad.shape()), " on ", grad.device(),
                ", the parameter ", shape_str(p.shape()), " on ", p.device());
#ifndef ZAE_WITH_CUDA
      ZAE_CHECK(p.device().is_cpu(), name_, ": not implemented for device ", p.device(), " in this build");
#endif
      auto it = state_.find(p.impl_ptr().get());
      if (it == state_.end()) continue;
      for (const auto& [key, t] : it->second)
        ZAE_CHECK(key == "step" || t.shape() == p.shape(), name_, ": state '", key, "' of parameter ", i, " of ",
                  group_where(g), " has shape ", shape_str(t.shape()), ", the parameter ", shape_str(p.shape()));
    }
  std::vector<std::vector<Batch>> out(groups_.size());
  uint32_t flat = 0;  // index in parameters()
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (const Tensor& p : groups_[g].params) {
      const uint32_t id = flat++;
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      Batch* b = nullptr;
      for (Batch& c : out[g])
        if (c.dtype == p.dtype() && c.device == p.device()) b = &c;
      if (!b) {
        out[g].emplace_back();
        b = &out[g].back();
        b->dtype = p.dtype();
        b->device = p.device();
      }
      auto& st = state_of(p);
      for (auto& [key, t] : st) {  // follow a parameter moved by Module::to
        if (key == "step") continue;
        if (t.dtype() != state_dtype(p.dtype()) || t.device() != p.device() || !t.is_contiguous())
          t = t.to(p.device(), state_dtype(p.dtype())).contiguous();
      }
      b->params.push_back(p);
      b->work.push_back(p.is_contiguous() ? p : p.detach().contiguous());
      b->grads.push_back(grad.is_contiguous() ? grad : grad.contiguous());
      b->sizes.push_back(p.numel());
      b->ids.push_back(id);
      b->states.push_back(&st);
    }
  }
  return out;
}

void Optimizer::finish(const Batch& batch) {
  for (size_t i = 0; i < batch.params.size(); ++i) {
    const Tensor& p = batch.params[i];
    if (batch.work[i].storage() != p.storage()) {
      p.detach().copy_(batch.work[i]);  // bumps the version itself
    } else {
      p.storage()->bump_version();
    }
  }
}

// ---- low precision ---------------------------------------------------------------------

bool Optimizer::is_low_precision(DType t) { return t == DType::float16 || t == DType::bfloat16; }

float* Optimizer::master_buffer(std::map<std::string, Tensor>& st, const Tensor& param, bool on) {
  if (!on || !is_low_precision(param.dtype())) {
    st.erase("master");
    return nullptr;
  }
  auto it = st.find("master");
  if (it == st.end()) it = st.emplace("master", param.detach().to(DType::float32).contiguous()).first;
  return it->second.data<float>();
}

uint64_t Optimizer::rounding_seed(size_t g) const {
  const double seed = option("seed", g);
  return seed >= 0 ? static_cast<uint64_t>(seed) : default_generator().seed();
}

// ---- capturable steps ------------------------------------------------------------------

void Optimizer::set_capturable(bool on) {
  if (on == capturable_) return;
  if (on) {
    ZAE_CHECK(!hyper_keys().empty(), name_, ": has no capturable step (supported: SGD, Adam, AdamW)");
    capturable_ = true;
    return;
  }
  for (auto& [impl, st] : state_) {  // counters back to host float64 counts (a sync)
    auto it = st.find("step");
    if (it != st.end() && (it->second.dtype() != DType::float64 || !it->second.device().is_cpu()))
      it->second = scalar_tensor(it->second.item(), {.dtype = DType::float64});
  }
  capturable_ = false;
}

void Optimizer::upload_hyperparameters() {
  const std::vector<std::string> keys = hyper_keys();
  ZAE_CHECK(!keys.empty(), name_, ": has no capturable step, so no hyperparameters to upload");
  check_devices();
  const Device device = groups_.front().params.front().device();
  hyper_host_.resize(groups_.size());
  hyper_device_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::vector<double>& host = hyper_host_[g];
    host.resize(keys.size());
    for (size_t k = 0; k < keys.size(); ++k) host[k] = groups_[g].options.at(keys[k]);
    Tensor& dev = hyper_device_[g];
    if (!dev.defined() || dev.device() != device)
      dev = full({static_cast<int64_t>(keys.size())}, 0.0, {.dtype = DType::float64, .device = device});
    if (device.is_cpu()) {
      std::copy(host.begin(), host.end(), dev.data<double>());
    } else {
#ifdef ZAE_WITH_CUDA
      cuda::DeviceGuard guard(device.index);
      cudaStream_t stream = cuda::current_stream(device.index);
      ZAE_CHECK(!kernels::cuda::stream_is_capturing(stream), name_,
                ": upload_hyperparameters() while the stream captures a CUDA graph (upload before capture or replay)");
      kernels::cuda::upload_hyper(dev.data<double>(), host.data(), static_cast<int>(host.size()), stream);
#else
      ZAE_FAIL(name_, ": not implemented for device ", device, " in this build");
#endif
    }
  }
}

void Optimizer::begin_capturable_step() {
  check_devices();
  const Device device = groups_.front().params.front().device();
  bool capturing = false;
#ifdef ZAE_WITH_CUDA
  if (device.is_cuda()) {
    cuda::DeviceGuard guard(device.index);
    capturing = kernels::cuda::stream_is_capturing(cuda::current_stream(device.index));
  }
#endif
  if (!capturing) upload_hyperparameters();
  ZAE_CHECK(hyper_device_.size() == groups_.size() && !hyper_device_.empty() &&
                hyper_device_.front().device() == device,
            name_, ": a capturable step is captured before its hyperparameters were uploaded to ", device,
            " (run one step, or call upload_hyperparameters(), before capture)");
}

const double* Optimizer::hyper_data(size_t g) const {
  ZAE_CHECK(g < hyper_device_.size() && hyper_device_[g].defined(), name_, ": no device hyperparameters for ",
            group_where(g), " (call upload_hyperparameters())");
  return hyper_device_[g].data<double>();
}

float* Optimizer::step_counter(std::map<std::string, Tensor>& st, const Tensor& param) {
  auto it = st.find("step");
  if (it == st.end()) {
    it = st.emplace("step", scalar_tensor(0.0, {.dtype = DType::float32, .device = param.device()})).first;
  } else if (it->second.dtype() != DType::float32 || it->second.device() != param.device()) {
    it->second = it->second.to(param.device(), DType::float32).contiguous();
  }
  return it->second.data<float>();
}

}  // namespace zae::optim
