// Tests for the indexing and joining ops: gather, index_select, scatter_add, cat,
// stack, split, chunk. Forward values are compared with plain-loop references in
// double over row-major multi-indices; backward by calling backward(g) with an
// explicit gradient and comparing .grad with the reference formula (scatter of g,
// slices of g). Covered: int64 and int32 indices, negative dims, non-contiguous
// inputs and indices, duplicate indices, bit-exact determinism of accumulation,
// and every user error with the values its message must name.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/ops/factory.h"
#include "engine/ops/index.h"
#include "engine/ops/shape.h"
#include "tests/support/test_util.h"

namespace {

using zae::test::expect_throws_with;

using namespace zae;

Shape unravel(int64_t i, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

int64_t ravel(const Shape& idx, const Shape& shape) {
  int64_t i = 0;
  for (size_t d = 0; d < shape.size(); ++d) i = i * shape[d] + idx[d];
  return i;
}

Tensor randn_f64(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, {.dtype = DType::float64}, &g);
}

Tensor index_tensor(const std::vector<int64_t>& v, const Shape& shape, DType dt = DType::int64) {
  Tensor t = tensor<int64_t>(v, shape);
  return dt == DType::int64 ? t : t.to(dt);
}

void expect_near_vec(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

// out[p] = x[p with p[dim] = index[p]].
std::vector<double> ref_gather(const std::vector<double>& x, const Shape& xs, int64_t dim,
                               const std::vector<int64_t>& idx, const Shape& is) {
  std::vector<double> out(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    Shape p = unravel(static_cast<int64_t>(i), is);
    p[dim] = idx[i];
    out[i] = x[ravel(p, xs)];
  }
  return out;
}

// out = x; out[p with p[dim] = index[p]] += src[p] for p over the index shape (src may be larger).
std::vector<double> ref_scatter_add(std::vector<double> x, const Shape& xs, int64_t dim,
                                    const std::vector<int64_t>& idx, const Shape& is, const std::vector<double>& src,
                                    const Shape& ss) {
  for (size_t i = 0; i < idx.size(); ++i) {
    Shape p = unravel(static_cast<int64_t>(i), is);
    double v = src[ravel(p, ss)];
    p[dim] = idx[i];
    x[ravel(p, xs)] += v;
  }
  return x;
}

// ------------------------------------------------------------------ gather

TEST(Gather, MatchesReference2DBothDims) {
  Tensor x = randn_f64({3, 4}, 1);
  std::vector<int64_t> i1 = {3, 0, 1, 1, 2, 3};
  auto out = gather(x, 1, index_tensor(i1, {3, 2}));
  EXPECT_EQ(out.shape(), (Shape{3, 2}));
  expect_near_vec(out.to_vector<double>(), ref_gather(x.to_vector<double>(), {3, 4}, 1, i1, {3, 2}));
  std::vector<int64_t> i0 = {2, 0, 1, 2, 1, 1, 0, 0};
  auto out0 = gather(x, 0, index_tensor(i0, {2, 4}));
  expect_near_vec(out0.to_vector<double>(), ref_gather(x.to_vector<double>(), {3, 4}, 0, i0, {2, 4}));
}

TEST(Gather, SmallerIndexInt32NegativeDimNonContiguous) {
  // x is a transposed (non-contiguous) view of shape (4, 3, 5); index is smaller in dims 0 and 1.
  Tensor base = randn_f64({5, 3, 4}, 2);
  Tensor x = base.permute({2, 1, 0});
  ASSERT_FALSE(x.is_contiguous());
  Shape is{3, 2, 6};
  std::vector<int64_t> iv(36);
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<int64_t>((i * 7 + 3) % 5);
  auto out = gather(x, -1, index_tensor(iv, is, DType::int32));
  EXPECT_EQ(out.shape(), is);
  expect_near_vec(out.to_vector<double>(), ref_gather(x.contiguous().to_vector<double>(), {4, 3, 5}, 2, iv, is));
  // Non-contiguous index: the transpose of a (6, 2, 3) index tensor.
  Tensor it = index_tensor(iv, {6, 2, 3}).permute({2, 1, 0});
  std::vector<int64_t> itv = it.to_vector<int64_t>();
  auto out2 = gather(x, 2, it);
  expect_near_vec(out2.to_vector<double>(), ref_gather(x.contiguous().to_vector<double>(), {4, 3, 5}, 2, itv, is));
}

TEST(Gather, IntegerAndHalfDtypesAndZeroDim) {
  Tensor x = tensor<int64_t>({10, 11, 12, 13, 14, 15}, {2, 3});
  auto out = gather(x, 1, index_tensor({2, 2, 0, 1}, {2, 2}));
  EXPECT_EQ(out.dtype(), DType::int64);
  EXPECT_EQ(out.to_vector<int64_t>(), (std::vector<int64_t>{12, 12, 13, 14}));
  Tensor h = tensor({1.5, -2.0, 3.25}, {3}).to(DType::float16);
  auto oh = gather(h, 0, index_tensor({2, 0}, {2}));
  EXPECT_EQ(oh.dtype(), DType::float16);
  EXPECT_EQ(oh.to_vector<double>(), (std::vector<double>{3.25, 1.5}));
  Tensor s = scalar_tensor(4.5, {.dtype = DType::float64});
  auto os = gather(s, 0, index_tensor({0}, {1}).reshape({}));
  EXPECT_EQ(os.dim(), 0);
  EXPECT_EQ(os.item(), 4.5);
}

TEST(Gather, BackwardScattersWithDuplicates) {
  Tensor x = randn_f64({3, 4}, 3).requires_grad_();
  std::vector<int64_t> iv = {1, 1, 1, 0, 3, 0, 2, 2, 2};
  auto out = gather(x, 1, index_tensor(iv, {3, 3}));
  Tensor g = randn_f64({3, 3}, 4);
  out.backward(g);
  std::vector<double> want =
      ref_scatter_add(std::vector<double>(12, 0.0), {3, 4}, 1, iv, {3, 3}, g.to_vector<double>(), {3, 3});
  expect_near_vec(x.grad().to_vector<double>(), want);
}

TEST(Gather, Errors) {
  Tensor x = randn_f64({3, 4}, 5);
  expect_throws_with([&] { gather(x, 1, index_tensor({0, 4}, {1, 2})); }, {"gather", "index 4", "dim 1", "size 4"});
  expect_throws_with([&] { gather(x, 0, index_tensor({-1}, {1, 1})); }, {"gather", "index -1", "dim 0", "size 3"});
  expect_throws_with([&] { gather(x, 1, index_tensor({0, 1}, {2})); }, {"gather", "[2]", "[3, 4]"});
  expect_throws_with([&] { gather(x, 1, index_tensor({0, 0, 0, 0, 0}, {5, 1})); }, {"gather", "[5, 1]", "dim 0"});
  expect_throws_with([&] { gather(x, 1, tensor({0.0, 1.0}, {1, 2})); }, {"gather", "float32", "int64"});
  expect_throws_with([&] { gather(x, 2, index_tensor({0}, {1, 1})); }, {"gather", "dim 2"});
}

TEST(Gather, LargeIndexReportsFirstBadPosition) {
  // Large enough for the parallel validation path: the earliest bad position wins.
  const int64_t n = 200000;
  std::vector<int64_t> iv(n, 1);
  iv[150000] = -3;
  iv[70001] = 9;
  Tensor x = randn_f64({4}, 50);
  expect_throws_with([&] { gather(x, 0, index_tensor(iv, {n})); }, {"gather", "index 9", "position 70001", "size 4"});
}

// ------------------------------------------------------------------ index_select

std::vector<double> ref_index_select(const std::vector<double>& x, const Shape& xs, int64_t dim,
                                     const std::vector<int64_t>& idx) {
  Shape os = xs;
  os[dim] = static_cast<int64_t>(idx.size());
  std::vector<double> out(static_cast<size_t>(shape_numel(os)));
  for (size_t i = 0; i < out.size(); ++i) {
    Shape p = unravel(static_cast<int64_t>(i), os);
    p[dim] = idx[p[dim]];
    out[i] = x[ravel(p, xs)];
  }
  return out;
}

TEST(IndexSelect, MatchesReferenceAllDimsAndIndexDtypes) {
  Tensor x = randn_f64({4, 3, 2}, 6);
  std::vector<double> xv = x.to_vector<double>();
  for (DType dt : {DType::int64, DType::int32}) {
    auto o1 = index_select(x, 1, index_tensor({2, 0, 2}, {3}, dt));
    EXPECT_EQ(o1.shape(), (Shape{4, 3, 2}));
    expect_near_vec(o1.to_vector<double>(), ref_index_select(xv, {4, 3, 2}, 1, {2, 0, 2}));
    auto o0 = index_select(x, 0, index_tensor({3, 3}, {2}, dt));
    EXPECT_EQ(o0.shape(), (Shape{2, 3, 2}));
    expect_near_vec(o0.to_vector<double>(), ref_index_select(xv, {4, 3, 2}, 0, {3, 3}));
    auto o2 = index_select(x, -1, index_tensor({1, 0, 1, 1}, {4}, dt));
    expect_near_vec(o2.to_vector<double>(), ref_index_select(xv, {4, 3, 2}, 2, {1, 0, 1, 1}));
    auto oe = index_select(x, 1, index_tensor({}, {0}, dt));
    EXPECT_EQ(oe.shape(), (Shape{4, 0, 2}));
  }
}

TEST(IndexSelect, NonContiguousInput) {
  Tensor x = randn_f64({5, 6}, 7).t();  // (6, 5)
  auto out = index_select(x, 0, index_tensor({5, 0, 3}, {3}));
  expect_near_vec(out.to_vector<double>(), ref_index_select(x.contiguous().to_vector<double>(), {6, 5}, 0, {5, 0, 3}));
}

TEST(IndexSelect, BackwardAccumulatesDuplicates) {
  Tensor x = randn_f64({3, 4, 2}, 8).requires_grad_();
  std::vector<int64_t> iv = {3, 1, 3, 3, 0};
  auto out = index_select(x, 1, index_tensor(iv, {5}, DType::int32));
  Tensor g = randn_f64({3, 5, 2}, 9);
  out.backward(g);
  std::vector<double> gv = g.to_vector<double>(), want(24, 0.0);
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t l = 0; l < 5; ++l)
      for (int64_t c = 0; c < 2; ++c) want[(a * 4 + iv[l]) * 2 + c] += gv[(a * 5 + l) * 2 + c];
  expect_near_vec(x.grad().to_vector<double>(), want);
}

TEST(IndexSelect, Errors) {
  Tensor x = randn_f64({3, 4}, 10);
  expect_throws_with([&] { index_select(x, 1, index_tensor({1, 4}, {2})); }, {"index_select", "index 4", "dim 1", "size 4"});
  expect_throws_with([&] { index_select(x, 0, index_tensor({0, 1}, {1, 2})); }, {"index_select", "1-D", "[1, 2]"});
  expect_throws_with([&] { index_select(scalar_tensor(1.0), 0, index_tensor({0}, {1})); }, {"index_select", "[]"});
  expect_throws_with([&] { index_select(x, 0, tensor({0.0}, {1})); }, {"index_select", "float32"});
}

// ------------------------------------------------------------------ scatter_add

TEST(ScatterAdd, MatchesReferenceWithDuplicatesAndLargerSrc) {
  Tensor x = randn_f64({3, 5}, 11);
  Tensor src = randn_f64({4, 4}, 12);
  std::vector<int64_t> iv = {4, 4, 0, 1, 1, 1, 2, 0, 2};
  for (DType dt : {DType::int64, DType::int32}) {
    auto out = scatter_add(x, -1, index_tensor(iv, {3, 3}, dt), src);
    EXPECT_EQ(out.shape(), (Shape{3, 5}));
    expect_near_vec(out.to_vector<double>(),
                    ref_scatter_add(x.to_vector<double>(), {3, 5}, 1, iv, {3, 3}, src.to_vector<double>(), {4, 4}));
  }
  // dim 0, non-contiguous src.
  Tensor src_t = randn_f64({3, 2}, 13).t();  // (2, 3)
  std::vector<int64_t> i0 = {2, 2, 0, 2, 1, 2};
  auto out0 = scatter_add(x, 0, index_tensor(i0, {2, 3}), src_t);
  expect_near_vec(out0.to_vector<double>(), ref_scatter_add(x.to_vector<double>(), {3, 5}, 0, i0, {2, 3},
                                                            src_t.contiguous().to_vector<double>(), {2, 3}));
  // The input is not modified.
  expect_near_vec(x.to_vector<double>(), randn_f64({3, 5}, 11).to_vector<double>(), 0.0);
}

TEST(ScatterAdd, Backward) {
  Tensor x = randn_f64({3, 5}, 14).requires_grad_();
  Tensor src = randn_f64({3, 4}, 15).requires_grad_();
  std::vector<int64_t> iv = {4, 4, 0, 1, 1, 1};
  auto out = scatter_add(x, 1, index_tensor(iv, {3, 2}), src);
  Tensor g = randn_f64({3, 5}, 16);
  out.backward(g);
  std::vector<double> gv = g.to_vector<double>();
  expect_near_vec(x.grad().to_vector<double>(), gv);
  // src positions covered by the (3, 2) index get gather(g); the rest get 0.
  std::vector<double> want(12, 0.0);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 2; ++c) want[r * 4 + c] = gv[r * 5 + iv[r * 2 + c]];
  expect_near_vec(src.grad().to_vector<double>(), want);
}

