#include "apps/fashion_mnist/fashion_mnist_job.h"

#include <chrono>
#include <cstdio>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/fashion_mnist.h"
#include "nn/nn.h"
#include "nn/optim/adam.h"
#include "trainer/trainer.h"

namespace zae::apps {

namespace {

/// Classification with cross-entropy; test steps also count correct predictions.
class ClassifierTrainer : public Trainer {
 public:
  using Trainer::Trainer;

  StepOutput train_step(const Batch& batch) override {
    Tensor logits = net().forward(batch["image"]);  // (B, 10)
    return {{"loss", cross_entropy(logits, batch["label"])}};
  }
  StepOutput test_step(const Batch& batch) override {
    Tensor logits = net().forward(batch["image"]);
    Tensor correct = eq(argmax(logits, 1), batch["label"]).to(DType::float64).sum();
    correct_ += correct.item();
    seen_ += batch["label"].size(0);
    return {{"loss", cross_entropy(logits, batch["label"])}};
  }
  Metrics metric_on_epoch_end() override {
    if (mode() != Mode::test || seen_ == 0) return {};
    Metrics m{{"accuracy", correct_ / static_cast<double>(seen_)}};
    correct_ = 0;
    seen_ = 0;
    return m;
  }

 private:
  nn::Sequential& net() { return static_cast<nn::Sequential&>(model()); }
  double correct_ = 0;
  int64_t seen_ = 0;
};

std::shared_ptr<Dataset> load_split(const FashionMnistOptions& o, bool train) {
  FashionMNIST ds(FashionMNISTOptions{.root = o.data_root, .train = train, .normalize = true});
  Tensor images = ds.images(), labels = ds.labels();
  int64_t limit = train ? o.limit_train : o.limit_test;
  if (limit > 0 && limit < images.size(0)) {
    images = images.narrow(0, 0, limit).contiguous();
    labels = labels.narrow(0, 0, limit).contiguous();
  }
  return std::make_shared<TensorDataset>(Batch{{"image", images}, {"label", labels}});
}

}  // namespace

std::shared_ptr<nn::Sequential> make_fashion_model(const std::string& name) {
  using namespace nn;
  if (name == "mlp") {
    return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
        std::make_shared<Flatten>(), std::make_shared<Linear>(784, 512), std::make_shared<ReLU>(),
        std::make_shared<Linear>(512, 256), std::make_shared<ReLU>(), std::make_shared<Linear>(256, 10)});
  }
  if (name == "cnn") {
    return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
        std::make_shared<Conv2d>(Conv2d::Options{.in_channels = 1, .out_channels = 32, .kernel_size = 3, .padding = 1}),
        std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
        std::make_shared<Conv2d>(Conv2d::Options{.in_channels = 32, .out_channels = 64, .kernel_size = 3, .padding = 1}),
        std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
        std::make_shared<Linear>(64 * 7 * 7, 128), std::make_shared<ReLU>(), std::make_shared<Linear>(128, 10)});
  }
  ZAE_FAIL("unknown model '", name, "' (expected mlp or cnn)");
}

Device resolve_device(const std::string& text) {
  if (text == "auto") return cuda::is_available() && cuda::ops_available() ? Device::cuda(0) : Device::cpu();
  return Device::parse(text);
}

FashionMnistResult run_fashion_mnist(const FashionMnistOptions& o) {
  ZAE_CHECK(o.epochs >= 1, "fashion-mnist: --epochs must be >= 1, got ", o.epochs);
  ZAE_CHECK(o.batch_size >= 1, "fashion-mnist: --batch-size must be >= 1, got ", o.batch_size);
  ZAE_CHECK(o.lr > 0, "fashion-mnist: --lr must be > 0, got ", o.lr);
  const Device device = resolve_device(o.device);
  manual_seed(o.seed);
  auto train_set = load_split(o, true);
  auto test_set = load_split(o, false);
  DataLoader train_loader(train_set, {.batch_size = o.batch_size, .shuffle = true, .seed = o.seed,
                                      .num_workers = o.num_workers, .pin_memory = device.is_cuda()});
  DataLoader test_loader(test_set, {.batch_size = 1000, .num_workers = o.num_workers, .pin_memory = device.is_cuda()});

  auto model = make_fashion_model(o.model);
  model->to(device);
  auto optimizer = std::make_shared<optim::AdamW>(model->parameters(),
                                                  optim::AdamWOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  std::printf("fashion-mnist: %s, %lld parameters, %lld train / %lld test images, device %s\n", o.model.c_str(),
              static_cast<long long>(model->num_parameters()), static_cast<long long>(train_set->size()),
              static_cast<long long>(test_set->size()), device.str().c_str());
  ClassifierTrainer trainer({.model = model, .device = device, .optimizer = optimizer, .log_bar = o.log_bar,
                             .seed = o.seed});
  auto start = std::chrono::steady_clock::now();
  trainer.run(o.epochs, train_loader, &test_loader);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  FashionMnistResult r;
  r.test_accuracy = trainer.test_metrics().at("accuracy");
  r.final_train_loss = trainer.train_metrics().at("loss");
  r.seconds_per_epoch = seconds / static_cast<double>(o.epochs);
  std::printf("time per epoch (train + test): %.1f s\n", r.seconds_per_epoch);
  std::printf("test accuracy: %.1f%%\n", 100.0 * r.test_accuracy);
  return r;
}

}  // namespace zae::apps
