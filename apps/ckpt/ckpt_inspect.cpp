// `zae-ckpt inspect`: the tensor table, the metadata and a summary of the training state.
// The summary reads the state leniently: a field that is absent or malformed prints
// as "(absent)" or "(unreadable: ...)" instead of failing the whole report (the file
// itself has passed every check by then).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <map>

#include "apps/ckpt/ckpt_commands.h"
#include "apps/ckpt/ckpt_text.h"
#include "engine/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/state_json.h"

namespace zae::apps::ckpt {

namespace json = io::json;
namespace st = io::state;

namespace {

void tensor_table(const io::SafetensorsHeader& h, bool group_by_prefix, std::ostream& out) {
  std::vector<const io::SafetensorsEntry*> rows;
  for (const auto& e : h.entries) rows.push_back(&e);
  std::sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) { return natural_less(a->name, b->name); });
  size_t wn = 4, wd = 5, ws = 5;
  for (const auto* e : rows) {
    wn = std::max(wn, printable(e->name).size());
    wd = std::max(wd, e->dtype.size());
    ws = std::max(ws, shape_text(e->shape).size());
  }
  out << "tensors:\n  " << std::left << std::setw(static_cast<int>(wn)) << "name" << "  "
      << std::setw(static_cast<int>(wd)) << "dtype" << "  " << std::setw(static_cast<int>(ws)) << "shape"
      << "  bytes\n";
  std::map<std::string, std::pair<int64_t, uint64_t>> groups;  // prefix -> (count, bytes)
  uint64_t total = 0;
  for (const auto* e : rows) {
    const uint64_t bytes = e->end - e->begin;
    total += bytes;
    out << "  " << std::setw(static_cast<int>(wn)) << printable(e->name) << "  " << std::setw(static_cast<int>(wd))
        << e->dtype << "  " << std::setw(static_cast<int>(ws)) << shape_text(e->shape) << "  " << bytes << "\n";
    auto& g = groups[e->name.substr(0, e->name.find('.'))];
    g.first += 1;
    g.second += bytes;
  }
  out << "total: " << rows.size() << " tensors, " << total << " bytes (" << human_bytes(total) << "), file "
      << h.file_size << " bytes\n";
  if (group_by_prefix)
    for (const auto& [prefix, g] : groups)
      out << "  " << printable(prefix) << ".*: " << g.first << " tensors, " << g.second << " bytes ("
          << human_bytes(g.second) << ")\n";
}

// One summary line; a field that cannot be read says so instead of failing the report.
void line(std::ostream& out, const char* label, const std::function<std::string()>& value) {
  std::string v;
  try {
    v = value();
  } catch (const Error& e) {
    v = "(unreadable: " + e.message() + ")";
  } catch (const std::exception& e) {
    v = std::string("(unreadable: ") + e.what() + ")";
  }
  out << "  " << std::left << std::setw(16) << label << v << "\n";
}

std::string optimizer_summary(const json::Value& s) {
  const json::Value* o = s.find("optimizer");
  if (!o) return "none";
  std::string text = st::get_string(*o, "name", "optimizer");
  const json::Value& groups = st::get(*o, "groups", "optimizer");
  ZAE_CHECK(groups.kind == json::Kind::array, "optimizer: 'groups' is not an array");
  for (size_t i = 0; i < groups.items.size(); ++i) {
    const json::Value& g = groups.items[i];
    const json::Value& params = st::get(g, "params", "optimizer group");
    text += "; group " + std::to_string(i) + " (" + std::to_string(params.items.size()) + " params):";
    for (const auto& [k, v] : st::get(g, "options", "optimizer group").members) {
      text += ' ';
      text += printable(k);
      text += '=';
      text += num(st::as_double(v, k));
    }
  }
  return text;
}

std::string loader_summary(const json::Value& s) {
  const json::Value* l = s.find("loader");
  if (!l) return "not recorded";
  return "epoch " + std::to_string(st::get_int(*l, "epoch", "loader")) + ", " +
         std::to_string(st::get_int(*l, "batches_consumed", "loader")) + "/" +
         std::to_string(st::get_int(*l, "batches_per_epoch", "loader")) + " batches consumed, shuffle seed " +
         printable(st::get_string(*l, "seed", "loader"));
}

std::string pending_summary(const json::Value& loop) {
  const json::Value& names = st::get(loop, "pending_grads", "loop");
  if (names.items.empty()) return "none";
  std::string text = std::to_string(names.items.size()) + " (accumulated over " +
                     std::to_string(st::get_int(loop, "accumulated", "loop")) + " batches):";
  for (const auto& n : names.items) {
    text += ' ';
    text += printable(st::as_string(n, "pending grad"));
  }
  return text;
}

