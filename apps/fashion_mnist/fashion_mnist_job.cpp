#include "apps/fashion_mnist/fashion_mnist_job.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <type_traits>

#include "engine/zae.h"
#include "io/dataloader.h"
#include "io/fashion_mnist.h"
#include "nn/nn.h"
#include "nn/optim/adam.h"
#include "trainer/logger_addons.h"
#include "trainer/signal_handler_addon.h"
#include "trainer/state_manager_addon.h"
#include "trainer/trainer.h"

namespace zae::apps {

namespace {

/// Classification with cross-entropy; test steps also count correct predictions.
/// `Base` is the Trainer with its add-ons (with or without the state manager).
template <class Base>
class ClassifierTrainer : public Base {
 public:
  using Base::Base;

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
    if (this->mode() != Mode::test || seen_ == 0) return {};
    const double accuracy = correct_ / static_cast<double>(seen_);
    Metrics m{{"accuracy", accuracy}};
    correct_ = 0;
    seen_ = 0;
    if (target_accuracy_ > 0 && accuracy >= target_accuracy_ && seconds_to_target_ < 0) {
      seconds_to_target_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      this->request_stop("test accuracy " + std::to_string(accuracy) + " reached the target " +
                         std::to_string(target_accuracy_));
    }
    return m;
  }
  /// Stop after the first epoch whose test accuracy reaches `target` (0: never); the clock
  /// for seconds_to_target() starts now.
  void set_target_accuracy(double target) {
    target_accuracy_ = target;
    start_ = std::chrono::steady_clock::now();
  }
  double seconds_to_target() const { return seconds_to_target_; }
  void on_epoch_end(int64_t epoch) override {
    Base::on_epoch_end(epoch);
    if (this->mode() == Mode::train) ++epochs_closed_;
  }
  /// Train epochs this trainer closed (a resumed run counts only its own).
  int64_t epochs_closed() const { return epochs_closed_; }

