// The W&B offline spool: what a run could not (or was told not to) upload, kept on disk
// until zae-wandb-sync uploads it. One directory per run, <dir>/offline-run-<run_id>/:
//   history.jsonl  one history row per line, exactly as it would have been sent, in order
//   run.json       the run (run_id, project, entity, display_name, tags, config), the latest
//                  summary, whether it finished (and its exitcode), and the sync state:
//                  synced_lines (history lines already uploaded), next_offset (the server's
//                  line number for history line synced_lines when known, else null),
//                  summary_synced, complete_synced, stopped
// Invariants: history.jsonl holds only whole lines (a torn tail left by a crash is cut off
// when the spool is reopened); run.json is always replaced crash-safely (temporary file +
// rename) under an exclusive lock on <spool>/.lock, by a read-modify-write that keeps the
// fields the other party owns (the logger never moves the sync state backwards; the sync
// touches only the sync state), so a logger and a sync running at once lose nothing;
// nothing here ever holds an API key.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/loggers/append_only_file.h"
#include "io/loggers/metric_logger.h"

namespace zae::io {

/// run.json, in memory.
struct WandBRunRecord {
  std::string run_id, project, entity, display_name;
  std::vector<std::string> tags;
  json::Value config;             ///< an object, or null when no config was logged
  MetricValues summary;
  bool finished = false;          ///< finish() was called: exitcode is final
  int exitcode = 0;
  bool stopped = false;           ///< the server stopped the run while it was online
  // The sync state (owned by zae-wandb-sync once the file exists).
  int64_t synced_lines = 0;
  std::optional<int64_t> next_offset;
  bool summary_synced = false;
  bool complete_synced = false;
};

/// "<dir>/offline-run-<run_id>".
std::string wandb_spool_dir(const std::string& dir, const std::string& run_id);
/// Whether `path` is a spool directory (holds run.json).
bool is_wandb_spool_dir(const std::string& path);
/// Reads <spool>/run.json; zae::Error naming the file and the field on any problem.
WandBRunRecord read_wandb_run_record(const std::string& spool_dir);
/// Locked read-modify-write of <spool>/run.json: `edit` gets the current record (the
/// file must exist) and the result replaces the file crash-safely. Throws zae::Error.
void update_wandb_run_record(const std::string& spool_dir, const std::function<void(WandBRunRecord&)>& edit);
/// The complete lines of <spool>/history.jsonl (without '\n'); a torn last line is ignored.
std::vector<std::string> read_wandb_history(const std::string& spool_dir);

/// The writer side, used by WandBLogger (one thread at a time).
class WandBSpool {
 public:
  /// Opens or creates the spool of `record.run_id` under `dir`. A new spool gets `record`
  /// as its run.json (synced_lines 0). An existing one (the same run id spooled before)
  /// is continued: its lines stay, new ones are appended; its sync state is kept, except
  /// that when every line it holds is synced, next_offset becomes `record.next_offset`.
  /// zae::Error naming the path when the directory or the files cannot be written.
  WandBSpool(const std::string& dir, const WandBRunRecord& record);

  const std::string& path() const { return dir_; }
  /// Appends one history line; false (warned once on stderr) when the write failed.
  bool append(const std::string& line);
  /// Lines in history.jsonl (those there before plus those appended).
  int64_t lines() const { return lines_; }
  /// Rewrites run.json from `record`'s run fields, summary, config, finished/exitcode and
  /// stopped; the sync state in the file is kept and summary_synced is cleared. Returns
  /// "" or an error text (never throws).
  std::string update(const WandBRunRecord& record);

 private:
  std::string dir_;
  std::unique_ptr<AppendOnlyFile> history_;
  int64_t lines_ = 0;
};

}  // namespace zae::io
