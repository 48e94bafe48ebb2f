// matmul / linear on CUDA (engine/ops/linalg.cpp -> kernels/cuda/gemm.h -> cuBLASLt) against
// the CPU (ctest label gpu; tests that need a device skip without one).
// - Forward: a table of shapes and layouts (odd sizes, transposed, padded, stepped,
//   batched, broadcast, expanded, permuted, 1-D) per dtype, compared with the CPU float64
//   product of the same rounded inputs. Tolerances scale with |A| @ |B| (+ |bias|), the
//   size of a dot product's rounding error: float32 1e-5, TF32 2.5e-3, float64 1e-12,
//   bfloat16/float16 1e-2.
// - Backward: autograd gradients on CUDA against CPU float64 gradients.
// - Launcher: kernels::cuda::gemm with every epilogue (bias, gelu, bias_gelu), both routes
//   (cuBLASLt and the forced cublasGemmStridedBatchedEx fallback), padded leading dims,
//   strided and broadcast batches, beta != 0 and a NaN-poisoned C with beta == 0, against
//   a float64 loop; padding columns of C must stay untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/cuda_matmul.h"
#include "engine/device.h"
#include "engine/ops/factory.h"
#include "engine/ops/linalg.h"
#include "engine/tensor.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/test_util.h"

#ifdef ZAE_TESTS_WITH_CUDA
#include "kernels/cuda/gemm.h"
#endif

