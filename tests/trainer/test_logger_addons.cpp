// The logger add-ons composed with Trainer::add_on, several at once with their own
// options: TensorBoard (with parameter and gradient histograms), CSV and JSONL.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/loggers/tensorboard_reader.h"
#include "support/temp_dir.h"
#include "trainer/logger_addons.h"
#include "trainer/trainer_fixture.h"

namespace {

using namespace zae;

using Logged = Trainer::add_on<CSVLoggerAddon, JsonlLoggerAddon, TensorBoardLoggerAddon>;

class LoggedTrainer : public Logged {
 public:
  using Logged::Logged;
  StepOutput train_step(const Batch& batch) override {
    Tensor pred = std::static_pointer_cast<nn::Linear>(model_ptr())->forward(batch["x"]);
    Tensor diff = pred - batch["y"];
    return {{"loss", (diff * diff).mean()}};
  }
  StepOutput test_step(const Batch& batch) override { return train_step(batch); }
};

class LoggerAddonsTest : public test::TempDirTest {};

TEST_F(LoggerAddonsTest, ThreeLoggersWithTheirOwnOptionsAndHistogramsEveryNSteps) {
  auto setup = test::line_setup(0.1);
  DataLoader train(test::line_dataset(32), {.batch_size = 8});  // 4 steps per epoch
  TensorBoardAddonOptions tb;
  tb.writer.log_dir = path("tb");
  tb.histogram_every_n_steps = 3;
  {
    LoggedTrainer trainer(setup.options, io::CsvLoggerOptions{.path = path("m.csv")},
                          io::JsonlLoggerOptions{.path = path("m.jsonl")}, tb);
    trainer.run(2, train);
  }
  // TensorBoard: train/loss at steps 1..8, epoch rows at 4 and 8, histograms after
  // optimizer steps 3 and 6 of every parameter and gradient.
  std::map<std::string, std::vector<int64_t>> steps_by_tag;
  std::map<std::string, double> histogram_counts;
  for (const auto& rec : io::tensorboard::read_event_dir(path("tb")))
    for (const auto& v : rec.event.values) {
      steps_by_tag[v.tag].push_back(rec.event.step);
      if (v.kind == io::tensorboard::SummaryValue::Kind::histogram) histogram_counts[v.tag] = v.histogram.num;
    }
  EXPECT_EQ(steps_by_tag["train/loss"], (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(steps_by_tag["train/loss_epoch"], (std::vector<int64_t>{4, 8}));
  for (const char* tag : {"params/weight", "params/bias", "grads/weight", "grads/bias"})
    EXPECT_EQ(steps_by_tag[tag], (std::vector<int64_t>{3, 6})) << tag;
  EXPECT_EQ(histogram_counts["params/weight"], 1.0);  // a 1x1 weight: one value

  // JSONL and CSV got the same 10 rows.
  std::vector<std::string> jsonl_lines;
  {
    std::stringstream s(read(path("m.jsonl")));
    for (std::string line; std::getline(s, line);)
      if (line.rfind("{\"step\"", 0) == 0) jsonl_lines.push_back(line);
  }
  EXPECT_EQ(jsonl_lines.size(), 10u);
  size_t csv_rows = 0;
  {
    std::stringstream s(read(path("m.csv")));
    for (std::string line; std::getline(s, line);) csv_rows += !line.empty();
  }
  EXPECT_EQ(csv_rows, 11u);  // header + 10
}

TEST_F(LoggerAddonsTest, BadLoggerOptionsFailAtTheFirstRun) {
  auto setup = test::line_setup(0.1);
  DataLoader train(test::line_dataset(8), {.batch_size = 8});
  std::ofstream(path("file")) << "x";
  LoggedTrainer trainer(setup.options, io::CsvLoggerOptions{.path = path("file") + "/m.csv"},
                        io::JsonlLoggerOptions{.path = path("m.jsonl")}, TensorBoardAddonOptions{{.log_dir = path("tb")}});
  EXPECT_THROW(trainer.run(1, train), Error);
}

}  // namespace
