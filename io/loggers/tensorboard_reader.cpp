// Event file reader: TFRecord framing with CRC checks, then Event decoding.
#include "io/loggers/tensorboard_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "engine/error.h"
#include "io/crc32c.h"

namespace zae::io::tensorboard {
namespace {

uint64_t load_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string hex32(uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

}  // namespace

EventFileReader::EventFileReader(std::string path, ReadOptions options)
    : path_(std::move(path)), options_(options) {
  file_ = std::fopen(path_.c_str(), "rb");
  ZAE_CHECK(file_ != nullptr, "tensorboard: cannot open event file ", path_, ": ", std::strerror(errno));
}

EventFileReader::~EventFileReader() {
  if (file_) std::fclose(file_);
}

void EventFileReader::corrupt(uint64_t at, const std::string& what) const {
  ZAE_FAIL(path_, ": corrupt record at offset ", at, ": ", what);
}

size_t EventFileReader::read_up_to(void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const size_t r = std::fread(static_cast<char*>(buf) + got, 1, n - got, file_);
    if (r == 0) {
      ZAE_CHECK(!std::ferror(file_), "tensorboard: reading ", path_, " at offset ", offset_ + got, ": ",
                std::strerror(errno));
      break;
    }
    got += r;
  }
  return got;
}

bool EventFileReader::next_record(std::string& data, uint64_t& offset) {
  const uint64_t at = offset_;
  unsigned char header[12];
  const size_t got = read_up_to(header, sizeof header);
  if (got == 0) return false;
  if (got < sizeof header) {
    if (options_.allow_partial_tail) return false;
    corrupt(at, "truncated header (" + std::to_string(got) + " of 12 bytes)");
  }
  const uint64_t length = load_le(header, 8);
  const auto stored_len_crc = static_cast<uint32_t>(load_le(header + 8, 4));
  const uint32_t len_crc = masked_crc32c(header, 8);
  if (stored_len_crc != len_crc)
    corrupt(at, "length CRC mismatch (stored " + hex32(stored_len_crc) + ", computed " + hex32(len_crc) + ")");

  struct stat st {};
  ZAE_CHECK(::fstat(::fileno(file_), &st) == 0, "tensorboard: stat ", path_, ": ", std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t left = size > at + 12 ? size - at - 12 : 0;
  if (length > left || left - length < 4) {
    if (options_.allow_partial_tail) return false;
    corrupt(at, "length " + std::to_string(length) + " + 4 CRC bytes runs past the end of the file (" +
                    std::to_string(left) + " bytes left)");
  }
  data.resize(static_cast<size_t>(length));
  unsigned char footer[4];
  if (read_up_to(data.data(), data.size()) != data.size() || read_up_to(footer, 4) != 4) {
    if (options_.allow_partial_tail) return false;
    corrupt(at, "record cut short (the file shrank while reading)");
  }
  const auto stored_crc = static_cast<uint32_t>(load_le(footer, 4));
  const uint32_t crc = masked_crc32c(data);
  if (stored_crc != crc)
    corrupt(at, "data CRC mismatch (stored " + hex32(stored_crc) + ", computed " + hex32(crc) + ")");
  offset = at;
  offset_ = at + 12 + length + 4;
  return true;
}

bool EventFileReader::next(EventRecord& record) {
  std::string data;
  uint64_t at = 0;
  if (!next_record(data, at)) return false;
  record.offset = at;
  record.event = decode_event(data, path_ + ": record at offset " + std::to_string(at));
  return true;
}

std::vector<EventRecord> read_event_file(const std::string& path, const ReadOptions& options) {
  EventFileReader reader(path, options);
  std::vector<EventRecord> out;
  EventRecord r;
  while (reader.next(r)) out.push_back(std::move(r));
  return out;
}

std::vector<std::string> list_event_files(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  ZAE_CHECK(!ec, "tensorboard: cannot list ", dir, ": ", ec.message());
  std::vector<std::string> files;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (name.find("tfevents") != std::string::npos && it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  ZAE_CHECK(!ec, "tensorboard: cannot list ", dir, ": ", ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<EventRecord> read_event_dir(const std::string& dir, const ReadOptions& options) {
  std::vector<EventRecord> out;
  for (const std::string& f : list_event_files(dir)) {
    std::vector<EventRecord> part = read_event_file(f, options);
    std::move(part.begin(), part.end(), std::back_inserter(out));
  }
  return out;
}

}  // namespace zae::io::tensorboard
