// Tests for conv2d / conv1d (engine/ops/conv.cpp) and the 2-D pools
// (engine/ops/pooling.cpp): forward against direct float64 loops written here from
// PyTorch's definitions, float64 gradchecks under contiguous / transposed / sliced
// (/ expanded) input layouts, 16-bit dtypes, the batch packing and thread-range paths
// of the im2col driver, and error messages.
//
// Invariants: inputs come from fixed seeds; max-pool inputs have distinct values (no
// ties, so the gradient is smooth under the gradcheck's perturbation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/conv.h"
#include "engine/ops/factory.h"
#include "engine/ops/pooling.h"
#include "engine/tensor.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_util.h"

namespace {

using zae::DType;
using zae::IntPair;
using zae::Shape;
using zae::Tensor;
using zae::test::expect_throws_with;
using Xs = std::vector<Tensor>;

Tensor randn(const Shape& s, DType dt = DType::float64, uint64_t seed = 0) {
  return zae::test::random_tensor(s, dt, seed);
}

// ---- direct-loop references (float64, row-major vectors) -----------------------------

struct Dense {
  Shape shape;
  std::vector<double> v;
};
Dense dense_of(const Tensor& t) { return {t.shape(), t.to_vector<double>()}; }

// conv2d of x (N, C, H, W) with w (O, C/G, kH, kW), straight from the definition.
Dense ref_conv2d(const Dense& x, const Dense& w, const Dense* b, IntPair st, IntPair pad, IntPair dil,
                 int64_t groups) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t O = w.shape[0], Cg = w.shape[1], kH = w.shape[2], kW = w.shape[3], Og = O / groups;
  const int64_t Ho = (H + 2 * pad.h - dil.h * (kH - 1) - 1) / st.h + 1;
  const int64_t Wo = (W + 2 * pad.w - dil.w * (kW - 1) - 1) / st.w + 1;
  Dense y{{N, O, Ho, Wo}, std::vector<double>(static_cast<size_t>(N * O * Ho * Wo))};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double s = b ? b->v[o] : 0.0;
          const int64_t g = o / Og;
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t i = 0; i < kH; ++i)
              for (int64_t j = 0; j < kW; ++j) {
                const int64_t ih = oh * st.h - pad.h + i * dil.h, iw = ow * st.w - pad.w + j * dil.w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t c = g * Cg + cg;
                s += x.v[((n * C + c) * H + ih) * W + iw] * w.v[((o * Cg + cg) * kH + i) * kW + j];
              }
          y.v[((n * O + o) * Ho + oh) * Wo + ow] = s;
        }
  return y;
}

int64_t ref_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const double v = static_cast<double>(in + 2 * p - d * (k - 1) - 1) / static_cast<double>(s);
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(v) : std::floor(v)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// max_pool2d over the last two dims of x; also returns flat argmax indices.
Dense ref_max_pool(const Dense& x, IntPair k, IntPair st, IntPair pad, IntPair dil, bool ceil_mode,
                   std::vector<int64_t>* idx) {
  const size_t nd = x.shape.size();
  const int64_t H = x.shape[nd - 2], W = x.shape[nd - 1], P = static_cast<int64_t>(x.v.size()) / (H * W);
  const int64_t Ho = ref_out(H, k.h, st.h, pad.h, dil.h, ceil_mode), Wo = ref_out(W, k.w, st.w, pad.w, dil.w, ceil_mode);
  Dense y{x.shape, {}};
  y.shape[nd - 2] = Ho;
  y.shape[nd - 1] = Wo;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t arg = -1;
        for (int64_t i = 0; i < k.h; ++i)
          for (int64_t j = 0; j < k.w; ++j) {
            const int64_t ih = oh * st.h - pad.h + i * dil.h, iw = ow * st.w - pad.w + j * dil.w;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const double v = x.v[(p * H + ih) * W + iw];
            if (arg < 0 || v > best) {
              best = v;
              arg = ih * W + iw;
            }
          }
        y.v.push_back(best);
        if (idx) idx->push_back(arg);
      }
  return y;
}

Dense ref_avg_pool(const Dense& x, IntPair k, IntPair st, IntPair pad, bool ceil_mode, bool include_pad,
                   int64_t divisor_override) {
  const size_t nd = x.shape.size();
  const int64_t H = x.shape[nd - 2], W = x.shape[nd - 1], P = static_cast<int64_t>(x.v.size()) / (H * W);
  const int64_t Ho = ref_out(H, k.h, st.h, pad.h, 1, ceil_mode), Wo = ref_out(W, k.w, st.w, pad.w, 1, ceil_mode);
  Dense y{x.shape, {}};
  y.shape[nd - 2] = Ho;
  y.shape[nd - 1] = Wo;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        double s = 0;
        int64_t inside = 0, padded = 0;  // taps in the input / in the input or its padding
        for (int64_t i = 0; i < k.h; ++i)
          for (int64_t j = 0; j < k.w; ++j) {
            const int64_t ih = oh * st.h - pad.h + i, iw = ow * st.w - pad.w + j;
            if (ih < H + pad.h && iw < W + pad.w) ++padded;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            s += x.v[(p * H + ih) * W + iw];
            ++inside;
          }
        const int64_t div = divisor_override > 0 ? divisor_override : include_pad ? padded : inside;
        y.v.push_back(s / static_cast<double>(div));
      }
  return y;
}

