#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/error.h"

namespace zae::io {

MappedFile::MappedFile(const std::string& path, const char* op) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    ZAE_FAIL(op, ": cannot open '", path, "': ", std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    ZAE_FAIL(op, ": cannot stat '", path, "': ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    ZAE_FAIL(op, ": '", path, "' is ", S_ISDIR(st.st_mode) ? "a directory" : "not a regular file",
             ", not a file to read");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;  // nothing to map; the parser reports the short file
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd_);
    ZAE_FAIL(op, ": cannot memory-map '", path, "' (", size_, " bytes): ", std::strerror(err));
  }
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace zae::io