TEST(ScatterAdd, DeterministicFloat32Accumulation) {
  // Many duplicates along dim 1: each output is summed in index order, bit for bit.
  const int64_t rows = 64, n = 4096, width = 7;
  std::vector<int64_t> iv(rows * n);
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<int64_t>((i * 2654435761u) % width);
  Generator gen(17);
  Tensor src = randn({rows, n}, {}, &gen);
  Tensor x = zeros({rows, width});
  Tensor idx = index_tensor(iv, {rows, n});
  auto a = scatter_add(x, 1, idx, src).to_vector<float>();
  auto b = scatter_add(x, 1, idx, src).to_vector<float>();
  std::vector<float> sv = src.to_vector<float>(), want(rows * width, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) want[r * width + iv[r * n + j]] += sv[r * n + j];
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, want);
}

TEST(ScatterAdd, Errors) {
  Tensor x = randn_f64({3, 4}, 18);
  Tensor src = randn_f64({3, 4}, 19);
  expect_throws_with(
      [&] {
        scatter_add(x, 1, index_tensor({0, 9}, {1, 2}), src);
      },
      {"scatter_add", "index 9", "dim 1", "size 4"});
  expect_throws_with(
      [&] {
        scatter_add(x, 1, index_tensor({0}, {1, 1}), src.to(DType::float32));
      },
      {"scatter_add", "float32", "float64"});
  expect_throws_with(
      [&] {
        scatter_add(x, 1, index_tensor({0, 0, 0, 0, 0}, {1, 5}), src);
      },
      {"scatter_add", "[1, 5]", "[3, 4]"});
  expect_throws_with([&] { scatter_add(x, 0, index_tensor({0, 0}, {2}), src); }, {"scatter_add", "same number of dims"});
}