Dense ref_adaptive_avg(const Dense& x, int64_t Ho, int64_t Wo) {
  const size_t nd = x.shape.size();
  const int64_t H = x.shape[nd - 2], W = x.shape[nd - 1], P = static_cast<int64_t>(x.v.size()) / (H * W);
  Dense y{x.shape, {}};
  y.shape[nd - 2] = Ho;
  y.shape[nd - 1] = Wo;
  auto lo = [](int64_t i, int64_t in, int64_t out) {
    return static_cast<int64_t>(std::floor(static_cast<double>(i * in) / static_cast<double>(out)));
  };
  auto hi = [](int64_t i, int64_t in, int64_t out) {
    return static_cast<int64_t>(std::ceil(static_cast<double>((i + 1) * in) / static_cast<double>(out)));
  };
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        double s = 0;
        const int64_t h0 = lo(oh, H, Ho), h1 = hi(oh, H, Ho), w0 = lo(ow, W, Wo), w1 = hi(ow, W, Wo);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) s += x.v[(p * H + ih) * W + iw];
        y.v.push_back(s / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
  return y;
}

void expect_matches(const Tensor& y, const Dense& ref, double rtol, double atol) {
  ASSERT_EQ(y.shape(), ref.shape) << "got " << zae::shape_str(y.shape()) << ", want " << zae::shape_str(ref.shape);
  EXPECT_TRUE(zae::test::all_close(y, ref.v, rtol, atol));
}

// ---- conv forward against the reference ------------------------------------------------

struct ConvCase {
  std::string name;
  Shape x, w;
  bool bias;
  zae::Conv2dParams p;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"basic", {2, 3, 5, 6}, {4, 3, 3, 3}, true, {}},
      {"stride_pad", {2, 3, 7, 6}, {4, 3, 3, 2}, true, {.stride = {2, 1}, .padding = {1, 0}}},
      {"dilation", {1, 2, 7, 7}, {3, 2, 3, 3}, true, {.padding = 2, .dilation = {2, 1}}},
      {"groups", {2, 4, 5, 5}, {6, 2, 3, 3}, true, {.padding = 1, .groups = 2}},
      {"depthwise", {1, 3, 5, 4}, {3, 1, 3, 3}, false, {.padding = 1, .groups = 3}},
      {"strided_no_bias", {2, 3, 4, 5}, {2, 3, 2, 2}, false, {.stride = 2}},
      {"pointwise", {2, 4, 3, 3}, {6, 2, 1, 1}, true, {.groups = 2}},
      {"pointwise_strided", {2, 4, 5, 5}, {3, 4, 1, 1}, true, {.stride = 2}},
      {"kernel_equals_padded", {1, 2, 3, 2}, {2, 2, 5, 4}, true, {.padding = 1}},
      {"packed_batch", {5, 2, 4, 4}, {3, 2, 3, 3}, true, {.padding = 1}},
      {"dilated_same", {2, 3, 6, 7}, {4, 3, 3, 3}, true, {.padding = 2, .dilation = 2}},
      {"wide_stride", {3, 2, 9, 11}, {4, 2, 2, 3}, true, {.stride = {3, 4}, .padding = 1, .dilation = {3, 2}}},
  };
}

TEST(Conv2d, ForwardMatchesDirectLoopsFloat64) {
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    Tensor x = randn(c.x, DType::float64, 1), w = randn(c.w, DType::float64, 2);
    Tensor b = c.bias ? randn({c.w[0]}, DType::float64, 3) : Tensor();
    Dense db = c.bias ? dense_of(b) : Dense{};
    Dense ref = ref_conv2d(dense_of(x), dense_of(w), c.bias ? &db : nullptr, c.p.stride, c.p.padding, c.p.dilation,
                           c.p.groups);
    expect_matches(zae::conv2d(x, w, b, c.p), ref, 1e-12, 1e-12);
  }
}

