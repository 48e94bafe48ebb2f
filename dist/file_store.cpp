// FileStore: see dist/file_store.h.
//
// File format (integers little-endian):
//   "ZAESTOR1"                                            8-byte magic, written by the first user
//   records:  u8 type (1 = set) | u32 key size | u32 value size | key | value
// A key's value is that of its last record. Writers append whole records while holding
// flock(LOCK_EX); readers hold LOCK_SH while replaying, so a record that ends past the end
// of the file is corruption, not a write in progress. Each user leaves by adding 1 to the
// reserved key kLeftKey; the one that brings it to world_size removes the file.
// Invariants: data_ is the file replayed up to offset_; fd_ and its lock are used by one
// thread at a time (mu_); flock locks belong to the open file description, so two
// FileStores on one path, in one process or two, exclude each other.
#include "dist/file_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "engine/error.h"

namespace zae::dist {

namespace {

constexpr char kMagic[8] = {'Z', 'A', 'E', 'S', 'T', 'O', 'R', '1'};
constexpr uint8_t kSetRecord = 1;
const std::string kLeftKey("\0zae/filestore/left", 19);  // a NUL first: no user key collides

uint32_t read_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

void put_u32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    ZAE_CHECK(w > 0, "FileStore: writing ", path, " failed: ", std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

FileStore::FileStore(std::string path, int world_size, std::chrono::milliseconds timeout)
    : path_(std::move(path)), world_size_(world_size) {
  ZAE_CHECK(!path_.empty(), "FileStore: the path is empty");
  ZAE_CHECK(world_size_ >= 1, "FileStore: world_size must be >= 1, got ", world_size_, " (", path_, ")");
  ZAE_CHECK(timeout.count() > 0, "FileStore: timeout must be positive, got ", timeout.count(), " ms");
  timeout_ = timeout;
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ZAE_CHECK(fd_ >= 0, "FileStore: cannot open or create ", path_, ": ", std::strerror(errno),
            " (does its directory exist on a filesystem every rank can reach?)");
  std::lock_guard<std::mutex> lock(mu_);
  try {
    lock_and_refresh(LOCK_EX);  // writes the magic into a new file
    unlock();
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

FileStore::~FileStore() {
  if (fd_ < 0) return;
  try {
    std::lock_guard<std::mutex> lock(mu_);
    lock_and_refresh(LOCK_EX);
    int64_t left = 0;
    auto it = data_.find(kLeftKey);
    if (it != data_.end()) left = parse_store_integer("(users left)", it->second);
    ++left;
    const std::string text = std::to_string(left);
    append(kSetRecord, kLeftKey, Bytes(text.begin(), text.end()));
    if (left >= world_size_) ::unlink(path_.c_str());  // the last user: nobody needs the file any more
    unlock();
  } catch (...) {
    // A broken file stays behind; nothing else to do in a destructor.
  }
  ::close(fd_);
}

void FileStore::lock_and_refresh(int op) {
  int rc;
  do rc = ::flock(fd_, op);
  while (rc != 0 && errno == EINTR);
  ZAE_CHECK(rc == 0, "FileStore: flock on ", path_, " failed: ", std::strerror(errno));
  try {
    struct stat st {};
    ZAE_CHECK(::fstat(fd_, &st) == 0, "FileStore: stat ", path_, " failed: ", std::strerror(errno));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size == 0 && op == LOCK_EX) {
      write_all(fd_, reinterpret_cast<const uint8_t*>(kMagic), sizeof kMagic, path_);
      offset_ = sizeof kMagic;
      return;
    }
    if (size == 0) return;  // a brand-new file (its creator is about to write the magic)
    ZAE_CHECK(size >= offset_, "FileStore: ", path_, " shrank from ", offset_, " to ", size,
              " bytes (was it replaced or truncated while in use?)");
    if (size == offset_) return;
    Bytes buf(size - offset_);
    size_t got = 0;
    while (got < buf.size()) {
      const ssize_t n = ::pread(fd_, buf.data() + got, buf.size() - got, static_cast<off_t>(offset_ + got));
      if (n < 0 && errno == EINTR) continue;
      ZAE_CHECK(n > 0, "FileStore: reading ", path_, " at offset ", offset_ + got, " failed: ",
                n == 0 ? "unexpected end of file" : std::strerror(errno));
      got += static_cast<size_t>(n);
    }
    size_t pos = 0;
    if (offset_ == 0) {
      ZAE_CHECK(buf.size() >= sizeof kMagic && std::memcmp(buf.data(), kMagic, sizeof kMagic) == 0, "FileStore: ",
                path_, " is not a FileStore file (bad magic at offset 0); remove it or choose another file:// path");
      pos = sizeof kMagic;
    }
    while (pos < buf.size()) {
      const uint64_t at = offset_ + pos;
      ZAE_CHECK(buf.size() - pos >= 9, "FileStore: ", path_, " has a torn record header at offset ", at);
      const uint8_t type = buf[pos];
      const uint32_t key_size = read_u32(&buf[pos + 1]);
      const uint32_t value_size = read_u32(&buf[pos + 5]);
      ZAE_CHECK(type == kSetRecord, "FileStore: ", path_, " has an unknown record type ", int(type), " at offset ", at);
      ZAE_CHECK(buf.size() - pos - 9 >= uint64_t(key_size) + value_size, "FileStore: ", path_,
                " has a torn record at offset ", at, " (key ", key_size, " + value ", value_size, " bytes, only ",
                buf.size() - pos - 9, " left)");
      const auto k = buf.begin() + static_cast<std::ptrdiff_t>(pos + 9);
      const auto v = k + key_size;
      data_[std::string(k, v)] = Bytes(v, v + value_size);
      pos += 9 + key_size + value_size;
    }
    offset_ += buf.size();
  } catch (...) {
    unlock();
    throw;
  }
}

void FileStore::unlock() { ::flock(fd_, LOCK_UN); }

void FileStore::append(uint8_t type, const std::string& key, const Bytes& value) {
  ZAE_CHECK(key.size() <= 0xFFFFFFFFu && value.size() <= 0xFFFFFFFFu, "FileStore: key or value too large");
  Bytes rec;
  rec.reserve(9 + key.size() + value.size());
  rec.push_back(type);
  put_u32(rec, static_cast<uint32_t>(key.size()));
  put_u32(rec, static_cast<uint32_t>(value.size()));
  rec.insert(rec.end(), key.begin(), key.end());
  rec.insert(rec.end(), value.begin(), value.end());
  write_all(fd_, rec.data(), rec.size(), path_);  // O_APPEND: at the end, under our LOCK_EX
  data_[key] = value;
  offset_ += rec.size();
}

void FileStore::set(const std::string& key, const Bytes& value) {
  std::lock_guard<std::mutex> lock(mu_);
  lock_and_refresh(LOCK_EX);
  try {
    append(kSetRecord, key, value);
  } catch (...) {
    unlock();
    throw;
  }
  unlock();
}

Bytes FileStore::get(const std::string& key) {
  wait({key}, timeout());
  std::lock_guard<std::mutex> lock(mu_);
  return data_.at(key);  // present: wait() saw it, and keys are never removed
}

int64_t FileStore::add(const std::string& key, int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  lock_and_refresh(LOCK_EX);
  int64_t value = 0;
  try {
    auto it = data_.find(key);
    if (it != data_.end() && !it->second.empty()) value = parse_store_integer(key, it->second);
    value += delta;
    const std::string text = std::to_string(value);
    append(kSetRecord, key, Bytes(text.begin(), text.end()));
  } catch (...) {
    unlock();
    throw;
  }
  unlock();
  return value;
}

bool FileStore::check(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  lock_and_refresh(LOCK_SH);
  unlock();
  for (const std::string& k : keys)
    if (!data_.count(k)) return false;
  return true;
}

void FileStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + timeout;
  auto sleep = std::chrono::milliseconds(1);
  for (;;) {
    std::vector<std::string> missing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      lock_and_refresh(LOCK_SH);
      unlock();
      for (const std::string& k : keys)
        if (!data_.count(k)) missing.push_back(k);
    }
    if (missing.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      ZAE_FAIL("store: timed out after ", std::chrono::duration_cast<std::chrono::milliseconds>(now - t0).count(),
               " ms waiting for key(s) ", missing, " (FileStore at ", path_, ", timeout ", timeout.count(), " ms)");
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(sleep, deadline - now));
    sleep = std::min(sleep * 2, std::chrono::milliseconds(20));
  }
}

}  // namespace zae::dist
