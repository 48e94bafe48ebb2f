// W&B failure handling end to end: a server that answers 500 or is down never slows
// training, rows go to the offline spool from the first unacknowledged line, and
// zae-wandb-sync (apps/wandb_sync) uploads them exactly once (a second sync uploads
// nothing; an interrupted sync continues; a lost acknowledgement replaces lines instead of
// duplicating them). The API key appears in no output and no spooled file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "apps/wandb_sync/wandb_sync.h"
#include "io/loggers/wandb_logger.h"
#include "io/loggers/wandb_spool.h"
#include "loggers/wandb_fake_server.h"
#include "loggers/wandb_test_fixture.h"
#include "support/child_process.h"

namespace zae::test {
namespace {

using namespace std::chrono_literals;
namespace ws = apps::wandb_sync;
using io::json::Value;

ws::SyncOptions sync_options(const std::string& url) {
  return {.base_url = url, .api_key = kWandBKey, .batch_lines = 50, .request_timeout = 2s, .max_attempts = 2,
          .backoff = 10ms};
}

// The history offsets of the file_stream requests made after the first `skip` requests.
std::vector<std::pair<int64_t, size_t>> history_batches(const FakeWandB& server, size_t skip = 0) {
  std::vector<std::pair<int64_t, size_t>> out;
  const auto streams = server.streams();
  for (size_t i = skip; i < streams.size(); ++i)
    if (const Value* files = streams[i].find("files"))
      if (const Value* h = files->find("wandb-history.jsonl"))
        out.emplace_back(io::state::get_int(*h, "offset", "h"), io::state::get(*h, "content", "h").items.size());
  return out;
}

// Every file under `dir`, for the "no key on disk" checks.
std::string all_files_text(const std::string& dir) {
  std::string text;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      text.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  return text;
}

TEST_F(WandBTest, ServerErrorsSpoolRowsAndSyncUploadsThemExactlyOnce) {
  FakeWandB server;
  testing::internal::CaptureStderr();
  double loop_s = 0;
  {
    io::WandBLogger logger(options(server.url()));
    for (int step = 0; step < 10; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    ASSERT_TRUE(server.wait_history(10));
    server.fail(500);
    server.delay(500ms);  // and slowly: a log_metrics that waited for it would take >= 0.5 s
    // Training goes on at full speed while every request fails.
    const auto t = std::chrono::steady_clock::now();
    for (int step = 10; step < 210; ++step) logger.log_metrics({{"loss", 1.0}, {"acc", 0.5}}, step);
    loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    ASSERT_TRUE(FakeWandB::poll_until([&] { return logger.spooling(); })) << "never fell back to the spool";
    for (int step = 210; step < 220; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_LT(loop_s, 0.3) << "200 log_metrics calls waited for the network";
  EXPECT_NE(err.find("zae-wandb-sync " + spool()), std::string::npos) << err;
  EXPECT_EQ(err.find(kWandBKey), std::string::npos) << err;
  EXPECT_EQ(err.find(std::string(kWandBAuth).substr(6)), std::string::npos) << err;

  // The spool continues at the first unacknowledged line.
  EXPECT_EQ(server.history().size(), 10u);
  EXPECT_EQ(steps_of(io::read_wandb_history(spool())), range(10, 220));
  auto rec = io::read_wandb_run_record(spool());
  EXPECT_EQ(rec.synced_lines, 0);
  EXPECT_EQ(rec.next_offset, 10);
  EXPECT_TRUE(rec.finished);
  EXPECT_EQ(rec.exitcode, 0);
  EXPECT_EQ(all_files_text(path("wandb")).find(kWandBKey), std::string::npos);

  // The server is back: one sync uploads the 210 lines after the 10, in batches of 50.
  server.fail(0);
  server.delay(0ms);
  const size_t before = server.streams().size();
  std::ostringstream out, errs;
  ws::SyncResult r = ws::sync_paths({path("wandb")}, sync_options(server.url()), out, errs);
  EXPECT_EQ(r.runs, 1);
  EXPECT_EQ(r.runs_failed, 0) << errs.str();
  EXPECT_EQ(r.lines_uploaded, 210);
  EXPECT_EQ(steps_of(server.history()), range(0, 220));
  EXPECT_EQ(server.replaced_lines(), 0);
  EXPECT_TRUE(server.violations().empty());
  EXPECT_EQ(server.completes(), 1);
  EXPECT_EQ(server.exitcode(), 0);
  int64_t next = 10;
  for (const auto& [offset, n] : history_batches(server, before)) {
    EXPECT_EQ(offset, next);
    EXPECT_LE(n, 50u);
    next += static_cast<int64_t>(n);
  }
  EXPECT_EQ(next, 220);
  rec = io::read_wandb_run_record(spool());
  EXPECT_EQ(rec.synced_lines, 210);
  EXPECT_TRUE(rec.complete_synced);
  EXPECT_NE(out.str().find("marked finished (exitcode 0)"), std::string::npos) << out.str();

  // A second sync uploads nothing and makes no request.
  const size_t requests = server.server().requests().size();
  std::ostringstream out2, errs2;
  r = ws::sync_paths({spool()}, sync_options(server.url()), out2, errs2);
  EXPECT_EQ(r.runs_failed, 0) << errs2.str();
  EXPECT_EQ(r.lines_uploaded, 0);
  EXPECT_EQ(r.requests, 0);
  EXPECT_EQ(server.server().requests().size(), requests);
  EXPECT_NE(out2.str().find("already synced"), std::string::npos) << out2.str();
  EXPECT_EQ((out.str() + errs.str() + out2.str() + errs2.str()).find(kWandBKey), std::string::npos);
}

TEST_F(WandBTest, ServerDownSpoolsEverythingAndSyncUploadsIt) {
  auto down = std::make_unique<FakeWandB>();
  const std::string dead_url = down->url();
  down->server().stop();  // connections are refused from now on
  testing::internal::CaptureStderr();
  const auto t0 = std::chrono::steady_clock::now();
  {
    io::WandBLogger logger(options(dead_url));
    for (int step = 0; step < 20; ++step) logger.log_metrics({{"loss", 0.1 * step}}, step);
    logger.log_summary({{"best", 0.5}});
    logger.finish(false);
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_LT(took, 5.0) << "finish() must be bounded by the drain timeout";
  EXPECT_EQ(err.find(kWandBKey), std::string::npos) << err;
  EXPECT_EQ(steps_of(io::read_wandb_history(spool())), range(0, 20));
  auto rec = io::read_wandb_run_record(spool());
  EXPECT_FALSE(rec.next_offset.has_value());  // the run was never created
  EXPECT_TRUE(rec.finished);
  EXPECT_EQ(rec.exitcode, 1);
  EXPECT_EQ(rec.summary.at("best"), 0.5);
  EXPECT_EQ(all_files_text(path("wandb")).find(kWandBKey), std::string::npos);

  FakeWandB server;  // a healthy server (another port)
  std::ostringstream out, errs;
  ws::SyncResult r = ws::sync_paths({path("wandb")}, sync_options(server.url()), out, errs);
  EXPECT_EQ(r.runs_failed, 0) << errs.str();
  EXPECT_EQ(steps_of(server.history()), range(0, 20));
  EXPECT_EQ(server.exitcode(), 1);
  const Value summary = io::json::parse(server.summary(), "summary");
  EXPECT_EQ(io::state::get_double(summary, "best", "summary"), 0.5);
  const auto upserts = server.upserts();
  ASSERT_EQ(upserts.size(), 1u);
  EXPECT_EQ(io::state::get_string(upserts[0], "name", "vars"), "run1abcd");
  EXPECT_EQ(io::state::get_string(upserts[0], "project", "vars"), "proj");
  EXPECT_EQ(io::state::get_string(upserts[0], "entity", "vars"), "ent");
  r = ws::sync_paths({path("wandb")}, sync_options(server.url()), out, errs);
  EXPECT_EQ(r.lines_uploaded, 0);
  EXPECT_EQ(server.history().size(), 20u);
  EXPECT_EQ(server.completes(), 1);
}

TEST_F(WandBTest, FailedFinalRequestIsSpooledAndSyncEndsTheRun) {
  FakeWandB server;
  testing::internal::CaptureStderr();
  {
    io::WandBLogger logger(options(server.url()));
    for (int step = 0; step < 4; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.log_summary({{"best", 0.75}});
    ASSERT_TRUE(server.wait_history(4));
    ASSERT_TRUE(FakeWandB::poll_until([&] { return server.summary().find("best") != std::string::npos; }));
    server.fail(503);  // only the final request fails
    logger.finish(true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cannot send the end of the run"), std::string::npos) << err;
  EXPECT_NE(err.find("upload them later with: zae-wandb-sync " + spool()), std::string::npos) << err;
  EXPECT_EQ(server.completes(), 0);
  EXPECT_TRUE(io::read_wandb_history(spool()).empty());
  auto rec = io::read_wandb_run_record(spool());
  EXPECT_TRUE(rec.finished);
  EXPECT_EQ(rec.next_offset, 4);
  EXPECT_EQ(rec.summary.at("best"), 0.75);

  server.fail(0);
  std::ostringstream out, errs;
  EXPECT_EQ(ws::sync_paths({path("wandb")}, sync_options(server.url()), out, errs).runs_failed, 0) << errs.str();
  EXPECT_EQ(server.completes(), 1);
  EXPECT_EQ(server.exitcode(), 0);
  EXPECT_EQ(server.history().size(), 4u);
  EXPECT_EQ(io::state::get_double(io::json::parse(server.summary(), "summary"), "best", "summary"), 0.75);
}

TEST_F(WandBTest, OfflineRunSyncsOntoAResumedRun) {
  auto o = options("http://127.0.0.1:9");
  o.mode = "offline";
  {
    io::WandBLogger logger(o);
    for (int step = 0; step < 5; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  FakeWandB server;
  server.set_base_lines(7);  // the run id exists on the server with 7 lines
  std::ostringstream out, errs;
  ws::SyncResult r = ws::sync_paths({path("wandb")}, sync_options(server.url()), out, errs);
  EXPECT_EQ(r.runs_failed, 0) << errs.str();
  const auto batches = history_batches(server);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].first, 7);
  const auto history = server.history();
  ASSERT_EQ(history.size(), 12u);
  EXPECT_EQ(steps_of({history.begin() + 7, history.end()}), range(0, 5));
}

TEST_F(WandBTest, InterruptedSyncContinuesWhereItStopped) {
  auto o = options("http://127.0.0.1:9");
  o.mode = "offline";
  {
    io::WandBLogger logger(o);
    for (int step = 0; step < 10; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  FakeWandB server;
  server.fail_streams_after(2);  // two batches of 3 get through, then 500
  auto so = sync_options(server.url());
  so.batch_lines = 3;
  std::ostringstream out, errs;
  ws::SyncResult r = ws::sync_paths({spool()}, so, out, errs);
  EXPECT_EQ(r.runs_failed, 1);
  EXPECT_NE(errs.str().find("HTTP 500"), std::string::npos) << errs.str();
  EXPECT_NE(errs.str().find("run zae-wandb-sync again"), std::string::npos) << errs.str();
  auto rec = io::read_wandb_run_record(spool());
  EXPECT_EQ(rec.synced_lines, 6);
  EXPECT_EQ(rec.next_offset, 6);
  EXPECT_FALSE(rec.complete_synced);

  server.fail_streams_after(-1);
  r = ws::sync_paths({spool()}, so, out, errs);
  EXPECT_EQ(r.runs_failed, 0) << errs.str();
  EXPECT_EQ(r.lines_uploaded, 4);
  EXPECT_EQ(steps_of(server.history()), range(0, 10));
  EXPECT_EQ(server.replaced_lines(), 0);
  EXPECT_EQ(server.completes(), 1);
}

TEST_F(WandBTest, LostAcknowledgementReplacesLinesInsteadOfDuplicating) {
  auto o = options("http://127.0.0.1:9");
  o.mode = "offline";
  {
    io::WandBLogger logger(o);
    for (int step = 0; step < 5; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  FakeWandB server;
  std::ostringstream out, errs;
  ASSERT_EQ(ws::sync_paths({spool()}, sync_options(server.url()), out, errs).runs_failed, 0) << errs.str();
  ASSERT_EQ(server.history().size(), 5u);
  // As if the sync had died after the server took the lines but before run.json said so.
  io::update_wandb_run_record(spool(), [](io::WandBRunRecord& r) {
    r.synced_lines = 0;
    r.next_offset = 0;
    r.complete_synced = false;
  });
  ASSERT_EQ(ws::sync_paths({spool()}, sync_options(server.url()), out, errs).runs_failed, 0) << errs.str();
  EXPECT_EQ(steps_of(server.history()), range(0, 5));
  EXPECT_EQ(server.replaced_lines(), 5);
}

TEST_F(WandBTest, QueueOverflowWhileRetryingKeepsTheSpoolInOrder) {
  FakeWandB server;
  server.fail(500);
  auto o = options(server.url());
  o.queue_capacity = 5;
  o.max_attempts = 3;
  o.min_backoff = o.max_backoff = 100ms;
  o.send_interval = 10ms;
  testing::internal::CaptureStderr();
  {
    io::WandBLogger logger(o);
    logger.log_metrics({{"loss", 1.0}}, 0);
    ASSERT_TRUE(FakeWandB::poll_until([&] { return !server.server().requests().empty(); }));
    // Row 0 is being retried; these overflow the queue of 5 and the oldest are spooled first.
    for (int step = 1; step <= 20; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("queue is full"), std::string::npos) << err;
  EXPECT_EQ(steps_of(io::read_wandb_history(spool())), range(0, 21));
}

TEST_F(WandBTest, SyncProgramExitCodesAndKeySecrecy) {
  auto o = options("http://127.0.0.1:9");
  o.mode = "offline";
  {
    io::WandBLogger logger(o);
    for (int step = 0; step < 3; ++step) logger.log_metrics({{"loss", 1.0}}, step);
    logger.finish(true);
  }
  FakeWandB server;
  struct Result {
    int status;
    std::string out, err;
  };
  auto run = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ZAE_WANDB_SYNC_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string err_file = path("sync.err");
    std::filesystem::remove(err_file);
    ChildProcess child(argv, true, err_file);
    EXPECT_EQ(child.error(), "");
    Result res;
    std::string line;
    while (child.read_line(line, 20000)) res.out += line + "\n";
    const int status = child.wait();
    res.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    res.err = read(err_file);
    return res;
  };
  Result r = run({});
  EXPECT_EQ(r.status, ws::kExitUsage) << r.err;
  r = run({"--base-url", server.url(), path("wandb")});  // no WANDB_API_KEY
  EXPECT_EQ(r.status, ws::kExitFailed);
  EXPECT_NE(r.err.find("WANDB_API_KEY is not set"), std::string::npos) << r.err;
  EXPECT_TRUE(server.server().requests().empty());
  r = run({"--base-url", server.url(), path("nothing-here")});
  EXPECT_EQ(r.status, ws::kExitFailed);
  ::setenv("WANDB_API_KEY", kWandBKey, 1);
  r = run({"--base-url", server.url(), path("wandb")});
  EXPECT_EQ(r.status, ws::kExitOk) << r.out << r.err;
  EXPECT_EQ(steps_of(server.history()), range(0, 3));
  EXPECT_EQ(server.server().requests().front().header("authorization"), kWandBAuth);
  EXPECT_EQ((r.out + r.err).find(kWandBKey), std::string::npos);
  r = run({"--base-url", server.url(), path("wandb")});
  EXPECT_EQ(r.status, ws::kExitOk);
  EXPECT_NE(r.out.find("0 history lines uploaded"), std::string::npos) << r.out;
  EXPECT_EQ(server.history().size(), 3u);
}

}  // namespace
}  // namespace zae::test