namespace {

using zae::Device;
using zae::DType;
using zae::Shape;
using zae::Tensor;
using View = std::function<Tensor(const Tensor&)>;

constexpr Device kCuda = Device::cuda(0);
constexpr double kTf32Tol = 2.5e-3;  // TF32 may truncate both inputs: product error < 2^-9

double tol_of(DType dt) {
  switch (dt) {
    case DType::float32: return 1e-5;
    case DType::float64: return 1e-12;
    default: return 1e-2;
  }
}
// Absolute floor for the 16-bit types (their subnormal spacing), else none.
double atol_of(DType dt) { return (dt == DType::bfloat16 || dt == DType::float16) ? 1e-6 : 0.0; }

Tensor identity(const Tensor& t) { return t; }

// Standard normal float64 values drawn with `seed`, rounded to dt (on the CPU).
Tensor rounded(const Shape& s, DType dt, uint64_t seed) { return zae::test::random_tensor(s, DType::float64, seed).to(dt); }

// Frees a NaN-filled block of the output's size, so the output allocated next on the same
// stream most likely reuses it: a kernel that skips an element leaves NaN there.
void poison_next(const Shape& shape, DType dt) {
  Tensor junk = zae::full(shape, std::numeric_limits<double>::quiet_NaN(), {.dtype = dt, .device = kCuda});
}

// Every |got - want| <= tol * mag + atol, compared in float64 on the CPU.
::testing::AssertionResult within(const Tensor& got, const Tensor& want, const Tensor& mag, double tol, double atol) {
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << zae::shape_str(got.shape()) << " != "
                                         << zae::shape_str(want.shape());
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>(), m = mag.to_vector<double>();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::abs(g[i] - w[i]) <= tol * m[i] + atol) continue;  // false for NaN
    if (bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << g.size() << " elements off; first at flat index " << first
                                       << ": got " << g[first] << ", want " << w[first] << " (allowed "
                                       << tol * m[first] + atol << ")";
}

// ---- matmul forward ------------------------------------------------------------------

struct MatmulCase {
  std::string name;
  Shape a_base, b_base;
  View view_a = identity, view_b = identity;
};

std::vector<MatmulCase> matmul_cases() {
  const int64_t m = 37, k = 19, n = 23;
  std::vector<MatmulCase> cases;
  for (auto [mm, kk, nn] : {std::array<int64_t, 3>{1, 1, 1}, {7, 13, 5}, {1023, 1, 17}, {257, 511, 129}, {3, 0, 4}})
    cases.push_back({"shape " + std::to_string(mm) + "x" + std::to_string(kk) + "x" + std::to_string(nn),
                     {mm, kk}, {kk, nn}});
  auto t = [](const Tensor& x) { return x.transpose(-1, -2); };
  cases.push_back({"a transposed", {k, m}, {k, n}, t});
  cases.push_back({"b transposed", {m, k}, {n, k}, identity, t});
  cases.push_back({"both transposed", {k, m}, {n, k}, t, t});
  cases.push_back({"a rows padded (lda > k)", {m, k + 3}, {k, n}, [k](const Tensor& x) { return x.narrow(1, 0, k); }});
  cases.push_back({"b columns stepped (copied)", {m, k}, {k, 2 * n}, identity,
                   [n](const Tensor& x) { return x.slice(1, 0, 2 * n, 2); }});
  cases.push_back({"batched", {4, m, k}, {4, k, n}});
  cases.push_back({"batched, both transposed", {4, k, m}, {4, n, k}, t, t});
  cases.push_back({"broadcast batch dims", {2, 1, m, k}, {3, k, n}});
  cases.push_back({"shared b (folded into m)", {3, m, k}, {k, n}});
  cases.push_back({"shared a", {m, k}, {3, k, n}});
  cases.push_back({"expanded a batch (stride 0)", {1, m, k}, {4, k, n},
                   [m, k](const Tensor& x) { return x.expand({4, m, k}); }});
  cases.push_back({"permuted a batch", {m, 4, k}, {4, k, n}, [](const Tensor& x) { return x.permute({1, 0, 2}); }});
  cases.push_back({"outer loop (unmergeable batch)", {2, 4, m, k}, {2, 3, k, n},
                   [](const Tensor& x) { return x.narrow(1, 0, 3); }});
  cases.push_back({"vector @ matrix", {k}, {k, n}});
  cases.push_back({"matrix @ vector", {m, k}, {k}});
  cases.push_back({"dot", {k}, {k}});
  cases.push_back({"vector @ batch", {k}, {3, k, n}});
  cases.push_back({"large batched transposed", {2, 511, 257}, {2, 511, 129}, t});
  return cases;
}

void check_matmul(const MatmulCase& c, DType dt, double tol, uint64_t seed) {
  SCOPED_TRACE(c.name + " " + std::string(zae::dtype_name(dt)));
  const Tensor a_base = rounded(c.a_base, dt, seed), b_base = rounded(c.b_base, dt, seed + 1);
  const Tensor a64 = c.view_a(a_base.to(DType::float64)), b64 = c.view_b(b_base.to(DType::float64));
  const Tensor want = zae::matmul(a64, b64);
  const Tensor mag = zae::matmul(a64.abs(), b64.abs());
  const Tensor a = c.view_a(a_base.to(kCuda)), b = c.view_b(b_base.to(kCuda));
  poison_next(want.shape(), dt);
  const Tensor got = zae::matmul(a, b);
  EXPECT_EQ(got.device(), kCuda);
  EXPECT_EQ(got.dtype(), dt);
  EXPECT_TRUE(within(got, want, mag, tol, atol_of(dt)));
}

void check_matmul_table(DType dt, double tol) {
  uint64_t seed = 100;
  for (const MatmulCase& c : matmul_cases()) check_matmul(c, dt, tol, seed += 2);
}

// Restores the TF32 switch on scope exit.
struct Tf32Scope {
  bool prev = zae::cuda::allow_tf32();
  explicit Tf32Scope(bool on) { zae::cuda::set_allow_tf32(on); }
  ~Tf32Scope() { zae::cuda::set_allow_tf32(prev); }
};

TEST(LinalgCuda, Tf32SwitchDefaultsOffAndToggles) {
  EXPECT_FALSE(zae::cuda::allow_tf32()) << "float32 matmuls must not use TF32 unless asked";
  {
    Tf32Scope on(true);
    EXPECT_TRUE(zae::cuda::allow_tf32());
  }
  EXPECT_FALSE(zae::cuda::allow_tf32());
}

TEST(LinalgCuda, MatmulFloat32) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tf32Scope off(false);
  check_matmul_table(DType::float32, tol_of(DType::float32));
}

