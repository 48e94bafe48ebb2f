// libFuzzer entry point over the .ckpt reader (io/checkpoint.h). Invariants checked on
// every input:
//   * parse_checkpoint either returns or throws zae::Error; a crash, a sanitizer report,
//     a leak, a hang or any other exception is a bug;
//   * the input is parsed twice: as given, and as a copy whose CRC-32 digits are
//     recomputed (when it has a checksum member), so mutations get past the checksum
//     and reach the version, state JSON and tensor checks behind it;
//   * a checkpoint that parses re-serializes to a file that parses back to the same
//     state, user metadata and tensors (names, dtypes, shapes, bytes; in the writer's
//     order, which may differ from the input's), and serializing that again gives the
//     same bytes; a violation aborts with a message;
//   * every io/state_json getter, on every value of the state tree (and on every string
//     read as a decimal integer, as the trainer reads 64-bit seeds and offsets), returns
//     or throws zae::Error.
// restore_training_state itself needs a Trainer with a model and optimizer, so it is
// not driven here; the getters above are everything it reads the state JSON with.
// Build and run: scripts/fuzz.sh (see tests/fuzz/CMakeLists.txt).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/error.h"
#include "io/checkpoint.h"
#include "io/json.h"
#include "io/state_json.h"

namespace {

namespace json = zae::io::json;
namespace st = zae::io::state;

constexpr std::string_view kChecksumMember = "\"zae.ckpt.checksum\":\"crc32:";

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "fuzz_checkpoint: invariant violated: %s\n", what.c_str());
  std::abort();
}

// Recomputes the checksum digits of `bytes` in place, locating them as the reader does
// (the first checksum member inside the header). False when there is nothing to fix.
bool fix_checksum(std::vector<uint8_t>& bytes) {
  if (bytes.size() < 8) return false;
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian hosts only, as the reader
  if (n > bytes.size() - 8) return false;
  const std::string_view header(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  const size_t at = header.find(kChecksumMember);
  if (at == std::string_view::npos || at + kChecksumMember.size() + 8 > header.size()) return false;
  const size_t digits = 8 + at + kChecksumMember.size();
  uint32_t crc = zae::io::crc32_update(0, bytes.data(), digits);
  crc = zae::io::crc32_update(crc, "00000000", 8);
  crc = zae::io::crc32_update(crc, bytes.data() + digits + 8, bytes.size() - digits - 8);
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(crc));
  if (std::memcmp(bytes.data() + digits, hex, 8) == 0) return false;  // already right
  std::memcpy(bytes.data() + digits, hex, 8);
  return true;
}

template <typename F>
void probe(F&& f) {
  try {
    f();
  } catch (const zae::Error&) {
  }
}

// Every getter on `v` (and, for objects, on each of its keys), then its children.
void read_state(const json::Value& v, const std::string& what) {
  probe([&] { (void)st::as_double(v, what); });
  probe([&] { (void)st::as_int(v, what); });
  probe([&] { (void)st::as_uint(v, what); });
  probe([&] { (void)st::as_string(v, what); });
  probe([&] { (void)st::as_bool(v, what); });
  probe([&] { (void)st::as_doubles(v, what); });
  switch (v.kind) {
    case json::Kind::string: {
      json::Value literal;  // the trainer's decimal-string integers (rng and loader seeds)
      literal.kind = json::Kind::number;
      literal.text = v.text;
      probe([&] { (void)st::as_uint(literal, what); });
      probe([&] { (void)st::as_int(literal, what); });
      probe([&] { (void)st::as_double(literal, what); });
      break;
    }
    case json::Kind::object:
      for (const auto& m : v.members) {
        const std::string& key = m.first;  // (clang 14 cannot capture a structured binding)
        if (!st::has(v, key)) violated("state_json::has misses member '" + key + "' of " + what);
        probe([&] { (void)st::get_double(v, key, what); });
        probe([&] { (void)st::get_int(v, key, what); });
        probe([&] { (void)st::get_uint(v, key, what); });
        probe([&] { (void)st::get_string(v, key, what); });
        probe([&] { (void)st::get_bool(v, key, what); });
        probe([&] { (void)st::get_doubles(v, key, what); });
        read_state(m.second, what + "." + key);
      }
      probe([&] { (void)st::get(v, "progress", what); });  // a key that is usually absent
      break;
    case json::Kind::array:
      for (size_t i = 0; i < v.items.size(); ++i) read_state(v.items[i], what + "[" + std::to_string(i) + "]");
      break;
    default:
      probe([&] { (void)st::get(v, "epoch", what); });  // not an object: must be an error
      break;
  }
}

// Tensors come back in the writer's order (dtype, then name), not the input file's.
std::vector<const std::pair<std::string, zae::Tensor>*> by_name(const zae::io::Checkpoint& c) {
  std::vector<const std::pair<std::string, zae::Tensor>*> out;
  for (const auto& t : c.tensors) out.push_back(&t);
  std::sort(out.begin(), out.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  return out;
}

void expect_same(const zae::io::Checkpoint& a, const zae::io::Checkpoint& b) {
  if (json::dump(a.state) != json::dump(b.state)) violated("state changed in a round trip");
  if (a.user_metadata != b.user_metadata) violated("user metadata changed in a round trip");
  if (a.tensors.size() != b.tensors.size()) violated("tensor count changed in a round trip");
  const auto ta = by_name(a), tb = by_name(b);
  for (size_t i = 0; i < ta.size(); ++i) {
    const std::string& name = ta[i]->first;
    const zae::Tensor& x = ta[i]->second;
    const zae::Tensor& y = tb[i]->second;
    if (name != tb[i]->first || x.dtype() != y.dtype() || x.shape() != y.shape())
      violated("tensor '" + name + "' changed name, dtype or shape in a round trip");
    if (x.nbytes() > 0 && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0)
      violated("tensor '" + name + "' changed bytes in a round trip");
  }
}

void check_image(const uint8_t* data, size_t size, const std::string& origin) {
  zae::io::Checkpoint ckpt;
  try {
    ckpt = zae::io::parse_checkpoint(data, size, origin);
  } catch (const zae::Error&) {
    return;  // a clean refusal
  }
  read_state(ckpt.state, "state");
  std::string bytes;
  zae::io::Checkpoint again;
  try {
    bytes = zae::io::serialize_checkpoint(ckpt);
    again = zae::io::parse_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "round trip");
  } catch (const zae::Error& e) {
    violated(std::string("a checkpoint that loads does not save and load back: ") + e.what());
  }
  expect_same(ckpt, again);
  if (zae::io::serialize_checkpoint(again) != bytes) violated("serialization is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_image(data, size, "fuzz");
  std::vector<uint8_t> fixed(data, data + size);
  if (fix_checksum(fixed)) check_image(fixed.data(), fixed.size(), "fuzz (checksum fixed)");
  return 0;
}
