// WandBLogger against a fake W&B server (tests/loggers/wandb_fake_server.h): the auth
// header, UpsertBucket's variables, history lines and their offsets (across requests and
// across a resume), the summary, heartbeats, the final complete/exitcode, the stopped
// reply, offline/disabled modes, a missing key, and the options resolved from WANDB_*.
// Failures, the spool and zae-wandb-sync: test_wandb_sync.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "engine/error.h"
#include "io/loggers/wandb_api.h"
#include "io/loggers/wandb_logger.h"
#include "io/loggers/wandb_spool.h"
#include "loggers/wandb_fake_server.h"
#include "loggers/wandb_test_fixture.h"

namespace zae::test {
namespace {

using io::json::Value;
using io::state::get;
using io::state::get_double;
using io::state::get_int;
using io::state::get_string;
using namespace std::chrono_literals;

Value config_example() {
  Value c = Value::make_object();
  io::state::put(c, "lr", io::state::number(0.001));
  io::state::put(c, "model", io::state::string("mlp"));
  io::state::put(c, "layers", io::state::integer(3));
  return c;
}

TEST_F(WandBTest, FormatsHistoryLinesAndRequestBodies) {
  EXPECT_EQ(io::wandb_history_line({{"b", 0.5}, {"a/x", 2}, {"_step", 9}}, 3, 1.25, 1.7e9),
            "{\"a/x\":2,\"b\":0.5,\"_step\":3,\"_runtime\":1.25,\"_timestamp\":1700000000}");
  EXPECT_EQ(io::wandb_number(std::nan("")), "NaN");
  EXPECT_EQ(io::wandb_number(-INFINITY), "-Infinity");
  EXPECT_EQ(io::wandb_number(0.1), "0.1");
  EXPECT_EQ(io::wandb_number(1e-5), "1e-05");
  EXPECT_EQ(io::wandb_number(1e16), "1e+16");
  EXPECT_EQ(io::wandb_number(-2.5e15), "-2500000000000000");
  EXPECT_EQ(io::wandb_number(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(io::wandb_file_stream_body(0, {}, nullptr, std::nullopt), "{}");  // a heartbeat
  const std::string summary = "{\"loss\":1}";
  EXPECT_EQ(io::wandb_file_stream_body(7, {"{\"a\":1}"}, &summary, 1),
            "{\"files\":{\"wandb-history.jsonl\":{\"offset\":7,\"content\":[\"{\\\"a\\\":1}\"]},"
            "\"wandb-summary.json\":{\"offset\":0,\"content\":[\"{\\\"loss\\\":1}\"]}},\"complete\":true,\"exitcode\":1}");
  EXPECT_EQ(io::wandb_config_json(config_example()),
            "{\"lr\":{\"value\":0.001},\"model\":{\"value\":\"mlp\"},\"layers\":{\"value\":3}}");
}

TEST_F(WandBTest, StreamsTheRunToTheServer) {
  FakeWandB server;
  const double t0 = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  {
    io::WandBLogger logger(options(server.url()));
    logger.log_config(config_example());
    // Three bursts, each sent by its own request (50 ms send interval).
    for (int burst = 0; burst < 3; ++burst) {
      for (int i = 0; i < 4; ++i) {
        const int step = burst * 4 + i;
        logger.log_metrics({{"train/loss", 1.0 / (step + 1)}, {"lr", 0.1}}, step);
      }
      ASSERT_TRUE(server.wait_history(static_cast<size_t>(4 * (burst + 1)))) << "burst " << burst;
    }
    logger.log_summary({{"best/loss", 0.125}});
    logger.finish(true);
  }
  const double t1 = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_TRUE(server.violations().empty()) << server.violations().front();

  // Every request carries the key as Basic auth, "api:" + key.
  for (const auto& r : server.server().requests()) EXPECT_EQ(r.header("authorization"), kWandBAuth) << r.target;

  // One UpsertBucket (the config came before the first send), with the official variables.
  const auto upserts = server.upserts();
  ASSERT_EQ(upserts.size(), 1u);
  const Value& v = upserts[0];
  EXPECT_EQ(get_string(v, "name", "vars"), "run1abcd");  // the run id
  EXPECT_EQ(get_string(v, "project", "vars"), "proj");
  EXPECT_EQ(get_string(v, "entity", "vars"), "ent");
  EXPECT_EQ(get_string(v, "displayName", "vars"), "my run");
  EXPECT_EQ(v.find("id"), nullptr);  // no storage id on the first call
  const Value config = io::json::parse(get_string(v, "config", "vars"), "config");  // a JSON string
  EXPECT_EQ(get_double(get(config, "lr", "config"), "value", "lr"), 0.001);
  EXPECT_EQ(get_string(get(config, "model", "config"), "value", "model"), "mlp");
  EXPECT_EQ(get_int(get(config, "layers", "config"), "value", "layers"), 3);
  const auto& tags = get(v, "tags", "vars").items;
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].text, "fast");
  EXPECT_EQ(tags[1].text, "cpu");

  // file_stream: the right path, offsets contiguous over several requests.
  const auto streams = server.requests_to("file_stream");
  for (const auto& r : streams) EXPECT_EQ(r.path(), "/files/ent/proj/run1abcd/file_stream");
  int64_t next = 0;
  int with_history = 0;
  for (const auto& body : server.streams()) {
    const Value* files = body.find("files");
    if (files == nullptr || files->find("wandb-history.jsonl") == nullptr) continue;
    ++with_history;
    const Value& h = get(*files, "wandb-history.jsonl", "files");
    EXPECT_EQ(get_int(h, "offset", "history"), next);
    next += static_cast<int64_t>(get(h, "content", "history").items.size());
  }
  EXPECT_GE(with_history, 3);
  EXPECT_EQ(next, 12);

  // The history rows: user keys, _step, _runtime (non-decreasing), _timestamp (now).
  const auto history = server.history();
  ASSERT_EQ(history.size(), 12u);
  EXPECT_EQ(steps_of(history), range(0, 12));
  double last_runtime = 0;
  for (size_t i = 0; i < history.size(); ++i) {
    const Value row = io::json::parse(history[i], "row");
    EXPECT_DOUBLE_EQ(get_double(row, "train/loss", "row"), 1.0 / static_cast<double>(i + 1));
    EXPECT_EQ(get_double(row, "lr", "row"), 0.1);
    const double runtime = get_double(row, "_runtime", "row"), ts = get_double(row, "_timestamp", "row");
    EXPECT_GE(runtime, last_runtime);
    last_runtime = runtime;
    EXPECT_GE(ts, t0 - 1);
    EXPECT_LE(ts, t1 + 1);
  }

  // The summary: the last value of every key, the explicit summary, _step.
  const Value summary = io::json::parse(server.summary(), "summary");
  EXPECT_DOUBLE_EQ(get_double(summary, "train/loss", "summary"), 1.0 / 12);
  EXPECT_EQ(get_double(summary, "best/loss", "summary"), 0.125);
  EXPECT_EQ(get_int(summary, "_step", "summary"), 11);

  // The last request ends the run with exitcode 0; nothing was spooled.
  EXPECT_EQ(server.completes(), 1);
  EXPECT_EQ(server.exitcode(), 0);
  const Value last = server.streams().back();
  EXPECT_TRUE(io::state::get_bool(last, "complete", "last"));
  EXPECT_FALSE(std::filesystem::exists(spool()));
}

TEST_F(WandBTest, FailedRunEndsWithExitcodeOne) {
  FakeWandB server;
  io::WandBLogger logger(options(server.url()));
  logger.log_metrics({{"loss", 2.0}}, 1);
  logger.finish(false);
  logger.finish(true);  // ignored
  logger.log_metrics({{"loss", 3.0}}, 2);  // ignored
  EXPECT_EQ(server.completes(), 1);
  EXPECT_EQ(server.exitcode(), 1);
  EXPECT_EQ(server.history().size(), 1u);
}

TEST_F(WandBTest, ResumeContinuesAtTheServersHistoryLineCount) {
  FakeWandB server;
  server.set_base_lines(7);  // the run exists with 7 lines
  io::WandBLogger logger(options(server.url()));
  for (int step = 0; step < 3; ++step) logger.log_metrics({{"loss", 1.0}}, 100 + step);
  ASSERT_TRUE(server.wait_history(10));
  for (int step = 3; step < 5; ++step) logger.log_metrics({{"loss", 1.0}}, 100 + step);
  logger.finish(true);
  // Offsets start at 7 and stay contiguous.
  int64_t next = 7;
  int with_history = 0;
  for (const auto& body : server.streams())
    if (const Value* files = body.find("files"))
      if (const Value* h = files->find("wandb-history.jsonl")) {
        ++with_history;
        EXPECT_EQ(get_int(*h, "offset", "h"), next);
        next += static_cast<int64_t>(get(*h, "content", "h").items.size());
      }
  EXPECT_GE(with_history, 2);
  EXPECT_EQ(next, 12);
  const auto history = server.history();
  ASSERT_EQ(history.size(), 12u);
  EXPECT_EQ(steps_of({history.begin() + 7, history.end()}), range(100, 105));
  EXPECT_EQ(server.replaced_lines(), 0);
  EXPECT_TRUE(server.violations().empty());
}

TEST_F(WandBTest, HeartbeatWhileIdle) {
  FakeWandB server;
  auto o = options(server.url());
  o.heartbeat_interval = 30ms;
  io::WandBLogger logger(o);
  logger.log_metrics({{"loss", 1.0}}, 0);
  ASSERT_TRUE(server.wait_history(1));
  ASSERT_TRUE(FakeWandB::poll_until([&] {
    for (const auto& r : server.requests_to("file_stream"))
      if (r.body == "{}") return true;
    return false;
  })) << "no heartbeat ({}) while idle";
  logger.finish(true);
  EXPECT_EQ(server.exitcode(), 0);
}

TEST_F(WandBTest, ConfigLoggedAfterTheRunWasCreatedIsUpsertedAgain) {
  FakeWandB server;
  io::WandBLogger logger(options(server.url()));
  logger.log_metrics({{"loss", 1.0}}, 0);
  ASSERT_TRUE(server.wait_history(1));
  ASSERT_EQ(server.upserts().size(), 1u);
  EXPECT_EQ(server.upserts()[0].find("config"), nullptr);
  logger.log_config(config_example());
  logger.flush();
  ASSERT_TRUE(FakeWandB::poll_until([&] { return server.upserts().size() == 2; }));
  const Value v = server.upserts()[1];
  EXPECT_EQ(get_string(v, "id", "vars"), "UnVuOnYxOnRlc3Q=");  // the storage id from the first reply
  EXPECT_EQ(get_string(v, "name", "vars"), "run1abcd");
  const Value config = io::json::parse(get_string(v, "config", "vars"), "config");
  EXPECT_EQ(get_string(get(config, "model", "config"), "value", "model"), "mlp");
  logger.finish(true);
  EXPECT_EQ(server.upserts().size(), 2u);
}

TEST_F(WandBTest, StoppedReplyIsHonoured) {
  FakeWandB server;
  server.stop_run(true);
  testing::internal::CaptureStderr();
  {
    io::WandBLogger logger(options(server.url()));
    logger.log_metrics({{"loss", 1.0}}, 0);
    ASSERT_TRUE(server.wait_history(1));
    ASSERT_TRUE(FakeWandB::poll_until([&] { return logger.spooling(); }));
    const size_t requests = server.server().requests().size();
    for (int step = 1; step < 6; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.flush();
    logger.finish(true);
    EXPECT_EQ(server.server().requests().size(), requests) << "requests after the server stopped the run";
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("stopped"), std::string::npos) << err;
  EXPECT_EQ(err.find(kWandBKey), std::string::npos);
  // The rows logged after the stop are kept (1..5), continuing after the acknowledged one.
  EXPECT_EQ(steps_of(io::read_wandb_history(spool())), range(1, 6));
  const auto rec = io::read_wandb_run_record(spool());
  EXPECT_TRUE(rec.stopped);
  EXPECT_EQ(rec.next_offset, 1);
  EXPECT_EQ(rec.synced_lines, 0);
}

TEST_F(WandBTest, OfflineModeWritesTheSpoolAndSendsNothing) {
  FakeWandB server;
  auto o = options(server.url());
  o.mode = "offline";
  {
    io::WandBLogger logger(o);
    EXPECT_TRUE(logger.spooling());
    logger.log_config(config_example());
    for (int step = 0; step < 5; ++step) logger.log_metrics({{"loss", 0.5 * step}}, step);
    // Rows and the config reach the files at once (a crash loses nothing).
    EXPECT_EQ(io::read_wandb_history(spool()).size(), 5u);
    EXPECT_EQ(get_string(io::read_wandb_run_record(spool()).config, "model", "config"), "mlp");
    EXPECT_FALSE(io::read_wandb_run_record(spool()).finished);
    logger.log_summary({{"best", 0.25}});
    logger.finish(true);
  }
  EXPECT_TRUE(server.server().requests().empty());
  EXPECT_EQ(steps_of(io::read_wandb_history(spool())), range(0, 5));
  const auto rec = io::read_wandb_run_record(spool());
  EXPECT_EQ(rec.run_id, "run1abcd");
  EXPECT_EQ(rec.project, "proj");
  EXPECT_EQ(rec.entity, "ent");
  EXPECT_EQ(rec.display_name, "my run");
  EXPECT_EQ(rec.tags, (std::vector<std::string>{"fast", "cpu"}));
  EXPECT_EQ(get_string(rec.config, "model", "config"), "mlp");
  EXPECT_EQ(rec.summary.at("best"), 0.25);
  EXPECT_EQ(rec.summary.at("loss"), 2.0);
  EXPECT_EQ(rec.synced_lines, 0);
  EXPECT_FALSE(rec.next_offset.has_value());
  EXPECT_TRUE(rec.finished);
  EXPECT_EQ(rec.exitcode, 0);
  const std::string run_json = read(spool() + "/run.json");
  EXPECT_EQ(run_json.find(kWandBKey), std::string::npos);
}

TEST_F(WandBTest, DisabledModeDoesNothing) {
  FakeWandB server;
  auto o = options(server.url());
  o.mode = "disabled";
  {
    io::WandBLogger logger(o);
    logger.log_config(config_example());
    logger.log_metrics({{"loss", 1.0}}, 0);
    logger.log_summary({{"loss", 1.0}});
    logger.flush();
    logger.finish(true);
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(server.server().requests().empty());
  EXPECT_FALSE(std::filesystem::exists(path("wandb")));
}

TEST_F(WandBTest, MissingKeyRunsOfflineAndSaysSoOnce) {
  FakeWandB server;
  auto o = options(server.url());
  o.api_key.clear();
  testing::internal::CaptureStderr();
  {
    io::WandBLogger logger(o);
    EXPECT_TRUE(logger.spooling());
    for (int step = 0; step < 3; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("no API key"), std::string::npos) << err;
  EXPECT_EQ(err.find("no API key"), err.rfind("no API key")) << "warned more than once: " << err;
  EXPECT_NE(err.find("zae-wandb-sync"), std::string::npos) << err;
  EXPECT_TRUE(server.server().requests().empty());
  EXPECT_EQ(io::read_wandb_history(spool()).size(), 3u);
}

TEST_F(WandBTest, OptionsComeFromTheEnvironment) {
  ::setenv("WANDB_PROJECT", "envproj", 1);
  ::setenv("WANDB_ENTITY", "envent", 1);
  ::setenv("WANDB_RUN_ID", "envrun42", 1);
  ::setenv("WANDB_NAME", "env name", 1);
  ::setenv("WANDB_MODE", "offline", 1);
  ::setenv("WANDB_BASE_URL", "http://127.0.0.1:9/", 1);
  ::setenv("WANDB_API_KEY", kWandBKey, 1);
  ::setenv("WANDB_DIR", path("envdir").c_str(), 1);
  io::WandBOptions o = io::resolve_wandb_options({});
  EXPECT_EQ(o.project, "envproj");
  EXPECT_EQ(o.entity, "envent");
  EXPECT_EQ(o.run_id, "envrun42");
  EXPECT_EQ(o.name, "env name");
  EXPECT_EQ(o.mode, "offline");
  EXPECT_EQ(o.base_url, "http://127.0.0.1:9");
  EXPECT_EQ(o.api_key, kWandBKey);
  EXPECT_EQ(o.dir, path("envdir"));
  // Options given win over the environment.
  EXPECT_EQ(io::resolve_wandb_options({.project = "mine"}).project, "mine");
  {
    io::WandBLogger logger({});
    EXPECT_TRUE(logger.options().api_key.empty()) << "the key is not kept where callers can print it";
    EXPECT_EQ(logger.spool_dir(), path("envdir") + "/offline-run-envrun42");
  }
  // Defaults.
  for (const char* v : {"WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_NAME", "WANDB_MODE", "WANDB_BASE_URL",
                        "WANDB_DIR", "WANDB_API_KEY"})
    ::unsetenv(v);
  o = io::resolve_wandb_options({});
  EXPECT_EQ(o.project, "uncategorized");
  EXPECT_EQ(o.mode, "online");
  EXPECT_EQ(o.base_url, "https://api.wandb.ai");
  EXPECT_EQ(o.dir, "./wandb");
  EXPECT_TRUE(o.api_key.empty());
  // Generated run ids: 8 of [a-z0-9], different each time.
  std::set<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    const std::string id = io::resolve_wandb_options({}).run_id;
    ASSERT_EQ(id.size(), 8u);
    for (char c : id) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << id;
    ids.insert(id);
  }
  EXPECT_GT(ids.size(), 15u);
}

TEST_F(WandBTest, BadOptionsAreClearErrors) {
  EXPECT_THROW(io::resolve_wandb_options({.mode = "sometimes"}), Error);
  EXPECT_THROW(io::resolve_wandb_options({.base_url = "api.wandb.ai"}), Error);
  EXPECT_THROW(io::resolve_wandb_options({.run_id = "a/b"}), Error);
  EXPECT_THROW(io::resolve_wandb_options({.run_id = std::string(65, 'a')}), Error);
  try {
    io::resolve_wandb_options({.mode = "sometimes"});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sometimes"), std::string::npos) << e.what();
  }
  // An offline spool that cannot be created: an error at construction.
  std::ofstream(path("file")) << "x";
  auto o = options("http://127.0.0.1:9");
  o.mode = "offline";
  o.dir = path("file");
  EXPECT_THROW(io::WandBLogger{o}, Error);
}

}  // namespace
}  // namespace zae::test