TEST(LinalgCuda, MatmulFloat32Tf32) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tf32Scope on(true);
  check_matmul_table(DType::float32, kTf32Tol);
}

TEST(LinalgCuda, MatmulFloat64) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_matmul_table(DType::float64, tol_of(DType::float64));
}

TEST(LinalgCuda, MatmulBFloat16) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_matmul_table(DType::bfloat16, tol_of(DType::bfloat16));
}

TEST(LinalgCuda, MatmulFloat16) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_matmul_table(DType::float16, tol_of(DType::float16));
}

TEST(LinalgCuda, MatmulRejectsMixedDevices) {
  ZAE_SKIP_WITHOUT_CUDA();
  const Tensor a = rounded({3, 4}, DType::float32, 1), b = rounded({4, 2}, DType::float32, 2);
  zae::test::expect_throws_with([&] { zae::matmul(a.to(kCuda), b); }, {"matmul", "device mismatch", "cuda:0", "cpu"});
}

// ---- linear forward ------------------------------------------------------------------

struct LinearCase {
  std::string name;
  Shape x_base, w_base, bias_base;  // bias_base empty: no bias
  View view_x = identity, view_w = identity, view_bias = identity;
};

std::vector<LinearCase> linear_cases() {
  std::vector<LinearCase> cases;
  cases.push_back({"2-D with bias", {7, 13}, {5, 13}, {5}});
  cases.push_back({"2-D without bias", {7, 13}, {5, 13}, {}});
  cases.push_back({"1x1 with bias", {1, 1}, {1, 1}, {1}});
  cases.push_back({"no input features (bias only)", {2, 0}, {3, 0}, {3}});
  cases.push_back({"one output feature", {1023, 17}, {1, 17}, {1}});
  cases.push_back({"large with bias", {257, 511}, {129, 511}, {129}});
  cases.push_back({"3-D with bias (one GEMM)", {4, 9, 13}, {5, 13}, {5}});
  cases.push_back({"3-D without bias", {4, 9, 13}, {5, 13}, {}});
  cases.push_back({"1-D input", {13}, {5, 13}, {5}});
  cases.push_back({"permuted 3-D input (batched epilogue)", {9, 4, 13}, {5, 13}, {5},
                   [](const Tensor& x) { return x.permute({1, 0, 2}); }});
  cases.push_back({"transposed input", {13, 7}, {5, 13}, {5}, [](const Tensor& x) { return x.t(); }});
  cases.push_back({"transposed weight", {7, 13}, {13, 5}, {5}, identity, [](const Tensor& w) { return w.t(); }});
  cases.push_back({"stepped bias (copied)", {7, 13}, {5, 13}, {10}, identity, identity,
                   [](const Tensor& b) { return b.slice(0, 0, 10, 2); }});
  return cases;
}

void check_linear_table(DType dt) {
  uint64_t seed = 500;
  for (const LinearCase& c : linear_cases()) {
    SCOPED_TRACE(c.name + " " + std::string(zae::dtype_name(dt)));
    seed += 3;
    const Tensor x_base = rounded(c.x_base, dt, seed), w_base = rounded(c.w_base, dt, seed + 1);
    const Tensor b_base = c.bias_base.empty() ? Tensor() : rounded(c.bias_base, dt, seed + 2);
    auto bias_of = [&](const Tensor& base) { return base.defined() ? c.view_bias(base) : Tensor(); };
    const Tensor x64 = c.view_x(x_base.to(DType::float64)), w64 = c.view_w(w_base.to(DType::float64));
    const Tensor b64 = bias_of(b_base.defined() ? b_base.to(DType::float64) : Tensor());
    const Tensor want = zae::linear(x64, w64, b64);
    const Tensor mag = zae::linear(x64.abs(), w64.abs(), b64.defined() ? b64.abs() : Tensor());
    const Tensor x = c.view_x(x_base.to(kCuda)), w = c.view_w(w_base.to(kCuda));
    const Tensor b = bias_of(b_base.defined() ? b_base.to(kCuda) : Tensor());
    poison_next(want.shape(), dt);
    const Tensor got = zae::linear(x, w, b);
    EXPECT_EQ(got.device(), kCuda);
    EXPECT_TRUE(within(got, want, mag, tol_of(dt), atol_of(dt)));
  }
}