// ------------------------------------------------------------------ cat / stack

TEST(Cat, ValuesAlongEveryDim) {
  Tensor a = randn_f64({2, 3}, 20), b = randn_f64({2, 1}, 21), c = randn_f64({4, 2}, 22).t();  // c: (2, 4)
  auto out = cat({a, b, c}, -1);
  EXPECT_EQ(out.shape(), (Shape{2, 8}));
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), cv = c.contiguous().to_vector<double>();
  std::vector<double> want;
  for (int r = 0; r < 2; ++r) {
    want.insert(want.end(), av.begin() + r * 3, av.begin() + r * 3 + 3);
    want.push_back(bv[r]);
    want.insert(want.end(), cv.begin() + r * 4, cv.begin() + r * 4 + 4);
  }
  expect_near_vec(out.to_vector<double>(), want, 0.0);

  auto out0 = cat({a, randn_f64({0, 3}, 23), a}, 0);
  EXPECT_EQ(out0.shape(), (Shape{4, 3}));
  std::vector<double> want0 = av;
  want0.insert(want0.end(), av.begin(), av.end());
  expect_near_vec(out0.to_vector<double>(), want0, 0.0);
}

TEST(Cat, BackwardSlicesTheGradient) {
  Tensor a = randn_f64({2, 2, 3}, 24).requires_grad_(), b = randn_f64({2, 1, 3}, 25).requires_grad_();
  auto out = cat({a, b}, 1);
  Tensor g = randn_f64({2, 3, 3}, 26);
  out.backward(g);
  std::vector<double> gv = g.to_vector<double>(), ga, gb;
  for (int i = 0; i < 2; ++i) {
    ga.insert(ga.end(), gv.begin() + i * 9, gv.begin() + i * 9 + 6);
    gb.insert(gb.end(), gv.begin() + i * 9 + 6, gv.begin() + i * 9 + 9);
  }
  expect_near_vec(a.grad().to_vector<double>(), ga, 0.0);
  expect_near_vec(b.grad().to_vector<double>(), gb, 0.0);
}

