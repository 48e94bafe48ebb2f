// StateManager: the file management behind StateManagerAddon (trainer/state_manager_addon.h).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "dist/dist.h"
#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/state_json.h"
#include "trainer/state_manager_addon.h"
#include "trainer/trainer.h"

namespace zae {

namespace fs = std::filesystem;
namespace st = io::state;

const char* save_format_name(SaveFormat f) { return f == SaveFormat::ckpt ? "ckpt" : "safetensors"; }

SaveFormat parse_save_format(const std::string& text) {
  if (text == "ckpt") return SaveFormat::ckpt;
  if (text == "safetensors") return SaveFormat::safetensors;
  ZAE_FAIL("save format must be \"ckpt\" or \"safetensors\", got \"", text, "\"");
}

namespace {

// Creates `dir` if needed and proves it writable by creating and removing a file.
void prepare_directory(const std::string& dir) {
  ZAE_CHECK(!dir.empty(), "StateManagerAddon: save_path is empty");
  std::error_code ec;
  ZAE_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), "StateManagerAddon: save_path '", dir,
            "' exists and is not a directory");
  fs::create_directories(dir, ec);
  ZAE_CHECK(!ec, "StateManagerAddon: cannot create save_path '", dir, "': ", ec.message());
  ZAE_CHECK(fs::is_directory(dir, ec), "StateManagerAddon: save_path '", dir, "' exists and is not a directory");
  const std::string probe = (fs::path(dir) / (".zae-write-probe." + std::to_string(::getpid()))).string();
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) {
    const int err = errno;
    ZAE_FAIL("StateManagerAddon: save_path '", dir, "' is not writable: ", std::strerror(err));
  }
  std::fclose(f);
  std::remove(probe.c_str());
}

// Lets a sharded optimizer (dist/zero_optimizer.h) gather its state to rank 0 before rank 0
// captures it. Collective; safe because every rank reaches each save alike (saves follow the
// step counter, the epoch end and the ranks' agreed interrupts).
void prepare_optimizer_state(const Trainer& trainer) {
  if (const auto& opt = trainer.options().optimizer) opt->prepare_state_dict(0);
}

}  // namespace

StateManager::StateManager(StateManagerOptions options) : options_(std::move(options)) {
  ZAE_CHECK(options_.keep_best_k >= 0, "StateManagerAddon: keep_best_k must be >= 0, got ", options_.keep_best_k);
  ZAE_CHECK(options_.every_n_steps >= 0, "StateManagerAddon: every_n_steps must be >= 0, got ",
            options_.every_n_steps);
  ZAE_CHECK(!options_.monitor.empty(), "StateManagerAddon: monitor is empty");
  prepare_directory(options_.save_path);
  // Temporary files of writes that a kill -9 interrupted in an earlier run.
  if (const size_t n = io::remove_stale_temporaries(options_.save_path))
    std::printf("state manager: removed %zu temporary file(s) of interrupted writes in %s\n", n,
                options_.save_path.c_str());
  const std::string& r = options_.resume;
  if (r != "none" && r != "last") {
    std::error_code ec;
    ZAE_CHECK(fs::is_regular_file(r, ec), "StateManagerAddon: resume checkpoint '", r,
              "' does not exist or is not a file (resume takes \"none\", \"last\" or a path)");
  }
}

std::string StateManager::last_path() const { return (fs::path(options_.save_path) / "last.ckpt").string(); }

io::json::Value StateManager::extras() const {
  io::json::Value best = io::json::Value::make_array();
  for (const BestEntry& e : best_) {
    io::json::Value o = io::json::Value::make_object();
    st::put(o, "value", st::number(e.value));
    st::put(o, "epoch", st::integer(e.epoch));
    st::put(o, "path", st::string(e.path));
    best.items.push_back(std::move(o));
  }
  io::json::Value sm = io::json::Value::make_object();
  st::put(sm, "best_files", std::move(best));
  st::put(sm, "monitor", st::string(options_.monitor));
  io::json::Value out = io::json::Value::make_object();
  st::put(out, "state_manager", std::move(sm));
  return out;
}