TEST(LinalgCuda, LinearFloat32) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tf32Scope off(false);
  check_linear_table(DType::float32);
}

TEST(LinalgCuda, LinearFloat64) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_linear_table(DType::float64);
}

TEST(LinalgCuda, LinearBFloat16) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_linear_table(DType::bfloat16);
}

TEST(LinalgCuda, LinearFloat16) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_linear_table(DType::float16);
}

// ---- backward ------------------------------------------------------------------------

using GraphFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Output and input gradients of fn on `device` from the given values (leaves) and upstream
// gradient, returned as CPU tensors.
std::vector<Tensor> run_grads(const GraphFn& fn, const std::vector<Tensor>& values, const Tensor& upstream,
                              Device device) {
  std::vector<Tensor> leaves;
  for (const Tensor& v : values) {
    Tensor leaf = v.to(device).detach();
    leaf.requires_grad_();
    leaves.push_back(leaf);
  }
  const Tensor out = fn(leaves);
  out.backward(upstream.to(device));
  std::vector<Tensor> result{out.detach().cpu()};
  for (const Tensor& leaf : leaves) {
    EXPECT_TRUE(leaf.grad().defined());
    result.push_back(leaf.grad().defined() ? leaf.grad().cpu() : Tensor());
  }
  return result;
}

struct BackwardCase {
  std::string name;
  std::vector<Shape> leaves;
  GraphFn fn;
};

// The forward and every gradient on CUDA against CPU float64 on the same rounded values.
// fn is (multi)linear in each leaf, so running it on |values| with |upstream| gives the
// scale of each result's rounding error.
void check_backward(const BackwardCase& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(c.name + " " + std::string(zae::dtype_name(dt)));
  std::vector<Tensor> vals, vals64, abs64;
  for (const Shape& s : c.leaves) {
    vals.push_back(rounded(s, dt, seed++));
    vals64.push_back(vals.back().to(DType::float64));
    abs64.push_back(vals64.back().abs());
  }
  const Tensor up = rounded(c.fn(vals64).shape(), dt, seed + 50);  // plain forward: nothing requires grad
  const Tensor up64 = up.to(DType::float64);
  const std::vector<Tensor> want = run_grads(c.fn, vals64, up64, Device::cpu());
  const std::vector<Tensor> mag = run_grads(c.fn, abs64, up64.abs(), Device::cpu());
  const std::vector<Tensor> got = run_grads(c.fn, vals, up, kCuda);
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].defined()) continue;  // already reported
    EXPECT_TRUE(within(got[i], want[i], mag[i], tol_of(dt), atol_of(dt)))
        << (i == 0 ? std::string("forward output") : "gradient of leaf " + std::to_string(i - 1));
  }
}

Tensor mm(const std::vector<Tensor>& l) { return zae::matmul(l[0], l[1]); }

std::vector<BackwardCase> backward_cases() {
  return {
      {"matmul 2-D", {{7, 13}, {13, 5}}, mm},
      {"matmul 1x1x1", {{1, 1}, {1, 1}}, mm},
      {"matmul large", {{257, 511}, {511, 129}}, mm},
      {"matmul transposed a", {{13, 7}, {13, 5}}, [](const std::vector<Tensor>& l) { return zae::matmul(l[0].t(), l[1]); }},
      {"matmul batched", {{3, 7, 13}, {3, 13, 5}}, mm},
      {"matmul shared b", {{3, 7, 13}, {13, 5}}, mm},
      {"matmul vector @ matrix", {{13}, {13, 5}}, mm},
      {"matmul matrix @ vector", {{7, 13}, {13}}, mm},
      {"linear 2-D with bias", {{7, 13}, {5, 13}, {5}},
       [](const std::vector<Tensor>& l) { return zae::linear(l[0], l[1], l[2]); }},
      {"linear 3-D with bias", {{2, 3, 13}, {5, 13}, {5}},
       [](const std::vector<Tensor>& l) { return zae::linear(l[0], l[1], l[2]); }},
      {"linear without bias", {{7, 13}, {5, 13}}, [](const std::vector<Tensor>& l) { return zae::linear(l[0], l[1]); }},
      {"linear large with bias", {{257, 511}, {129, 511}, {129}},
       [](const std::vector<Tensor>& l) { return zae::linear(l[0], l[1], l[2]); }},
  };
}

