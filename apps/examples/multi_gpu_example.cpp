// The seed's MultiGPUAddon example, in C++: a linear classifier on a dummy dataset,
// trained data parallel by Trainer::add_on<MultiGPUAddon>, then saved by rank 0.
//
//   zae-example-multi-gpu                        # all CUDA devices (needs 2 or more)
//   zae-example-multi-gpu --devices cpu:3        # three CPU processes over Gloo
//   zae-launch --nproc-per-node 2 zae-example-multi-gpu --devices cpu:2
//
// Started on its own with several devices, the program becomes rank 0 and starts one
// worker process per other device (they re-run this program); under zae-launch, srun
// or mpirun each process joins the launched job instead. Only rank 0 prints and saves.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "dist/rendezvous.h"
#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/dataset.h"
#include "io/safetensors.h"
#include "nn/linear.h"
#include "nn/optim/adam.h"
#include "nn/sched/cosine.h"
#include "trainer/multi_gpu_addon.h"
#include "trainer/trainer.h"

namespace {

using namespace zae;

/// 'size' samples of 10 uniform features; label 1 when their mean exceeds 0.5.
std::shared_ptr<TensorDataset> dummy_dataset(int64_t size, uint64_t seed) {
  Generator gen(seed);
  Tensor data = rand({size, 10}, {}, &gen);                     // (N, 10)
  Tensor labels = gt(data.mean({1}), 0.5).to(DType::int64);     // (N,)
  return std::make_shared<TensorDataset>(Batch({data, labels}));
}

class MultiGPUTrainer : public Trainer::add_on<MultiGPUAddon> {
 public:
  using Base = Trainer::add_on<MultiGPUAddon>;
  using Base::Base;
  StepOutput train_step(const Batch& batch) override {
    Tensor outputs = dynamic_cast<nn::Layer&>(model()).forward(batch[0]);  // (B, 2)
    return {{"loss", cross_entropy(outputs, batch[1])}};
  }
  StepOutput test_step(const Batch& batch) override { return train_step(batch); }
};

/// "cpu:3" (three CPU processes), "cuda" (every CUDA device), or "cuda:0,cuda:1,...".
std::vector<Device> parse_devices(const std::string& text) {
  if (text == "cuda") {
    std::vector<Device> all;
    for (int i = 0; i < cuda::device_count(); ++i) all.push_back(Device::cuda(i));
    return all;
  }
  if (text.rfind("cpu:", 0) == 0) {
    const int n = std::atoi(text.c_str() + 4);
    ZAE_CHECK(n >= 1 && n <= 64, "--devices cpu:N needs 1 <= N <= 64, got '", text, "'");
    return std::vector<Device>(static_cast<size_t>(n), Device::cpu());
  }
  std::vector<Device> list;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    list.push_back(Device::parse(text.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return list;
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: zae-example-multi-gpu [--devices cuda|cpu:N|cuda:0,cuda:1] [--epochs 10] "
               "[--init-method tcp://localhost:12355] [--timeout-s 300] [--out dummy_model_mgpu.safetensors]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string devices = "cuda", init_method, out = "dummy_model_mgpu.safetensors";
  int epochs = 10, timeout_s = 300;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return usage("the seed's MultiGPUAddon example");
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    const std::string v = argv[++i];
    if (a == "--devices") devices = v;
    else if (a == "--epochs") epochs = std::atoi(v.c_str());
    else if (a == "--init-method") init_method = v;
    else if (a == "--timeout-s") timeout_s = std::atoi(v.c_str());
    else if (a == "--out") out = v;
    else return usage(("unknown option " + a).c_str());
  }
  try {
    const std::vector<Device> device_list = parse_devices(devices);
    ZAE_CHECK(device_list.size() > 1 || dist::launch_env_from_environment(),
              "this example needs several devices (found ", device_list.size(), " for --devices ", devices,
              "); try --devices cpu:2");
    ZAE_CHECK(epochs >= 1, "--epochs must be >= 1, got ", epochs);

    DataLoader train_loader(dummy_dataset(1000, 7), {.batch_size = 32, .shuffle = true, .seed = 1});
    manual_seed(42);  // the same initial model in every process (DDP also broadcasts rank 0's)
    auto model = std::make_shared<nn::Linear>(10, 2);
    auto optimizer = std::make_shared<optim::Adam>(model->parameters(), optim::AdamOptions{.lr = 0.001});
    auto scheduler = std::make_shared<sched::CosineAnnealingScheduler>(optimizer, 100);

    TrainerOptions options;
    options.model = model;
    options.device = device_list;
    options.mode = Mode::train;
    options.optimizer = optimizer;
    options.scheduler = scheduler;
    MultiGPUOptions multi_gpu;
    multi_gpu.init_method = init_method;
    multi_gpu.timeout = std::chrono::seconds(timeout_s);
    MultiGPUTrainer trainer(options, multi_gpu);
    trainer.run(epochs, train_loader);
    if (dist::is_main_process()) {
      trainer.save_model(out);
      std::printf("model saved to '%s'\n", out.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zae-example-multi-gpu: %s\n", e.what());
    return 1;
  }
}