TEST(Conv2d, ForwardFloat32AndLargeBatches) {
  // Batches large enough for several images per GEMM and one image range per thread.
  const std::vector<ConvCase> cases = {
      {"mnist_like_conv1", {17, 1, 12, 12}, {8, 1, 3, 3}, true, {.padding = 1}},
      {"mnist_like_conv2", {9, 8, 6, 6}, {16, 8, 3, 3}, true, {.padding = 1}},
      {"pointwise_batch", {7, 6, 4, 4}, {4, 6, 1, 1}, true, {}},
      {"grouped_batch", {11, 6, 5, 7}, {9, 2, 3, 2}, false, {.stride = {1, 2}, .padding = {1, 1}, .groups = 3}},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = randn(c.x, DType::float32, 4), w = randn(c.w, DType::float32, 5);
    Tensor b = c.bias ? randn({c.w[0]}, DType::float32, 6) : Tensor();
    Dense db = c.bias ? dense_of(b) : Dense{};
    Dense ref = ref_conv2d(dense_of(x), dense_of(w), c.bias ? &db : nullptr, c.p.stride, c.p.padding, c.p.dilation,
                           c.p.groups);
    expect_matches(zae::conv2d(x, w, b, c.p), ref, 1e-5, 1e-5);
  }
}

// Gradients of sum(y * g) from direct loops: (dx, dw, db) for x (N, C, H, W), w (O, C/G, kH, kW).
std::vector<Dense> ref_conv2d_grads(const Dense& x, const Dense& w, const Dense& g, IntPair st, IntPair pad,
                                    IntPair dil, int64_t groups) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t O = w.shape[0], Cg = w.shape[1], kH = w.shape[2], kW = w.shape[3], Og = O / groups;
  const int64_t Ho = g.shape[2], Wo = g.shape[3];
  Dense dx{x.shape, std::vector<double>(x.v.size())}, dw{w.shape, std::vector<double>(w.v.size())};
  Dense db{{O}, std::vector<double>(static_cast<size_t>(O))};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const double go = g.v[((n * O + o) * Ho + oh) * Wo + ow];
          db.v[o] += go;
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t i = 0; i < kH; ++i)
              for (int64_t j = 0; j < kW; ++j) {
                const int64_t ih = oh * st.h - pad.h + i * dil.h, iw = ow * st.w - pad.w + j * dil.w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((n * C + (o / Og) * Cg + cg) * H + ih) * W + iw;
                const int64_t wi = ((o * Cg + cg) * kH + i) * kW + j;
                dx.v[xi] += go * w.v[wi];
                dw.v[wi] += go * x.v[xi];
              }
        }
  return {dx, dw, db};
}

TEST(Conv2d, LargeBatchesUseThreadRangesAndPackedGemms) {
  // Above the driver's threading threshold (2^21 multiply-adds): one image range per
  // thread, several 8x8 images per GEMM with a partial last chunk; plus a grouped 1x1 conv.
  const std::vector<ConvCase> cases = {
      {"packed_ranges", {16, 16, 8, 8}, {32, 16, 3, 3}, true, {.padding = 1}},
      {"pointwise_ranges", {16, 64, 8, 8}, {96, 32, 1, 1}, true, {.groups = 2}},
      {"strided_ranges", {13, 16, 19, 19}, {48, 8, 3, 3}, true, {.stride = 2, .dilation = {1, 2}, .groups = 2}},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = randn(c.x, DType::float64, 40).requires_grad_(), w = randn(c.w, DType::float64, 41).requires_grad_();
    Tensor b = randn({c.w[0]}, DType::float64, 42).requires_grad_();
    Dense db = dense_of(b);
    Dense ref = ref_conv2d(dense_of(x), dense_of(w), &db, c.p.stride, c.p.padding, c.p.dilation, c.p.groups);
    Tensor y = zae::conv2d(x, w, b, c.p);
    expect_matches(y, ref, 1e-12, 1e-12);
    Tensor g = randn(y.shape(), DType::float64, 43);
    y.backward(g);
    std::vector<Dense> grads =
        ref_conv2d_grads(dense_of(x), dense_of(w), dense_of(g), c.p.stride, c.p.padding, c.p.dilation, c.p.groups);
    expect_matches(x.grad(), grads[0], 1e-11, 1e-11);
    expect_matches(w.grad(), grads[1], 1e-11, 1e-11);
    expect_matches(b.grad(), grads[2], 1e-11, 1e-11);
  }
}