TEST(LinalgCuda, BackwardFloat32) {
  ZAE_SKIP_WITHOUT_CUDA();
  Tf32Scope off(false);
  uint64_t seed = 900;
  for (const BackwardCase& c : backward_cases()) check_backward(c, DType::float32, seed += 10);
}

TEST(LinalgCuda, BackwardFloat64) {
  ZAE_SKIP_WITHOUT_CUDA();
  uint64_t seed = 1900;
  for (const BackwardCase& c : backward_cases()) check_backward(c, DType::float64, seed += 10);
}

// Gradients of broadcast operands are summed over the broadcast batch dims (sum_to on CUDA).
TEST(LinalgCuda, BackwardBroadcastBatch) {
  ZAE_SKIP_WITHOUT_CUDA();
  check_backward({"matmul broadcast batch dims", {{2, 1, 7, 13}, {3, 13, 5}}, mm}, DType::float64, 2900);
  check_backward({"matmul vector @ batch", {{13}, {3, 13, 5}}, mm}, DType::float64, 2950);
}

// ---- launcher: epilogues and routes -----------------------------------------------------

#ifdef ZAE_TESTS_WITH_CUDA
namespace kc = zae::kernels::cuda;

kc::GemmType gemm_type(DType dt) {
  switch (dt) {
    case DType::float32: return kc::GemmType::float32;
    case DType::float64: return kc::GemmType::float64;
    case DType::bfloat16: return kc::GemmType::bfloat16;
    default: return kc::GemmType::float16;
  }
}

const char* epilogue_name(kc::GemmEpilogue e) {
  switch (e) {
    case kc::GemmEpilogue::none: return "none";
    case kc::GemmEpilogue::bias: return "bias";
    case kc::GemmEpilogue::gelu: return "gelu";
    case kc::GemmEpilogue::bias_gelu: return "bias_gelu";
  }
  return "?";
}

