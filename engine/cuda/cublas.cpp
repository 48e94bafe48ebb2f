// cuBLAS / cuBLASLt handles, workspaces and the cuBLASLt plan cache (see cublas.h).
#include "engine/cuda/cublas.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/stream.h"
#include "engine/tensor.h"

namespace zae::cuda {

namespace {

// ---- handles -----------------------------------------------------------------------

// The calling thread's handles, one per device; destroyed when the thread exits
// (statuses ignored: destructors never throw).
struct ThreadHandles {
  std::unordered_map<int, cublasLtHandle_t> lt;
  std::unordered_map<int, cublasHandle_t> blas;
  ThreadHandles() = default;
  ThreadHandles(const ThreadHandles&) = delete;
  ThreadHandles& operator=(const ThreadHandles&) = delete;
  ~ThreadHandles() {
    for (auto& [dev, h] : lt) (void)cublasLtDestroy(h);
    for (auto& [dev, h] : blas) (void)cublasDestroy(h);
  }
};

ThreadHandles& thread_handles() {
  thread_local ThreadHandles handles;
  return handles;
}

// ---- plans ---------------------------------------------------------------------------

// Move-only owner of one cuBLASLt descriptor.
template <class H, cublasStatus_t (*Destroy)(H)>
class LtObject {
 public:
  LtObject() = default;
  LtObject(const LtObject&) = delete;
  LtObject& operator=(const LtObject&) = delete;
  ~LtObject() {
    if (h_ != nullptr) (void)Destroy(h_);
  }
  H get() const { return h_; }
  H* out() { return &h_; }

 private:
  H h_ = nullptr;
};

using MatmulDesc = LtObject<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using MatrixLayout = LtObject<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using Preference = LtObject<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

// Largest power of two <= 16 dividing the address (16 for null: nothing is read there).
uint32_t alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 16;
  while (a > 1 && v % a != 0) a >>= 1;
  return a;
}

struct PlanKey {
  int device = 0;
  int32_t trans_a = 0, trans_b = 0;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0, stride_a = 0, stride_b = 0, stride_c = 0, batch = 0;
  int32_t data_type = 0, compute = 0, scale_type = 0;
  uint32_t epilogue = 0;
  uint32_t align_a = 0, align_b = 0, align_c = 0, align_bias = 0;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    auto mix = [&h](int64_t v) {
      h ^= static_cast<uint64_t>(v);
      h *= 1099511628211ull;
    };
    for (int64_t v : {int64_t{k.device}, int64_t{k.trans_a}, int64_t{k.trans_b}, k.m, k.n, k.k, k.lda, k.ldb, k.ldc,
                      k.stride_a, k.stride_b, k.stride_c, k.batch, int64_t{k.data_type}, int64_t{k.compute},
                      int64_t{k.scale_type}, int64_t{k.epilogue}, int64_t{k.align_a}, int64_t{k.align_b},
                      int64_t{k.align_c}, int64_t{k.align_bias}})
      mix(v);
    return static_cast<size_t>(h);
  }
};

// Descriptors and the heuristic's choice for one key; `supported` false when cuBLASLt has none.
struct Plan {
  MatmulDesc desc;
  MatrixLayout a, b, c;  // c describes both C and D
  bool supported = false;
  cublasLtMatmulAlgo_t algo{};
};

using PlanCache = std::unordered_map<PlanKey, std::unique_ptr<Plan>, PlanKeyHash>;

PlanCache& thread_plans() {
  thread_local PlanCache plans;
  return plans;
}

bool is_half_type(cudaDataType_t t) { return t == CUDA_R_16F || t == CUDA_R_16BF; }

std::string describe(const ColumnMajorGemm& g) {
  return detail::concat("column-major m=", g.m, " n=", g.n, " k=", g.k, " trans_a=", g.trans_a == CUBLAS_OP_T,
                        " trans_b=", g.trans_b == CUBLAS_OP_T, " lda=", g.lda, " ldb=", g.ldb, " ldc=", g.ldc,
                        " strides=(", g.stride_a, ", ", g.stride_b, ", ", g.stride_c, ") batch=", g.batch,
                        " data_type=", static_cast<int>(g.data_type), " compute=", static_cast<int>(g.compute),
                        " epilogue=", static_cast<int>(g.epilogue));
}

// Sets one attribute; every attribute write goes through here.
template <class Set, class Obj, class Attr, class V>
void set_attr(Set set, Obj obj, Attr attr, const V& value) {
  CUBLAS_CHECK(set(obj, attr, &value, sizeof(value)));
}

