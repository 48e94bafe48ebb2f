// JsonlLogger and CsvLogger: the files are parsed back (JSON with io/json.h, CSV with the
// quoting-aware parser in file_logger_checks.h, independent of the logger's own) and compared with
// what was logged: values bit for bit, key order, padding when keys appear mid-run,
// append mode, quoting, errors at construction, a write failure that only warns, and a
// concurrent reader that must only ever see whole lines.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "io/json.h"
#include "io/loggers/csv_logger.h"
#include "io/loggers/jsonl_logger.h"
#include "io/state_json.h"
#include "loggers/file_logger_checks.h"
#include "support/temp_dir.h"

namespace zae::io {
namespace {

using test::TempDirTest;
namespace fs = std::filesystem;
using namespace file_logger_checks;

// ---------------------------------------------------------------- JSONL

using JsonlLoggerTest = TempDirTest;

TEST_F(JsonlLoggerTest, RowsMatchWhatWasLogged) {
  const std::string file = path("run/metrics.jsonl");  // the parent directory is created
  const double before = now_seconds();
  {
    JsonlLogger logger({.path = file});
    EXPECT_EQ(logger.name(), "jsonl");
    logger.log_config(sample_config());
    logger.log_metrics({{"train/loss", 0.5}, {"lr", 0.001}}, 1);
    logger.log_metrics({{"train/loss", 0.25}, {"lr", 0.002}}, 2);
    logger.log_metrics({{"train/loss_epoch", 0.375}}, 2);
    logger.log_summary({{"best/loss", 0.25}});
    logger.flush();
    logger.finish(true);
    logger.finish(false);                       // ignored
    logger.log_metrics({{"late", 1.0}}, 3);      // ignored after finish
  }
  const double after = now_seconds();
  const auto lines = split_lines(read(file));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "{\"config\":" + json::dump(sample_config()) + "}");
  const struct {
    int64_t step;
    MetricValues values;
  } want[] = {{1, {{"lr", 0.001}, {"train/loss", 0.5}}},
              {2, {{"lr", 0.002}, {"train/loss", 0.25}}},
              {2, {{"train/loss_epoch", 0.375}}}};
  for (size_t r = 0; r < 3; ++r) {
    const json::Value row = json::parse(lines[1 + r], "row");
    ASSERT_EQ(row.kind, json::Kind::object);
    ASSERT_EQ(row.members.size(), 2 + want[r].values.size()) << lines[1 + r];
    EXPECT_EQ(row.members[0].first, "step");
    EXPECT_EQ(state::as_int(row.members[0].second, "step"), want[r].step);
    EXPECT_EQ(row.members[1].first, "wall_time");
    const double t = state::as_double(row.members[1].second, "wall_time");
    EXPECT_GE(t, before - 1e-3);
    EXPECT_LE(t, after + 1e-3);
    size_t m = 2;
    for (const auto& [key, value] : want[r].values) {
      EXPECT_EQ(row.members[m].first, key);
      expect_same(state::as_double(row.members[m].second, key), value, key);
      ++m;
    }
  }
  EXPECT_EQ(lines[4], "{\"summary\":{\"best/loss\":0.25}}");
  EXPECT_EQ(lines[5], "{\"finished\":true,\"success\":true}");
}

TEST_F(JsonlLoggerTest, ExactDoublesAndNonFiniteValues) {
  const std::string file = path("m.jsonl");
  JsonlLogger logger({.path = file});
  logger.log_metrics(kTricky, 7);
  logger.log_summary(kTricky);
  logger.finish(false);
  const auto lines = split_lines(read(file));
  ASSERT_EQ(lines.size(), 3u);
  const json::Value row = json::parse(lines[0], "row");
  const json::Value summary = state::get(json::parse(lines[1], "summary"), "summary", "summary line");
  for (const auto& [key, value] : kTricky) {
    expect_same(state::get_double(row, key, "row"), value, key);
    expect_same(state::get_double(summary, key, "summary"), value, key);
  }
  EXPECT_NE(lines[0].find("\"a/tenth\":0.1,"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"b/tiny\":1e-300,"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"c/big\":123456789.123,"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"h/nan\":\"nan\",\"i/inf\":\"inf\",\"j/minus_inf\":\"-inf\"}"), std::string::npos);
  EXPECT_EQ(lines[2], "{\"finished\":true,\"success\":false}");
}

TEST_F(JsonlLoggerTest, AppendContinuesAndTruncateReplaces) {
  const std::string file = path("m.jsonl");
  {
    JsonlLogger logger({.path = file});
    logger.log_metrics({{"loss", 1.0}}, 1);
    logger.finish(true);
  }
  {
    JsonlLogger logger({.path = file, .append = true});
    logger.log_metrics({{"loss", 0.5}}, 2);
  }  // destroyed without finish: no "finished" line
  auto lines = split_lines(read(file));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(state::get_int(json::parse(lines[2], "row"), "step", "row"), 2);

  // A crash cut the last line off: the appended lines start on a line of their own.
  { std::ofstream(file, std::ios::app) << "{\"step\":3,\"wall_ti"; }
  {
    JsonlLogger logger({.path = file, .append = true});
    logger.log_metrics({{"loss", 0.25}}, 4);
    logger.log_metrics({{"loss", 0.125}}, 5);
  }
  lines = split_lines(read(file));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[3], "{\"step\":3,\"wall_ti");
  EXPECT_EQ(state::get_double(json::parse(lines[4], "row"), "loss", "row"), 0.25);
  EXPECT_EQ(state::get_double(json::parse(lines[5], "row"), "loss", "row"), 0.125);

