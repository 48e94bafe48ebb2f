// Child program of tests/dist/test_multi_gpu_addon.cpp: a deterministic data parallel
// job with Trainer::add_on<StateManagerAddon, SignalHandlerAddon, MultiGPUAddon> on CPU
// devices (Gloo).
//
//   multi_gpu_child out=<dir> [devices=N] [epochs=2] [batch=4] [samples=48] [accumulate=1]
//                   [die_rank=-1 die_step=0] [nan_rank=-1 nan_step=0] [timeout_ms=20000]
//                   [init=<init_method>] [save=0] [shuffle=0] [resume=none|last] [sleep_ms=0]
//
// A JsonlLoggerAddon logs to <out>/log.jsonl (rank 0 only).
// Model: 3-5-2 tanh MLP regressing fixed targets with a mean squared error, SGD (lr 0.1),
// no shuffle unless shuffle=1, every number from fixed seeds. devices=N lists N CPU
// devices: started alone the program spawns N-1 workers; under zae-launch it joins.
// At the end of the last epoch each rank writes <out>/rank<R>.txt:
//   params <p0,p1,...>      every parameter element, %a (exact)
//   losses <l0,...>         the logged (rank-averaged) train losses
//   test_losses <l0,...>    the same for validation (valid=1)
//   samples <i0,i1,...>     the dataset rows this rank trained on, in order
//   epochs <n> skipped <k>
// die_rank/die_step: that rank SIGKILLs itself at that train step; nan_rank/nan_step:
// that rank's loss is NaN at that step (on_nonfinite_loss = skip). save=1: the
// StateManagerAddon saves <out>/ckpt/last.ckpt every epoch (and on SIGINT/SIGTERM, through
// the SignalHandlerAddon); resume=last continues from it. sleep_ms: each train step sleeps
// first (so that a signal lands mid-epoch); each rank writes its pid to <out>/pid<R> at its
// first step. graphs=1: cuda_graphs = on with a graph backend that fails any use, and
// on_nonfinite_loss = stop, so that only MultiGPUAddon's blocker keeps the steps eager.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "dist/dist.h"
#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "nn/container.h"
#include "nn/linear.h"
#include "nn/optim/sgd.h"
#include "trainer/logger_addons.h"
#include "trainer/multi_gpu_addon.h"
#include "trainer/signal_handler_addon.h"
#include "trainer/state_manager_addon.h"
#include "trainer/trainer.h"

namespace {

using namespace zae;

std::map<std::string, std::string> parse(int argc, char** argv) {
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    if (eq != std::string::npos) kv[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return kv;
}

long get(const std::map<std::string, std::string>& kv, const std::string& k, long def) {
  auto it = kv.find(k);
  return it == kv.end() ? def : std::atol(it->second.c_str());
}

class TinyMlp : public nn::Layer {
 public:
  TinyMlp() : Layer("TinyMlp") {
    fc1_ = register_module("fc1", std::make_shared<nn::Linear>(3, 5));
    fc2_ = register_module("fc2", std::make_shared<nn::Linear>(5, 2));
  }
  Tensor forward(const Tensor& x) override { return fc2_->forward(tanh(fc1_->forward(x))); }

 private:
  std::shared_ptr<nn::Linear> fc1_, fc2_;
};

void write_list(FILE* f, const char* key, const std::vector<double>& values, const char* format) {
  std::fprintf(f, "%s ", key);
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) std::fputc(',', f);
    std::fprintf(f, format, values[i]);
  }
}

using ChildBase = Trainer::add_on<JsonlLoggerAddon, StateManagerAddon, SignalHandlerAddon, MultiGPUAddon>;

class ChildTrainer : public ChildBase {
 public:
  ChildTrainer(const TrainerOptions& t, const io::JsonlLoggerOptions& j, const StateManagerOptions& s,
               const MultiGPUOptions& m, std::map<std::string, std::string> kv)
      : ChildBase(t, j, s, m), kv_(std::move(kv)) {}

  StepOutput train_step(const Batch& batch) override {
    ++train_steps_;
    const int rank = dist::get_rank();
    if (train_steps_ == 1) {
      const std::string pid_path = kv_.at("out") + "/pid" + std::to_string(rank);
      if (FILE* f = std::fopen((pid_path + ".tmp").c_str(), "w")) {
        std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
        std::fclose(f);
        std::rename((pid_path + ".tmp").c_str(), pid_path.c_str());
      }
    }
    if (const long ms = get(kv_, "sleep_ms", 0); ms > 0) ::usleep(static_cast<useconds_t>(ms) * 1000);
    for (int64_t i : batch[2].to_vector<int64_t>()) samples_.push_back(i);
    if (rank == get(kv_, "die_rank", -1) && train_steps_ == get(kv_, "die_step", 0)) ::raise(SIGKILL);
    Tensor loss = mse_loss(net().forward(batch[0]), batch[1]);
    if (rank == get(kv_, "nan_rank", -1) && train_steps_ == get(kv_, "nan_step", 0)) loss = loss * NAN;
    return {{"loss", loss}};
  }
  StepOutput test_step(const Batch& batch) override { return {{"loss", mse_loss(net().forward(batch[0]), batch[1])}}; }