TEST(Conv2d, UnbatchedAndNonContiguousInputs) {
  Tensor x = randn({3, 5, 6}, DType::float64, 7), w = randn({2, 3, 3, 3}, DType::float64, 8);
  Tensor y = zae::conv2d(x, w, Tensor(), {.padding = 1});
  Dense ref = ref_conv2d(dense_of(x.unsqueeze(0)), dense_of(w), nullptr, 1, 1, 1, 1);
  ref.shape.erase(ref.shape.begin());
  expect_matches(y, ref, 1e-12, 1e-12);
  // A channels-last view and a transposed weight give the same numbers.
  Tensor xt = randn({2, 6, 5, 3}, DType::float64, 9).permute({0, 3, 2, 1});  // (2, 3, 5, 6), non-contiguous
  Tensor wt = randn({3, 3, 3, 2}, DType::float64, 10).transpose(0, 3);        // (2, 3, 3, 3)
  ASSERT_FALSE(xt.is_contiguous());
  expect_matches(zae::conv2d(xt, wt), ref_conv2d(dense_of(xt), dense_of(wt), nullptr, 1, 0, 1, 1), 1e-12, 1e-12);
}

TEST(Conv1d, ForwardMatchesConv2dReference) {
  Tensor x = randn({3, 4, 11}, DType::float64, 11), w = randn({6, 2, 3}, DType::float64, 12);
  Tensor b = randn({6}, DType::float64, 13);
  Tensor y = zae::conv1d(x, w, b, {.stride = 2, .padding = 2, .dilation = 2, .groups = 2});
  Dense db = dense_of(b);
  Dense ref = ref_conv2d(dense_of(x.unsqueeze(2)), dense_of(w.unsqueeze(2)), &db, {1, 2}, {0, 2}, {1, 2}, 2);
  ref.shape.erase(ref.shape.begin() + 2);
  expect_matches(y, ref, 1e-12, 1e-12);
  Tensor yu = zae::conv1d(x.select(0, 1), w, b, {.stride = 2, .padding = 2, .dilation = 2, .groups = 2});
  EXPECT_EQ(yu.shape(), (Shape{6, ref.shape[2]}));
  EXPECT_TRUE(zae::test::all_close(yu, dense_of(y.select(0, 1)).v, 1e-12, 1e-12));
}

TEST(Conv2d, SixteenBitDtypesComputeInFloat) {
  for (DType dt : {DType::bfloat16, DType::float16}) {
    Tensor x = randn({2, 3, 6, 5}, DType::float32, 14).to(dt), w = randn({4, 3, 3, 3}, DType::float32, 15).to(dt);
    Tensor b = randn({4}, DType::float32, 16).to(dt);
    x.requires_grad_();
    w.requires_grad_();
    Tensor y = zae::conv2d(x, w, b, {.padding = 1});
    EXPECT_EQ(y.dtype(), dt);
    Tensor ref = zae::conv2d(x.detach().to(DType::float32), w.detach().to(DType::float32), b.to(DType::float32),
                             {.padding = 1});
    EXPECT_TRUE(zae::test::all_close(y, ref.to_vector<double>(), 2e-2, 2e-2));
    y.sum().backward();
    ASSERT_TRUE(x.grad().defined() && w.grad().defined());
    EXPECT_EQ(x.grad().dtype(), dt);
    EXPECT_EQ(w.grad().shape(), w.shape());
  }
}

TEST(Conv2d, EmptyBatchGivesEmptyOutputAndZeroWeightGradient) {
  Tensor x = zae::zeros({0, 2, 5, 5}, {.dtype = DType::float64});
  Tensor w = randn({3, 2, 3, 3}).requires_grad_();
  Tensor b = randn({3}).requires_grad_();
  Tensor y = zae::conv2d(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{0, 3, 3, 3}));
  y.sum().backward();
  EXPECT_TRUE(zae::test::all_close(w.grad(), std::vector<double>(54, 0.0)));
  EXPECT_TRUE(zae::test::all_close(b.grad(), std::vector<double>(3, 0.0)));
}

// ---- pooling forward against the reference ---------------------------------------------

