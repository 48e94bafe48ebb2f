// Checks shared by the file-logger tests: an independent RFC 4180 reader (quoted fields,
// "" escapes; a torn record or a stray quote fails the test), exact number comparison
// (bit for bit, NaN matching NaN), and the values and config the tests log.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "io/json.h"
#include "io/loggers/metric_logger.h"
#include "io/state_json.h"

namespace zae::io::file_logger_checks {

using Rows = std::vector<std::vector<std::string>>;

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// Values that need all 17 digits, the extremes, signed zero and the non-finite ones.
inline const MetricValues kTricky = {{"a/tenth", 0.1},        {"b/tiny", 1e-300},   {"c/big", 123456789.123},
                              {"d/denormal", 5e-324},   {"e/neg_zero", -0.0}, {"f/max", 1.7976931348623157e308},
                              {"g/third", 1.0 / 3.0},  {"h/nan", kNaN},      {"i/inf", kInf},
                              {"j/minus_inf", -kInf}};

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  EXPECT_EQ(start, text.size()) << "the file does not end with a newline";
  return lines;
}

// RFC 4180 records ("\n" line ends, quoted fields with "" escapes); fails the test on a
// torn record or a stray quote.
inline Rows parse_csv(const std::string& text) {
  Rows rows;
  size_t i = 0;
  while (i < text.size()) {
    std::vector<std::string> row;
    for (;;) {
      std::string field;
      if (text[i] == '"') {
        for (++i;; ++i) {
          if (i >= text.size()) {
            ADD_FAILURE() << "unterminated quoted field";
            return rows;
          }
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              ++i;
              continue;
            }
            ++i;
            break;
          }
          field += text[i];
        }
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n') {
          if (text[i] == '"') ADD_FAILURE() << "a quote inside an unquoted field at byte " << i;
          field += text[i++];
        }
      }
      row.push_back(field);
      if (i >= text.size()) {
        ADD_FAILURE() << "the last record has no line end";
        return rows;
      }
      const char sep = text[i++];
      if (sep == '\n') break;
      if (sep != ',') {
        ADD_FAILURE() << "text after a closing quote at byte " << i - 1;
        return rows;
      }
    }
    rows.push_back(row);
  }
  return rows;
}

inline double parse_cell(const std::string& cell) {
  if (cell == "nan") return kNaN;
  if (cell == "inf") return kInf;
  if (cell == "-inf") return -kInf;
  double v = 0;
  const auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
  EXPECT_TRUE(ec == std::errc() && end == cell.data() + cell.size()) << "not a number: '" << cell << "'";
  return v;
}

// Same double bit for bit (any NaN matches any NaN).
inline void expect_same(double got, double want, const std::string& what) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what << ": " << got;
  } else {
    EXPECT_EQ(std::bit_cast<uint64_t>(got), std::bit_cast<uint64_t>(want)) << what << ": " << got << " vs " << want;
  }
}

inline size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline json::Value sample_config() {
  json::Value model = json::Value::make_object();
  state::put(model, "hidden", state::integer(128));
  state::put(model, "layers", state::numbers({1, 2.5, 1e-300}));
  json::Value config = json::Value::make_object();
  state::put(config, "model", std::move(model));
  state::put(config, "lr", state::number(0.1));
  state::put(config, "name", state::string("run \"1\", first"));
  state::put(config, "empty", json::Value::make_object());
  return config;
}

}  // namespace zae::io::file_logger_checks
