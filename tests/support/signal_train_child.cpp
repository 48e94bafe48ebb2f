// Child program of tests/trainer/test_signal_resume.cpp: a small deterministic training
// job with Trainer::add_on<StateManagerAddon, SignalHandlerAddon>.
//
//   signal_train_child dir=<save dir> [resume=none|last] [epochs=4] [sleep_ms=20]
//                      [shuffle_seed=11] [ballast_mb=0] [every_epoch=1] [sched_slack=10]
//
// The model is a 1-8-1 tanh MLP (no dropout) fitting y = 2x + 1 + 0.3 sin(7x) on 40
// points, batches of 4 from a shuffled DataLoader (10 steps per epoch), SGD with
// momentum and a per-batch cosine schedule over epochs * 10 + sched_slack steps; every
// random number comes from fixed seeds. Each train step sleeps sleep_ms first (so a
// signal lands inside an epoch). ballast_mb adds a persistent zero buffer of that size
// to the model, to make each save slow.
//
// stdout, one line each, flushed at once:
//   step <optimizer steps> epoch <epoch> params <p0,p1,...>          after every step
//   final steps <n> epoch <e> params <p0,...> losses <l0,...>        when run() returns
// where the p are every parameter element and the l every train loss so far, printed
// with %a (exact). A signal ends the process from inside run() (status 128 + signal).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "nn/linear.h"
#include "nn/optim/sgd.h"
#include "nn/sched/cosine.h"
#include "trainer/signal_handler_addon.h"
#include "trainer/state_manager_addon.h"
#include "trainer/trainer.h"

namespace {

using namespace zae;

class TinyNet : public nn::Layer {
 public:
  explicit TinyNet(int64_t ballast_mb) : Layer("TinyNet") {
    fc1_ = register_module("fc1", std::make_shared<nn::Linear>(1, 8));
    fc2_ = register_module("fc2", std::make_shared<nn::Linear>(8, 1));
    if (ballast_mb > 0) register_buffer("ballast", zeros({ballast_mb * (1 << 20) / 4}));
  }
  Tensor forward(const Tensor& x) override { return fc2_->forward(tanh(fc1_->forward(x))); }

 private:
  std::shared_ptr<nn::Linear> fc1_, fc2_;
};

std::string hex_list(const std::vector<double>& values) {
  std::string out;
  char buf[64];
  for (double v : values) {
    std::snprintf(buf, sizeof buf, "%a", v);
    if (!out.empty()) out += ',';
    out += buf;
  }
  return out;
}

std::string params_hex(const nn::Module& model) {
  std::vector<double> values;
  for (const auto& [name, p] : model.named_parameters())
    for (float v : p.contiguous().to_vector<float>()) values.push_back(v);
  return hex_list(values);
}

class SignalTrainer : public Trainer::add_on<StateManagerAddon, SignalHandlerAddon> {
 public:
  using Base = Trainer::add_on<StateManagerAddon, SignalHandlerAddon>;
  SignalTrainer(const TrainerOptions& t, const StateManagerOptions& s, const SignalHandlerOptions& h, int sleep_ms)
      : Base(t, s, h), sleep_ms_(sleep_ms) {}

  StepOutput train_step(const Batch& batch) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    Tensor diff = net().forward(batch["x"]) - batch["y"];
    return {{"loss", (diff * diff).mean()}};
  }
  StepOutput test_step(const Batch& batch) override {
    Tensor diff = net().forward(batch["x"]) - batch["y"];
    return {{"loss", (diff * diff).mean()}};
  }
  void on_step_end() override {
    Base::on_step_end();
    if (mode() != Mode::train) return;
    std::printf("step %lld epoch %lld params %s\n", static_cast<long long>(optimizer_steps()),
                static_cast<long long>(progress().get_epoch()), params_hex(model()).c_str());
    std::fflush(stdout);
  }

 private:
  TinyNet& net() { return static_cast<TinyNet&>(model()); }
  int sleep_ms_;
};

int run(std::map<std::string, std::string> args) {
  auto arg = [&](const std::string& key, const std::string& fallback) {
    auto it = args.find(key);
    return it == args.end() ? fallback : it->second;
  };
  const std::string dir = arg("dir", "");
  if (dir.empty()) throw std::runtime_error("dir=<save dir> is required");
  const int64_t epochs = std::atoll(arg("epochs", "4").c_str());
  const int64_t steps_per_epoch = 10;

  manual_seed(5);
  auto model = std::make_shared<TinyNet>(std::atoll(arg("ballast_mb", "0").c_str()));
  auto opt = std::make_shared<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
  auto sched = std::make_shared<sched::CosineAnnealingScheduler>(
      opt, epochs * steps_per_epoch + std::atoll(arg("sched_slack", "10").c_str()), 0.005);

  Tensor x = linspace(-1.0, 1.0, 40).reshape({40, 1});
  Tensor y = x * 2.0 + 1.0 + sin(x * 7.0) * 0.3;
  auto data = std::make_shared<TensorDataset>(Batch{{"x", x}, {"y", y}});
  DataLoader loader(data, {.batch_size = 4, .shuffle = true,
                           .seed = static_cast<uint64_t>(std::atoll(arg("shuffle_seed", "11").c_str()))});

  TrainerOptions options;
  options.model = model;
  options.optimizer = opt;
  options.scheduler = sched;
  options.log_bar = false;
  options.scheduler_step_on_batch = true;
  options.seed = 9;
  StateManagerOptions state;
  state.save_path = dir;
  state.keep_best_k = 0;
  state.every_epoch = arg("every_epoch", "1") == "1";
  state.resume = arg("resume", "none");
  SignalTrainer trainer(options, state, SignalHandlerOptions{}, std::atoi(arg("sleep_ms", "20").c_str()));
  trainer.run(epochs, loader);

  std::printf("final steps %lld epoch %lld params %s losses %s\n", static_cast<long long>(trainer.optimizer_steps()),
              static_cast<long long>(trainer.progress().get_epoch()), params_hex(trainer.model()).c_str(),
              hex_list(trainer.loss_history()).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "signal_train_child: arguments are key=value, got '%s'\n", argv[i]);
      return 2;
    }
    args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signal_train_child: %s\n", e.what());
    return 3;
  }
}