TEST(Cat, SameTensorTwiceAccumulatesItsGradient) {
  Tensor a = randn_f64({2, 3}, 51).requires_grad_();
  auto out = cat({a, a}, 0);
  Tensor g = randn_f64({4, 3}, 52);
  out.backward(g);
  std::vector<double> gv = g.to_vector<double>(), want(6);
  for (int i = 0; i < 6; ++i) want[i] = gv[i] + gv[i + 6];
  expect_near_vec(a.grad().to_vector<double>(), want);
}

TEST(Split, GradientsOfAllPiecesReassembleTheInput) {
  Tensor x = randn_f64({5, 3}, 53).requires_grad_();
  auto pieces = chunk(x, 2, 0);  // 3 + 2 rows
  Tensor y = cat({pieces[1], pieces[0]}, 0);
  Tensor g = randn_f64({5, 3}, 54);
  y.backward(g);
  std::vector<double> gv = g.to_vector<double>(), want;
  want.insert(want.end(), gv.begin() + 6, gv.end());    // rows 0..2 of x got rows 2..4 of y
  want.insert(want.end(), gv.begin(), gv.begin() + 6);  // rows 3..4 of x got rows 0..1 of y
  expect_near_vec(x.grad().to_vector<double>(), want);
}

TEST(Cat, Errors) {
  Tensor a = randn_f64({2, 3}, 27);
  expect_throws_with([&] { cat({a, randn_f64({2, 3, 1}, 28)}, 0); }, {"cat", "tensor 1", "[2, 3, 1]", "[2, 3]"});
  expect_throws_with([&] { cat({a, a, randn_f64({3, 3}, 29)}, 1); }, {"cat", "tensor 2", "[3, 3]", "[2, 3]", "dim 1"});
  expect_throws_with([&] { cat({a, a.to(DType::float32)}, 0); }, {"cat", "tensor 1", "float32", "float64"});
  expect_throws_with([&] { cat({}, 0); }, {"cat", "non-empty"});
  expect_throws_with([&] { cat({scalar_tensor(1.0)}, 0); }, {"cat", "tensor 0", "zero-dimensional"});
  expect_throws_with([&] { cat({a, a}, 2); }, {"cat", "dim 2"});
}

