// zae-wandb-sync: uploads the W&B offline spools that WandBLogger leaves behind
// (io/loggers/wandb_spool.h; offline mode, no key, or a server that could not be reached)
// to a W&B server. Kept here, in zae_apps, so that tests call it; apps/zae_wandb_sync.cpp
// is only main().
//
// Per spool: UpsertBucket (creates or resumes the run with its config, tags and names),
// then the history lines not yet synced in batches, at offsets that continue the run's
// history on the server, then the summary and, for a run that finished, the final
// {"complete": true, "exitcode": N}.
// Invariants: after every acknowledged request run.json records what was uploaded
// (synced_lines, next_offset, summary_synced, complete_synced), written crash-safely, so
// a re-run (after a crash, a failure or a success) uploads nothing twice; a spool with
// nothing left to upload costs no request at all. The offset of the first unsynced line
// is the server's historyLineCount, or run.json's next_offset when the server already
// holds more lines than that (an acknowledgement lost to a timeout or a crash: the lines
// are sent again at the same offsets, which replaces them instead of duplicating them).
// The API key is never printed. Nothing is written to stdout/stderr except through the
// streams given.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace zae::apps::wandb_sync {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  ///< a run could not be (completely) uploaded
inline constexpr int kExitUsage = 2;   ///< bad command line

struct SyncOptions {
  std::string base_url{};  ///< "" -> WANDB_BASE_URL, else https://api.wandb.ai
  std::string api_key{};   ///< "" -> WANDB_API_KEY (or ~/.netrc)
  size_t batch_lines = 1000;  ///< history lines per request
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  int max_attempts = 3;  ///< per request
  std::chrono::milliseconds backoff{std::chrono::seconds(2)};  ///< before the 2nd attempt, doubling
};

struct SyncResult {
  int runs = 0;            ///< spools found
  int runs_failed = 0;
  int64_t lines_uploaded = 0;
  int64_t requests = 0;    ///< HTTP requests made (UpsertBucket and file_stream)
};

/// Uploads every spool under `paths` (a spool directory offline-run-<id>, or a directory
/// holding such directories, e.g. WANDB_DIR). One line per run on `out`, failures on
/// `err`. A path that holds no spool counts as a failure. Never throws for a failed run
/// (the next one is still tried); throws zae::Error for bad options (no key, a bad URL).
SyncResult sync_paths(const std::vector<std::string>& paths, const SyncOptions& options, std::ostream& out,
                      std::ostream& err);

/// `zae-wandb-sync [--base-url URL] DIR...`: kExitOk when every run is synced,
/// kExitFailed (with the reason on `err`) otherwise, kExitUsage for a bad command line.
int run_wandb_sync_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace zae::apps::wandb_sync
