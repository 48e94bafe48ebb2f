// cuDNN fused attention through the backend graph API, and its plan cache (see cudnn_sdpa.h
// for the math, the graphs, the invariants and what has and has not been verified).
#include "engine/cuda/cudnn_sdpa.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cudnn.h"
#include "engine/cuda/cudnn_sdpa_graph.h"
#include "engine/error.h"

namespace zae::cuda {

namespace {

using namespace sdpa;

// ---- the plan cache --------------------------------------------------------------------------

struct Key {
  int device = 0;
  Direction dir = Direction::forward;
  int64_t b = 0, h = 0, tq = 0, tk = 0, d = 0;
  DType dtype = DType::bfloat16;
  bool causal = false;
  uint64_t scale_bits = 0;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (uint64_t v : {static_cast<uint64_t>(k.device), static_cast<uint64_t>(k.dir), static_cast<uint64_t>(k.b),
                       static_cast<uint64_t>(k.h), static_cast<uint64_t>(k.tq), static_cast<uint64_t>(k.tk),
                       static_cast<uint64_t>(k.d), static_cast<uint64_t>(k.dtype), static_cast<uint64_t>(k.causal),
                       k.scale_bits}) {
      h ^= v;
      h *= 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

std::string describe(const Key& k) {
  return ::zae::detail::concat("attention ", k.dir == Direction::forward ? "forward" : "backward", " (B ", k.b,
                               ", H ", k.h, ", Tq ", k.tq, ", Tk ", k.tk, ", D ", k.d, ", ", k.dtype,
                               k.causal ? ", causal" : "", ", cuda:", k.device, ")");
}

// A plan, or the reason there is none.
struct Entry {
  std::unique_ptr<Plan> plan;
  std::string failure;
  // Serialises launches of this plan from several threads (a launch is a few microseconds
  // of host work; whether one plan descriptor may be executed concurrently is not documented).
  mutable std::mutex run_mu;
};

constexpr size_t kMaxEntries = 1024;
constexpr int kMaxNotices = 16;

struct Cache {
  std::mutex mu;
  std::unordered_map<Key, std::shared_ptr<const Entry>, KeyHash> entries;
  int notices = 0;
  std::atomic<uint64_t> plans_built{0}, plan_failures{0}, forward_runs{0}, backward_runs{0};
};

Cache& cache() {
  static auto* c = new Cache;  // leaked: plans are used until the process ends
  return *c;
}

// Records `reason` as the failure of `key` and prints the one notice for it (caller holds mu).
std::shared_ptr<const Entry> remember_failure(Cache& c, const Key& key, const std::string& reason) {
  auto entry = std::make_shared<Entry>();
  entry->failure = reason;
  c.entries.insert_or_assign(key, entry);
  c.plan_failures.fetch_add(1, std::memory_order_relaxed);
  if (c.notices < kMaxNotices) {
    ++c.notices;
    std::fprintf(stderr,
                 "zae: cuDNN fused attention unavailable for %s: %s; using the built-in flash-attention kernel%s\n",
                 describe(key).c_str(), reason.c_str(),
                 c.notices == kMaxNotices ? " (further notices suppressed)" : "");
  }
  return entry;
}

std::shared_ptr<const Entry> lookup(const Key& key, const SdpaProblem& p, cudnnHandle_t handle) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.entries.find(key);
  if (it != c.entries.end()) return it->second;
  if (c.entries.size() >= kMaxEntries) c.entries.clear();  // holders keep their entries alive
  // Built under the lock: each key is built once, whichever thread asks first.
  try {
    auto entry = std::make_shared<Entry>();
    entry->plan = build_plan(p, key.dir, handle);
    c.entries.emplace(key, entry);
    c.plans_built.fetch_add(1, std::memory_order_relaxed);
    return entry;
  } catch (const Error& e) {
    return remember_failure(c, key, e.what());
  }
}

Key make_key(const SdpaProblem& p, Direction dir) {
  return Key{.device = p.device, .dir = dir, .b = p.batch, .h = p.heads, .tq = p.tq, .tk = p.tk, .d = p.d,
             .dtype = p.dtype, .causal = p.causal, .scale_bits = std::bit_cast<uint64_t>(p.scale)};
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

size_t round_up(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }

// Executes the entry's plan; on a cuDNN error the key is remembered as failed (with its
// notice) and false comes back, so the caller falls back to its own kernel.
bool run_or_remember(const Key& key, const Entry& entry, cudnnHandle_t handle, const std::vector<int64_t>& uids,
                     const std::vector<void*>& ptrs, void* workspace) {
  try {
    std::lock_guard<std::mutex> lock(entry.run_mu);
    execute_plan(handle, *entry.plan, uids, ptrs, workspace);
    return true;
  } catch (const Error& e) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    remember_failure(c, key, ::zae::detail::concat("execution failed: ", e.what()));
    return false;
  }
}

float negative_infinity() {
  // cuDNN before 9.10 expects the lowest finite float as the masked value.
  return cudnnGetVersion() < 91000 ? std::numeric_limits<float>::lowest() : -std::numeric_limits<float>::infinity();
}

}  // namespace

// ---- public API ------------------------------------------------------------------------------

bool cudnn_sdpa_env_enabled() {
  const char* v = std::getenv("ZAE_CUDNN_ATTENTION");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

std::string cudnn_sdpa_ineligible_reason(const SdpaProblem& p) {
  using ::zae::detail::concat;
  if (!cudnn_sdpa_env_enabled()) return "disabled by ZAE_CUDNN_ATTENTION=0";
  if (p.dtype != DType::bfloat16 && p.dtype != DType::float16)
    return concat("dtype ", p.dtype, " (cuDNN attention takes bfloat16 or float16)");
  if (p.d < 8 || p.d > 128 || p.d % 8 != 0)
    return concat("head dim D = ", p.d, " (cuDNN attention takes a multiple of 8 up to 128)");
  if (p.batch < 1 || p.heads < 1 || p.tq < 1 || p.tk < 1)
    return concat("empty problem (B ", p.batch, ", H ", p.heads, ", Tq ", p.tq, ", Tk ", p.tk, ")");
  if (p.causal && p.tq != p.tk) return concat("causal with Tq ", p.tq, " != Tk ", p.tk);
  if (!std::isfinite(p.scale)) return "non-finite scale";
  const size_t version = cudnnGetVersion();
  if (version < 90000) return concat("cuDNN ", version, " at run time (needs 9.0 or newer)");
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, p.device) != cudaSuccess) {
    (void)cudaGetLastError();
    return concat("cannot query the compute capability of cuda:", p.device);
  }
  if (major < 8) return concat("cuda:", p.device, " has compute capability ", major, ".x (needs 8.0 or newer)");
  return "";
}

bool cudnn_sdpa_forward(const SdpaProblem& p, const void* q, const void* k, const void* v, void* o, float* stats,
                        CUstream_st* stream) {
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(o) || !aligned16(stats)) return false;
  const cudnnHandle_t handle = cudnn_handle(stream);
  const Key key = make_key(p, Direction::forward);
  const std::shared_ptr<const Entry> entry = lookup(key, p, handle);
  if (!entry->plan) return false;
  float scale = static_cast<float>(p.scale);
  float neg_inf = negative_infinity();
  std::vector<int64_t> uids{kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> ptrs{const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), o, stats, &scale};
  if (p.causal) {
    uids.push_back(kNegInf);
    ptrs.push_back(&neg_inf);
  }
  Scratch workspace(static_cast<size_t>(entry->plan->workspace_bytes));
  if (!run_or_remember(key, *entry, handle, uids, ptrs, workspace.get())) return false;
  cache().forward_runs.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool cudnn_sdpa_backward(const SdpaProblem& p, const void* q, const void* k, const void* v, const void* o,
                         const void* d_o, const float* stats, void* dq, void* dk, void* dv, CUstream_st* stream) {
  for (const void* ptr : {q, k, v, o, d_o, static_cast<const void*>(stats), static_cast<const void*>(dq),
                          static_cast<const void*>(dk), static_cast<const void*>(dv)})
    if (!aligned16(ptr)) return false;
  const cudnnHandle_t handle = cudnn_handle(stream);
  const Key key = make_key(p, Direction::backward);
  const std::shared_ptr<const Entry> entry = lookup(key, p, handle);
  if (!entry->plan) return false;
  // Workspace: the plan's, then the float row sums, then the float dq accumulator.
  const size_t rows = static_cast<size_t>(p.batch * p.heads * p.tq);
  const size_t plan_bytes = round_up(static_cast<size_t>(entry->plan->workspace_bytes), 256);
  const size_t sum_bytes = round_up(rows * sizeof(float), 256);
  const size_t accum_bytes = rows * static_cast<size_t>(p.d) * sizeof(float);
  Scratch workspace(plan_bytes + sum_bytes + accum_bytes);
  auto* base = static_cast<char*>(workspace.get());
  void* row_sum = base + plan_bytes;
  void* dq_accum = base + plan_bytes + sum_bytes;
  // cuDNN before 9.6 needs the accumulator zeroed; later versions ignore its contents.
  CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, accum_bytes, stream));
  float scale = static_cast<float>(p.scale), one = 1.0f, neg_inf = negative_infinity();
  std::vector<int64_t> uids{kQ, kK, kV, kO, kDO, kStats, kDQ, kDK, kDV, kRowSum, kDqAccum, kScale, kOne};
  std::vector<void*> ptrs{const_cast<void*>(q),  const_cast<void*>(k),     const_cast<void*>(v),
                          const_cast<void*>(o),  const_cast<void*>(d_o),   const_cast<float*>(stats),
                          dq,                    dk,                       dv,
                          row_sum,               dq_accum,                 &scale,
                          &one};
  if (p.causal) {
    uids.push_back(kNegInf);
    ptrs.push_back(&neg_inf);
  }
  if (!run_or_remember(key, *entry, handle, uids, ptrs, plan_bytes > 0 ? base : nullptr)) return false;
  cache().backward_runs.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::string cudnn_sdpa_plan_deviceless(const SdpaProblem& p, bool backward, const std::string& device_json) {
  ZAE_CHECK(cudnnGetVersion() >= 90800, "cudnn_sdpa_plan_deviceless: needs cuDNN 9.8 or newer at run time, found ",
            cudnnGetVersion());
  BackendDesc device(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
  ZAE_SDPA_SET("device properties", device.get(), CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
               static_cast<int64_t>(device_json.size()), device_json.data());
  ZAE_SDPA_FINALIZE("device properties", device.get());
  try {
    (void)build_plan(p, backward ? Direction::backward : Direction::forward, nullptr, device.get());
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

CudnnSdpaCounters cudnn_sdpa_counters() {
  Cache& c = cache();
  return CudnnSdpaCounters{.plans_built = c.plans_built.load(), .plan_failures = c.plan_failures.load(),
                           .forward_runs = c.forward_runs.load(), .backward_runs = c.backward_runs.load()};
}

size_t cudnn_sdpa_cache_size() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.entries.size();
}

}  // namespace zae::cuda
