// CudaGraphStep (trainer/cuda_graph_step.h) and, in CUDA builds, its CUDA backend: a
// CudaGraph captured on a SideStream, replayed on the thread's current stream.
#include "trainer/cuda_graph_step.h"

#include <cstdio>
#include <exception>
#include <utility>

#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "engine/generator.h"

#ifdef ZAE_WITH_CUDA
#include "engine/cuda/graph.h"
#include "engine/cuda/stream.h"
#endif

namespace zae {

const char* cuda_graphs_name(CudaGraphs mode) {
  switch (mode) {
    case CudaGraphs::automatic:
      return "auto";
    case CudaGraphs::on:
      return "on";
    case CudaGraphs::off:
      return "off";
  }
  return "?";
}

namespace {

#ifdef ZAE_WITH_CUDA
// Warm-up and capture on a side stream ordered with the current stream both ways, so
// the caller sees them as ordinary work on its stream.
class CudaGraphBackend final : public GraphBackend {
 public:
  explicit CudaGraphBackend(int device) : device_(device), side_(device), graph_(device) {}

  void warmup(const std::function<void()>& fn) override {
    on_side_stream([&] { fn(); });
  }

  void capture(const std::function<void()>& fn) override {
    on_side_stream([&] {
      graph_.capture_begin();
      try {
        fn();
        graph_.capture_end();  // on failure the graph is empty again
      } catch (...) {
        graph_.capture_abort();
        throw;
      }
    });
  }

  void replay() override { graph_.replay(); }

  void reset() noexcept override {
    try {
      graph_.reset();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "zae: resetting a CUDA graph on cuda:%d failed: %s\n", device_, e.what());
    }
  }

 private:
  template <class F>
  void on_side_stream(F&& f) {
    cudaStream_t main = cuda::current_stream(device_);
    side_.wait_for(main);
    try {
      cuda::StreamGuard guard(device_, side_.get());
      f();
    } catch (...) {
      try {
        side_.join_into(main);
      } catch (...) {  // the first error is the one to report
      }
      throw;
    }
    side_.join_into(main);
  }

