// AppendOnlyFile: the file under a line-oriented metric logger (JSONL, CSV). Each
// append() is one write(2) on an O_APPEND descriptor, with no user-space buffer, so a
// reader that tails the file sees every line whole the moment it is complete (a line
// only ever appears with its '\n', after the bytes before it).
// Invariants: opening never truncates unless asked, creates missing parent directories,
// and reports a path that cannot be opened as a zae::Error naming it and strerror;
// append() never throws: a failed write is undone (the file is cut back to its length
// before the call, so no torn line stays behind), reported once on stderr (later
// failures are silent) and answered with false; the descriptor is closed by close() or
// the destructor, which never throw.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace zae::io {

class AppendOnlyFile {
 public:
  /// Opens `path` for appending (`truncate`: emptied first), creating it and its parent
  /// directories. `owner` ("JsonlLogger") prefixes error messages and the warning.
  AppendOnlyFile(std::string path, bool truncate, std::string owner);
  ~AppendOnlyFile();
  AppendOnlyFile(const AppendOnlyFile&) = delete;
  AppendOnlyFile& operator=(const AppendOnlyFile&) = delete;

  /// Appends `bytes` with one write (more only if the kernel writes part of it). On
  /// failure: cuts the file back, warns once on stderr, returns false. Never throws.
  bool append(std::string_view bytes);
  /// Reopens the path for appending (after it was replaced by a rename). False (with the
  /// one warning) when it cannot be opened; appends then fail until a reopen succeeds.
  bool reopen();
  /// fsync, best effort (failures are ignored: the data went to the kernel already).
  void sync();
  /// Closes the descriptor; appends afterwards return false without a warning.
  void close();

  const std::string& path() const { return path_; }
  /// The file's size when it was opened (0 after truncation).
  off_t initial_size() const { return initial_size_; }
  /// Whether a failure has been reported on stderr already.
  bool warned() const { return warned_; }
  /// Prints "zae: warning: <owner>: <what>" once per file (later calls print nothing).
  void warn_once(const std::string& what);

 private:
  int open_fd(bool truncate, std::string* error);

  std::string path_;
  std::string owner_;
  int fd_ = -1;
  bool closed_ = false;
  bool warned_ = false;
  off_t initial_size_ = 0;
};

/// Creates the parent directories of `path`; a zae::Error naming `owner`, the path and
/// the reason when that fails (a parent is a regular file, no permission).
void create_parent_directories(const std::string& path, const std::string& owner);

}  // namespace zae::io
