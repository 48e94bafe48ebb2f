// The fixture of the W&B tests: a scratch directory (TempDirTest), a clean environment
// (every WANDB_* variable unset for the test and restored after it, NETRC pointed at a
// file that does not exist, so a developer's own key can never be picked up), options
// with short intervals for a FakeWandB server, and helpers to read spools back.
#pragma once

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/loggers/wandb_logger.h"
#include "io/state_json.h"
#include "support/temp_dir.h"

namespace zae::test {

/// A fake API key, and "Basic " + base64("api:" + key) computed independently (Python).
inline constexpr const char* kWandBKey = "0123456789abcdef0123456789abcdef01234567";
inline constexpr const char* kWandBAuth = "Basic YXBpOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc=";

class WandBTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    for (const char* v : {"WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_NAME", "WANDB_MODE",
                          "WANDB_BASE_URL", "WANDB_DIR", "NETRC"}) {
      const char* old = std::getenv(v);
      saved_[v] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      ::unsetenv(v);
    }
    ::setenv("NETRC", path("no-such-netrc").c_str(), 1);
  }
  void TearDown() override {
    for (const auto& [k, v] : saved_) {
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
    }
    TempDirTest::TearDown();
  }

  /// Online options for a server at `url`: 50 ms between requests, fast retries (2
  /// attempts, 10-40 ms backoff), no heartbeat unless a test asks.
  io::WandBOptions options(const std::string& url) const {
    io::WandBOptions o;
    o.project = "proj";
    o.entity = "ent";
    o.run_id = "run1abcd";
    o.name = "my run";
    o.mode = "online";
    o.base_url = url;
    o.api_key = kWandBKey;
    o.dir = path("wandb");
    o.tags = {"fast", "cpu"};
    o.send_interval = std::chrono::milliseconds(50);
    o.heartbeat_interval = std::chrono::seconds(60);
    o.min_backoff = std::chrono::milliseconds(10);
    o.max_backoff = std::chrono::milliseconds(40);
    o.max_attempts = 2;
    o.request_timeout = std::chrono::seconds(2);
    o.drain_timeout = std::chrono::seconds(2);
    return o;
  }

  /// The spool directory of the default run id.
  std::string spool() const { return path("wandb/offline-run-run1abcd"); }

  static std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] == '\n') {
        out.push_back(text.substr(start, i - start));
        start = i + 1;
      }
    return out;
  }
  /// The _step of each history line.
  static std::vector<int64_t> steps_of(const std::vector<std::string>& lines) {
    std::vector<int64_t> out;
    for (const auto& l : lines) out.push_back(io::state::get_int(io::json::parse(l, "line"), "_step", "line"));
    return out;
  }
  static std::vector<int64_t> range(int64_t a, int64_t b) {
    std::vector<int64_t> out;
    for (int64_t i = a; i < b; ++i) out.push_back(i);
    return out;
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace zae::test
