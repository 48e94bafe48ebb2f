// The TCPStore wire protocol (private to dist/tcp_store*.cpp).
//
// One persistent TCP connection per client. Every message, either way, is a frame:
//   u32 length | payload[length]                 (integers little-endian, length <= kMaxFrame)
// Request payload:   u8 op | u32 request_id | body
// Response payload:  u8 status | u32 request_id | body
// Strings and byte values are  u32 size | bytes;  a key list is  u32 count | count strings.
//
//   op      request body                        response body (status kOk)
//   kHello  u32 kMagic | u32 kVersion | i32 rank  (empty)         must be a client's first frame
//   kSet    key | value                          (empty)
//   kGet    u32 timeout_ms | key                 value           parked until key is set
//   kAdd    key | i64 delta                      i64 new value
//   kCheck  key list                             u8 all_set
//   kWait   u32 timeout_ms | key list            (empty)         parked until all keys are set
//   kLost   (empty)                              u32 count | count x i32 rank
//   kBye    (empty)                              (empty)         the client leaves cleanly
//
// status kTimeout (a parked kGet/kWait whose timeout_ms passed): body = the missing keys.
// status kError (a request the server refused, e.g. kAdd on a non-integer): body = message.
// Responses carry the request_id they answer, so one connection may have several requests
// in flight (threads sharing a TCPStore) and a client may abandon a request (its own
// deadline passed) and discard the late answer.
// Invariants: a malformed frame closes that connection (so does a first frame longer than
// kMaxHelloFrame: a foreign peer, e.g. an HTTP request, is dropped at once rather than
// awaited); decoding never reads past a frame.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "dist/store.h"

namespace zae::dist::tcp_wire {

inline constexpr uint32_t kMagic = 0x5A414553;  // "ZAES"
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kMaxFrame = 1u << 30;
inline constexpr uint32_t kMaxHelloFrame = 64;  // before its hello, a peer may send no more

enum Op : uint8_t { kHello = 1, kSet, kGet, kAdd, kCheck, kWait, kLost, kBye };
enum Status : uint8_t { kOk = 0, kTimeout = 1, kError = 2 };

/// Builds one frame (the length prefix is filled in by finish()).
class Writer {
 public:
  Writer() { buf_.resize(4); }
  Writer& u8(uint8_t v) {
    buf_.push_back(v);
    return *this;
  }
  Writer& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) buf_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Writer& i64(int64_t v) {
    const uint64_t u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<uint8_t>(u >> (8 * i)));
    return *this;
  }
  Writer& bytes(const uint8_t* p, size_t n) {
    u32(static_cast<uint32_t>(n));
    buf_.insert(buf_.end(), p, p + n);
    return *this;
  }
  Writer& str(const std::string& s) { return bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
  Writer& value(const Bytes& b) { return bytes(b.data(), b.size()); }
  Writer& keys(const std::vector<std::string>& ks) {
    u32(static_cast<uint32_t>(ks.size()));
    for (const std::string& k : ks) str(k);
    return *this;
  }
  /// The finished frame; size() - 4 is the payload length.
  Bytes finish() {
    const uint32_t n = static_cast<uint32_t>(buf_.size() - 4);
    for (int i = 0; i < 4; ++i) buf_[i] = static_cast<uint8_t>(n >> (8 * i));
    return std::move(buf_);
  }
  size_t size() const { return buf_.size(); }

 private:
  Bytes buf_;
};

/// Reads one payload; every accessor returns nullopt / false once the payload is exhausted.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  std::optional<uint8_t> u8() {
    if (n_ - pos_ < 1) return std::nullopt;
    return p_[pos_++];
  }
  std::optional<uint32_t> u32() {
    if (n_ - pos_ < 4) return std::nullopt;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p_[pos_ + i]) << (8 * i);
    pos_ += 4;
    return v;
  }
  std::optional<int64_t> i64() {
    if (n_ - pos_ < 8) return std::nullopt;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
    pos_ += 8;
    return static_cast<int64_t>(v);
  }
  std::optional<Bytes> value() {
    const auto n = u32();
    if (!n || n_ - pos_ < *n) return std::nullopt;
    Bytes b(p_ + pos_, p_ + pos_ + *n);
    pos_ += *n;
    return b;
  }
  std::optional<std::string> str() {
    auto b = value();
    if (!b) return std::nullopt;
    return std::string(b->begin(), b->end());
  }
  std::optional<std::vector<std::string>> keys() {
    const auto n = u32();
    if (!n) return std::nullopt;
    std::vector<std::string> ks;
    for (uint32_t i = 0; i < *n; ++i) {
      auto k = str();
      if (!k) return std::nullopt;
      ks.push_back(std::move(*k));
    }
    return ks;
  }
  bool at_end() const { return pos_ == n_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

/// If `buf` (from `offset`) starts with a whole frame, its payload bounds; -1 on a frame
/// longer than `max_frame` (a peer not speaking this protocol), 0 when incomplete.
inline int next_frame(const Bytes& buf, size_t offset, size_t& payload_begin, size_t& payload_size,
                      uint32_t max_frame = kMaxFrame) {
  if (buf.size() - offset < 4) return 0;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(buf[offset + i]) << (8 * i);
  if (n > max_frame) return -1;
  if (buf.size() - offset - 4 < n) return 0;
  payload_begin = offset + 4;
  payload_size = n;
  return 1;
}

/// Clamps a timeout to the protocol's u32 milliseconds.
inline uint32_t wire_ms(long long ms) {
  if (ms < 0) return 0;
  if (ms > 0xFFFFFFFFll) return 0xFFFFFFFFu;
  return static_cast<uint32_t>(ms);
}

/// "a, b, c" for error messages.
inline std::string join_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (size_t i = 0; i < keys.size(); ++i) s += (i ? ", '" : "'") + keys[i] + "'";
  return s;
}

}  // namespace zae::dist::tcp_wire