  void on_epoch_end(int64_t epoch) override {
    ChildBase::on_epoch_end(epoch);
    if (epoch != get(kv_, "epochs", 2)) return;
    const std::string path = kv_.at("out") + "/rank" + std::to_string(dist::get_rank()) + ".txt";
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return;
    std::vector<double> params;
    for (const auto& [name, p] : model().named_parameters())
      for (float v : p.contiguous().to_vector<float>()) params.push_back(v);
    std::vector<double> rows(samples_.begin(), samples_.end());
    write_list(f, "params", params, "%a");
    write_list(f, "\nlosses", loss_history(), "%a");
    write_list(f, "\ntest_losses", loss_history(Mode::test), "%a");
    write_list(f, "\nsamples", rows, "%.0f");
    std::fprintf(f, "\nepochs %lld skipped %lld\n", static_cast<long long>(epoch),
                 static_cast<long long>(skipped_batches()));
    std::fclose(f);
  }

 private:
  nn::Layer& net() { return dynamic_cast<nn::Layer&>(model()); }
  std::map<std::string, std::string> kv_;
  int64_t train_steps_ = 0;
  std::vector<int64_t> samples_;
};

}  // namespace

int main(int argc, char** argv) {
  const auto kv = parse(argc, argv);
  if (!kv.count("out")) {
    std::fprintf(stderr, "multi_gpu_child: out=<dir> is required\n");
    return 2;
  }
  try {
    if (get(kv, "graphs", 0) != 0) {
      // Data parallel steps must never reach a graph backend: this one fails the job if used.
      struct FailingBackend : GraphBackend {
        void warmup(const std::function<void()>&) override { ZAE_FAIL("graph backend used in a data parallel job"); }
        void capture(const std::function<void()>&) override { ZAE_FAIL("graph backend used in a data parallel job"); }
        void replay() override { ZAE_FAIL("graph backend used in a data parallel job"); }
        void reset() noexcept override {}
      };
      set_graph_backend_factory_for_testing(
          [](Device, std::string*) -> std::unique_ptr<GraphBackend> { return std::make_unique<FailingBackend>(); });
    }
    const int64_t samples = get(kv, "samples", 48);
    Generator gen(3);
    Tensor x = randn({samples, 3}, {}, &gen);  // (N, 3)
    Tensor y = randn({samples, 2}, {}, &gen);  // (N, 2)
    Tensor index = arange(samples);            // (N,) which rows a rank saw
    DataLoader loader(std::make_shared<TensorDataset>(Batch({x, y, index})),
                      {.batch_size = get(kv, "batch", 4), .shuffle = get(kv, "shuffle", 0) != 0, .seed = 5});
    manual_seed(11);
    auto model = std::make_shared<TinyMlp>();
    auto opt = std::make_shared<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = 0.1});
    const int devices = static_cast<int>(get(kv, "devices", 2));
    StateManagerOptions sm;
    sm.save_path = kv.at("out") + "/ckpt";
    sm.every_epoch = get(kv, "save", 0) != 0;
    sm.keep_best_k = 0;
    if (kv.count("resume")) sm.resume = kv.at("resume");
    MultiGPUOptions mg;
    mg.timeout = std::chrono::milliseconds(get(kv, "timeout_ms", 20000));
    if (kv.count("init")) mg.init_method = kv.at("init");
    TrainerOptions options;
    options.model = model;
    options.device = std::vector<Device>(static_cast<size_t>(devices), Device::cpu());
    options.optimizer = opt;
    options.log_bar = false;
    options.accumulate_grad_batches = get(kv, "accumulate", 1);
    options.on_nonfinite_loss = get(kv, "graphs", 0) != 0 ? NonFiniteLoss::stop : NonFiniteLoss::skip;
    if (get(kv, "graphs", 0) != 0) options.cuda_graphs = CudaGraphs::on;
    io::JsonlLoggerOptions jsonl;
    jsonl.path = kv.at("out") + "/log.jsonl";  // written by rank 0 only
    jsonl.append = kv.count("resume") > 0;
    ChildTrainer trainer(options, jsonl, sm, mg, kv);
    // valid=1: validate every epoch on all rows (sharded like the train loader).
    DataLoader valid(std::make_shared<TensorDataset>(Batch({x, y, index})), {.batch_size = get(kv, "batch", 4)});
    trainer.run(get(kv, "epochs", 2), loader, get(kv, "valid", 0) ? &valid : nullptr);
    std::printf("done rank %d\n", dist::get_rank());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "multi_gpu_child: %s\n", e.what());
    return 1;
  }
}
