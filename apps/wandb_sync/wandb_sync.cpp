// zae-wandb-sync (see wandb_sync.h).
#include "apps/wandb_sync/wandb_sync.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>

#include "engine/error.h"
#include "io/loggers/wandb_api.h"
#include "io/loggers/wandb_spool.h"

namespace zae::apps::wandb_sync {

namespace {

namespace fs = std::filesystem;
using io::WandBApi;

// Runs `attempt` (returning "" or an error) up to max_attempts times with doubling backoff.
template <class F>
std::string with_retries(const SyncOptions& o, SyncResult& res, F&& attempt) {
  auto backoff = o.backoff;
  for (int a = 1;; ++a) {
    ++res.requests;
    std::string err = attempt();
    if (err.empty() || a >= o.max_attempts) return err;
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

// Uploads what one spool still holds; zae::Error (progress saved) when a request fails.
void sync_one(const std::string& spool, WandBApi& api, const SyncOptions& o, SyncResult& res, std::ostream& out) {
  const io::WandBRunRecord rec = io::read_wandb_run_record(spool);
  const std::vector<std::string> lines = io::read_wandb_history(spool);
  const auto total = static_cast<int64_t>(lines.size());
  ZAE_CHECK(rec.synced_lines <= total, spool, "/run.json says ", rec.synced_lines,
            " history lines are synced, but history.jsonl holds only ", total);
  const bool need_summary = !rec.summary_synced && !rec.summary.empty();
  const bool need_complete = rec.finished && !rec.complete_synced;
  if (rec.synced_lines == total && !need_summary && !need_complete) {
    out << spool << ": already synced (" << total << " history lines" << (rec.finished ? ", finished" : "")
        << ")\n";
    return;
  }

  io::WandBUpsert u;
  u.run_id = rec.run_id;
  u.project = rec.project;
  u.entity = rec.entity;
  u.display_name = rec.display_name;
  u.config = rec.config.kind == io::json::Kind::object ? &rec.config : nullptr;
  u.tags = rec.tags;
  io::WandBRunInfo info;
  std::string err = with_retries(o, res, [&] { return api.upsert_run(u, info); });
  ZAE_CHECK(err.empty(), spool, ": cannot create or resume run ", rec.run_id, ": ", err);

  // Where the first unsynced line goes: the end of the server's history, or the recorded
  // next_offset when the server holds more (lines whose acknowledgement was lost).
  int64_t offset = info.history_line_count;
  if (rec.next_offset && *rec.next_offset < offset) offset = *rec.next_offset;
  const int64_t first_offset = offset;
  bool stopped = false;

  int64_t done = rec.synced_lines;
  while (done < total) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(o.batch_lines), total - done);
    const std::vector<std::string> chunk(lines.begin() + done, lines.begin() + done + n);
    const std::string body = io::wandb_file_stream_body(offset, chunk, nullptr, std::nullopt);
    err = with_retries(o, res, [&] {
      io::WandBStreamResult r = api.file_stream(info.entity, info.project, info.run_id, body);
      stopped = stopped || r.stopped;
      return r.error;
    });
    ZAE_CHECK(err.empty(), spool, ": uploaded ", done - rec.synced_lines, " of ", total - rec.synced_lines,
              " history lines, then: ", err, " (run zae-wandb-sync again to continue)");
    done += n;
    offset += n;
    res.lines_uploaded += n;
    io::update_wandb_run_record(spool, [&](io::WandBRunRecord& r) {
      r.synced_lines = done;
      r.next_offset = offset;
    });
  }

  if (need_summary || need_complete) {
    const std::string summary = io::wandb_summary_json(rec.summary);
    const std::string body = io::wandb_file_stream_body(
        offset, {}, rec.summary.empty() ? nullptr : &summary, need_complete ? std::optional<int>(rec.exitcode) : std::nullopt);
    err = with_retries(o, res, [&] {
      io::WandBStreamResult r = api.file_stream(info.entity, info.project, info.run_id, body);
      stopped = stopped || r.stopped;
      return r.error;
    });
    ZAE_CHECK(err.empty(), spool, ": the history is uploaded, but the summary/end of the run failed: ", err,
              " (run zae-wandb-sync again to finish)");
    io::update_wandb_run_record(spool, [&](io::WandBRunRecord& r) {
      if (r.summary == rec.summary) r.summary_synced = true;  // unless the logger wrote a newer one meanwhile
      if (need_complete && r.finished && r.exitcode == rec.exitcode) r.complete_synced = true;
    });
  }

  out << spool << ": synced to " << info.entity << "/" << info.project << "/" << info.run_id << ": "
      << (total - rec.synced_lines) << " history lines";
  if (total > rec.synced_lines) out << " (offsets " << first_offset << ".." << offset - 1 << ")";
  if (need_complete)
    out << ", marked finished (exitcode " << rec.exitcode << ")";
  else if (!rec.finished)
    out << ", not marked finished (the run has not finished: still running, or it crashed)";
  if (stopped) out << "; note: the server says this run was stopped";
  out << "\n";
}

// The spools a command-line path names (itself, or its offline-run-* subdirectories).
std::vector<std::string> spools_in(const std::string& path) {
  if (io::is_wandb_spool_dir(path)) return {path};
  std::error_code ec;
  ZAE_CHECK(fs::is_directory(path, ec), "'", path, "' is not a directory");
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("offline-run-", 0) == 0 && io::is_wandb_spool_dir(entry.path().string()))
      found.push_back(entry.path().string());
  }
  ZAE_CHECK(!ec, "cannot list '", path, "': ", ec.message());
  ZAE_CHECK(!found.empty(), "no offline runs in '", path, "' (expected run.json there or in offline-run-*/)");
  std::sort(found.begin(), found.end());
  return found;
}