  {
    JsonlLogger logger({.path = file});  // not append: replaced
    logger.log_metrics({{"loss", 9.0}}, 1);
  }
  EXPECT_EQ(split_lines(read(file)).size(), 1u);
}

TEST_F(JsonlLoggerTest, UnopenablePathIsAnErrorNamingIt) {
  { std::ofstream(path("blocker")) << "a regular file"; }
  const std::string under_file = path("blocker/sub/m.jsonl");
  try {
    JsonlLogger logger({.path = under_file});
    FAIL() << "no error for a path under a regular file";
  } catch (const zae::Error& e) {
    EXPECT_NE(std::string(e.what()).find(under_file), std::string::npos) << e.what();
  }
  EXPECT_THROW(JsonlLogger({.path = dir_.string()}), zae::Error);  // a directory
  EXPECT_THROW(JsonlLogger({.path = ""}), zae::Error);
}

TEST_F(JsonlLoggerTest, ReservedAndInvalidKeysAreErrors) {
  JsonlLogger logger({.path = path("m.jsonl")});
  EXPECT_THROW(logger.log_metrics({{"step", 1.0}}, 1), zae::Error);
  EXPECT_THROW(logger.log_metrics({{"wall_time", 1.0}}, 1), zae::Error);
  EXPECT_THROW(logger.log_metrics({{"bad\xff", 1.0}}, 1), zae::Error);
  logger.log_summary({{"step", 3.0}});  // no row fields in a summary
  EXPECT_EQ(read(path("m.jsonl")), "{\"summary\":{\"step\":3}}\n");
}

TEST_F(JsonlLoggerTest, WriteFailureWarnsOnceAndNeverThrows) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full is missing on this system";
  testing::internal::CaptureStderr();
  {
    JsonlLogger logger({.path = "/dev/full"});
    EXPECT_NO_THROW({
      logger.log_config(sample_config());
      for (int step = 1; step <= 5; ++step) logger.log_metrics({{"loss", 1.0 / step}}, step);
      logger.log_summary({{"loss", 0.2}});
      logger.flush();
      logger.finish(true);
    });
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "warning"), 1u) << err;
  EXPECT_NE(err.find("/dev/full"), std::string::npos) << err;
  EXPECT_NE(err.find(std::strerror(ENOSPC)), std::string::npos) << err;
}

TEST_F(JsonlLoggerTest, ConcurrentReaderSeesOnlyWholeLines) {
  // Four threads log at once (lines must not interleave) while this thread tails the file.
  const std::string file = path("m.jsonl");
  constexpr int kWriters = 4, kRows = 500;
  JsonlLogger logger({.path = file});
  std::atomic<int> done{0};
  std::vector<std::jthread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      MetricValues values{{"writer", w}};
      for (int k = 0; k < 64; ++k) values["metric/" + std::to_string(k)] = 0.1 * k + w;  // ~2 KB lines
      for (int step = 1; step <= kRows; ++step) logger.log_metrics(values, step);
      if (++done == kWriters) logger.finish(true);
    });
  // Read as `tail -f` does: whatever the file has grown by, complete lines only.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string pending;
  size_t offset = 0, reads = 0, lines = 0;
  std::vector<int64_t> last_step(kWriters, 0);
  bool finished = false;
  while (!finished) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the finished line never came";
    std::ifstream in(file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    offset += chunk.size();
    pending += chunk;
    ++reads;
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      ++lines;
      json::Value v;
      try {
        v = json::parse(line, "line " + std::to_string(lines));
      } catch (const zae::Error& e) {
        FAIL() << "read " << reads << ": " << e.message();
      }
      if (v.find("finished")) {
        finished = true;
        continue;
      }
      const auto w = static_cast<size_t>(state::get_double(v, "writer", "line"));
      ASSERT_LT(w, last_step.size());
      ASSERT_EQ(state::get_int(v, "step", "line"), last_step[w] + 1) << "writer " << w << ": a row is missing";
      ASSERT_EQ(state::get_double(v, "metric/63", "line"), 0.1 * 63 + static_cast<double>(w));
      ++last_step[w];
    }
  }
  EXPECT_EQ(lines, static_cast<size_t>(kWriters * kRows) + 1);
  EXPECT_TRUE(pending.empty());
  EXPECT_GT(reads, 1u);
}