TEST(MaxPool2d, ForwardAndIndicesMatchDirectLoops) {
  struct Case {
    Shape x;
    IntPair k;
    std::optional<IntPair> st;
    IntPair pad, dil;
    bool ceil;
  };
  const std::vector<Case> cases = {
      {{2, 3, 6, 7}, 2, std::nullopt, 0, 1, false}, {{2, 2, 7, 9}, 3, 2, 1, 1, false},
      {{1, 2, 7, 9}, 3, 2, 0, 1, true},             {{1, 2, 8, 9}, 3, 1, 1, 2, false},
      {{3, 5, 5}, {2, 3}, {{1, 2}}, {1, 1}, 1, true}, {{1, 1, 6, 6}, 2, 2, 1, {2, 1}, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(zae::shape_str(c.x) + " k=" + c.k.tuple_str());
    Tensor x = randn(c.x, DType::float64, 20);
    auto [y, idx] = zae::max_pool2d_with_indices(x, c.k, c.st, c.pad, c.dil, c.ceil);
    std::vector<int64_t> ref_idx;
    Dense ref = ref_max_pool(dense_of(x), c.k, c.st.value_or(c.k), c.pad, c.dil, c.ceil, &ref_idx);
    expect_matches(y, ref, 0, 0);
    EXPECT_EQ(idx.dtype(), DType::int64);
    EXPECT_EQ(idx.to_vector<int64_t>(), ref_idx);
    Tensor y32 = zae::max_pool2d(x.to(DType::float32), c.k, c.st, c.pad, c.dil, c.ceil);
    EXPECT_TRUE(zae::test::all_close(y32, ref.v, 1e-6, 1e-6));
  }
}

TEST(MaxPool2d, NanPropagatesAndTiesKeepTheFirst) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // (3, 3): [[3, 1, 0], [3, 2, nan], [5, 5, 0]], 2x2 windows at stride 1.
  Tensor x = zae::tensor({3, 1, 0, 3, 2, nan, 5, 5, 0}, {1, 1, 3, 3}, {.dtype = DType::float64});
  auto [y, idx] = zae::max_pool2d_with_indices(x, 2, 1);
  std::vector<double> yv = y.to_vector<double>();
  EXPECT_EQ(yv[0], 3.0);  // {3, 1, 3, 2}: the first 3 wins the tie
  EXPECT_TRUE(std::isnan(yv[1]) && std::isnan(yv[3]));
  EXPECT_EQ(yv[2], 5.0);
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{0, 5, 6, 5}));
}

TEST(AvgPool2d, ForwardMatchesDirectLoops) {
  struct Case {
    Shape x;
    IntPair k;
    std::optional<IntPair> st;
    IntPair pad;
    bool ceil, include_pad;
    int64_t divisor;
  };
  const std::vector<Case> cases = {
      {{2, 3, 6, 7}, 2, std::nullopt, 0, false, true, 0}, {{2, 2, 7, 9}, 3, 2, 1, false, true, 0},
      {{2, 2, 7, 9}, 3, 2, 1, false, false, 0},           {{1, 2, 7, 9}, 3, 2, 1, true, true, 0},
      {{1, 2, 7, 9}, 3, 2, 1, true, false, 0},            {{3, 6, 5}, {2, 3}, {{1, 2}}, {1, 1}, true, false, 0},
      {{1, 2, 5, 5}, 3, 2, 1, false, true, 7},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(zae::shape_str(c.x) + " k=" + c.k.tuple_str() + " ceil=" + std::to_string(c.ceil) +
                 " include_pad=" + std::to_string(c.include_pad));
    Tensor x = randn(c.x, DType::float64, 21);
    std::optional<int64_t> div = c.divisor > 0 ? std::optional<int64_t>(c.divisor) : std::nullopt;
    Tensor y = zae::avg_pool2d(x, c.k, c.st, c.pad, c.ceil, c.include_pad, div);
    expect_matches(y, ref_avg_pool(dense_of(x), c.k, c.st.value_or(c.k), c.pad, c.ceil, c.include_pad, c.divisor),
                   1e-12, 1e-12);
  }
}

TEST(AdaptiveAvgPool2d, ForwardMatchesDirectLoops) {
  const std::vector<std::pair<Shape, IntPair>> cases = {
      {{2, 3, 7, 9}, {3, 4}}, {{2, 3, 7, 9}, 1}, {{1, 2, 5, 5}, 5}, {{3, 3, 4}, {5, 7}}, {{1, 1, 10, 6}, {4, 4}}};
  for (const auto& [shape, out] : cases) {
    SCOPED_TRACE(zae::shape_str(shape) + " -> " + out.tuple_str());
    Tensor x = randn(shape, DType::float64, 22);
    expect_matches(zae::adaptive_avg_pool2d(x, out), ref_adaptive_avg(dense_of(x), out.h, out.w), 1e-12, 1e-12);
  }
}

TEST(Pooling, OutputSizeFollowsPyTorchCeilModeRule) {
  EXPECT_EQ(zae::pooling_output_size(7, 3, 2, 0, 1, false), 3);
  EXPECT_EQ(zae::pooling_output_size(7, 3, 2, 0, 1, true), 3);
  EXPECT_EQ(zae::pooling_output_size(8, 3, 2, 0, 1, true), 4);
  // ceil_mode would start a window in the right padding: dropped.
  EXPECT_EQ(zae::pooling_output_size(5, 2, 2, 1, 1, true), 3);
  EXPECT_EQ(zae::pooling_output_size(6, 2, 2, 1, 1, true), 4);
  EXPECT_EQ(zae::pooling_output_size(1, 3, 1, 1, 1, false), 1);
  EXPECT_EQ(zae::pooling_output_size(2, 3, 1, 0, 1, false), 0);
}

// ---- float64 gradchecks -------------------------------------------------------------------

