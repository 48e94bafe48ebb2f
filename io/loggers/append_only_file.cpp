// AppendOnlyFile: O_APPEND descriptor, one write(2) per line, failed writes undone.
#include "io/loggers/append_only_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "engine/error.h"

namespace zae::io {

void create_parent_directories(const std::string& path, const std::string& owner) {
  namespace fs = std::filesystem;
  ZAE_CHECK(!path.empty(), owner, ": the path is empty");
  const fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) ZAE_FAIL(owner, ": cannot create the directory '", parent.string(), "' for '", path, "': ", ec.message());
}

AppendOnlyFile::AppendOnlyFile(std::string path, bool truncate, std::string owner)
    : path_(std::move(path)), owner_(std::move(owner)) {
  create_parent_directories(path_, owner_);
  std::string error;
  fd_ = open_fd(truncate, &error);
  if (fd_ < 0) ZAE_FAIL(owner_, ": cannot open '", path_, "' for writing: ", error);
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) initial_size_ = st.st_size;
}

AppendOnlyFile::~AppendOnlyFile() { close(); }

int AppendOnlyFile::open_fd(bool truncate, std::string* error) {
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
  if (truncate) flags |= O_TRUNC;
  int fd;
  do {
    fd = ::open(path_.c_str(), flags, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {  // O_WRONLY refuses directories; be sure
    ::close(fd);
    *error = "it is a directory";
    return -1;
  }
  return fd;
}

void AppendOnlyFile::warn_once(const std::string& what) {
  if (warned_) return;
  warned_ = true;
  std::fprintf(stderr, "zae: warning: %s: %s (further failures on this file are not reported)\n", owner_.c_str(),
               what.c_str());
  std::fflush(stderr);
}

bool AppendOnlyFile::append(std::string_view bytes) {
  if (fd_ < 0) {
    if (!closed_) warn_once("'" + path_ + "' is not open; rows are being lost");
    return false;
  }
  if (bytes.empty()) return true;
  // The length before the write, to cut a partial line back off (regular files only).
  struct stat st {};
  const bool regular = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  const off_t before = regular ? st.st_size : 0;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : EIO;
    if (done > 0 && regular) {
      [[maybe_unused]] const int rc = ::ftruncate(fd_, before);  // best effort: no torn line
    }
    warn_once("writing '" + path_ + "' failed: " + std::strerror(err) + "; rows are being lost");
    return false;
  }
  return true;
}

bool AppendOnlyFile::reopen() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  closed_ = false;
  std::string error;
  fd_ = open_fd(false, &error);
  if (fd_ < 0) {
    warn_once("cannot reopen '" + path_ + "': " + error + "; rows are being lost");
    return false;
  }
  return true;
}

void AppendOnlyFile::sync() {
  if (fd_ >= 0) {
    [[maybe_unused]] const int rc = ::fsync(fd_);
  }
}

void AppendOnlyFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  closed_ = true;
}

}  // namespace zae::io
