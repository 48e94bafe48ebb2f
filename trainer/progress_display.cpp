#include "trainer/progress_display.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace zae {

namespace {
constexpr auto kRedrawEvery = std::chrono::milliseconds(100);
constexpr int kBarWidth = 24;

std::string bar(double fraction) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  int full = static_cast<int>(fraction * kBarWidth);
  std::string s = "[";
  for (int i = 0; i < kBarWidth; ++i) s += i < full ? '=' : (i == full ? '>' : ' ');
  s += ']';
  return s;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", s / 60, s % 60);
  return buf;
}

ProgressDisplay::ProgressDisplay(bool enabled, bool silent)
    : interactive_(enabled && !silent && isatty(fileno(stderr))), silent_(silent) {}

ProgressDisplay::~ProgressDisplay() { clear_bars(); }

void ProgressDisplay::begin_run(int64_t first_epoch, int64_t last_epoch) {
  first_epoch_ = first_epoch;
  last_epoch_ = last_epoch;
  run_start_ = Clock::now();
}

void ProgressDisplay::begin_epoch(int64_t epoch, const std::string& phase, int64_t num_batches) {
  epoch_ = epoch;
  phase_ = phase;
  num_batches_ = num_batches;
  done_ = samples_ = 0;
  means_.clear();
  epoch_start_ = Clock::now();
  last_draw_ = {};
}

void ProgressDisplay::update(int64_t done, int64_t samples, const std::map<std::string, double>& means, double lr) {
  done_ = done;
  samples_ += samples;
  means_ = means;
  lr_ = lr;
  draw(done == num_batches_);
}

void ProgressDisplay::draw(bool force) {
  if (!interactive_) return;
  auto now = Clock::now();
  if (!force && now - last_draw_ < kRedrawEvery) return;
  last_draw_ = now;
  double epoch_s = std::chrono::duration<double>(now - epoch_start_).count();
  double run_s = std::chrono::duration<double>(now - run_start_).count();
  double frac = num_batches_ > 0 ? static_cast<double>(done_) / static_cast<double>(num_batches_) : 0.0;
  int64_t epochs = last_epoch_ - first_epoch_ + 1;
  double run_frac = epochs > 0 ? (static_cast<double>(epoch_ - first_epoch_) + frac) / static_cast<double>(epochs) : 0;

  std::string top = "Epoch " + std::to_string(epoch_) + "/" + std::to_string(last_epoch_) + " " + bar(run_frac) +
                    " " + fmt("%3.0f%%", 100 * run_frac) + " | elapsed " + format_duration(run_s) + " | ETA " +
                    format_duration(run_frac > 0 ? run_s / run_frac - run_s : NAN);
  std::string low = "  " + phase_ + " " + std::to_string(done_) + "/" + std::to_string(num_batches_) + " " +
                    bar(frac) + " " + fmt("%.1f batch/s", epoch_s > 0 ? done_ / epoch_s : 0.0) + " " +
                    fmt("%.0f samples/s", epoch_s > 0 ? samples_ / epoch_s : 0.0) + " | ETA " +
                    format_duration(frac > 0 ? epoch_s / frac - epoch_s : NAN);
  for (const auto& [k, v] : means_) low += " | " + k + " " + fmt("%.4f", v);
  low += " | lr " + fmt("%.3e", lr_);
  if (drawn_) std::fputs("\033[1A", stderr);  // back to the epoch line
  std::fprintf(stderr, "\r\033[K%s\n\r\033[K%s", top.c_str(), low.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressDisplay::clear_bars() {
  if (!drawn_) return;
  std::fputs("\r\033[K\033[1A\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

void ProgressDisplay::end_epoch(const std::string& summary) {
  clear_bars();
  if (silent_) return;
  std::printf("%s\n", summary.c_str());
  std::fflush(stdout);
}

void ProgressDisplay::end_run() { clear_bars(); }

}  // namespace zae
