// MLflow REST request bodies, limits, key sanitation and config flattening
// (io/loggers/mlflow_protocol.h).
#include "io/loggers/mlflow_protocol.h"

#include <charconv>
#include <cmath>

namespace zae::io::mlflow {

namespace {

// Overhead of one item in a log-batch body beyond its key and value text (braces, field
// names, quotes, commas, numbers): a generous upper bound for the byte-size split.
constexpr size_t kItemOverhead = 96;

void append_key_values(std::string& out, const char* field, const std::vector<KeyValue>& items) {
  out += '"';
  out += field;
  out += "\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += "{\"key\":";
    json::append_quoted(out, items[i].key);
    out += ",\"value\":";
    json::append_quoted(out, items[i].value);
    out += '}';
  }
  out += ']';
}

bool allowed_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ' ' || c == ':' || c == '/';
}

void flatten_into(const json::Value& v, const std::string& prefix, std::vector<KeyValue>& out) {
  switch (v.kind) {
    case json::Kind::object:
      if (v.members.empty() && !prefix.empty()) out.push_back({prefix, "{}"});
      for (const auto& [k, child] : v.members) flatten_into(child, prefix.empty() ? k : prefix + "." + k, out);
      return;
    case json::Kind::string: out.push_back({prefix, v.text}); return;
    case json::Kind::number: out.push_back({prefix, v.text}); return;
    case json::Kind::boolean: out.push_back({prefix, v.boolean ? "true" : "false"}); return;
    case json::Kind::null: out.push_back({prefix, "null"}); return;
    case json::Kind::array: out.push_back({prefix, json::dump(v)}); return;
  }
}

}  // namespace

std::string json_double(double v) {
  if (std::isnan(v)) return "\"NaN\"";
  if (std::isinf(v)) return v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

std::vector<LogBatch> split_batch(const LogBatch& all) {
  std::vector<LogBatch> out;
  LogBatch cur;
  size_t bytes = 0;
  const size_t byte_budget = kMaxBatchBytes - 4096;  // room for run_id and the envelope
  auto room = [&](size_t n_kind, size_t kind_limit, size_t item_bytes) {
    return n_kind < kind_limit && cur.size() < kMaxEntitiesPerBatch && bytes + item_bytes <= byte_budget;
  };
  auto next = [&] {
    out.push_back(std::move(cur));
    cur = LogBatch{};
    bytes = 0;
  };
  for (const MetricPoint& m : all.metrics) {
    const size_t b = m.key.size() * 6 + kItemOverhead;  // keys escaped at worst as \u00xx
    if (!room(cur.metrics.size(), kMaxMetricsPerBatch, b)) next();
    cur.metrics.push_back(m);
    bytes += b;
  }
  for (const KeyValue& p : all.params) {
    const size_t b = (p.key.size() + p.value.size()) * 6 + kItemOverhead;
    if (!room(cur.params.size(), kMaxParamsPerBatch, b)) next();
    cur.params.push_back(p);
    bytes += b;
  }
  for (const KeyValue& t : all.tags) {
    const size_t b = (t.key.size() + t.value.size()) * 6 + kItemOverhead;
    if (!room(cur.tags.size(), kMaxTagsPerBatch, b)) next();
    cur.tags.push_back(t);
    bytes += b;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string create_experiment_body(const std::string& name) { return "{\"name\":" + json::quote(name) + "}"; }

std::string create_run_body(const std::string& experiment_id, int64_t start_time_ms, const std::string& run_name,
                            const std::vector<KeyValue>& tags) {
  std::string out = "{\"experiment_id\":" + json::quote(experiment_id) +
                    ",\"start_time\":" + std::to_string(start_time_ms);
  if (!run_name.empty()) out += ",\"run_name\":" + json::quote(run_name);
  out += ',';
  append_key_values(out, "tags", tags);
  out += '}';
  return out;
}

std::string log_batch_body(const std::string& run_id, const LogBatch& batch) {
  std::string out = "{\"run_id\":" + json::quote(run_id) + ",\"metrics\":[";
  for (size_t i = 0; i < batch.metrics.size(); ++i) {
    const MetricPoint& m = batch.metrics[i];
    if (i) out += ',';
    out += "{\"key\":";
    json::append_quoted(out, m.key);
    out += ",\"value\":" + json_double(m.value) + ",\"timestamp\":" + std::to_string(m.timestamp_ms) +
           ",\"step\":" + std::to_string(m.step) + '}';
  }
  out += "],";
  append_key_values(out, "params", batch.params);
  out += ',';
  append_key_values(out, "tags", batch.tags);
  out += '}';
  return out;
}

std::string update_run_body(const std::string& run_id, const std::string& status, int64_t end_time_ms) {
  return "{\"run_id\":" + json::quote(run_id) + ",\"status\":" + json::quote(status) +
         ",\"end_time\":" + std::to_string(end_time_ms) + "}";
}

std::string error_code(std::string_view body) {
  try {
    const json::Value v = json::parse(body, "mlflow reply");
    if (v.kind != json::Kind::object) return "";
    const json::Value* code = v.find("error_code");
    return code != nullptr && code->kind == json::Kind::string ? code->text : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::string sanitize_key(std::string_view key) {
  std::string chars;
  chars.reserve(key.size());
  for (unsigned char c : key) chars += allowed_char(c) ? static_cast<char>(c) : '_';
  // Path normalization: MLflow refuses names that posixpath.normpath would change.
  std::string out;
  size_t start = 0;
  while (start <= chars.size()) {
    size_t end = chars.find('/', start);
    if (end == std::string::npos) end = chars.size();
    std::string seg = chars.substr(start, end - start);
    start = end + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") seg = "__";
    if (!out.empty()) out += '/';
    out += seg;
  }
  if (out.rfind("..", 0) == 0) out[0] = '_';
  if (out.empty()) out.push_back('_');
  if (out.size() > kMaxKeyLength) {
    out.resize(kMaxKeyLength);
    while (!out.empty() && (out.back() == '/' || out.back() == '.')) out.back() = '_';
  }
  return out;
}

std::string truncate_value(std::string_view value, size_t limit) {
  if (value.size() <= limit) return std::string(value);
  const std::string note_proto = "...[truncated " + std::to_string(value.size()) + " bytes]";
  size_t keep = limit > note_proto.size() ? limit - note_proto.size() : 0;
  // Never cut inside a UTF-8 sequence: back up over continuation bytes.
  while (keep > 0 && (static_cast<unsigned char>(value[keep]) & 0xC0) == 0x80) --keep;
  const std::string note = "...[truncated " + std::to_string(value.size() - keep) + " bytes]";
  return std::string(value.substr(0, keep)) + note;
}

std::vector<KeyValue> flatten_config(const json::Value& config) {
  std::vector<KeyValue> out;
  if (config.kind == json::Kind::object)
    flatten_into(config, "", out);
  else
    flatten_into(config, "config", out);
  return out;
}

}  // namespace zae::io::mlflow
