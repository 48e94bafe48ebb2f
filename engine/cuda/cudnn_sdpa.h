// cuDNN's fused flash attention (scaled dot-product attention, forward and backward)
// through the cuDNN 9 backend graph API, with a plan cache; scaled_dot_product_attention
// (engine/ops/attention.cpp) tries it first on CUDA and falls back to our own flash
// kernels (kernels/cuda/attention.h) whenever it returns false. The graphs themselves are
// built in cudnn_sdpa_graph.{h,cpp}; the cache and this API live in cudnn_sdpa.cpp.
//
// Math and conventions (the same as kernels/cuda/attention.h, so the two paths mix: a
// cuDNN forward may be followed by our backward and the other way round):
// - S = scale * q k^T; causal hides key j > query i (top-left aligned, Tq == Tk);
//   P = softmax(S) row-wise; O = P v.
// - stats (B, H, Tq, 1) float32 = max_j S_ij + log(sum_j exp(S_ij - max)): the
//   natural-log logsumexp of the scaled (and masked) scores. This is the tensor cuDNN's
//   graph produces as softmax statistics (max + log(sum of exp)) and its backward graph
//   consumes (P = exp(S - stats)); it is bit-for-layout the lse (B*H, Tq) our kernels
//   save, so the op stores either one in the same tensor.
// - q, o, dO, dq dense (B, H, Tq, D); k, v, dk, dv dense (B, H, Tk, D); bfloat16 or
//   float16; every matmul accumulates in float32 (cuDNN compute type FLOAT).
//
// How causal masking is expressed: cuDNN 9.19's backend has native SDPA operation
// descriptors (CUDNN_BACKEND_OPERATION_SDPA_FWD/BWD_DESCRIPTOR) but they carry no
// causal attribute (only block masks, sequence lengths, page tables), and the native
// diagonal-band op arrives with 9.21. So the graphs are built from primitives in the
// pattern cuDNN's fused-attention engines recognise (the one cudnn-frontend lowers its
// SDPA node to): matmul, pointwise scale, causal mask as GEN_INDEX(row) >= GEN_INDEX(col)
// feeding a BINARY_SELECT with -inf, softmax as reduction max / sub / exp / reduction
// add / div with stats = max + log(sum), and matmul with v. Backward: dO.O row sums into
// a float buffer, P recomputed as exp(S - stats), dV = P^T dO, dS = P * (dO v^T - sum) *
// scale, dK = dS^T q, dQ = dS k through a float accumulator.
//
// Invariants:
// - Eligible (cudnn_sdpa_ineligible_reason returns ""): bfloat16 or float16, head dim a
//   multiple of 8 and <= 128, Tq == Tk when causal, cuDNN >= 9.0 at run time, a device of
//   compute capability >= 8.0, and ZAE_CUDNN_ATTENTION not set to "0" (read on every call).
//   Data pointers must be 16-byte aligned (else the call returns false: fallback).
// - Plans are cached per (device, direction, B, H, Tq, Tk, D, dtype, causal, scale bits):
//   built once (under the cache's mutex), then reused; a key whose graph no engine
//   supports, or whose execution fails, is remembered as failed, a one-time notice naming
//   the reason goes to stderr, and every later call with that key returns false at once.
// - Every backend descriptor is owned by an RAII object; destructors never throw. Every
//   cuDNN call is checked and its error names the call (and the attribute for
//   SetAttribute/Finalize).
// - Plans built on one thread run with the calling thread's handle (engine/cuda/cudnn.h
//   keeps one per thread and device): cuDNN 9.8+ plans even without a handle, and the
//   plan's handle attribute is deprecated in 9.19. Launches of one plan are serialised by
//   a per-plan mutex (host-side only; the GPU work overlaps as the streams allow).
// - Workspace (the plan's, plus the backward's float dQ accumulator and row-sum buffer)
//   comes from the caching allocator on the current stream; nothing synchronises.
//
// Verification status (written without a GPU; no GPU was available):
// - VERIFIED here: this file, cudnn_sdpa*.cpp and the op hook compile and link in the CUDA
//   build (nvcc 13, cuDNN 9.19 headers and library) and the hook in the CPU build. Every
//   tensor and operation descriptor of both graphs finalizes, and both operation graphs
//   finalize, in cuDNN 9.19 (no device needed). Deviceless planning for a described H200
//   (cudnn_sdpa_plan_deviceless, tests/test_cudnn_sdpa_deviceless.cpp): with the toolkit's
//   driver stub loaded, cuDNN lists its fused-attention engines for both graphs (forward:
//   engines 1 and 2, backward: engines 6 and 7 of 12), their support checks accept every
//   shape of the GPU test and more (bf16 and f16, causal or not, B x H up to 4 x 12, T 7 /
//   19 / 33 / 130 / 1024, D 8 / 16 / 64 / 72 / 128: 80 plans by hand), and planning stops
//   only when their kernels are loaded into the (stub) driver (cuLibraryLoadData). Head
//   dims 4, 36 and 260 find no engine, and a wrong stats formula (max - log sum) is
//   rejected, so the check can fail.
// - NOT VERIFIED (needs a device): anything at run time. The numbers (the support checks
//   are structural: a graph computing dq from the unscaled dS also passed them), the stats
//   convention end to end, workspace sizes, execution with a handle, the plan cache and
//   fallback paths, and speed are unverified until tests/test_cudnn_sdpa_cuda.cpp runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/dtype.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; keeps this header free of CUDA includes