 private:
  nn::Sequential& net() { return static_cast<nn::Sequential&>(this->model()); }
  double correct_ = 0;
  int64_t seen_ = 0;
  int64_t epochs_closed_ = 0;
  double target_accuracy_ = 0;
  double seconds_to_target_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

using PlainTrainer = ClassifierTrainer<Trainer::add_on<MetricLoggersAddon, SignalHandlerAddon>>;
using CheckpointingTrainer =
    ClassifierTrainer<Trainer::add_on<MetricLoggersAddon, StateManagerAddon, SignalHandlerAddon>>;

// Builds the trainer, trains up to o.epochs, and reports (the part that depends on the trainer type).
template <class T, class... AddOnOptions>
FashionMnistResult train(const FashionMnistOptions& o, const TrainerOptions& topts, DataLoader& train_loader,
                         DataLoader& test_loader, const AddOnOptions&... addon_options) {
  T trainer(topts, addon_options...);
  auto start = std::chrono::steady_clock::now();
  trainer.set_target_accuracy(o.target_accuracy);
  trainer.run(o.epochs, train_loader, &test_loader);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  FashionMnistResult r;
  if constexpr (std::is_same_v<T, CheckpointingTrainer>) {
    if (trainer.state_manager().resumed_from()) r.resumed_from = *trainer.state_manager().resumed_from();
  }
  // Epochs closed by this call (a resumed mid-epoch run also closes the epoch it continued).
  r.epochs_run = trainer.epochs_closed();
  if (!trainer.test_metrics().count("accuracy")) {
    // Nothing was left to train (a resume of a finished plan): evaluate the restored weights.
    std::printf("nothing left to train: the checkpoint has %lld epochs done, --epochs is %lld\n",
                static_cast<long long>(trainer.progress().get_epoch() - 1), static_cast<long long>(o.epochs));
    trainer.toggle(Mode::test);
    trainer.run_epoch(test_loader);  // fills test_metrics, accuracy included
    trainer.toggle(Mode::train);
  }
  r.test_accuracy = trainer.test_metrics().at("accuracy");
  auto loss = trainer.train_metrics().find("loss");
  r.final_train_loss = loss != trainer.train_metrics().end() ? loss->second : std::nan("");
  if (r.epochs_run > 0) {
    r.seconds_per_epoch = seconds / static_cast<double>(r.epochs_run);
    std::printf("time per epoch (train + test): %.1f s\n", r.seconds_per_epoch);
  }
  std::printf("test accuracy: %.1f%%\n", 100.0 * r.test_accuracy);
  if (o.target_accuracy > 0) {
    r.seconds_to_target = trainer.seconds_to_target();
    if (r.seconds_to_target >= 0)
      std::printf("reached %.1f%% test accuracy after %lld epoch(s), %.2f s\n", 100.0 * o.target_accuracy,
                  static_cast<long long>(r.epochs_run), r.seconds_to_target);
    else
      std::printf("did not reach %.1f%% test accuracy in %lld epoch(s)\n", 100.0 * o.target_accuracy,
                  static_cast<long long>(r.epochs_run));
  }
  if constexpr (std::is_same_v<T, CheckpointingTrainer>) {
    const StateManager& sm = trainer.state_manager();
    std::printf("checkpoints: %s", sm.last_path().c_str());
    for (const auto& b : sm.best_files()) std::printf(", %s (best accuracy %.4f)", b.path.c_str(), b.value);
    std::printf("\n");
  }
  return r;
}

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

FashionMnistResult run_fashion_mnist(const FashionMnistOptions& o) {
  ZAE_CHECK(o.epochs >= 1, "fashion-mnist: --epochs must be >= 1, got ", o.epochs);
  ZAE_CHECK(o.batch_size >= 1, "fashion-mnist: --batch-size must be >= 1, got ", o.batch_size);
  ZAE_CHECK(o.lr > 0, "fashion-mnist: --lr must be > 0, got ", o.lr);
  ZAE_CHECK(o.save_every_steps >= 0, "fashion-mnist: --save-every-steps must be >= 0, got ", o.save_every_steps);
  ZAE_CHECK(o.target_accuracy >= 0 && o.target_accuracy <= 1, "fashion-mnist: --target-accuracy must be in [0, 1] "
            "(a fraction, 0 = off), got ", o.target_accuracy);
  const bool checkpoints = !o.save_dir.empty();
  ZAE_CHECK(checkpoints || o.resume.empty(), "fashion-mnist: --resume ", o.resume,
            " needs --save-dir (the directory the resumed run keeps saving to)");
  ZAE_CHECK(checkpoints || o.save_format.empty(), "fashion-mnist: --save-format needs --save-dir");
  ZAE_CHECK(checkpoints || o.save_every_steps == 0, "fashion-mnist: --save-every-steps needs --save-dir");
  const SaveFormat format = o.save_format.empty() ? SaveFormat::ckpt : parse_save_format(o.save_format);
  const Device device = resolve_device(o.device);
  const MetricLoggersOptions loggers = make_loggers(o.loggers, "fashion-mnist");  // bad logger options fail before any work
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
  TrainerOptions topts;
  topts.model = model;
  topts.device = device;
  topts.optimizer = optimizer;
  topts.log_bar = o.log_bar;
  topts.seed = o.seed;
  if (!checkpoints) return train<PlainTrainer>(o, topts, train_loader, test_loader, loggers, SignalHandlerOptions{});

  StateManagerOptions sm;
  sm.save_path = o.save_dir;
  sm.save_format = format;
  sm.keep_best_k = 1;
  sm.monitor = "accuracy";  // the test accuracy (the job validates every epoch)
  sm.maximize = true;
  sm.every_n_steps = o.save_every_steps;
  sm.resume = o.resume.empty() ? "none" : o.resume;
  sm.metadata = {{"job", "fashion-mnist"},
                 {"model", o.model},
                 {"batch_size", std::to_string(o.batch_size)},
                 {"seed", std::to_string(o.seed)}};
  return train<CheckpointingTrainer>(o, topts, train_loader, test_loader, loggers, sm, SignalHandlerOptions{});
}

}  // namespace zae::apps
