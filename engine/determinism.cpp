// Deterministic mode flag (see determinism.h).
#include "engine/determinism.h"

#include <atomic>

namespace zae {

namespace {
std::atomic<bool> g_deterministic{false};
}  // namespace

void set_deterministic(bool on) { g_deterministic.store(on, std::memory_order_relaxed); }

bool deterministic() { return g_deterministic.load(std::memory_order_relaxed); }

}  // namespace zae
