// W&B's UpsertBucket and file_stream requests (see wandb_api.h).
#include "io/loggers/wandb_api.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <utility>

namespace zae::io {

namespace {

constexpr const char* kUpsertMutation =
    "mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, "
    "$displayName: String, $config: JSONString, $tags: [String!]) { "
    "upsertBucket(input: {id: $id, name: $name, modelName: $project, entityName: $entity, "
    "displayName: $displayName, config: $config, tags: $tags}) { "
    "bucket { id name displayName historyLineCount project { name entity { name } } } inserted } }";

bool is_reserved(const std::string& key) { return key == "_step" || key == "_runtime" || key == "_timestamp"; }

// Appends "key":value, with a comma when `first` is false.
void member(std::string& out, bool& first, const std::string& key, const std::string& value_json) {
  if (!first) out += ',';
  first = false;
  json::append_quoted(out, key);
  out += ':';
  out += value_json;
}

const json::Value* path(const json::Value& root, std::initializer_list<const char*> keys) {
  const json::Value* v = &root;
  for (const char* k : keys) {
    if (v->kind != json::Kind::object) return nullptr;
    v = v->find(k);
    if (v == nullptr) return nullptr;
  }
  return v;
}

std::string string_at(const json::Value& root, std::initializer_list<const char*> keys) {
  const json::Value* v = path(root, keys);
  return v != nullptr && v->kind == json::Kind::string ? v->text : std::string();
}

}  // namespace

std::string wandb_api_key_from_environment(const std::string& base_url) {
  if (const char* key = std::getenv("WANDB_API_KEY"); key != nullptr && *key != '\0') return key;
  std::string netrc;
  if (const char* p = std::getenv("NETRC"); p != nullptr && *p != '\0') {
    netrc = p;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    netrc = std::string(home) + "/.netrc";
  } else {
    return "";
  }
  // host[:port] of the URL.
  std::string host = base_url;
  if (const size_t s = host.find("://"); s != std::string::npos) host = host.substr(s + 3);
  host = host.substr(0, host.find('/'));
  const std::string host_only = host.substr(0, host.find(':'));
  std::ifstream in(netrc);
  if (!in) return "";
  std::stringstream text;
  text << in.rdbuf();
  // Tokens: machine NAME | default, then login/password/account pairs (macdef is not supported).
  std::string tok, machine, password;
  bool in_entry = false, matched = false;
  while (text >> tok) {
    if (tok == "machine" || tok == "default") {
      if (matched && !password.empty()) return password;
      machine.clear();
      if (tok == "machine") text >> machine;
      in_entry = true;
      matched = tok == "machine" && (machine == host || machine == host_only);
      password.clear();
    } else if (in_entry && (tok == "login" || tok == "account")) {
      text >> tok;
    } else if (in_entry && tok == "password") {
      text >> password;
    }
  }
  return matched ? password : "";
}

std::string wandb_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  // The shortest text that reads back to the same double, in plain decimals where Python
  // (the official client) writes them so too: 1e-4 <= |v| < 1e16 (timestamps stay readable).
  char buf[512];
  const double a = std::fabs(v);
  const bool fixed = a == 0 || (a >= 1e-4 && a < 1e16);
  auto [end, ec] = fixed ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  if (ec != std::errc()) return "NaN";  // cannot happen with 512 bytes
  return std::string(buf, end);
}

std::string wandb_history_line(const MetricValues& values, int64_t step, double runtime_s, double timestamp_s) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : values)
    if (!is_reserved(k)) member(out, first, k, wandb_number(v));
  member(out, first, "_step", std::to_string(step));
  member(out, first, "_runtime", wandb_number(runtime_s));
  member(out, first, "_timestamp", wandb_number(timestamp_s));
  out += '}';
  return out;
}

std::string wandb_summary_json(const MetricValues& summary) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : summary) member(out, first, k, wandb_number(v));
  out += '}';
  return out;
}

std::string wandb_config_json(const json::Value& config) {
  std::string out = "{";
  bool first = true;
  if (config.kind == json::Kind::object)
    for (const auto& [k, v] : config.members) member(out, first, k, "{\"value\":" + json::dump(v) + "}");
  out += '}';
  return out;
}

std::string wandb_file_stream_body(int64_t offset, const std::vector<std::string>& lines, const std::string* summary,
                                   std::optional<int> exitcode) {
  std::string out = "{";
  bool first = true;
  if (!lines.empty() || summary != nullptr) {
    std::string files = "{";
    bool ffirst = true;
    if (!lines.empty()) {
      std::string content = "[";
      for (size_t i = 0; i < lines.size(); ++i) {
        if (i) content += ',';
        json::append_quoted(content, lines[i]);
      }
      content += ']';
      member(files, ffirst, "wandb-history.jsonl",
             "{\"offset\":" + std::to_string(offset) + ",\"content\":" + content + "}");
    }
    if (summary != nullptr) member(files, ffirst, "wandb-summary.json", "{\"offset\":0,\"content\":[" + json::quote(*summary) + "]}");
    files += '}';
    member(out, first, "files", files);
  }
  if (exitcode) {
    member(out, first, "complete", "true");
    member(out, first, "exitcode", std::to_string(*exitcode));
  }
  out += '}';
  return out;
}