using zae::test::Domain;
using zae::test::InputSpec;
using zae::test::Variant;

struct GradCase {
  std::string name;
  std::vector<InputSpec> ins;
  std::function<Tensor(const Xs&)> fn;
  bool allow_expanded = true;  // false for max pooling (repeated values tie)
};

InputSpec spec(Shape s, Domain domain, bool requires_grad = true) {
  InputSpec in;
  in.shape = std::move(s);
  in.domain = domain;
  in.requires_grad = requires_grad;
  return in;
}
InputSpec U(Shape s) { return spec(std::move(s), Domain::uniform); }
InputSpec D(Shape s) { return spec(std::move(s), Domain::distinct); }

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> out;
  for (const ConvCase& c : conv_cases()) {
    std::vector<InputSpec> ins = {U(c.x), U(c.w)};
    if (c.bias) ins.push_back(U({c.w[0]}));
    const zae::Conv2dParams p = c.p;
    out.push_back({"conv2d_" + c.name, ins, [p](const Xs& in) {
                     return zae::conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), p);
                   }});
  }
  out.push_back({"conv2d_unbatched", {U({3, 5, 5}), U({2, 3, 3, 3}), U({2})},
                 [](const Xs& in) { return zae::conv2d(in[0], in[1], in[2], {.stride = 2, .padding = 1}); }});
  out.push_back({"conv2d_weight_only", {spec({2, 2, 4, 4}, Domain::uniform, false), U({3, 2, 2, 2})},
                 [](const Xs& in) { return zae::conv2d(in[0], in[1]); }});
  out.push_back({"conv1d_basic", {U({2, 3, 7}), U({4, 3, 3}), U({4})}, [](const Xs& in) {
                   return zae::conv1d(in[0], in[1], in[2], {.stride = 2, .padding = 1, .dilation = 2});
                 }});
  out.push_back({"conv1d_groups_no_bias", {U({2, 4, 6}), U({4, 2, 2})},
                 [](const Xs& in) { return zae::conv1d(in[0], in[1], Tensor(), {.groups = 2}); }});
  out.push_back({"conv1d_unbatched", {U({3, 8}), U({2, 3, 3}), U({2})},
                 [](const Xs& in) { return zae::conv1d(in[0], in[1], in[2], {.padding = 1}); }});
  out.push_back({"max_pool2d_2x2", {D({2, 3, 6, 7})}, [](const Xs& in) { return zae::max_pool2d(in[0], 2); }, false});
  out.push_back({"max_pool2d_k3_s2_p1", {D({2, 2, 7, 9})},
                 [](const Xs& in) { return zae::max_pool2d(in[0], 3, 2, 1); }, false});
  out.push_back({"max_pool2d_ceil", {D({1, 2, 7, 9})},
                 [](const Xs& in) { return zae::max_pool2d(in[0], 3, 2, 0, 1, true); }, false});
  out.push_back({"max_pool2d_dilation", {D({1, 2, 8, 9})},
                 [](const Xs& in) { return zae::max_pool2d(in[0], 3, 1, 1, 2); }, false});
  out.push_back({"max_pool2d_overlap_unbatched", {D({3, 5, 5})},
                 [](const Xs& in) { return zae::max_pool2d(in[0], {2, 3}, {{1, 2}}, {1, 1}, 1, true); }, false});
  out.push_back({"avg_pool2d_k3_s2_p1", {U({2, 2, 7, 9})},
                 [](const Xs& in) { return zae::avg_pool2d(in[0], 3, 2, 1); }});
  out.push_back({"avg_pool2d_exclude_pad_ceil", {U({1, 2, 7, 9})},
                 [](const Xs& in) { return zae::avg_pool2d(in[0], 3, 2, 1, true, false); }});
  out.push_back({"avg_pool2d_rect_unbatched", {U({3, 6, 5})},
                 [](const Xs& in) { return zae::avg_pool2d(in[0], {2, 3}, {{1, 2}}, {1, 1}, true, false); }});
  out.push_back({"avg_pool2d_divisor_override", {U({1, 2, 5, 5})},
                 [](const Xs& in) { return zae::avg_pool2d(in[0], 3, 2, 1, false, true, 7); }});
  out.push_back({"adaptive_avg_pool2d_shrink", {U({2, 3, 7, 9})},
                 [](const Xs& in) { return zae::adaptive_avg_pool2d(in[0], {3, 4}); }});
  out.push_back({"adaptive_avg_pool2d_grow", {U({1, 2, 3, 4})},
                 [](const Xs& in) { return zae::adaptive_avg_pool2d(in[0], {5, 7}); }});
  out.push_back({"adaptive_avg_pool2d_global", {U({2, 3, 4, 5})},
                 [](const Xs& in) { return zae::adaptive_avg_pool2d(in[0], 1); }});
  return out;
}