namespace zae::cuda {

/// One attention call: dense (batch, heads, T, D) tensors on device `device`.
struct SdpaProblem {
  int device = 0;
  int64_t batch = 1;
  int64_t heads = 1;
  int64_t tq = 0;
  int64_t tk = 0;
  int64_t d = 0;
  DType dtype = DType::bfloat16;
  bool causal = false;
  double scale = 1.0;
};

/// Whether the environment allows cuDNN attention (ZAE_CUDNN_ATTENTION unset or not "0").
bool cudnn_sdpa_env_enabled();

/// Why cuDNN's fused attention cannot run `p` (dtype, head dim, shapes, library version,
/// device, environment switch), or "" when it can be tried.
std::string cudnn_sdpa_ineligible_reason(const SdpaProblem& p);

/// O and stats through cuDNN on `stream`, which must be the thread's current stream of the
/// current device p.device (the workspace is allocated for that stream). Returns
/// false, having written nothing, when no plan exists for `p` or a pointer is not 16-byte
/// aligned: the caller runs its own kernel. `p` must be eligible.
bool cudnn_sdpa_forward(const SdpaProblem& p, const void* q, const void* k, const void* v, void* o, float* stats,
                        CUstream_st* stream);

/// dq, dk, dv (overwritten) through cuDNN from the forward's o and stats and the output
/// gradient d_o; false as for cudnn_sdpa_forward.
bool cudnn_sdpa_backward(const SdpaProblem& p, const void* q, const void* k, const void* v, const void* o,
                         const void* d_o, const float* stats, void* dq, void* dk, void* dv, CUstream_st* stream);

/// Deviceless check of the graphs (cuDNN >= 9.8, no GPU or handle needed): builds the
/// forward or backward graph for `p` and plans it for the device `device_json` describes
/// (cuDNN's CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION). "" when a plan finalizes, else the
/// reason, listing cuDNN's status per candidate engine config ("no engine configs" when
/// no engine accepts the graph). Where no CUDA driver is loaded, cuDNN's fused-attention
/// engines cannot even be listed; with the toolkit's driver stub they are listed, pass
/// their support checks, and stop at kernel loading (CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER).
/// Touches no cache or counter. zae::Error for a bad description.
std::string cudnn_sdpa_plan_deviceless(const SdpaProblem& p, bool backward, const std::string& device_json);

/// Process-wide counts (for tests and benchmarks).
struct CudnnSdpaCounters {
  uint64_t plans_built = 0;     ///< execution plans finalized (one per new key that worked)
  uint64_t plan_failures = 0;   ///< keys remembered as unsupported
  uint64_t forward_runs = 0;    ///< forward calls that ran on cuDNN
  uint64_t backward_runs = 0;   ///< backward calls that ran on cuDNN
};
CudnnSdpaCounters cudnn_sdpa_counters();

/// Entries (working and failed) in the plan cache.
size_t cudnn_sdpa_cache_size();

}  // namespace zae::cuda