void make_layout(MatrixLayout& layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                 int64_t stride) {
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(layout.out(), type, static_cast<uint64_t>(rows),
                                          static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    set_attr(cublasLtMatrixLayoutSetAttribute, layout.get(), CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
             static_cast<int32_t>(batch));
    set_attr(cublasLtMatrixLayoutSetAttribute, layout.get(), CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride);
  }
}

std::unique_ptr<Plan> make_plan(const ColumnMajorGemm& g, const PlanKey& key) {
  auto plan = std::make_unique<Plan>();
  CUBLAS_CHECK(cublasLtMatmulDescCreate(plan->desc.out(), g.compute, g.scale_type));
  cublasLtMatmulDesc_t desc = plan->desc.get();
  set_attr(cublasLtMatmulDescSetAttribute, desc, CUBLASLT_MATMUL_DESC_TRANSA, static_cast<int32_t>(g.trans_a));
  set_attr(cublasLtMatmulDescSetAttribute, desc, CUBLASLT_MATMUL_DESC_TRANSB, static_cast<int32_t>(g.trans_b));
  set_attr(cublasLtMatmulDescSetAttribute, desc, CUBLASLT_MATMUL_DESC_EPILOGUE, static_cast<uint32_t>(g.epilogue));
  if (g.bias != nullptr) {
    set_attr(cublasLtMatmulDescSetAttribute, desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
             static_cast<int32_t>(g.data_type));
    // The heuristic never dereferences the bias pointer, it only reads its alignment: show
    // it one aligned to exactly the key's (capped) alignment, so the algorithm chosen
    // suits every later call with this key, whatever its bias address.
    const void* probe = reinterpret_cast<const void*>(static_cast<uintptr_t>(key.align_bias));
    set_attr(cublasLtMatmulDescSetAttribute, desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, probe);
  }
  const bool ta = g.trans_a == CUBLAS_OP_T, tb = g.trans_b == CUBLAS_OP_T;
  make_layout(plan->a, g.data_type, ta ? g.k : g.m, ta ? g.m : g.k, g.lda, g.batch, g.stride_a);
  make_layout(plan->b, g.data_type, tb ? g.n : g.k, tb ? g.k : g.n, g.ldb, g.batch, g.stride_b);
  make_layout(plan->c, g.data_type, g.m, g.n, g.ldc, g.batch, g.stride_c);

  Preference pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(pref.out()));
  set_attr(cublasLtMatmulPreferenceSetAttribute, pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
           static_cast<uint64_t>(kCublasWorkspaceBytes));
  set_attr(cublasLtMatmulPreferenceSetAttribute, pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a);
  set_attr(cublasLtMatmulPreferenceSetAttribute, pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b);
  set_attr(cublasLtMatmulPreferenceSetAttribute, pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c);
  set_attr(cublasLtMatmulPreferenceSetAttribute, pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c);
  if (is_half_type(g.data_type)) {
    // Split-K partial sums stay in float: no reduction in (or through) the 16-bit output.
    const uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    set_attr(cublasLtMatmulPreferenceSetAttribute, pref.get(), CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, mask);
  }
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), desc, plan->a.get(), plan->b.get(), plan->c.get(),
                                     plan->c.get(), pref.get(), 1, &result, &count);
  // Any refusal (no algorithm, or a layout this cuBLASLt does not take) sends the
  // problem to cublasGemmStridedBatchedEx, which reports real argument errors.
  plan->supported = st == CUBLAS_STATUS_SUCCESS && count > 0 && result.state == CUBLAS_STATUS_SUCCESS &&
                    result.workspaceSize <= kCublasWorkspaceBytes;
  if (plan->supported) plan->algo = result.algo;
  return plan;
}

}  // namespace

// ---- handles and workspaces ----------------------------------------------------------