std::string message_of(const std::exception& e) {
  if (const auto* z = dynamic_cast<const Error*>(&e)) return z->message();
  return e.what();
}

constexpr const char* kUsage =
    "usage: zae-wandb-sync [--base-url URL] DIR...\n"
    "  Uploads W&B runs that WandBLogger spooled (offline mode, no API key, or no network).\n"
    "  DIR: a spool (offline-run-<id>, holding run.json and history.jsonl) or a directory\n"
    "  holding spools (WANDB_DIR, ./wandb by default). Already uploaded lines are never sent\n"
    "  again. The key comes from WANDB_API_KEY (or ~/.netrc); the server from --base-url,\n"
    "  else WANDB_BASE_URL, else https://api.wandb.ai.\n";

}  // namespace

SyncResult sync_paths(const std::vector<std::string>& paths, const SyncOptions& options, std::ostream& out,
                      std::ostream& err) {
  SyncOptions o = options;
  if (o.base_url.empty()) {
    const char* env = std::getenv("WANDB_BASE_URL");
    o.base_url = env != nullptr && *env != '\0' ? env : "https://api.wandb.ai";
  }
  ZAE_CHECK(o.base_url.rfind("http://", 0) == 0 || o.base_url.rfind("https://", 0) == 0,
            "the base URL must start with http:// or https://, got '", o.base_url, "'");
  if (o.api_key.empty()) o.api_key = io::wandb_api_key_from_environment(o.base_url);
  ZAE_CHECK(!o.api_key.empty(), "WANDB_API_KEY is not set (and ~/.netrc has no key for ", o.base_url, ")");
  ZAE_CHECK(o.batch_lines >= 1 && o.max_attempts >= 1, "batch_lines and max_attempts must be >= 1");

  WandBApi api(o.base_url, o.api_key, o.request_timeout);
  SyncResult res;
  for (const auto& p : paths) {
    std::vector<std::string> spools;
    try {
      spools = spools_in(p);
    } catch (const std::exception& e) {
      ++res.runs_failed;
      err << "zae-wandb-sync: " << message_of(e) << "\n";
      continue;
    }
    for (const auto& s : spools) {
      ++res.runs;
      try {
        sync_one(s, api, o, res, out);
      } catch (const std::exception& e) {
        ++res.runs_failed;
        err << "zae-wandb-sync: " << message_of(e) << "\n";
      }
    }
  }
  return res;
}

int run_wandb_sync_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  SyncOptions o;
  std::vector<std::string> dirs;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      out << kUsage;
      return kExitOk;
    } else if (a == "--base-url") {
      if (i + 1 >= args.size()) {
        err << "zae-wandb-sync: --base-url needs a URL\n" << kUsage;
        return kExitUsage;
      }
      o.base_url = args[++i];
    } else if (a.rfind("--base-url=", 0) == 0) {
      o.base_url = a.substr(11);
    } else if (a.size() > 1 && a[0] == '-') {
      err << "zae-wandb-sync: unknown option '" << a << "'\n" << kUsage;
      return kExitUsage;
    } else {
      dirs.push_back(a);
    }
  }
  if (dirs.empty()) {
    err << "zae-wandb-sync: no directory given\n" << kUsage;
    return kExitUsage;
  }
  try {
    const SyncResult r = sync_paths(dirs, o, out, err);
    out << "zae-wandb-sync: " << r.runs << " run(s), " << r.lines_uploaded << " history lines uploaded, "
        << r.runs_failed << " failed\n";
    return r.runs_failed == 0 ? kExitOk : kExitFailed;
  } catch (const std::exception& e) {
    err << "zae-wandb-sync: " << message_of(e) << "\n";
    return kExitFailed;
  }
}

}  // namespace zae::apps::wandb_sync
