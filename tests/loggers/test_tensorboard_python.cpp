// TensorBoard's own reader loads what TensorBoardLogger wrote: tests/loggers/tb_read.py
// runs TensorBoard's EventAccumulator (everything kept) and the plugin accumulator behind
// its dashboards, and prints tags, steps, values, histograms and texts as JSON; this test
// compares them exactly with what was logged (scalars as float32). Skips, loudly, where
// python3 or the tensorboard package (pip, scripts/setup.sh) is missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "io/json.h"
#include "io/loggers/tensorboard_histogram.h"
#include "io/loggers/tensorboard_writer.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace zae::io {
namespace {

std::string find_python3() {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    const size_t end = std::min(p.find(':', start), p.size());
    const std::string candidate = p.substr(start, end - start) + "/python3";
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

double num(const json::Value& v) {
  if (v.kind == json::Kind::string) {
    if (v.text == "nan") return NAN;
    return v.text == "inf" ? INFINITY : -INFINITY;
  }
  EXPECT_EQ(v.kind, json::Kind::number);
  return std::strtod(v.text.c_str(), nullptr);
}

int64_t integer(const json::Value& v) {
  int64_t out = 0;
  EXPECT_EQ(json::to_int64(v.text, out), json::IntStatus::ok) << v.text;
  return out;
}

const json::Value& member(const json::Value& v, const std::string& key) {
  const json::Value* m = v.find(key);
  if (!m) throw std::runtime_error("tb_read.py output has no member " + key);
  return *m;
}

class TensorBoardPython : public test::TempDirTest {
 protected:
  void SetUp() override {
    test::TempDirTest::SetUp();
    python_ = find_python3();
    if (python_.empty()) GTEST_SKIP() << "SKIPPED: no python3 on PATH; TensorBoard's reader cannot be run";
    test::ChildProcess probe({python_, "-c", "import tensorboard"}, false, path("probe.err"));
    const int status = probe.wait();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::string why = read(path("probe.err"));
      while (!why.empty() && why.back() == '\n') why.pop_back();
      why = why.substr(why.rfind('\n') == std::string::npos ? 0 : why.rfind('\n') + 1);  // the exception line
      GTEST_SKIP() << "SKIPPED: " << python_ << " cannot import tensorboard (" << why
                   << "); pip install tensorboard (scripts/setup.sh does)";
    }
  }

  // Runs tb_read.py on `dir` and returns its JSON.
  json::Value read_with_tensorboard(const std::string& dir) {
    const std::string script = (std::filesystem::path(__FILE__).parent_path() / "tb_read.py").string();
    test::ChildProcess child({python_, script, dir}, true, path("tb_read.err"));
    EXPECT_TRUE(child.error().empty()) << child.error();
    std::string line;
    const bool got = child.read_line(line, 60000);
    const int status = child.wait();
    EXPECT_TRUE(got) << (child.timed_out() ? "tb_read.py timed out" : "tb_read.py printed nothing") << "\n"
                     << read(path("tb_read.err"));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "tb_read.py: " << test::describe_wait_status(status) << "\n" << read(path("tb_read.err"));
    return json::parse(got ? line : "{}", "tb_read.py output");
  }

  std::string python_;
};

TEST_F(TensorBoardPython, EventAccumulatorReadsExactlyWhatWasLogged) {
  const std::string dir = path("run");
  std::map<std::string, std::vector<std::pair<int64_t, float>>> scalars;
  std::map<int64_t, tensorboard::Histogram> histograms;
  std::string config_text;
  {
    TensorBoardLogger logger({.log_dir = dir, .flush_interval = std::chrono::milliseconds(20)});
    logger.log_config(json::parse(R"({"optimizer":{"name":"adamw","lr":0.0003},"layers":3})", "cfg"));
    for (int64_t step = 1; step <= 300; ++step) {
      const MetricValues values = {{"train/loss", 2.0 * std::exp(-0.01 * static_cast<double>(step)) + 1e-7},
                                   {"lr", 3e-4 * static_cast<double>(step) / 300.0},
                                   {"samples_per_s", 51234.56789 + static_cast<double>(step % 7)}};
      logger.log_metrics(values, step);
      for (const auto& [k, v] : values) scalars[k].emplace_back(step, static_cast<float>(v));
      if (step % 100 == 0) {
        std::vector<double> w;
        for (int i = 0; i < 5000; ++i) w.push_back(std::sin(0.37 * i + static_cast<double>(step)) * (1 + i % 5));
        histograms[step] = tensorboard::make_histogram(w);
        logger.log_histogram("params/fc1.weight", w, step);
      }
    }
    logger.log_metrics({{"test/accuracy_epoch", 0.9125}}, 300);
    scalars["test/accuracy_epoch"].emplace_back(300, 0.9125f);
    logger.log_summary({{"best/accuracy", 0.9125}});
    scalars["summary/best/accuracy"].emplace_back(300, 0.9125f);
    logger.finish(true);
  }

  const json::Value out = read_with_tensorboard(dir);
  if (HasFailure()) return;
  EXPECT_EQ(num(member(out, "file_version")), 2.0);

  // Scalars: the same tags, steps and float32 values, nothing more.
  const json::Value& got = member(out, "scalars");
  ASSERT_EQ(got.members.size(), scalars.size());
  for (const auto& [tag, rows] : scalars) {
    const json::Value* series = got.find(tag);
    ASSERT_NE(series, nullptr) << "TensorBoard did not see " << tag;
    ASSERT_EQ(series->items.size(), rows.size()) << tag;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(integer(series->items[i].items.at(0)), rows[i].first) << tag;
      EXPECT_EQ(num(series->items[i].items.at(1)), static_cast<double>(rows[i].second)) << tag << " #" << i;
    }
  }

