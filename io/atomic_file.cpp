// write_file_atomic: temp file + fsync + rename + directory fsync (POSIX).
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "engine/error.h"

namespace zae::io {

namespace {

std::string reason(int err) { return std::strerror(err); }

// Owns the temporary file until it has been renamed: closes and removes it otherwise.
class TempFile {
 public:
  TempFile(const std::string& dir, const std::string& name, const std::string& target) {
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; attempt < 100; ++attempt) {
      path_ = dir + "/." + name + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0 || errno != EEXIST) break;
    }
    if (fd_ < 0) {
      const int err = errno;
      ZAE_FAIL("cannot write '", target, "': cannot create a temporary file in '", dir, "': ", reason(err));
    }
    file_ = ::fdopen(fd_, "wb");
    if (!file_) {
      const int err = errno;
      ::close(fd_);
      ::unlink(path_.c_str());
      ZAE_FAIL("cannot write '", target, "': fdopen failed: ", reason(err));
    }
  }
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!renamed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  std::FILE* file() const { return file_; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes the stream; returns 0 or the errno of the failure.
  int close() {
    std::FILE* f = file_;
    file_ = nullptr;
    return std::fclose(f) == 0 ? 0 : errno;
  }
  void mark_renamed() { renamed_ = true; }

 private:
  std::string path_;
  int fd_ = -1;
  std::FILE* file_ = nullptr;
  bool renamed_ = false;
};

}  // namespace

void write_all(std::FILE* f, const void* data, size_t n, const std::string& path) {
  if (n == 0) return;
  errno = 0;
  const size_t done = std::fwrite(data, 1, n, f);
  if (done != n) {
    const int err = errno;
    ZAE_FAIL("writing '", path, "' failed after ", done, " of ", n, " bytes: ", err ? reason(err) : "write error");
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& writer) {
  namespace fs = std::filesystem;
  ZAE_CHECK(!path.empty(), "write_file_atomic: the path is empty");
  const fs::path target(path);
  const std::string name = target.filename().string();
  ZAE_CHECK(!name.empty() && name != "." && name != "..", "cannot write '", path, "': it names a directory, not a file");
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : std::string(".");

  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  ZAE_CHECK(!(exists && S_ISDIR(st.st_mode)), "cannot write '", path, "': it is a directory");
  struct stat dst {};
  if (::stat(dir.c_str(), &dst) != 0) {
    const int err = errno;
    ZAE_FAIL("cannot write '", path, "': directory '", dir, "': ", reason(err));
  }
  ZAE_CHECK(S_ISDIR(dst.st_mode), "cannot write '", path, "': '", dir, "' is not a directory");

  TempFile tmp(dir, name, path);
  if (exists && S_ISREG(st.st_mode)) {
    [[maybe_unused]] const int rc = ::fchmod(tmp.fd(), st.st_mode & 07777);  // best effort: keep the mode
  }

  writer(tmp.file());  // may throw: ~TempFile removes the temporary file

  errno = 0;
  if (std::fflush(tmp.file()) != 0) {
    const int err = errno;
    ZAE_FAIL("writing '", path, "' failed: ", reason(err));
  }
  ZAE_CHECK(!std::ferror(tmp.file()), "writing '", path, "' failed: the stream reports a write error");
  if (::fsync(tmp.fd()) != 0) {
    const int err = errno;
    ZAE_FAIL("writing '", path, "' failed: fsync: ", reason(err));
  }
  if (const int err = tmp.close(); err != 0) ZAE_FAIL("writing '", path, "' failed: close: ", reason(err));
  if (::rename(tmp.path().c_str(), path.c_str()) != 0) {
    const int err = errno;
    ZAE_FAIL("cannot write '", path, "': renaming '", tmp.path(), "' over it failed: ", reason(err));
  }
  tmp.mark_renamed();

  // Make the rename itself durable. Filesystems that cannot fsync a directory say EINVAL.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    const int err = errno;
    ZAE_FAIL("wrote '", path, "' but cannot open its directory '", dir, "' to fsync it: ", reason(err));
  }
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP)
    ZAE_FAIL("wrote '", path, "' but fsync of its directory '", dir, "' failed: ", reason(err));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](std::FILE* f) { write_all(f, bytes.data(), bytes.size(), path); });
}

size_t remove_stale_temporaries(const std::string& dir, double min_age_seconds) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return 0;
  const auto now = fs::file_time_type::clock::now();
  size_t removed = 0;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    // ".<target>.tmp.<pid>.<n>"
    if (name.size() < 8 || name[0] != '.') continue;
    const size_t tmp = name.rfind(".tmp.");
    if (tmp == std::string::npos || tmp == 0) continue;
    const std::string rest = name.substr(tmp + 5);
    const size_t dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 >= rest.size()) continue;
    const std::string pid_text = rest.substr(0, dot), n_text = rest.substr(dot + 1);
    auto digits = [](const std::string& t) { return t.find_first_not_of("0123456789") == std::string::npos; };
    if (!digits(pid_text) || !digits(n_text) || pid_text.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    const auto mtime = fs::last_write_time(it->path(), ec);
    if (ec) continue;
    const double age = std::chrono::duration<double>(now - mtime).count();
    if (age < min_age_seconds) continue;
    if (fs::remove(it->path(), ec) && !ec) ++removed;
  }
  return removed;
}

}  // namespace zae::io
