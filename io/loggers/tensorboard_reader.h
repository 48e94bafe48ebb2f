// Reading TensorBoard event files back: the records (both masked CRCs checked) and the
// Events in them, decoded with io/loggers/tensorboard_proto.h. Used by the tests to verify
// what the writer produced, and by users to inspect runs without Python.
// Invariants: a record whose length CRC or data CRC does not match, a header or record cut
// short, or a length larger than what is left of the file is a zae::Error
// "<path>: corrupt record at offset N: <what>" (N = the record's first byte), unless
// ReadOptions::allow_partial_tail lets a short last record (a file still being written)
// end the read quietly. The reader never allocates more than the file holds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "io/loggers/tensorboard_proto.h"

namespace zae::io::tensorboard {

struct ReadOptions {
  /// A record cut short at the end of the file (header or data missing bytes) ends the read
  /// instead of failing: what a reader sees while a writer is mid-record.
  bool allow_partial_tail = false;
};

/// An Event with the byte offset of its record in the file.
struct EventRecord {
  uint64_t offset = 0;
  Event event;
};

class EventFileReader {
 public:
  /// Opens `path`; a zae::Error naming it and strerror when it cannot be opened.
  explicit EventFileReader(std::string path, ReadOptions options = {});
  ~EventFileReader();
  EventFileReader(const EventFileReader&) = delete;
  EventFileReader& operator=(const EventFileReader&) = delete;

  /// The next record's data (CRCs checked) and its offset; false at the end of the file.
  bool next_record(std::string& data, uint64_t& offset);
  /// The next record decoded as an Event; false at the end of the file.
  bool next(EventRecord& record);
  /// Byte offset of the next record.
  uint64_t offset() const { return offset_; }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void corrupt(uint64_t at, const std::string& what) const;
  size_t read_up_to(void* buf, size_t n);

  std::string path_;
  ReadOptions options_;
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
};

/// Every event of one file, in order.
std::vector<EventRecord> read_event_file(const std::string& path, const ReadOptions& options = {});

/// The event files directly in `dir` (names containing "tfevents"), sorted by name (the
/// 10-digit creation time comes first in our names). A zae::Error when `dir` cannot be listed.
std::vector<std::string> list_event_files(const std::string& dir);

/// The events of every event file in `dir`, file after file.
std::vector<EventRecord> read_event_dir(const std::string& dir, const ReadOptions& options = {});

}  // namespace zae::io::tensorboard
