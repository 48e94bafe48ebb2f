// Crash-safe file replacement: the new contents go to a temporary file in the target's
// directory (".<name>.tmp.<pid>.<n>"), which is flushed, fsync'ed, renamed over the
// target, and then the directory is fsync'ed. A crash or kill -9 at any moment leaves
// either the old file or the complete new one under `path`, never a torn file.
// Invariants: on any error (the writer throws, a write fails: disk full, file too
// large, an unwritable directory) the temporary file is removed, the old file is left
// untouched, and a zae::Error names the path and the system's reason (strerror).
// A file being replaced keeps its permission bits.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace zae::io {

/// Replaces `path` with what `writer` writes to the stream it is given. The writer may
/// throw to abort (the old file stays); a stream error it leaves behind is reported.
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& writer);

/// Replaces `path` with `bytes`.
void write_file_atomic(const std::string& path, std::string_view bytes);

/// Removes the temporary files that writes killed mid-way (kill -9, power loss) left in
/// `dir`: names ".<name>.tmp.<pid>.<n>" whose process no longer exists on this host and
/// that were last modified at least `min_age_seconds` ago (a writer on another host of a
/// shared filesystem keeps touching its file). Returns how many were removed; errors
/// (an unreadable directory) remove nothing and are not reported.
size_t remove_stale_temporaries(const std::string& dir, double min_age_seconds = 60.0);

/// fwrite that throws a zae::Error naming `path` and strerror on a short write.
void write_all(std::FILE* f, const void* data, size_t n, const std::string& path);

}  // namespace zae::io