void state_summary(const json::Value& s, std::ostream& out) {
  out << "training state:\n";
  const json::Value* loop = s.find("loop");
  line(out, "epoch", [&] {
    const json::Value& p = st::get(s, "progress", "state");
    const int64_t e = st::get_int(p, "epoch", "progress");
    const bool mid = loop && st::get_bool(*loop, "in_epoch", "loop");
    return std::to_string(e) + (mid ? " (in progress)" : " (next to run; " + std::to_string(e - 1) + " completed)");
  });
  line(out, "step", [&] { return std::to_string(st::get_int(st::get(s, "progress", "state"), "step", "progress")); });
  line(out, "mode", [&] { return printable(st::get_string(s, "mode", "state")); });
  line(out, "mid-epoch", [&] {
    ZAE_CHECK(loop, "no 'loop' record");
    return std::string(st::get_bool(*loop, "in_epoch", "loop") ? "yes (resume continues the open epoch)" : "no");
  });
  line(out, "best", [&] {
    const json::Value& b = st::get(s, "best", "state");
    const int64_t e = st::get_int(b, "epoch", "best");
    if (e == 0) return std::string("none yet");
    return "loss " + num(st::get_double(b, "loss", "best")) + " at epoch " + std::to_string(e);
  });
  line(out, "optimizer", [&] { return optimizer_summary(s); });
  line(out, "optimizer steps", [&] {
    ZAE_CHECK(loop, "no 'loop' record");
    return std::to_string(st::get_int(*loop, "optimizer_steps", "loop"));
  });
  line(out, "scheduler", [&] {
    const json::Value* sc = s.find("scheduler");
    return sc ? printable(st::get_string(*sc, "name", "scheduler")) : std::string("none");
  });
  line(out, "loader", [&] { return loader_summary(s); });
  line(out, "pending grads", [&] {
    ZAE_CHECK(loop, "no 'loop' record");
    return pending_summary(*loop);
  });
  line(out, "rng", [&] {
    const json::Value& d = st::get(st::get(s, "rng", "state"), "default", "rng");
    return "seed " + printable(st::get_string(d, "seed", "rng")) + ", offset " +
           printable(st::get_string(d, "offset", "rng"));
  });
  line(out, "extras", [&] {
    const json::Value* x = s.find("extras");
    if (!x || x->members.empty()) return std::string("none");
    std::string keys;
    for (const auto& [k, v] : x->members) keys += (keys.empty() ? "" : ", ") + printable(k);
    return keys;
  });
  if (const json::Value* x = s.find("extras"); x && x->find("state_manager")) {
    line(out, "monitor", [&] { return printable(st::get_string(*x->find("state_manager"), "monitor", "extras")); });
    line(out, "best files", [&] {
      const json::Value& files = st::get(*x->find("state_manager"), "best_files", "extras");
      if (files.items.empty()) return std::string("none");
      std::string text;
      for (const auto& f : files.items) {
        text += text.empty() ? "" : "; ";
        text += printable(st::get_string(f, "path", "best file"));
        text += " (epoch " + std::to_string(st::get_int(f, "epoch", "best file"));
        text += ", " + num(st::get_double(f, "value", "best file")) + ")";
      }
      return text;
    });
  }
}

}  // namespace

void inspect(const std::string& path, bool state_json, std::ostream& out) {
  const io::SafetensorsHeader header = io::read_safetensors_header(path);
  if (!io::is_checkpoint(header)) {
    ZAE_CHECK(!state_json, path, ": not a zae checkpoint (a plain safetensors file): it has no training state "
              "for --json");
    out << printable(path) << ": safetensors (weights only, not a zae checkpoint)\n";
    tensor_table(header, false, out);
    out << "metadata:" << (header.metadata.empty() ? " none" : "") << "\n";
    for (const auto& [k, v] : header.metadata) out << "  " << printable(k) << " = " << json::quote(v) << "\n";
    return;
  }
  const io::CheckpointInfo info = io::verify_checkpoint(path);
  if (state_json) {
    out << pretty_json(info.state) << "\n";
    return;
  }
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", info.checksum);
  out << printable(path) << ": zae checkpoint, version " << info.version << ", checksum crc32:" << crc
      << " (verified)\n";
  tensor_table(info.header, true, out);
  out << "user metadata:" << (info.user_metadata.empty() ? " none" : "") << "\n";
  for (const auto& [k, v] : info.user_metadata) out << "  " << printable(k) << " = " << json::quote(v) << "\n";
  for (const auto& [k, v] : info.header.metadata) {
    const bool known = k == "format" || k.rfind("zae.ckpt.", 0) == 0 || k.rfind("user.", 0) == 0;
    if (!known) out << "other metadata: " << printable(k) << " = " << json::quote(v) << "\n";
  }
  state_summary(info.state, out);
}

}  // namespace zae::apps::ckpt