struct GradParam {
  GradCase c;
  Variant variant;
};

// The first differentiable input of a case takes the layout under test; the others
// stay contiguous. Combinations where the layout changes nothing are left out, and so is
// the expanded layout for max pooling (repeated values would tie).
Xs grad_inputs(const GradParam& p, bool* changed) {
  Xs inputs;
  *changed = p.variant == Variant::contiguous;
  for (size_t i = 0; i < p.c.ins.size(); ++i) {
    InputSpec in = p.c.ins[i];
    if (in.requires_grad && !*changed && zae::test::variant_applies(in.shape, p.variant)) {
      in.variant = p.variant;
      *changed = true;
    }
    inputs.push_back(zae::test::make_input(in, 1000 + i));
  }
  return inputs;
}

std::vector<GradParam> grad_params() {
  std::vector<GradParam> out;
  for (const GradCase& c : grad_cases())
    for (Variant v : {Variant::contiguous, Variant::transposed, Variant::sliced, Variant::expanded}) {
      if (v == Variant::expanded && !c.allow_expanded) continue;
      bool changed = false;
      grad_inputs({c, v}, &changed);
      if (changed) out.push_back({c, v});
    }
  return out;
}

class ConvPoolGrad : public ::testing::TestWithParam<GradParam> {};

TEST_P(ConvPoolGrad, MatchesCentralDifferences) {
  bool changed = false;
  Xs inputs = grad_inputs(GetParam(), &changed);
  zae::test::GradcheckResult r = zae::test::gradcheck(GetParam().c.fn, inputs);
  EXPECT_TRUE(r.ok()) << r.report << r.error;
}

INSTANTIATE_TEST_SUITE_P(Ops, ConvPoolGrad, ::testing::ValuesIn(grad_params()),
                         [](const ::testing::TestParamInfo<GradParam>& info) {
                           return info.param.c.name + "_" + zae::test::variant_name(info.param.variant);
                         });

// ---- errors ------------------------------------------------------------------------------

TEST(Conv2d, ErrorsNameTheValues) {
  Tensor x = randn({2, 3, 7, 9}), w = randn({4, 3, 3, 3});
  expect_throws_with([&] { zae::conv2d(randn({3, 7}), w); }, {"conv2d", "4-D", "[3, 7]"});
  expect_throws_with([&] { zae::conv2d(x, randn({4, 3, 3})); }, {"conv2d", "weight must be 4-D", "[4, 3, 3]"});
  expect_throws_with([&] { zae::conv2d(x, randn({4, 2, 3, 3})); },
                     {"conv2d", "groups = 1", "[4, 2, 3, 3]", "[2, 3, 7, 9]", "2 channels", "it has 3"});
  expect_throws_with([&] { zae::conv2d(x, randn({6, 1, 3, 3}), Tensor(), {.groups = 2}); },
                     {"conv2d", "groups = 2", "expects input", "2 channels"});
  expect_throws_with([&] { zae::conv2d(randn({2, 4, 7, 9}), randn({5, 2, 3, 3}), Tensor(), {.groups = 2}); },
                     {"conv2d", "out_channels (weight.size(0) = 5)", "divisible by groups = 2"});
  expect_throws_with([&] { zae::conv2d(x, w, Tensor(), {.groups = 0}); }, {"conv2d", "groups must be positive", "0"});
  expect_throws_with([&] { zae::conv2d(x, w, Tensor(), {.stride = {0, 1}}); }, {"conv2d", "stride", "(0, 1)"});
  expect_throws_with([&] { zae::conv2d(x, w, Tensor(), {.dilation = {1, -1}}); }, {"conv2d", "dilation", "(1, -1)"});
  expect_throws_with([&] { zae::conv2d(x, w, Tensor(), {.padding = -1}); }, {"conv2d", "padding", "(-1, -1)"});
  expect_throws_with([&] { zae::conv2d(randn({1, 3, 3, 9}), randn({4, 3, 5, 3})); },
                     {"conv2d", "kernel size (5, 3)", "padded input (3, 9)", "[1, 3, 3, 9]"});
  expect_throws_with([&] { zae::conv2d(x, w, Tensor(), {.dilation = 4}); },
                     {"conv2d", "dilation (4, 4)", "spans (9, 9)", "padded input (7, 9)"});
  expect_throws_with([&] { zae::conv2d(x, w, randn({3})); }, {"conv2d", "bias must have shape [4]", "[3]"});
  expect_throws_with([&] { zae::conv2d(x, randn({4, 3, 3, 3}, DType::float32)); },
                     {"conv2d", "weight has dtype float32", "input has dtype float64"});
  expect_throws_with([&] { zae::conv2d(x, w, randn({4}, DType::float32)); },
                     {"conv2d", "bias has dtype float32"});
  expect_throws_with([&] { zae::conv2d(x.to(DType::int64), w.to(DType::int64)); },
                     {"conv2d", "dtype int64 is not supported"});
  expect_throws_with([&] { zae::conv2d(Tensor(), w); }, {"conv2d", "undefined input"});
  expect_throws_with([&] { zae::conv2d(x, randn({4, 3, 0, 3})); }, {"conv2d", "kernel size must be positive"});
}