// ---------------------------------------------------------------- CSV

using CsvLoggerTest = TempDirTest;

std::vector<std::string> header_of(const Rows& rows) { return rows.empty() ? std::vector<std::string>{} : rows[0]; }

TEST_F(CsvLoggerTest, RowsMatchAndOldRowsArePaddedWhenKeysAppear) {
  const std::string file = path("logs/metrics.csv");
  const double before = now_seconds();
  CsvLogger logger({.path = file});
  EXPECT_EQ(logger.name(), "csv");
  for (int step = 1; step <= 3; ++step) logger.log_metrics({{"train/loss", 1.0 / step}, {"lr", 0.001 * step}}, step);
  EXPECT_EQ(split_lines(read(file))[0], "step,wall_time,lr,train/loss");
  // An epoch row brings two keys the header lacks: the file is rewritten.
  logger.log_metrics({{"train/loss_epoch", 0.6}, {"test/loss_epoch", 0.7}}, 3);
  logger.log_metrics({{"train/loss", 0.2}, {"lr", 0.004}}, 4);
  logger.finish(true);
  const double after = now_seconds();

  const std::vector<std::string> header{"step", "wall_time", "lr", "train/loss", "test/loss_epoch", "train/loss_epoch"};
  EXPECT_EQ(logger.columns(), header);
  const Rows rows = parse_csv(read(file));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0], header);
  for (size_t r = 1; r < rows.size(); ++r) {
    ASSERT_EQ(rows[r].size(), header.size()) << "row " << r;
    const double t = parse_cell(rows[r][1]);
    EXPECT_GE(t, before - 1e-3);
    EXPECT_LE(t, after + 1e-3);
  }
  for (int step = 1; step <= 3; ++step) {
    const auto& row = rows[step];
    EXPECT_EQ(row[0], std::to_string(step));
    expect_same(parse_cell(row[2]), 0.001 * step, "lr");
    expect_same(parse_cell(row[3]), 1.0 / step, "train/loss");
    EXPECT_EQ(row[4], "");
    EXPECT_EQ(row[5], "");
  }
  EXPECT_EQ(rows[4], (std::vector<std::string>{"3", rows[4][1], "", "", "0.7", "0.6"}));
  EXPECT_EQ(rows[5], (std::vector<std::string>{"4", rows[5][1], "0.004", "0.2", "", ""}));
  // Nothing but the table is left in its directory (no temporary files).
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(path("logs"))) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST_F(CsvLoggerTest, ExactDoublesAndNonFiniteValues) {
  const std::string file = path("m.csv");
  CsvLogger logger({.path = file});
  logger.log_metrics(kTricky, -5);
  logger.finish(true);
  const Rows rows = parse_csv(read(file));
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(rows[0].size(), 2 + kTricky.size());
  EXPECT_EQ(rows[1][0], "-5");
  size_t c = 2;
  for (const auto& [key, value] : kTricky) {
    EXPECT_EQ(rows[0][c], key);
    expect_same(parse_cell(rows[1][c]), value, key);
    ++c;
  }
  EXPECT_EQ(split_lines(read(file))[1].substr(split_lines(read(file))[1].find(",0.1,")),
            ",0.1,1e-300,123456789.123,5e-324,-0,1.7976931348623157e+308,0.3333333333333333,nan,inf,-inf");
}

TEST_F(CsvLoggerTest, KeysThatNeedQuotingAreQuoted) {
  const std::string file = path("m.csv");
  const std::string comma_quote = "acc,top \"1\"";
  const std::string newline = "two\nlines";
  CsvLogger logger({.path = file});
  logger.log_metrics({{comma_quote, 0.5}}, 1);
  logger.log_metrics({{newline, 0.25}, {"plain", 1.0}}, 2);  // a rewrite keeps the quoting
  const std::string text = read(file);
  EXPECT_EQ(text.substr(0, text.find('\n', text.find("lines"))),
            "step,wall_time,\"acc,top \"\"1\"\"\",plain,\"two\nlines\"");
  const Rows rows = parse_csv(text);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"step", "wall_time", comma_quote, "plain", newline}));
  EXPECT_EQ(rows[1][2], "0.5");
  EXPECT_EQ(rows[2][4], "0.25");
  EXPECT_THROW(logger.log_metrics({{"step", 1.0}}, 3), zae::Error);
  EXPECT_THROW(logger.log_metrics({{"wall_time", 1.0}}, 3), zae::Error);
}