double gelu_tanh_ref(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

struct GemmCase {
  int64_t m, n, k;
  bool trans_a, trans_b;
  int64_t batch;
  bool broadcast_a;  // A batch stride 0
  float alpha, beta;
  bool padded = true;  // row strides past the row ends; unpadded cases are 16-byte aligned
};

// One launcher call on padded, batched buffers, checked element by element against a
// float64 loop over the same rounded values; C's padding columns must keep their values.
void check_gemm(const GemmCase& g, DType dt, kc::GemmEpilogue epi, bool force_cublas, uint64_t seed) {
  SCOPED_TRACE(std::string(zae::dtype_name(dt)) + " epilogue " + epilogue_name(epi) +
               (force_cublas ? " forced cublas" : " auto") + " m=" + std::to_string(g.m) + " n=" +
               std::to_string(g.n) + " k=" + std::to_string(g.k) + " ta=" + std::to_string(g.trans_a) +
               " tb=" + std::to_string(g.trans_b) + " batch=" + std::to_string(g.batch) +
               " alpha=" + std::to_string(g.alpha) + " beta=" + std::to_string(g.beta));
  const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  const int64_t pad = g.padded ? 1 : 0;
  const int64_t lda = a_cols + 3 * pad, ldb = b_cols + pad, ldc = g.n + 2 * pad;
  const int64_t a_batches = g.broadcast_a ? 1 : g.batch;
  const Tensor a = rounded({a_batches, a_rows, lda}, dt, seed);
  const Tensor b = rounded({g.batch, b_rows, ldb}, dt, seed + 1);
  const Tensor bias = rounded({g.n}, dt, seed + 2);
  const Tensor c0 = g.beta != 0.0f ? rounded({g.batch, g.m, ldc}, dt, seed + 3)
                                   : zae::full({g.batch, g.m, ldc}, std::numeric_limits<double>::quiet_NaN(), {.dtype = dt});
  const std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), biasv = bias.to_vector<double>(),
                            cv = c0.to_vector<double>();
  const Tensor a_d = a.to(kCuda), b_d = b.to(kCuda), bias_d = bias.to(kCuda), c_d = c0.to(kCuda).clone();
  const kc::GemmBatch batch{g.batch, g.broadcast_a ? 0 : a_rows * lda, b_rows * ldb, g.m * ldc};
  const kc::GemmRoute route = kc::gemm(g.m, g.n, g.k, g.trans_a, g.trans_b, a_d.raw_data(), lda, b_d.raw_data(), ldb,
                                       c_d.raw_data(), ldc, batch, g.alpha, g.beta, gemm_type(dt), false, epi,
                                       bias_d.raw_data(), nullptr, force_cublas);
  const bool degenerate = g.k == 0 || g.alpha == 0.0f;
  if (degenerate) {
    EXPECT_EQ(route, kc::GemmRoute::epilogue);
  } else if (force_cublas) {
    EXPECT_EQ(route, kc::GemmRoute::cublas);
  } else if (!g.padded && dt != DType::float64 && (epi == kc::GemmEpilogue::none || epi == kc::GemmEpilogue::bias)) {
    // An aligned float32/16-bit GEMM falling back would mean the cuBLASLt plan is broken.
    EXPECT_EQ(route, kc::GemmRoute::cublaslt) << "cuBLASLt should take an aligned " << zae::dtype_name(dt) << " GEMM";
  }
  const bool has_bias = epi == kc::GemmEpilogue::bias || epi == kc::GemmEpilogue::bias_gelu;
  const bool has_gelu = epi == kc::GemmEpilogue::gelu || epi == kc::GemmEpilogue::bias_gelu;
  // cuBLASLt's GELU may use the hardware tanh (about 2^-11 relative error).
  const double tol = std::max(tol_of(dt), has_gelu && route == kc::GemmRoute::cublaslt ? 1e-3 : 0.0) * 1.2;
  const std::vector<double> got = c_d.to_vector<double>();
  int64_t bad = 0;
  for (int64_t p = 0; p < g.batch; ++p) {
    const int64_t a_off = g.broadcast_a ? 0 : p * a_rows * lda, b_off = p * b_rows * ldb;
    for (int64_t i = 0; i < g.m; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const int64_t ci = (p * g.m + i) * ldc + j;
        if (j >= g.n) {  // padding: untouched (NaN stays NaN)
          const bool same = std::isnan(cv[ci]) ? std::isnan(got[ci]) : got[ci] == cv[ci];
          if (!same && bad++ < 3) ADD_FAILURE() << "padding C[" << p << "][" << i << "][" << j << "] was written";
          continue;
        }
        double dot = 0.0, mag = 0.0;
        for (int64_t q = 0; q < g.k; ++q) {
          const double x = av[a_off + (g.trans_a ? q * lda + i : i * lda + q)];
          const double y = bv[b_off + (g.trans_b ? j * ldb + q : q * ldb + j)];
          dot += x * y;
          mag += std::abs(x * y);
        }
        double want = g.alpha * dot, scale = std::abs(g.alpha) * mag;
        if (g.beta != 0.0f) want += g.beta * cv[ci], scale += std::abs(g.beta * cv[ci]);
        if (has_bias) want += biasv[j], scale += std::abs(biasv[j]);
        if (has_gelu) want = gelu_tanh_ref(want);
        if (!(std::abs(got[ci] - want) <= tol * scale + atol_of(dt)) && bad++ < 3)
          ADD_FAILURE() << "C[" << p << "][" << i << "][" << j << "] = " << got[ci] << ", want " << want
                        << " (allowed " << tol * scale + atol_of(dt) << ")";
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(LinalgCuda, GemmLauncherEpiloguesAndRoutes) {
  ZAE_SKIP_WITHOUT_CUDA();
  const GemmCase cases[] = {
      {37, 29, 19, false, false, 1, false, 1.0f, 0.0f},  // poisoned C, beta 0
      {37, 29, 19, true, true, 3, false, 1.5f, 0.5f},
      {130, 257, 64, false, true, 2, true, 1.0f, 0.0f},   // broadcast A
      {64, 48, 40, true, false, 1, false, -0.75f, 1.0f},
      {64, 48, 40, false, false, 1, false, 1.0f, 0.0f, false},  // aligned, unpadded: cuBLASLt
      {64, 48, 40, true, true, 1, false, 1.0f, 0.5f, false},
      {1, 1, 1, false, false, 1, false, 1.0f, 0.0f},
      {5, 7, 0, false, false, 2, false, 1.0f, 0.5f},  // k == 0: act(beta C + bias)
      {5, 7, 3, false, false, 1, false, 0.0f, 0.0f},  // alpha == 0: act(bias), A/B unread
  };
  const kc::GemmEpilogue epilogues[] = {kc::GemmEpilogue::none, kc::GemmEpilogue::bias, kc::GemmEpilogue::gelu,
                                        kc::GemmEpilogue::bias_gelu};
  uint64_t seed = 4000;
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16})
    for (kc::GemmEpilogue epi : epilogues)
      for (bool force : {false, true})
        for (const GemmCase& g : cases) check_gemm(g, dt, epi, force, seed += 5);
}

TEST(LinalgCuda, GemmLauncherTf32) {
  ZAE_SKIP_WITHOUT_CUDA();
  const int64_t m = 96, n = 80, k = 128;
  const Tensor a = rounded({m, k}, DType::float32, 7), b = rounded({k, n}, DType::float32, 8);
  const Tensor a64 = a.to(DType::float64), b64 = b.to(DType::float64);
  const Tensor want = zae::matmul(a64, b64), mag = zae::matmul(a64.abs(), b64.abs());
  const Tensor a_d = a.to(kCuda), b_d = b.to(kCuda);
  const Tensor c_d = zae::full({m, n}, std::numeric_limits<double>::quiet_NaN(), {.device = kCuda});
  const kc::GemmRoute route = kc::gemm(m, n, k, false, false, a_d.raw_data(), k, b_d.raw_data(), n, c_d.raw_data(), n,
                                       {}, 1.0f, 0.0f, kc::GemmType::float32, true, kc::GemmEpilogue::none, nullptr,
                                       nullptr);
  EXPECT_NE(route, kc::GemmRoute::none);
  EXPECT_TRUE(within(c_d, want, mag, kTf32Tol, 0.0));
}

// Argument errors are raised before anything reaches the device (no GPU needed).
TEST(LinalgCuda, GemmLauncherRejectsBadArguments) {
  using zae::test::expect_throws_with;
  // m x n x k = 4 x 5 x 6 with the given row strides, batch, type and epilogue; no buffers.
  auto call = [](int64_t m, bool trans_a, int64_t lda, kc::GemmBatch batch = {},
                 kc::GemmType type = kc::GemmType::float32, kc::GemmEpilogue epi = kc::GemmEpilogue::none) {
    return [=] { kc::gemm(m, 5, 6, trans_a, false, nullptr, lda, nullptr, 5, nullptr, 5, batch, 1.0f, 0.0f, type,
                          false, epi, nullptr, nullptr); };
  };
  expect_throws_with(call(4, false, 5), {"cuda gemm", "float32", "lda=5"});
  expect_throws_with(call(4, true, 3), {"cuda gemm", "lda=3", "trans_a=1"});
  expect_throws_with(call(-1, false, 6), {"cuda gemm", "negative size", "m=-1"});
  expect_throws_with(call(4, false, 6, {}, kc::GemmType::bfloat16, kc::GemmEpilogue::bias_gelu),
                     {"cuda gemm", "bfloat16", "bias pointer"});
  expect_throws_with(call(4, false, 6, {.count = 2, .stride_a = 24, .stride_b = 30, .stride_c = 0}),
                     {"cuda gemm", "C batch stride 0"});
}
#endif  // ZAE_TESTS_WITH_CUDA

}  // namespace