  // Histograms: every HistogramProto field as written.
  const json::Value& hist = member(member(out, "histograms"), "params/fc1.weight");
  ASSERT_EQ(hist.items.size(), histograms.size());
  size_t i = 0;
  for (const auto& [step, h] : histograms) {
    const json::Value& row = hist.items[i++];
    EXPECT_EQ(integer(member(row, "step")), step);
    EXPECT_EQ(num(member(row, "min")), h.min);
    EXPECT_EQ(num(member(row, "max")), h.max);
    EXPECT_EQ(num(member(row, "num")), 5000.0);
    EXPECT_EQ(num(member(row, "sum")), h.sum);
    EXPECT_EQ(num(member(row, "sum_squares")), h.sum_squares);
    std::vector<double> limits, counts;
    for (const auto& x : member(row, "bucket_limit").items) limits.push_back(num(x));
    for (const auto& x : member(row, "bucket").items) counts.push_back(num(x));
    EXPECT_EQ(limits, h.bucket_limit);
    EXPECT_EQ(counts, h.bucket);
  }

  // The dashboards' view: [left, right, count] buckets spanning [min, max], counts summing to num.
  EXPECT_EQ(member(member(out, "plugins"), "params/fc1.weight").text, "histograms");
  const json::Value& dash = member(member(out, "plugin_histograms"), "params/fc1.weight");
  ASSERT_EQ(dash.items.size(), histograms.size());
  i = 0;
  for (const auto& [step, h] : histograms) {
    const json::Value& row = dash.items[i++];
    EXPECT_EQ(integer(member(row, "step")), step);
    const auto& buckets = member(row, "buckets").items;
    ASSERT_GT(buckets.size(), 10u);
    double total = 0;
    for (const auto& b : buckets) {
      ASSERT_EQ(b.items.size(), 3u);
      EXPECT_LE(num(b.items[0]), num(b.items[1]));
      total += num(b.items[2]);
    }
    EXPECT_EQ(total, 5000.0);
    EXPECT_EQ(num(buckets.front().items[0]), static_cast<double>(static_cast<float>(h.min)));
    EXPECT_EQ(num(buckets.back().items[1]), static_cast<double>(static_cast<float>(h.max)));
  }

  // The config as a text summary (the Text tab).
  EXPECT_EQ(member(member(out, "plugins"), "config").text, "text");
  const json::Value& texts = member(member(out, "texts"), "config");
  ASSERT_EQ(texts.items.size(), 1u);
  EXPECT_EQ(integer(texts.items[0].items.at(0)), 0);
  EXPECT_EQ(texts.items[0].items.at(1).text,
            "    {\n      \"optimizer\": {\n        \"name\": \"adamw\",\n        \"lr\": 0.0003\n      },\n"
            "      \"layers\": 3\n    }");
}

TEST_F(TensorBoardPython, ReadsSeveralRunsAndNonFiniteScalars) {
  {
    TensorBoardLogger a({.log_dir = path("runs/a"), .flush_interval = std::chrono::milliseconds(0)});
    TensorBoardLogger b({.log_dir = path("runs/a"), .flush_interval = std::chrono::milliseconds(0)});  // same dir
    a.log_metrics({{"x", NAN}}, 1);
    a.log_metrics({{"x", INFINITY}}, 2);
    b.log_metrics({{"y", -INFINITY}}, 3);
    b.log_metrics({{"y", 1e-45}}, 4);  // a float32 subnormal
    // Flushed after every call: TensorBoard sees the data while the loggers still run.
    const json::Value out = read_with_tensorboard(path("runs/a"));
    if (HasFailure()) return;
    const json::Value& x = member(member(out, "scalars"), "x");
    ASSERT_EQ(x.items.size(), 2u);
    EXPECT_TRUE(std::isnan(num(x.items[0].items.at(1))));
    EXPECT_EQ(num(x.items[1].items.at(1)), INFINITY);
    const json::Value& y = member(member(out, "scalars"), "y");
    ASSERT_EQ(y.items.size(), 2u);
    EXPECT_EQ(num(y.items[0].items.at(1)), -INFINITY);
    EXPECT_EQ(num(y.items[1].items.at(1)), static_cast<double>(1e-45f));
  }
}

}  // namespace
}  // namespace zae::io
