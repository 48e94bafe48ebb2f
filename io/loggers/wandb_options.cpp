// WandBOptions resolution: the WANDB_* variables and the defaults (see wandb_logger.h).
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>

#include "engine/error.h"
#include "io/loggers/wandb_api.h"
#include "io/loggers/wandb_logger.h"

namespace zae::io {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

std::string generate_wandb_run_id() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<int> pick(0, 35);
  std::string id(8, 'a');
  for (char& c : id) c = kChars[pick(gen)];
  return id;
}

WandBOptions resolve_wandb_options(WandBOptions o) {
  auto fill = [](std::string& field, const char* var, const char* fallback) {
    if (field.empty()) field = env(var);
    if (field.empty()) field = fallback;
  };
  fill(o.project, "WANDB_PROJECT", "uncategorized");
  fill(o.entity, "WANDB_ENTITY", "");
  fill(o.run_id, "WANDB_RUN_ID", "");
  fill(o.name, "WANDB_NAME", "");
  fill(o.mode, "WANDB_MODE", "online");
  fill(o.base_url, "WANDB_BASE_URL", "https://api.wandb.ai");
  if (o.api_key.empty()) o.api_key = wandb_api_key_from_environment(o.base_url);
  fill(o.dir, "WANDB_DIR", "./wandb");

  if (o.mode == "run") o.mode = "online";      // the SDK's older spellings
  if (o.mode == "dryrun") o.mode = "offline";
  ZAE_CHECK(o.mode == "online" || o.mode == "offline" || o.mode == "disabled",
            "WandBLogger: unknown mode '", o.mode, "' (options.mode or WANDB_MODE); expected online, offline or disabled");
  ZAE_CHECK(o.base_url.rfind("http://", 0) == 0 || o.base_url.rfind("https://", 0) == 0,
            "WandBLogger: the base URL must start with http:// or https://, got '", o.base_url,
            "' (options.base_url or WANDB_BASE_URL)");
  while (o.base_url.back() == '/') o.base_url.pop_back();
  if (o.run_id.empty()) o.run_id = generate_wandb_run_id();
  bool id_ok = o.run_id.size() <= 64 && o.run_id != "." && o.run_id != "..";
  for (char c : o.run_id)
    id_ok = id_ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.');
  ZAE_CHECK(id_ok, "WandBLogger: the run id '", o.run_id,
            "' (options.run_id or WANDB_RUN_ID) must be 1-64 characters of [A-Za-z0-9_.-]");
  ZAE_CHECK(o.send_interval.count() >= 0 && o.heartbeat_interval.count() >= 0 && o.drain_timeout.count() >= 0,
            "WandBLogger: send_interval, heartbeat_interval and drain_timeout must be >= 0 ms");
  ZAE_CHECK(o.request_timeout.count() > 0, "WandBLogger: request_timeout must be > 0 ms, got ",
            o.request_timeout.count());
  ZAE_CHECK(o.min_backoff.count() >= 0 && o.min_backoff <= o.max_backoff,
            "WandBLogger: need 0 <= min_backoff <= max_backoff, got ", o.min_backoff.count(), " ms and ",
            o.max_backoff.count(), " ms");
  ZAE_CHECK(o.max_attempts >= 1, "WandBLogger: max_attempts must be >= 1, got ", o.max_attempts);
  ZAE_CHECK(o.queue_capacity >= 1 && o.max_batch_rows >= 1, "WandBLogger: queue_capacity and max_batch_rows must be >= 1");
  return o;
}

}  // namespace zae::io