int64_t StateManager::before_run(Trainer& trainer, DataLoader& loader, int64_t n_epoch) {
  loader_ = &loader;
  if (resume_done_ || options_.resume == "none") {
    resume_done_ = true;
    return n_epoch;
  }
  resume_done_ = true;
  std::string path = options_.resume;
  if (path == "last") {
    path = last_path();
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      std::printf("state manager: no %s yet, starting from scratch\n", path.c_str());
      return n_epoch;
    }
  }
  const io::Checkpoint ck = io::load_checkpoint(path);
  const RestoredState r = restore_training_state(trainer, ck, &loader);
  best_.clear();
  if (st::has(r.extras, "state_manager")) {
    const auto& sm = st::get(r.extras, "state_manager", path);
    for (const auto& e : st::get(sm, "best_files", path + ": state_manager").items) {
      BestEntry b{st::get_double(e, "value", path), st::get_int(e, "epoch", path), st::get_string(e, "path", path)};
      std::error_code ec;
      if (fs::exists(b.path, ec)) best_.push_back(std::move(b));
    }
  }
  resumed_from_ = path;
  last_step_saved_ = trainer.optimizer_steps();
  std::printf("state manager: resumed from %s at epoch %lld, step %lld%s\n", path.c_str(),
              static_cast<long long>(r.epoch), static_cast<long long>(r.step), r.mid_epoch ? " (mid-epoch)" : "");
  if (!options_.epochs_are_total) return n_epoch;
  return std::max<int64_t>(0, n_epoch - (r.epoch - 1));
}

void StateManager::after_run(const Trainer& trainer) {
  if (loader_ && trainer.in_train_epoch())
    open_epoch_ = loader_position(*loader_);
  else
    open_epoch_.reset();
  loader_ = nullptr;
}

std::string StateManager::save_last(const Trainer& trainer, const std::string& reason) {
  // Data parallel: the replicas are identical, rank 0 writes for all.
  prepare_optimizer_state(trainer);
  if (!dist::is_main_process()) return last_path();
  std::optional<LoaderPosition> pos;
  if (loader_) pos = loader_position(*loader_);
  else if (trainer.in_train_epoch()) pos = open_epoch_;
  io::Checkpoint ck = capture_training_state(trainer, pos, extras(), options_.metadata);
  ck.user_metadata.emplace("zae.saved_because", reason);
  const std::string path = last_path();
  io::save_checkpoint(path, ck);
  return path;
}

void StateManager::on_step_end(Trainer& trainer) {
  if (trainer.mode() != Mode::train || options_.every_n_steps == 0) return;
  const int64_t steps = trainer.optimizer_steps();
  if (steps == last_step_saved_ || steps % options_.every_n_steps != 0) return;
  last_step_saved_ = steps;
  save_last(trainer, "every_n_steps");
}

void StateManager::save_best(const Trainer& trainer, int64_t epoch) {
  if (options_.keep_best_k == 0) return;
  const bool validated = !trainer.test_metrics().empty();
  const Metrics& metrics = validated ? trainer.test_metrics() : trainer.train_metrics();
  auto it = metrics.find(options_.monitor);
  if (it == metrics.end()) {
    std::string keys;
    for (const auto& [k, v] : metrics) keys += (keys.empty() ? "" : ", ") + k;
    ZAE_FAIL("StateManagerAddon: monitor '", options_.monitor, "' is not among this epoch's ",
             validated ? "test" : "train", " metrics (", keys.empty() ? "none" : keys, ")");
  }
  const double v = it->second;
  if (std::isnan(v)) return;
  auto better = [&](double a, double b) { return options_.maximize ? a > b : a < b; };
  const bool qualifies = static_cast<int64_t>(best_.size()) < options_.keep_best_k || better(v, best_.back().value);
  if (!qualifies) return;
  const std::string name = "best-epoch" + std::to_string(epoch) + "." + save_format_name(options_.save_format);
  const std::string path = (fs::path(options_.save_path) / name).string();
  // Record first so that the saved state lists this file among the best.
  BestEntry entry{v, epoch, path};
  auto pos = std::find_if(best_.begin(), best_.end(), [&](const BestEntry& e) { return better(v, e.value); });
  best_.insert(pos, entry);
  std::vector<BestEntry> dropped;
  while (static_cast<int64_t>(best_.size()) > options_.keep_best_k) {
    dropped.push_back(best_.back());
    best_.pop_back();
  }
  if (options_.save_format == SaveFormat::ckpt) prepare_optimizer_state(trainer);
  if (!dist::is_main_process()) return;  // the records above stay the same on every rank
  if (options_.save_format == SaveFormat::ckpt) {
    io::Checkpoint ck = capture_training_state(trainer, std::nullopt, extras(), options_.metadata);
    ck.user_metadata.emplace("zae.saved_because", "best " + options_.monitor);
    io::save_checkpoint(path, ck);
  } else {
    std::map<std::string, std::string> md = options_.metadata;
    md["epoch"] = std::to_string(epoch);
    md[options_.monitor] = std::to_string(v);
    io::save_module_safetensors(trainer.model(), path, md);
  }
  for (const BestEntry& d : dropped) {
    if (d.path == path) continue;
    std::error_code ec;
    fs::remove(d.path, ec);  // a file already gone is fine
  }
}

void StateManager::on_epoch_end(Trainer& trainer, int64_t epoch) {
  if (trainer.mode() != Mode::train) return;
  save_best(trainer, epoch);
  if (options_.every_epoch) save_last(trainer, "epoch end");
}

}  // namespace zae