TEST_F(CsvLoggerTest, AppendContinuesAndExtendsAMismatchedHeader) {
  const std::string file = path("m.csv");
  {
    CsvLogger logger({.path = file});
    logger.log_metrics({{"a", 1.0}}, 1);
    logger.log_metrics({{"a", 2.0}}, 2);
  }
  {  // same keys: rows simply continue under the same header
    CsvLogger logger({.path = file, .append = true});
    EXPECT_EQ(logger.columns(), (std::vector<std::string>{"step", "wall_time", "a"}));
    logger.log_metrics({{"a", 3.0}}, 3);
  }
  Rows rows = parse_csv(read(file));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[3][0], "3");
  {  // the resumed run logs a key the file lacks: the header grows, old rows are padded
    CsvLogger logger({.path = file, .append = true});
    logger.log_metrics({{"b", 4.0}}, 4);
  }
  rows = parse_csv(read(file));
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"step", "wall_time", "a", "b"}));
  for (size_t r = 1; r < rows.size(); ++r) ASSERT_EQ(rows[r].size(), 4u) << "row " << r;
  for (size_t r = 1; r <= 3; ++r) {
    EXPECT_EQ(rows[r][0], std::to_string(r));
    EXPECT_EQ(rows[r][2], std::to_string(r)) << r;
    EXPECT_EQ(rows[r][3], "") << r;
  }
  EXPECT_EQ(rows[4][2], "");
  EXPECT_EQ(rows[4][3], "4");

  // A row torn by a crash is cut off (with a warning) before appending.
  { std::ofstream(file, std::ios::app) << "5,17000"; }
  testing::internal::CaptureStderr();
  {
    CsvLogger logger({.path = file, .append = true});
    logger.log_metrics({{"a", 6.0}}, 6);
  }
  EXPECT_NE(testing::internal::GetCapturedStderr().find("torn"), std::string::npos);
  rows = parse_csv(read(file));
  ASSERT_EQ(rows.size(), 6u);
  ASSERT_EQ(rows[5].size(), 4u);
  EXPECT_EQ(rows[5][0], "6");
  EXPECT_EQ(rows[5][2], "6");

  // A file that is not this logger's table is refused, naming what it found.
  const std::string foreign = path("foreign.csv");
  { std::ofstream(foreign) << "epoch,loss\n1,0.5\n"; }
  try {
    CsvLogger logger({.path = foreign, .append = true});
    FAIL() << "appended to a foreign table";
  } catch (const zae::Error& e) {
    EXPECT_NE(std::string(e.what()).find("epoch,loss"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(foreign), std::string::npos) << e.what();
  }
  EXPECT_EQ(read(foreign), "epoch,loss\n1,0.5\n");  // untouched

  {  // append to a missing file: a new table
    CsvLogger logger({.path = path("new.csv"), .append = true});
    logger.log_metrics({{"a", 1.0}}, 1);
  }
  EXPECT_EQ(parse_csv(read(path("new.csv"))).size(), 2u);
}

