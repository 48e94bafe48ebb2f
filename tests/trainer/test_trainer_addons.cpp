// Add-on composition: Trainer::add_on<A, B> wraps in order (the last listed is
// outermost), each add-on takes its own options, hooks call through.
#include <gtest/gtest.h>

#include <string>
#include <type_traits>
#include <vector>

#include "tests/support/test_util.h"
#include "tests/trainer/trainer_fixture.h"

namespace zae::test {
namespace {

std::vector<std::string> g_trace;

/// Counts steps and records that its run_batch wraps the inner one.
struct CounterAddon : AddOnBase {
  struct Options {
    int64_t start = 0;
  };
  template <class Base>
  class Mixin : public Base {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : Base(t, args...), count_(detail::pick_options<Options>(args...).start) {}
    void run_batch(const Batch& b) override {
      g_trace.push_back("counter");
      Base::run_batch(b);
    }
    void on_step_end() override {
      ++count_;
      Base::on_step_end();
    }
    int64_t count() const { return count_; }

   private:
    int64_t count_;
  };
};

/// Tags each epoch end with its label.
struct TagAddon : AddOnBase {
  struct Options {
    std::string label = "tag";
  };
  template <class Base>
  class Mixin : public Base {
   public:
    template <class... Args>
    explicit Mixin(const TrainerOptions& t, const Args&... args)
        : Base(t, args...), label_(detail::pick_options<Options>(args...).label) {}
    void run_batch(const Batch& b) override {
      g_trace.push_back(label_);
      Base::run_batch(b);
    }
    void on_epoch_end(int64_t epoch) override {
      epochs_.push_back(label_ + std::to_string(epoch));
      Base::on_epoch_end(epoch);
    }
    const std::vector<std::string>& epochs() const { return epochs_; }

   private:
    std::string label_;
    std::vector<std::string> epochs_;
  };
};

static_assert(!std::is_default_constructible_v<AddOnBase>, "AddOnBase must not be instantiable");
static_assert(std::is_abstract_v<Trainer>, "Trainer is abstract: users implement train_step/test_step");

class OneAddOn : public Trainer::add_on<CounterAddon> {
 public:
  using Base = Trainer::add_on<CounterAddon>;
  using Base::Base;
  StepOutput train_step(const Batch& b) override { return impl_.train_step_of(*this, b); }
  StepOutput test_step(const Batch& b) override { return impl_.train_step_of(*this, b); }

 private:
  struct Impl {
    StepOutput train_step_of(Trainer& t, const Batch& b) {
      Tensor pred = std::static_pointer_cast<nn::Linear>(t.model_ptr())->forward(b["x"]);
      Tensor d = pred - b["y"];
      return {{"loss", (d * d).mean()}};
    }
  } impl_;
};

class TwoAddOns : public Trainer::add_on<CounterAddon, TagAddon> {
 public:
  using Base = Trainer::add_on<CounterAddon, TagAddon>;
  using Base::Base;
  StepOutput train_step(const Batch& b) override {
    g_trace.push_back("step");
    Tensor pred = std::static_pointer_cast<nn::Linear>(model_ptr())->forward(b["x"]);
    Tensor d = pred - b["y"];
    return {{"loss", (d * d).mean()}};
  }
  StepOutput test_step(const Batch& b) override { return train_step(b); }
};

TEST(TrainerAddOns, OneAddOnWithItsOptions) {
  LineSetup s = line_setup();
  OneAddOn t(s.options, CounterAddon::Options{.start = 10});
  DataLoader loader(line_dataset(8), {.batch_size = 4});
  t.run(2, loader);
  EXPECT_EQ(t.count(), 14);
  OneAddOn defaults(s.options);  // options absent: the add-on's defaults
  EXPECT_EQ(defaults.count(), 0);
}

TEST(TrainerAddOns, TwoAddOnsComposeInOrderLastOutermost) {
  LineSetup s = line_setup();
  // Options may come in any order: each add-on finds its own by type.
  TwoAddOns t(s.options, TagAddon::Options{.label = "T"}, CounterAddon::Options{.start = 1});
  DataLoader loader(line_dataset(4), {.batch_size = 4});
  g_trace.clear();
  t.run(2, loader);
  EXPECT_EQ(g_trace, (std::vector<std::string>{"T", "counter", "step", "T", "counter", "step"}));
  EXPECT_EQ(t.count(), 3);
  EXPECT_EQ(t.epochs(), (std::vector<std::string>{"T1", "T2"}));
  // The composed type is an ordinary Trainer.
  Trainer& base = t;
  EXPECT_EQ(base.progress().get_epoch(), 3);
}

}  // namespace
}  // namespace zae::test