TEST(Stack, ValuesAndBackward) {
  Tensor a = randn_f64({2, 3}, 30).requires_grad_(), b = randn_f64({2, 3}, 31).requires_grad_();
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    auto out = stack({a, b}, dim);
    int64_t d = dim < 0 ? dim + 3 : dim;
    Shape want_shape{2, 3};
    want_shape.insert(want_shape.begin() + d, 2);
    EXPECT_EQ(out.shape(), want_shape) << "dim " << dim;
    std::vector<double> ov = out.to_vector<double>();
    for (int64_t i = 0; i < 12; ++i) {
      Shape p = unravel(i, want_shape);
      int64_t which = p[d];
      p.erase(p.begin() + d);
      EXPECT_EQ(ov[i], (which == 0 ? av : bv)[ravel(p, {2, 3})]);
    }
  }
  auto out = stack({a, b}, 1);  // (2, 2, 3)
  Tensor g = randn_f64({2, 2, 3}, 32);
  out.backward(g);
  std::vector<double> gv = g.to_vector<double>(), ga, gb;
  for (int i = 0; i < 2; ++i) {
    ga.insert(ga.end(), gv.begin() + i * 6, gv.begin() + i * 6 + 3);
    gb.insert(gb.end(), gv.begin() + i * 6 + 3, gv.begin() + i * 6 + 6);
  }
  expect_near_vec(a.grad().to_vector<double>(), ga, 0.0);
  expect_near_vec(b.grad().to_vector<double>(), gb, 0.0);
}

