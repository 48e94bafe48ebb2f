// Whether ops record the autograd graph on this thread. NoGradGuard turns it off
// for a scope (optimizer steps, evaluation, backward formulas themselves).
#pragma once

namespace zae {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

/// RAII: disables graph recording in its scope and restores the previous state.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// RAII: enables graph recording in its scope (e.g. inside a NoGradGuard).
class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace zae