WandBApi::WandBApi(std::string base_url, std::string api_key, std::chrono::milliseconds timeout)
    : base_url_(std::move(base_url)), http_(timeout) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  headers_ = {{"Authorization", basic_auth("api", api_key)},
              {"Content-Type", "application/json"},
              {"User-Agent", "zae-engine-wandb/1"}};
}

std::string WandBApi::upsert_run(const WandBUpsert& run, WandBRunInfo& out) {
  std::string vars = "{";
  bool first = true;
  auto str = [&](const char* key, const std::string& v) {
    if (!v.empty()) member(vars, first, key, json::quote(v));
  };
  str("id", run.storage_id);
  str("name", run.run_id);
  str("project", run.project);
  str("entity", run.entity);
  str("displayName", run.display_name);
  if (run.config != nullptr) member(vars, first, "config", json::quote(wandb_config_json(*run.config)));
  if (!run.tags.empty()) {
    std::string tags = "[";
    for (size_t i = 0; i < run.tags.size(); ++i) {
      if (i) tags += ',';
      json::append_quoted(tags, run.tags[i]);
    }
    member(vars, first, "tags", tags + "]");
  }
  vars += '}';
  std::string body = "{\"query\":" + json::quote(kUpsertMutation) + ",\"variables\":" + vars + "}";

  HttpResponse r = http_.post(base_url_ + "/graphql", body, headers_);
  if (!r.ok()) return "UpsertBucket at " + base_url_ + "/graphql failed: " + r.describe();
  try {
    json::Value reply = json::parse(r.body, "W&B UpsertBucket reply");
    const json::Value* errors = path(reply, {"errors"});
    if (errors != nullptr && errors->kind == json::Kind::array && !errors->items.empty()) {
      std::string msg = string_at(errors->items.front(), {"message"});
      return "UpsertBucket at " + base_url_ + "/graphql: the server answered with an error: " +
             (msg.empty() ? json::dump(errors->items.front()).substr(0, 200) : msg.substr(0, 200));
    }
    const json::Value* bucket = path(reply, {"data", "upsertBucket", "bucket"});
    if (bucket == nullptr || bucket->kind != json::Kind::object)
      return "UpsertBucket at " + base_url_ + "/graphql: the reply has no data.upsertBucket.bucket: " +
             r.body.substr(0, 200);
    out.storage_id = string_at(*bucket, {"id"});
    out.run_id = string_at(*bucket, {"name"});
    if (out.run_id.empty()) out.run_id = run.run_id;
    out.project = string_at(*bucket, {"project", "name"});
    if (out.project.empty()) out.project = run.project;
    out.entity = string_at(*bucket, {"project", "entity", "name"});
    if (out.entity.empty()) out.entity = run.entity;
    out.history_line_count = 0;
    const json::Value* count = path(*bucket, {"historyLineCount"});
    if (count != nullptr && count->kind == json::Kind::number) {
      int64_t n = 0;
      if (json::to_int64(count->text, n) != json::IntStatus::ok || n < 0)
        return "UpsertBucket: historyLineCount is not a non-negative integer: " + count->text;
      out.history_line_count = n;
    }
    if (out.entity.empty() || out.project.empty())
      return "UpsertBucket: the reply names no entity/project for run " + run.run_id;
  } catch (const std::exception& e) {
    return std::string("UpsertBucket: ") + e.what();
  }
  return "";
}

WandBStreamResult WandBApi::file_stream(const std::string& entity, const std::string& project,
                                        const std::string& run_id, const std::string& body) {
  const std::string url =
      base_url_ + "/files/" + url_encode(entity) + "/" + url_encode(project) + "/" + url_encode(run_id) + "/file_stream";
  HttpResponse r = http_.post(url, body, headers_);
  WandBStreamResult out;
  if (!r.ok()) {
    out.error = "file_stream at " + url + " failed: " + r.describe();
    return out;
  }
  // The reply is JSON ({"exitcode": null, "limits": {...}}, maybe "stopped": true); a reply
  // that is not JSON still means the lines were accepted.
  try {
    json::Value reply = json::parse(r.body, "W&B file_stream reply");
    const json::Value* stopped = path(reply, {"stopped"});
    out.stopped = stopped != nullptr && stopped->kind == json::Kind::boolean && stopped->boolean;
  } catch (const std::exception&) {
  }
  return out;
}

}  // namespace zae::io