  int device_;
  cuda::SideStream side_;  // declared before graph_: destroyed after it
  cuda::CudaGraph graph_;
};
#endif

// zae::Error messages may span lines (file, expression): notices are one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

namespace {
std::function<std::unique_ptr<GraphBackend>(Device, std::string*)>& backend_factory() {
  static std::function<std::unique_ptr<GraphBackend>(Device, std::string*)> factory;
  return factory;
}
}  // namespace

void set_graph_backend_factory_for_testing(std::function<std::unique_ptr<GraphBackend>(Device, std::string*)> factory) {
  backend_factory() = std::move(factory);
}

std::unique_ptr<GraphBackend> make_cuda_graph_backend(Device device, std::string* why_not) {
  if (backend_factory()) return backend_factory()(device, why_not);
  std::string why;
  if (!device.is_cuda()) {
    why = "the device is " + device.str();
  } else {
#ifdef ZAE_WITH_CUDA
    if (cuda::is_available() && device.index < cuda::device_count()) return std::make_unique<CudaGraphBackend>(device.index);
    why = "no CUDA device " + device.str() + " is available";
#else
    why = "this build has no CUDA support";
#endif
  }
  if (why_not != nullptr) *why_not = why;
  return nullptr;
}

CudaGraphStep::CudaGraphStep(CudaGraphs mode, int64_t warmup_steps, std::unique_ptr<GraphBackend> backend,
                             std::string why_not, Notice notice)
    : mode_(mode),
      warmup_steps_(warmup_steps),
      backend_(std::move(backend)),
      why_not_(std::move(why_not)),
      notice_(std::move(notice)) {
  ZAE_CHECK(warmup_steps_ >= 1, "CudaGraphStep: warmup_steps must be >= 1 (lazily created state, such as optimizer ",
            "moments, must exist before the capture), got ", warmup_steps_);
  if (why_not_.empty()) why_not_ = "no CUDA graph backend is available";
}

CudaGraphStep::~CudaGraphStep() {
  // The static tensors go back to the graph's private pool before the backend releases it.
  static_out_ = StepOutput();
  static_in_ = Batch();
}

void CudaGraphStep::notice(const std::string& message) {
  if (notice_)
    notice_(message);
  else
    std::fprintf(stderr, "%s\n", message.c_str());
}

std::optional<CudaGraphStep::Result> CudaGraphStep::eager(const std::string& notice_key, const std::string& message,
                                                          bool always) {
  ++eager_steps_;
  if (!message.empty() && (always || mode_ == CudaGraphs::on) && noticed_.insert(notice_key).second) notice(message);
  return std::nullopt;
}

void CudaGraphStep::abandon(const std::string& reason) {
  if (backend_) backend_->reset();
  static_out_ = StepOutput();
  static_in_ = Batch();
  captured_body_ = nullptr;
  phase_ = Phase::abandoned;
  abandon_reason_ = one_line(reason);
}

void CudaGraphStep::reset() {
  static_out_ = StepOutput();
  static_in_ = Batch();
  captured_body_ = nullptr;
  if (backend_) backend_->reset();
  phase_ = Phase::idle;
  key_.clear();
  warmed_ = 0;
  abandon_reason_.clear();
}

std::optional<CudaGraphStep::Result> CudaGraphStep::try_run(const Batch& batch, const std::string& blocker,
                                                            const Hooks& hooks) {
  ZAE_CHECK(static_cast<bool>(hooks.body), "CudaGraphStep::try_run: no step body given");
  if (mode_ == CudaGraphs::off) return eager("off", "", false);
  if (!backend_) return eager("unavailable", "CUDA graphs are on, but " + why_not_ + ": training eagerly", false);
  if (phase_ == Phase::abandoned) return eager("abandoned", "", false);
  if (!blocker.empty())
    return eager("blocker:" + blocker, "CUDA graphs: not capturing the train step: " + blocker + "; running it eagerly",
                 false);

  const std::string key = batch.str();
  if (phase_ == Phase::idle) {
    const std::string why = hooks.prepare ? hooks.prepare() : std::string();
    if (!why.empty()) {
      abandon(why);
      return eager("prepare", "CUDA graphs: not capturing the train step: " + abandon_reason_ + "; training eagerly",
                   false);
    }
    phase_ = Phase::warming;
    key_ = key;
    warmed_ = 0;
  }
  if (key != key_)
    return eager("key:" + key,
                 "CUDA graphs: " + key + " differs from the captured " + key_ + "; this batch runs eagerly", true);

  Generator& gen = default_generator();
  if (phase_ == Phase::warming && warmed_ < warmup_steps_) {
    if (hooks.before_step) hooks.before_step();
    const uint64_t offset = gen.offset();
    Result r{StepOutput(), Route::warmup};
    backend_->warmup([&] { r.out = hooks.body(batch); });
    ++warmed_;
    if (gen.offset() != offset) {
      abandon("the train step draws random numbers (dropout?), whose seed and offset a graph would freeze");
      if (mode_ == CudaGraphs::on) notice("CUDA graphs: not capturing: " + abandon_reason_ + "; training eagerly");
    }
    return r;
  }

  if (phase_ == Phase::warming) {  // warmed up: capture on static inputs, then replay once
    Batch inputs;
    for (const auto& e : batch) {
      Tensor copy = e.tensor.clone();
      if (e.name.empty())
        inputs.add(std::move(copy));
      else
        inputs.add(e.name, std::move(copy));
    }
    static_in_ = std::move(inputs);
    if (hooks.before_step) hooks.before_step();
    const uint64_t offset = gen.offset();
    try {
      captured_body_ = hooks.body;  // a backend may keep the captured function (fakes replay it)
      backend_->capture([this] { static_out_ = captured_body_(static_in_); });
      ZAE_CHECK(gen.offset() == offset, "the train step drew random numbers while it was captured");
    } catch (const std::exception& e) {
      gen.set_offset(offset);
      captured_body_ = nullptr;
      abandon(std::string("capturing the train step failed: ") + e.what());
      notice("CUDA graphs: " + abandon_reason_ + "; training eagerly from now on");
      ++eager_steps_;
      return std::nullopt;  // nothing ran on the device: the caller runs this batch eagerly
    }
    ++captures_;
    phase_ = Phase::captured;
    backend_->replay();
    ++replays_;
    return Result{static_out_, Route::capture};
  }

  // Captured, same key: new data into the static inputs, then replay.
  {
    NoGradGuard no_grad;
    for (size_t i = 0; i < batch.size(); ++i) static_in_[i].copy_(batch[i]);
  }
  if (hooks.before_step) hooks.before_step();
  backend_->replay();
  ++replays_;
  return Result{static_out_, Route::replay};
}

}  // namespace zae