cublasLtHandle_t cublaslt_handle() {
  const int dev = current_device();
  auto& map = thread_handles().lt;
  auto it = map.find(dev);
  if (it != map.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  CUBLAS_CHECK(cublasLtCreate(&h));
  map.emplace(dev, h);
  return h;
}

cublasHandle_t cublas_handle(cudaStream_t stream) {
  const int dev = current_device();
  auto& map = thread_handles().blas;
  auto it = map.find(dev);
  if (it == map.end()) {
    cublasHandle_t h = nullptr;
    CUBLAS_CHECK(cublasCreate(&h));
    // Registered before any further call can throw, so the thread's exit destroys it.
    it = map.emplace(dev, h).first;
    CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    CUBLAS_CHECK(cublasSetMathMode(h, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                                 CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  }
  cublasHandle_t h = it->second;
  // cublasSetStream resets the workspace to cuBLAS's own pool: set ours after it.
  CUBLAS_CHECK(cublasSetStream(h, stream));
  const Workspace ws = cublas_workspace(stream);
  CUBLAS_CHECK(cublasSetWorkspace(h, ws.ptr, ws.bytes));
  return h;
}

Workspace cublas_workspace(cudaStream_t stream) {
  // Leaked on purpose: the buffers go back to the caching allocator, which outlives
  // everything, and nothing runs them down during static destruction.
  static std::mutex* mu = new std::mutex;
  static auto* buffers = new std::map<std::pair<int, cudaStream_t>, Tensor>;
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(*mu);
  auto it = buffers->find({dev, stream});
  if (it == buffers->end()) {
    // Allocated for `stream`, so the caching allocator orders its reuse after that stream's work.
    StreamGuard on_stream(dev, stream);
    Tensor t = Tensor::empty({static_cast<int64_t>(kCublasWorkspaceBytes)},
                             {.dtype = DType::uint8, .device = Device::cuda(dev)});
    it = buffers->emplace(std::make_pair(dev, stream), std::move(t)).first;
  }
  return {it->second.raw_data(), kCublasWorkspaceBytes};
}

// ---- products --------------------------------------------------------------------------

bool lt_matmul(const ColumnMajorGemm& g, cudaStream_t stream) {
  if (g.batch > INT32_MAX) return false;  // cuBLASLt's batch count is an int32
  PlanKey key;
  key.device = current_device();
  key.trans_a = g.trans_a;
  key.trans_b = g.trans_b;
  key.m = g.m, key.n = g.n, key.k = g.k;
  key.lda = g.lda, key.ldb = g.ldb, key.ldc = g.ldc;
  key.batch = g.batch;
  // Batch strides only matter (and only reach the layouts) when there is a batch.
  if (g.batch > 1) key.stride_a = g.stride_a, key.stride_b = g.stride_b, key.stride_c = g.stride_c;
  key.data_type = g.data_type, key.compute = g.compute, key.scale_type = g.scale_type;
  key.epilogue = static_cast<uint32_t>(g.epilogue);
  key.align_a = alignment(g.a), key.align_b = alignment(g.b), key.align_c = alignment(g.c);
  key.align_bias = g.bias != nullptr ? alignment(g.bias) : 0;

  PlanCache& plans = thread_plans();
  auto it = plans.find(key);
  if (it == plans.end()) {
    if (plans.size() >= kMaxLtPlans) plans.clear();
    it = plans.emplace(key, make_plan(g, key)).first;
  }
  Plan& plan = *it->second;
  if (!plan.supported) return false;
  // The descriptor is this thread's own: setting the call's bias pointer cannot race.
  if (g.bias != nullptr)
    set_attr(cublasLtMatmulDescSetAttribute, plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
  const Workspace ws = cublas_workspace(stream);
  const cublasStatus_t st =
      cublasLtMatmul(cublaslt_handle(), plan.desc.get(), g.alpha, g.a, plan.a.get(), g.b, plan.b.get(), g.beta, g.c,
                     plan.c.get(), g.c, plan.c.get(), &plan.algo, ws.ptr, ws.bytes, stream);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
    plan.supported = false;  // remember, and let the caller take the fallback
    return false;
  }
  ZAE_CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasLtMatmul failed: cuBLAS error ", cublasGetStatusName(st), ": ",
            cublasGetStatusString(st), " (", describe(g), ")");
  return true;
}

void cublas_gemm(const ColumnMajorGemm& g, cudaStream_t stream) {
  ZAE_CHECK(g.epilogue == CUBLASLT_EPILOGUE_DEFAULT, "cublas_gemm: epilogue ", static_cast<int>(g.epilogue),
            " cannot run through cublasGemmStridedBatchedEx (", describe(g), ")");
  cublasHandle_t h = cublas_handle(stream);
  const cublasStatus_t st = cublasGemmStridedBatchedEx_64(
      h, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, g.a, g.data_type, g.lda, g.stride_a, g.b, g.data_type, g.ldb,
      g.stride_b, g.beta, g.c, g.data_type, g.ldc, g.stride_c, g.batch, g.compute, CUBLAS_GEMM_DEFAULT);
  ZAE_CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasGemmStridedBatchedEx failed: cuBLAS error ", cublasGetStatusName(st),
            ": ", cublasGetStatusString(st), " (", describe(g), ")");
}

size_t lt_plan_cache_size() { return thread_plans().size(); }

}  // namespace zae::cuda
