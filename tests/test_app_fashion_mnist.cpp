// The main job end to end on a slice of the real data: zae-train fashion-mnist
// trains with the Trainer and reports a test accuracy well above chance.
#include <gtest/gtest.h>

#include <filesystem>

#include "apps/fashion_mnist/fashion_mnist_job.h"
#include "tests/support/test_util.h"

namespace {

bool have_data() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

TEST(AppFashionMnist, MlpLearnsOnASlice) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  zae::apps::FashionMnistOptions o;
  o.epochs = 2;
  o.limit_train = 2000;
  o.limit_test = 500;
  o.device = "cpu";
  o.log_bar = false;
  testing::internal::CaptureStdout();
  zae::apps::FashionMnistResult r = zae::apps::run_fashion_mnist(o);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_GT(r.test_accuracy, 0.65) << out;  // chance is 0.10
  EXPECT_NE(out.find("test accuracy: "), std::string::npos) << out;
  EXPECT_NE(out.find("Epoch 2/2 | train_loss: "), std::string::npos) << out;
}

TEST(AppFashionMnist, CnnRunsOneEpochOnASlice) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  zae::apps::FashionMnistOptions o;
  o.model = "cnn";
  o.epochs = 1;
  o.batch_size = 64;
  o.limit_train = 512;
  o.limit_test = 256;
  o.device = "cpu";
  o.log_bar = false;
  testing::internal::CaptureStdout();
  zae::apps::FashionMnistResult r = zae::apps::run_fashion_mnist(o);
  testing::internal::GetCapturedStdout();
  EXPECT_GT(r.test_accuracy, 0.3);
}

TEST(AppFashionMnist, TargetAccuracyStopsAtTheFirstEpochThatReachesIt) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  zae::apps::FashionMnistOptions o;
  o.epochs = 6;
  o.limit_train = 1000;
  o.limit_test = 300;
  o.device = "cpu";
  o.log_bar = false;
  o.target_accuracy = 0.5;  // the MLP passes it in its first epoch on this slice
  testing::internal::CaptureStdout();
  zae::apps::FashionMnistResult r = zae::apps::run_fashion_mnist(o);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(r.epochs_run, 1) << out;
  EXPECT_GE(r.test_accuracy, 0.5) << out;
  EXPECT_GT(r.seconds_to_target, 0) << out;
  EXPECT_NE(out.find("reached 50.0% test accuracy after 1 epoch(s)"), std::string::npos) << out;

  o.epochs = 1;
  o.target_accuracy = 1.0;  // unreachable: runs every epoch and says so
  testing::internal::CaptureStdout();
  r = zae::apps::run_fashion_mnist(o);
  out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(r.seconds_to_target, -1) << out;
  EXPECT_NE(out.find("did not reach 100.0% test accuracy in 1 epoch(s)"), std::string::npos) << out;

  o.target_accuracy = 91;  // a percentage instead of a fraction
  zae::test::expect_throws_with([&] { zae::apps::run_fashion_mnist(o); }, {"--target-accuracy", "91"});
}

TEST(AppFashionMnist, BadArgumentsAreClearErrors) {
  zae::apps::FashionMnistOptions o;
  o.model = "resnet";
  zae::test::expect_throws_with([&] { zae::apps::make_fashion_model(o.model); }, {"unknown model 'resnet'"});
  o.model = "mlp";
  o.epochs = 0;
  zae::test::expect_throws_with([&] { zae::apps::run_fashion_mnist(o); }, {"--epochs", "0"});
  zae::test::expect_throws_with([&] { zae::apps::resolve_device("gpu"); }, {"invalid device string 'gpu'"});
  o.epochs = 1;
  o.data_root = "/nonexistent/fashion";
  zae::test::expect_throws_with([&] { zae::apps::run_fashion_mnist(o); }, {"/nonexistent/fashion", "dataset-fashion-mnist"});
}

}  // namespace
