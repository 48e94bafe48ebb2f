// A read-only, private memory mapping of a whole regular file (safetensors and
// checkpoint readers). Unmapped and closed in the destructor on every path.
// Errors name the operation (`op`), the path and strerror: missing files,
// directories, special files, mmap failures. An empty file maps to (nullptr, 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zae::io {

class MappedFile {
 public:
  MappedFile(const std::string& path, const char* op);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zae::io
