// Internal to engine/cuda/cudnn_sdpa.cpp (and deviceless checks): the cuDNN backend graphs
// of fused attention, the RAII descriptor they are made of, plan building and execution.
// The math, the graphs and the verification status are described in cudnn_sdpa.h.
// CUDA-only header: include it from engine/cuda/*.cpp only.
//
// Invariants:
// - Every backend descriptor is owned by one BackendDesc (destroyed, never throwing, in its
//   destructor); a GraphBuilder owns every tensor and operation of its graph, and a Plan
//   owns its GraphBuilder, so everything a finalized plan refers to lives as long as it.
// - Every cuDNN call goes through ZAE_SDPA_CALL / ZAE_SDPA_SET / ZAE_SDPA_FINALIZE, whose
//   zae::Error names the function, the attribute and the descriptor it was applied to.
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "engine/cuda/cudnn.h"
#include "engine/cuda/cudnn_sdpa.h"

namespace zae::cuda::sdpa {

// ---- checked backend calls -------------------------------------------------------------

/// Throws the cuDNN error for `fn` applied to `what` (an attribute) on `owner` (a tensor,
/// op or descriptor name).
[[noreturn]] void fail(cudnnStatus_t status, const char* fn, const char* what, const char* owner, const char* file,
                       int line);

#define ZAE_SDPA_CALL(what, owner, fn, ...)                                            \
  do {                                                                                 \
    const cudnnStatus_t zae_sdpa_status_ = fn(__VA_ARGS__);                           \
    if (zae_sdpa_status_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                         \
      ::zae::cuda::sdpa::fail(zae_sdpa_status_, #fn, what, owner, __FILE__, __LINE__); \
  } while (0)

#define ZAE_SDPA_SET(owner, desc, attr, type, count, ptr) \
  ZAE_SDPA_CALL(#attr, owner, cudnnBackendSetAttribute, (desc), (attr), (type), (count), (ptr))

#define ZAE_SDPA_FINALIZE(owner, desc) ZAE_SDPA_CALL("", owner, cudnnBackendFinalize, (desc))

/// Owns one backend descriptor (created in the constructor, destroyed in the destructor).
class BackendDesc {
 public:
  BackendDesc() = default;
  explicit BackendDesc(cudnnBackendDescriptorType_t type) {
    ZAE_SDPA_CALL("descriptor", "", cudnnBackendCreateDescriptor, type, &d_);
  }
  ~BackendDesc() { reset(); }
  BackendDesc(BackendDesc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  BackendDesc& operator=(BackendDesc&& o) noexcept {
    if (this != &o) {
      reset();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  void reset() noexcept {
    if (d_ != nullptr) (void)cudnnBackendDestroyDescriptor(d_);
    d_ = nullptr;
  }
  cudnnBackendDescriptor_t d_ = nullptr;
};

// ---- graph building ----------------------------------------------------------------------

using Dims = std::array<int64_t, 4>;

inline Dims dense_strides(const Dims& d) { return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1}; }

// Unique ids of the tensors the caller binds (the rest are virtual, numbered from 1000).
enum Uid : int64_t {
  kQ = 1,
  kK = 2,
  kV = 3,
  kO = 4,
  kStats = 5,
  kDO = 6,
  kDQ = 7,
  kDK = 8,
  kDV = 9,
  kScale = 10,
  kNegInf = 11,
  kOne = 12,
  kRowSum = 13,   // backward: float (B, H, Tq, 1) rowsum(dO * O), in our workspace
  kDqAccum = 14,  // backward: float (B, H, Tq, D) dq accumulator, in our workspace
};

// Owns every tensor and operation descriptor of one graph; they must outlive the plan.
class GraphBuilder {
 public:
  using Desc = cudnnBackendDescriptor_t;

  Desc tensor(const char* name, int64_t uid, const Dims& dims, const Dims& strides, cudnnDataType_t type,
              bool is_virtual, bool by_value = false) {
    BackendDesc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t alignment = 16;
    ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
    ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
    ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) ZAE_SDPA_SET(name, t.get(), CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    ZAE_SDPA_FINALIZE(name, t.get());
    return keep(std::move(t));
  }
  // A virtual tensor with dense strides.
  Desc virt(const char* name, const Dims& dims, cudnnDataType_t type) {
    return tensor(name, next_uid_++, dims, dense_strides(dims), type, true);
  }
  // A scalar passed by value (a host pointer in the variant pack).
  Desc scalar(const char* name, int64_t uid, cudnnDataType_t type) {
    return tensor(name, uid, {1, 1, 1, 1}, {1, 1, 1, 1}, type, false, true);
  }

  // y = mode(x[, b][, t]); `axis` only for GEN_INDEX.
  void pointwise(const char* name, cudnnPointwiseMode_t mode, cudnnDataType_t math, Desc x, Desc b, Desc t, Desc y,
                 int64_t axis = -1) {
    BackendDesc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    ZAE_SDPA_SET(name, pw.get(), CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    ZAE_SDPA_SET(name, pw.get(), CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math);
    if (axis >= 0) ZAE_SDPA_SET(name, pw.get(), CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    ZAE_SDPA_FINALIZE(name, pw.get());
    Desc pw_desc = keep(std::move(pw));
    BackendDesc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                 &pw_desc);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b != nullptr)
      ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    if (t != nullptr)
      ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    ZAE_SDPA_FINALIZE(name, op.get());
    ops_.push_back(keep(std::move(op)));
  }

  // c = a b (batched over the first two dims), float accumulation.
  void matmul(const char* name, Desc a, Desc b, Desc c) {
    BackendDesc mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    ZAE_SDPA_SET(name, mm.get(), CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    ZAE_SDPA_FINALIZE(name, mm.get());
    Desc mm_desc = keep(std::move(mm));
    BackendDesc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm_desc);
    ZAE_SDPA_FINALIZE(name, op.get());
    ops_.push_back(keep(std::move(op)));
  }

  // y = reduce(x) over the dims where y has extent 1.
  void reduction(const char* name, cudnnReduceTensorOp_t reduce_op, Desc x, Desc y) {
    BackendDesc red(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    ZAE_SDPA_SET(name, red.get(), CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &reduce_op);
    ZAE_SDPA_SET(name, red.get(), CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    ZAE_SDPA_FINALIZE(name, red.get());
    Desc red_desc = keep(std::move(red));
    BackendDesc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &red_desc);
    ZAE_SDPA_FINALIZE(name, op.get());
    ops_.push_back(keep(std::move(op)));
  }

  // y = x seen through y's dims and strides (a transposed view; no data moves).
  void reshape(const char* name, Desc x, Desc y) {
    BackendDesc op(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    ZAE_SDPA_SET(name, op.get(), CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    ZAE_SDPA_FINALIZE(name, op.get());
    ops_.push_back(keep(std::move(op)));
  }

  // Causal (top-left) mask: x where row index >= column index, else `neg_inf`.
  Desc causal_mask(Desc x, const Dims& dims, Desc neg_inf) {
    const Desc row = virt("causal row index", dims, CUDNN_DATA_INT32);
    pointwise("causal row index", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, x, nullptr, nullptr, row, 2);
    const Desc col = virt("causal column index", dims, CUDNN_DATA_INT32);
    pointwise("causal column index", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, x, nullptr, nullptr, col, 3);
    const Desc keep_mask = virt("causal keep (row >= col)", dims, CUDNN_DATA_BOOLEAN);
    pointwise("causal keep (row >= col)", CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, nullptr, keep_mask);
    const Desc y = virt("causal masked scores", dims, CUDNN_DATA_FLOAT);
    pointwise("causal select", CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, neg_inf, keep_mask, y);
    return y;
  }

  // The finalized operation graph over every op added, in order.
  BackendDesc build(cudnnHandle_t handle) const {
    BackendDesc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    // (cuDNN 9.19 marks the handle attribute deprecated; earlier 9.x want it. A null
    // handle is only for deviceless graph checks.)
    if (handle != nullptr)
      ZAE_SDPA_SET("operation graph", graph.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    ZAE_SDPA_SET("operation graph", graph.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                 static_cast<int64_t>(ops_.size()), ops_.data());
    ZAE_SDPA_FINALIZE("operation graph", graph.get());
    return graph;
  }

 private:
  Desc keep(BackendDesc d) {
    const Desc raw = d.get();
    owned_.push_back(std::move(d));
    return raw;
  }

  int64_t next_uid_ = 1000;
  std::vector<BackendDesc> owned_;
  std::vector<Desc> ops_;
};

// ---- plans ---------------------------------------------------------------------------------

enum class Direction : uint8_t { forward, backward };

/// Everything a finalized plan depends on (the descriptors it was built from included).
struct Plan {
  GraphBuilder graph;
  BackendDesc op_graph;
  BackendDesc heuristics;
  std::vector<BackendDesc> configs;
  BackendDesc plan;
  int64_t workspace_bytes = 0;
};

/// Builds the graph of `dir` for `p` and the first execution plan that heuristics mode A
/// (then the fallback list) offers and that finalizes; zae::Error naming the reason (the
/// status of every candidate) when none does. `device_prop` (a finalized
/// CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, with a null handle) plans for a described device
/// without one: only for deviceless checks of the graphs.
std::unique_ptr<Plan> build_plan(const SdpaProblem& p, Direction dir, cudnnHandle_t handle,
                                 cudnnBackendDescriptor_t device_prop = nullptr);

/// Runs `plan` on the handle's stream with the (uid, pointer) bindings and `workspace`
/// (at least plan.workspace_bytes); zae::Error naming the failed call.
void execute_plan(cudnnHandle_t handle, const Plan& plan, const std::vector<int64_t>& uids,
                  const std::vector<void*>& ptrs, void* workspace);

}  // namespace zae::cuda::sdpa