TEST(Stack, Errors) {
  Tensor a = randn_f64({2, 3}, 33);
  expect_throws_with([&] { stack({a, randn_f64({3, 2}, 34)}, 0); }, {"stack", "tensor 1", "[3, 2]", "[2, 3]"});
  expect_throws_with([&] { stack({a}, 3); }, {"stack", "dim 3"});
  expect_throws_with([&] { stack({}, 0); }, {"stack", "non-empty"});
}

// ------------------------------------------------------------------ split / chunk

std::vector<int64_t> sizes_along(const std::vector<Tensor>& pieces, int64_t dim) {
  std::vector<int64_t> s;
  for (const auto& p : pieces) s.push_back(p.size(dim));
  return s;
}

TEST(Split, BySizeReturnsViews) {
  Tensor x = randn_f64({7, 2}, 35);
  auto pieces = split(x, 3);
  EXPECT_EQ(sizes_along(pieces, 0), (std::vector<int64_t>{3, 3, 1}));
  std::vector<double> xv = x.to_vector<double>();
  int64_t row = 0;
  for (const auto& p : pieces) {
    EXPECT_TRUE(p.storage() == x.storage());
    EXPECT_EQ(p.storage_offset(), row * 2);
    std::vector<double> want(xv.begin() + row * 2, xv.begin() + (row + p.size(0)) * 2);
    expect_near_vec(p.to_vector<double>(), want, 0.0);
    row += p.size(0);
  }
  EXPECT_EQ(sizes_along(split(x, 2, -1), 1), (std::vector<int64_t>{2}));
  EXPECT_EQ(sizes_along(split(x, 10), 0), (std::vector<int64_t>{7}));
  EXPECT_EQ(sizes_along(split(randn_f64({0, 2}, 36), 0), 0), (std::vector<int64_t>{0}));
}

TEST(Split, BySizesAndBackwardThroughOnePiece) {
  Tensor x = randn_f64({2, 6}, 37).requires_grad_();
  auto pieces = split(x, std::vector<int64_t>{1, 0, 5}, 1);
  EXPECT_EQ(sizes_along(pieces, 1), (std::vector<int64_t>{1, 0, 5}));
  Tensor g = randn_f64({2, 5}, 38);
  pieces[2].backward(g);
  std::vector<double> gv = g.to_vector<double>(), want(12, 0.0);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 5; ++c) want[r * 6 + 1 + c] = gv[r * 5 + c];
  expect_near_vec(x.grad().to_vector<double>(), want, 0.0);
}

TEST(Chunk, TorchPieceCounts) {
  Tensor x = randn_f64({3, 7}, 39);
  EXPECT_EQ(sizes_along(chunk(x, 3, 1), 1), (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(sizes_along(chunk(x, 3, -1), 1), (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(sizes_along(chunk(randn_f64({6}, 40), 4), 0), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(sizes_along(chunk(x, 5, 0), 0), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(sizes_along(chunk(randn_f64({0, 2}, 41), 3), 0), (std::vector<int64_t>{0, 0, 0}));
  auto pieces = chunk(x, 2, 1);
  EXPECT_TRUE(pieces[1].storage() == x.storage());
  EXPECT_EQ(pieces[1].storage_offset(), 4);
}

TEST(Split, Errors) {
  Tensor x = randn_f64({5, 2}, 42);
  expect_throws_with([&] { split(x, std::vector<int64_t>{2, 2}); }, {"split", "[2, 2]", "sum to 4", "size 5"});
  expect_throws_with([&] { split(x, std::vector<int64_t>{6, -1}); }, {"split", "negative size -1"});
  expect_throws_with([&] { split(x, 0); }, {"split", "split_size", "size 5"});
  expect_throws_with([&] { split(x, -2); }, {"split", "-2"});
  expect_throws_with([&] { split(x, 1, 2); }, {"split", "dim 2"});
  expect_throws_with([&] { chunk(x, 0); }, {"chunk", "chunks", "0"});
}

}  // namespace