TEST(Conv1d, ErrorsTalkInOneDimension) {
  Tensor x = randn({2, 3, 7}), w = randn({4, 3, 3});
  expect_throws_with([&] { zae::conv1d(randn({2, 3, 7, 1}), w); }, {"conv1d", "3-D", "(N, C, L)", "[2, 3, 7, 1]"});
  expect_throws_with([&] { zae::conv1d(x, randn({4, 3, 3, 1})); }, {"conv1d", "weight must be 3-D", "[4, 3, 3, 1]"});
  expect_throws_with([&] { zae::conv1d(x, randn({4, 3, 9})); },
                     {"conv1d", "kernel size (9,)", "padded input (7,)", "[2, 3, 7]"});
  expect_throws_with([&] { zae::conv1d(x, w, Tensor(), {.stride = 0}); }, {"conv1d", "stride", "(0,)"});
  expect_throws_with([&] { zae::conv1d(x, randn({4, 1, 3}), Tensor(), {.groups = 2}); },
                     {"conv1d", "groups = 2", "2 channels", "it has 3"});
}

TEST(Pooling, ErrorsNameTheValues) {
  Tensor x = randn({2, 3, 7, 9});
  expect_throws_with([&] { zae::max_pool2d(randn({7, 9}), 2); }, {"max_pool2d", "3-D", "4-D", "[7, 9]"});
  expect_throws_with([&] { zae::max_pool2d(x, 0); }, {"max_pool2d", "kernel_size must be positive", "(0, 0)"});
  expect_throws_with([&] { zae::max_pool2d(x, 2, IntPair{0, 1}); }, {"max_pool2d", "stride", "(0, 1)"});
  expect_throws_with([&] { zae::max_pool2d(x, 3, 1, 2); },
                     {"max_pool2d", "padding (2, 2)", "at most half of kernel_size (3, 3)"});
  expect_throws_with([&] { zae::max_pool2d(x, 2, 2, 0, 0); }, {"max_pool2d", "dilation must be positive"});
  expect_throws_with([&] { zae::max_pool2d(randn({1, 1, 2, 9}), 3); },
                     {"max_pool2d", "[1, 1, 2, 9]", "output size (0, 3)", "too small"});
  expect_throws_with([&] { zae::max_pool2d(randn({2, 0, 4, 4}), 2); }, {"max_pool2d", "[2, 0, 4, 4]", "empty"});
  expect_throws_with([&] { zae::avg_pool2d(x, 2, 2, 2); }, {"avg_pool2d", "padding (2, 2)", "kernel_size (2, 2)"});
  expect_throws_with([&] { zae::avg_pool2d(x, 2, 2, 0, false, true, 0); }, {"avg_pool2d", "divisor_override"});
  expect_throws_with([&] { zae::adaptive_avg_pool2d(x, {0, 2}); },
                     {"adaptive_avg_pool2d", "output_size must be positive", "(0, 2)"});
  expect_throws_with([&] { zae::adaptive_avg_pool2d(x.to(DType::int64), 2); },
                     {"adaptive_avg_pool2d", "dtype int64"});
}

TEST(Pooling, SixteenBitDtypesAndEmptyBatch) {
  Tensor x = randn({2, 3, 6, 6}, DType::float32, 30);
  for (DType dt : {DType::bfloat16, DType::float16}) {
    Tensor xh = x.to(dt);
    EXPECT_TRUE(zae::test::all_close(zae::max_pool2d(xh, 2), zae::max_pool2d(xh.to(DType::float32), 2).to_vector<double>(),
                                     0, 0));
    EXPECT_TRUE(zae::test::all_close(zae::avg_pool2d(xh, 3, 1, 1),
                                     zae::avg_pool2d(xh.to(DType::float32), 3, 1, 1).to_vector<double>(), 1e-2, 1e-2));
  }
  Tensor e = zae::zeros({0, 3, 6, 6});
  EXPECT_EQ(zae::max_pool2d(e, 2).shape(), (Shape{0, 3, 3, 3}));
  EXPECT_EQ(zae::adaptive_avg_pool2d(e, 2).shape(), (Shape{0, 3, 2, 2}));
}

}  // namespace