TEST_F(CsvLoggerTest, ConfigAndSummarySidecars) {
  const std::string file = path("run.csv");
  {
    CsvLogger logger({.path = file});
    EXPECT_EQ(logger.config_path(), path("run.config.json"));
    EXPECT_EQ(logger.summary_path(), path("run.summary.json"));
    logger.log_config(sample_config());
    logger.log_summary({{"best/loss", 0.5}, {"best/epoch", 3}});
    logger.log_summary({{"best/loss", 0.1}, {"last/grad", kNaN}});  // the latest wins
    logger.finish(true);
  }
  const std::string config_text = read(path("run.config.json"));
  EXPECT_EQ(json::dump(json::parse(config_text, "config")), json::dump(sample_config()));
  EXPECT_NE(config_text.find("\n  \"model\": {\n    \"hidden\": 128,"), std::string::npos) << config_text;
  EXPECT_NE(config_text.find("\"layers\": [\n      1,\n      2.5,\n      1e-300\n    ]"), std::string::npos)
      << config_text;  // json::dump_pretty's layout
  const json::Value summary = json::parse(read(path("run.summary.json")), "summary");
  ASSERT_EQ(summary.members.size(), 3u);
  EXPECT_EQ(state::get_double(summary, "best/loss", "summary"), 0.1);
  EXPECT_EQ(state::get_double(summary, "best/epoch", "summary"), 3.0);
  EXPECT_TRUE(std::isnan(state::get_double(summary, "last/grad", "summary")));
  {  // append keeps and updates the summary
    CsvLogger logger({.path = file, .append = true});
    logger.log_summary({{"best/loss", 0.05}});
  }
  const json::Value resumed = json::parse(read(path("run.summary.json")), "summary");
  EXPECT_EQ(resumed.members.size(), 3u);
  EXPECT_EQ(state::get_double(resumed, "best/loss", "summary"), 0.05);
  {  // a new run (no append) drops the old run's sidecars
    CsvLogger logger({.path = file});
  }
  EXPECT_FALSE(fs::exists(path("run.config.json")));
  EXPECT_FALSE(fs::exists(path("run.summary.json")));
  {  // a path without .csv gets the suffixes appended
    CsvLogger logger({.path = path("table")});
    EXPECT_EQ(logger.config_path(), path("table.config.json"));
  }
}

TEST_F(CsvLoggerTest, UnopenablePathIsAnErrorNamingIt) {
  { std::ofstream(path("blocker")) << "a regular file"; }
  const std::string under_file = path("blocker/m.csv");
  try {
    CsvLogger logger({.path = under_file});
    FAIL() << "no error for a path under a regular file";
  } catch (const zae::Error& e) {
    EXPECT_NE(std::string(e.what()).find(under_file), std::string::npos) << e.what();
  }
  EXPECT_THROW(CsvLogger({.path = dir_.string()}), zae::Error);
}

TEST_F(CsvLoggerTest, WriteFailureWarnsOnceAndNeverThrows) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full is missing on this system";
  testing::internal::CaptureStderr();
  {
    CsvLogger logger({.path = "/dev/full"});
    EXPECT_NO_THROW({
      for (int step = 1; step <= 5; ++step) logger.log_metrics({{"loss", 1.0 / step}, {"k" + std::to_string(step), 1}}, step);
      logger.flush();
      logger.finish(false);
    });
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "warning"), 1u) << err;
  EXPECT_NE(err.find(std::strerror(ENOSPC)), std::string::npos) << err;
}

TEST_F(CsvLoggerTest, FailedRewriteWarnsAndLoggingGoesOn) {
  // The table is deleted under the logger: adding a column cannot read the old rows back.
  const std::string file = path("m.csv");
  CsvLogger logger({.path = file});
  logger.log_metrics({{"a", 1.0}}, 1);
  fs::remove(file);
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW({
    logger.log_metrics({{"a", 2.0}, {"b", 3.0}}, 2);
    logger.log_metrics({{"a", 4.0}, {"c", 5.0}}, 3);
  });
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "warning"), 1u) << err;
  EXPECT_NE(err.find("adding the columns b"), std::string::npos) << err;
  EXPECT_EQ(logger.columns(), (std::vector<std::string>{"step", "wall_time", "a"}));
}

TEST_F(CsvLoggerTest, ConcurrentReaderSeesOnlyWholeRowsAcrossRewrites) {
  const std::string file = path("m.csv");
  constexpr int kRows = 2000;
  CsvLogger logger({.path = file});
  std::jthread writer([&] {
    MetricValues values;
    for (int k = 0; k < 32; ++k) values["metric/" + std::to_string(k)] = 0.1 * k;
    for (int step = 1; step <= kRows; ++step) {
      if (step % 250 == 0) values["late/" + std::to_string(step)] = step;  // forces a rewrite
      logger.log_metrics(values, step);
    }
    logger.finish(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t reads = 0;
  for (;;) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the last row never came";
    const std::string text = read(file);
    const size_t end = text.rfind('\n');
    const Rows rows = parse_csv(end == std::string::npos ? std::string() : text.substr(0, end + 1));
    if (::testing::Test::HasFailure()) break;
    for (size_t r = 1; r < rows.size(); ++r) {
      ASSERT_EQ(rows[r].size(), rows[0].size()) << "read " << reads << ", row " << r;
      ASSERT_EQ(rows[r][0], std::to_string(r)) << "read " << reads;
    }
    ++reads;
    if (rows.size() == static_cast<size_t>(kRows) + 1) break;
  }
  writer.join();
  EXPECT_EQ(header_of(parse_csv(read(file))).size(), 2u + 32u + kRows / 250);
  EXPECT_GT(reads, 1u);
}

}  // namespace
}  // namespace zae::io
