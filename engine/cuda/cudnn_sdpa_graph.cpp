// The cuDNN backend graphs of fused attention: forward and backward graph building, plan
// building and execution (see cudnn_sdpa_graph.h and, for the math, cudnn_sdpa.h).
#include "engine/cuda/cudnn_sdpa_graph.h"

#include <string>

#include "engine/error.h"

namespace zae::cuda::sdpa {

void fail(cudnnStatus_t status, const char* fn, const char* what, const char* owner, const char* file, int line) {
  const std::string call = ::zae::detail::concat(fn, "(", what, ")", owner[0] != '\0' ? " on " : "", owner);
  ::zae::cuda::detail::throw_cudnn_error(status, call.c_str(), file, line);
}

namespace {

// ---- the two graphs ----------------------------------------------------------------------

cudnnDataType_t io_type(DType dt) { return dt == DType::bfloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF; }

// K^T (B, H, D, Tk) over dense (B, H, Tk, D) memory (V^T the same).
Dims transposed_dims(const SdpaProblem& p) { return {p.batch, p.heads, p.d, p.tk}; }
Dims transposed_strides(const SdpaProblem& p) { return {p.heads * p.tk * p.d, p.tk * p.d, 1, p.d}; }

void build_forward(GraphBuilder& g, const SdpaProblem& p) {
  const cudnnDataType_t io = io_type(p.dtype), f32 = CUDNN_DATA_FLOAT;
  const Dims qd{p.batch, p.heads, p.tq, p.d}, vd{p.batch, p.heads, p.tk, p.d};
  const Dims sd{p.batch, p.heads, p.tq, p.tk}, rd{p.batch, p.heads, p.tq, 1};
  const auto q = g.tensor("q", kQ, qd, dense_strides(qd), io, false);
  const auto kt = g.tensor("k^T", kK, transposed_dims(p), transposed_strides(p), io, false);
  const auto v = g.tensor("v", kV, vd, dense_strides(vd), io, false);
  const auto o = g.tensor("o", kO, qd, dense_strides(qd), io, false);
  const auto stats = g.tensor("stats", kStats, rd, dense_strides(rd), f32, false);
  const auto scale = g.scalar("scale", kScale, f32);

  const auto s = g.virt("q k^T", sd, f32);
  g.matmul("q k^T", q, kt, s);
  auto scores = g.virt("scaled scores", sd, f32);
  g.pointwise("scale scores", CUDNN_POINTWISE_MUL, f32, s, scale, nullptr, scores);
  if (p.causal) scores = g.causal_mask(scores, sd, g.scalar("-inf", kNegInf, f32));
  // softmax, with stats = max + log(sum exp(x - max))
  const auto mx = g.virt("row max", rd, f32);
  g.reduction("row max", CUDNN_REDUCE_TENSOR_MAX, scores, mx);
  const auto shifted = g.virt("scores - max", sd, f32);
  g.pointwise("scores - max", CUDNN_POINTWISE_SUB, f32, scores, mx, nullptr, shifted);
  const auto e = g.virt("exp", sd, f32);
  g.pointwise("exp", CUDNN_POINTWISE_EXP, f32, shifted, nullptr, nullptr, e);
  const auto sum = g.virt("row sum", rd, f32);
  g.reduction("row sum", CUDNN_REDUCE_TENSOR_ADD, e, sum);
  const auto log_sum = g.virt("log row sum", rd, f32);
  g.pointwise("log row sum", CUDNN_POINTWISE_LOG, f32, sum, nullptr, nullptr, log_sum);
  g.pointwise("stats = max + log sum", CUDNN_POINTWISE_ADD, f32, mx, log_sum, nullptr, stats);
  const auto probs = g.virt("probabilities", sd, io);  // the second matmul takes P in the i/o type
  g.pointwise("exp / sum", CUDNN_POINTWISE_DIV, f32, e, sum, nullptr, probs);
  g.matmul("P v", probs, v, o);
}

void build_backward(GraphBuilder& g, const SdpaProblem& p) {
  const cudnnDataType_t io = io_type(p.dtype), f32 = CUDNN_DATA_FLOAT;
  const Dims qd{p.batch, p.heads, p.tq, p.d}, kd{p.batch, p.heads, p.tk, p.d};
  const Dims sd{p.batch, p.heads, p.tq, p.tk}, rd{p.batch, p.heads, p.tq, 1};
  const Dims std_dims{p.batch, p.heads, p.tk, p.tq};
  const Dims std_strides{p.heads * p.tq * p.tk, p.tq * p.tk, 1, p.tk};  // (Tq, Tk) memory seen as (Tk, Tq)
  const auto q = g.tensor("q", kQ, qd, dense_strides(qd), io, false);
  const auto kt = g.tensor("k^T", kK, transposed_dims(p), transposed_strides(p), io, false);
  const auto vt = g.tensor("v^T", kV, transposed_dims(p), transposed_strides(p), io, false);
  const auto o = g.tensor("o", kO, qd, dense_strides(qd), io, false);
  const auto d_o = g.tensor("dO", kDO, qd, dense_strides(qd), io, false);
  const auto stats = g.tensor("stats", kStats, rd, dense_strides(rd), f32, false);
  const auto dq = g.tensor("dq", kDQ, qd, dense_strides(qd), io, false);
  const auto dk = g.tensor("dk", kDK, kd, dense_strides(kd), io, false);
  const auto dv = g.tensor("dv", kDV, kd, dense_strides(kd), io, false);
  const auto row_sum = g.tensor("rowsum(dO * o)", kRowSum, rd, dense_strides(rd), f32, false);
  const auto dq_accum = g.tensor("dq accumulator", kDqAccum, qd, dense_strides(qd), f32, false);
  const auto scale = g.scalar("scale", kScale, f32);
  const auto one = g.scalar("one", kOne, f32);

  // D_i = rowsum(dO * O)
  const auto prod = g.virt("dO * o", qd, f32);
  g.pointwise("dO * o", CUDNN_POINTWISE_MUL, f32, d_o, o, nullptr, prod);
  const auto red = g.virt("rowsum(dO * o)", rd, f32);
  g.reduction("rowsum(dO * o)", CUDNN_REDUCE_TENSOR_ADD, prod, red);
  g.pointwise("rowsum(dO * o) * 1", CUDNN_POINTWISE_MUL, f32, red, one, nullptr, row_sum);
  // P = exp(scale q k^T - stats), masked
  const auto s = g.virt("q k^T", sd, f32);
  g.matmul("q k^T", q, kt, s);
  const auto scaled = g.virt("scaled scores", sd, f32);
  g.pointwise("scale scores", CUDNN_POINTWISE_MUL, f32, s, scale, nullptr, scaled);
  auto shifted = g.virt("scores - stats", sd, f32);
  g.pointwise("scores - stats", CUDNN_POINTWISE_SUB, f32, scaled, stats, nullptr, shifted);
  if (p.causal) shifted = g.causal_mask(shifted, sd, g.scalar("-inf", kNegInf, f32));
  const auto probs = g.virt("P", sd, f32);
  g.pointwise("P = exp", CUDNN_POINTWISE_EXP, f32, shifted, nullptr, nullptr, probs);
  // dV = P^T dO
  const auto probs_t = g.tensor("P^T", 900, std_dims, std_strides, io, true);
  g.reshape("P^T", probs, probs_t);
  g.matmul("P^T dO", probs_t, d_o, dv);
  // dS = P * (dO v^T - D) * scale
  const auto dp = g.virt("dO v^T", sd, f32);
  g.matmul("dO v^T", d_o, vt, dp);
  const auto dp_minus = g.virt("dP - D", sd, f32);
  g.pointwise("dP - D", CUDNN_POINTWISE_SUB, f32, dp, row_sum, nullptr, dp_minus);
  const auto ds_unscaled = g.virt("P * (dP - D)", sd, f32);
  g.pointwise("P * (dP - D)", CUDNN_POINTWISE_MUL, f32, dp_minus, probs, nullptr, ds_unscaled);
  const auto ds = g.virt("dS", sd, f32);
  g.pointwise("dS * scale", CUDNN_POINTWISE_MUL, f32, ds_unscaled, scale, nullptr, ds);
  // dK = dS^T q
  const auto ds_t = g.tensor("dS^T", 901, std_dims, std_strides, io, true);
  g.reshape("dS^T", ds, ds_t);
  g.matmul("dS^T q", ds_t, q, dk);
  // dQ = dS k, accumulated in float, then converted
  const auto k = g.tensor("k", 902, kd, dense_strides(kd), f32, true);
  g.reshape("k from k^T", kt, k);
  g.matmul("dS k", ds, k, dq_accum);
  g.pointwise("dq = accumulator", CUDNN_POINTWISE_IDENTITY, f32, dq_accum, nullptr, nullptr, dq);
}

const char* status_name(cudnnStatus_t s) { return cudnnGetErrorString(s); }

}  // namespace

std::unique_ptr<Plan> build_plan(const SdpaProblem& p, Direction dir, cudnnHandle_t handle,
                                 cudnnBackendDescriptor_t device_prop) {
  auto plan = std::make_unique<Plan>();
  if (dir == Direction::forward)
    build_forward(plan->graph, p);
  else
    build_backward(plan->graph, p);
  plan->op_graph = plan->graph.build(handle);
  std::string tried;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    const char* mode_name = mode == CUDNN_HEUR_MODE_A ? "heuristics mode A" : "fallback heuristics";
    BackendDesc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendDescriptor_t graph = plan->op_graph.get();
    ZAE_SDPA_SET(mode_name, heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                 &graph);
    ZAE_SDPA_SET(mode_name, heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (device_prop != nullptr)
      ZAE_SDPA_SET(mode_name, heur.get(), CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   &device_prop);
    cudnnStatus_t st = cudnnBackendFinalize(heur.get());
    if (st != CUDNN_STATUS_SUCCESS) {
      tried += ::zae::detail::concat(tried.empty() ? "" : "; ", mode_name, ": finalize ", status_name(st));
      continue;
    }
    int64_t count = 0;
    ZAE_SDPA_CALL("CUDNN_ATTR_ENGINEHEUR_RESULTS (count)", mode_name, cudnnBackendGetAttribute, heur.get(),
                  CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
    std::vector<BackendDesc> configs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
      raw.push_back(configs.back().get());
    }
    int64_t returned = 0;
    if (count > 0)
      ZAE_SDPA_CALL("CUDNN_ATTR_ENGINEHEUR_RESULTS", mode_name, cudnnBackendGetAttribute, heur.get(),
                    CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data());
    if (returned == 0) {
      tried += ::zae::detail::concat(tried.empty() ? "" : "; ", mode_name, ": no engine configs");
      continue;
    }
    for (int64_t i = 0; i < returned && i < count; ++i) {
      BackendDesc exec(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      if (handle != nullptr)
        ZAE_SDPA_SET("execution plan", exec.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      if (device_prop != nullptr)
        ZAE_SDPA_SET("execution plan", exec.get(), CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP,
                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &device_prop);
      cudnnBackendDescriptor_t cfg = raw[static_cast<size_t>(i)];
      ZAE_SDPA_SET("execution plan", exec.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
      st = cudnnBackendFinalize(exec.get());
      if (st != CUDNN_STATUS_SUCCESS) {
        tried += ::zae::detail::concat(tried.empty() ? "" : "; ", mode_name, " config ", i, ": ", status_name(st));
        continue;
      }
      int64_t ws = 0, n = 0;
      ZAE_SDPA_CALL("CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE", "execution plan", cudnnBackendGetAttribute,
                    exec.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws);
      ZAE_CHECK(ws >= 0, "cuDNN attention: negative plan workspace ", ws);
      plan->heuristics = std::move(heur);
      plan->configs = std::move(configs);
      plan->plan = std::move(exec);
      plan->workspace_bytes = ws;
      return plan;
    }
  }
  ZAE_FAIL("no cuDNN engine supports the graph (", tried, ")");
}

void execute_plan(cudnnHandle_t handle, const Plan& plan, const std::vector<int64_t>& uids,
                  const std::vector<void*>& ptrs, void* workspace) {
  BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  ZAE_SDPA_SET("variant pack", pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
               static_cast<int64_t>(uids.size()), uids.data());
  ZAE_SDPA_SET("variant pack", pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
               static_cast<int64_t>(ptrs.size()), ptrs.data());
  ZAE_SDPA_SET("variant pack", pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  ZAE_SDPA_FINALIZE("variant pack", pack.get());
  ZAE_SDPA_CALL("execution plan", "", cudnnBackendExecute, handle, plan.plan.get(), pack.get());
}

}  // namespace zae::cuda::sdpa
