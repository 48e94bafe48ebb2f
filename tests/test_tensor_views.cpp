// View ops share storage with their base (writes flow both ways), have the
// expected shape / strides / offset, and reject bad input with messages that
// name the values. Also copy_ (broadcasting, overlap), contiguous, clone,
// to_vector / item and the printed form of a tensor.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/factory.h"
#include "engine/tensor.h"
#include "support/test_util.h"

namespace {

using zae::DType;
using zae::Shape;
using zae::Tensor;

using zae::test::expect_throws_with;

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// 0, 1, 2, ... as float32 with the given shape.
Tensor iota(const Shape& shape, DType dt = DType::float32) {
  return zae::arange(0.0, static_cast<double>(zae::shape_numel(shape)), 1.0, {.dtype = dt}).view(shape);
}

std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }

// The view and the base share one storage: a write through either is seen by the other.
void expect_shares_storage(Tensor base, Tensor view) {
  ASSERT_TRUE(base.storage() == view.storage());
  uint64_t v0 = base.version();
  view.fill_(42.0);
  EXPECT_GT(base.version(), v0) << "a write through a view bumps the shared version counter";
  std::vector<float> b = vals(base);
  int hits = 0;
  for (float x : b) hits += x == 42.0f;
  EXPECT_GE(hits, 1) << "write through the view is not visible in the base";
  base.fill_(-1.0);
  for (float x : vals(view)) EXPECT_EQ(x, -1.0f) << "write to the base is not visible in the view";
}

// ---- geometry of each view --------------------------------------------------

TEST(Views, ViewOfContiguous) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(x.strides(), (Shape{12, 4, 1}));
  Tensor v = x.view({6, 4});
  EXPECT_EQ(v.shape(), (Shape{6, 4}));
  EXPECT_EQ(v.strides(), (Shape{4, 1}));
  EXPECT_EQ(v.storage_offset(), 0);
  EXPECT_EQ(vals(v), vals(x));
  Tensor w = x.view({-1, 2});
  EXPECT_EQ(w.shape(), (Shape{12, 2}));
  EXPECT_EQ(x.view({24}).shape(), (Shape{24}));
  EXPECT_EQ(x.view({1, 24, 1}).shape(), (Shape{1, 24, 1}));
  expect_shares_storage(x, v);
}

TEST(Views, ViewOfNonContiguousWhereStridesAllow) {
  Tensor x = iota({4, 6});
  Tensor n = x.narrow(1, 1, 3);  // (4, 3), strides (6, 1), offset 1
  EXPECT_EQ(n.strides(), (Shape{6, 1}));
  EXPECT_EQ(n.storage_offset(), 1);
  Tensor v = n.view({2, 2, 3});
  EXPECT_EQ(v.strides(), (Shape{12, 6, 1}));
  EXPECT_EQ(v.storage_offset(), 1);
  EXPECT_EQ(vals(v), vals(n));
  Tensor u = n.view({4, 3, 1});
  EXPECT_EQ(vals(u), vals(n));
  // An expanded tensor can be split along the broadcast dim.
  Tensor e = iota({3, 1}).expand({3, 4});
  Tensor ev = e.view({3, 2, 2});
  EXPECT_EQ(ev.strides(), (Shape{1, 0, 0}));
  EXPECT_EQ(vals(ev), vals(e));
  expect_shares_storage(x, v);
}

TEST(Views, ViewErrors) {
  Tensor x = iota({2, 3});
  expect_throws_with([&] { x.t().view({6}); }, {"view", "[6]", "[1, 3]", "[3, 2]", "reshape"});
  expect_throws_with([&] { x.view({4}); }, {"view", "[4]", "[2, 3]", "6"});
  expect_throws_with([&] { x.view({-1, -1}); }, {"-1"});
  expect_throws_with([&] { x.view({-1, 4}); }, {"[-1, 4]", "[2, 3]"});
  expect_throws_with([&] { x.view({2, -3}); }, {"-3"});
  expect_throws_with([&] { iota({1}).view({1, 1, 1, 1, 1, 1, 1, 1, 1}); }, {"8", "[1, 1, 1, 1, 1, 1, 1, 1, 1]"});
  expect_throws_with([&] { iota({3, 1}).expand({3, 4}).view({12}); }, {"reshape"});
}

TEST(Views, ReshapeViewsWhenPossibleAndCopiesOtherwise) {
  Tensor x = iota({2, 3});
  Tensor r = x.reshape({3, 2});
  EXPECT_TRUE(r.storage() == x.storage());
  EXPECT_EQ(vals(r), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  Tensor t = x.t();
  Tensor c = t.reshape({6});
  EXPECT_FALSE(c.storage() == x.storage()) << "a non-viewable reshape copies";
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(vals(c), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(t.reshape({-1}).shape(), (Shape{6}));
  expect_throws_with([&] { x.reshape({5}); }, {"reshape", "[5]", "[2, 3]"});
  expect_shares_storage(x, r);
}

TEST(Views, PermuteTransposeT) {
  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  // p[k][i][j] == x[i][j][k]
  std::vector<float> pv = vals(p);
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(pv[(k * 2 + i) * 3 + j], static_cast<float>(i * 12 + j * 4 + k));
  EXPECT_EQ(x.permute({-1, -3, -2}).shape(), (Shape{4, 2, 3}));
  Tensor tr = x.transpose(0, 2);
  EXPECT_EQ(tr.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(tr.strides(), (Shape{1, 4, 12}));
  EXPECT_EQ(x.transpose(-1, -2).shape(), (Shape{2, 4, 3}));
  Tensor m = iota({2, 3});
  EXPECT_EQ(m.t().shape(), (Shape{3, 2}));
  EXPECT_EQ(m.t().strides(), (Shape{1, 3}));
  EXPECT_EQ(vals(m.t()), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(x.t().shape(), (Shape{2, 4, 3})) << "t() on a 3-D tensor swaps the last two dims";
  expect_throws_with([&] { iota({3}).t(); }, {"t()", "[3]"});
  expect_throws_with([&] { x.permute({0, 1}); }, {"permute", "[0, 1]", "[2, 3, 4]"});
  expect_throws_with([&] { x.permute({0, 1, 1}); }, {"permute", "1", "[0, 1, 1]"});
  expect_throws_with([&] { x.permute({0, 1, 3}); }, {"permute", "3", "[2, 3, 4]"});
  expect_throws_with([&] { x.transpose(0, 5); }, {"transpose", "5", "[2, 3, 4]"});
  expect_shares_storage(x, p);
  expect_shares_storage(m, m.t());
}

TEST(Views, Narrow) {
  Tensor x = iota({4, 5});
  Tensor n = x.narrow(0, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 5}));
  EXPECT_EQ(n.storage_offset(), 5);
  EXPECT_EQ(vals(n), (std::vector<float>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  Tensor m = x.narrow(-1, 3, 2);
  EXPECT_EQ(m.shape(), (Shape{4, 2}));
  EXPECT_EQ(m.storage_offset(), 3);
  EXPECT_EQ(m.strides(), (Shape{5, 1}));
  EXPECT_EQ(x.narrow(1, -2, 2).storage_offset(), 3) << "negative start counts from the end";
  EXPECT_EQ(x.narrow(0, 4, 0).numel(), 0);
  expect_throws_with([&] { x.narrow(0, 3, 2); }, {"narrow", "start 3", "length 2", "size 4", "[4, 5]"});
  expect_throws_with([&] { x.narrow(1, 0, 6); }, {"narrow", "6", "size 5"});
  expect_throws_with([&] { x.narrow(1, 0, -1); }, {"narrow", "-1"});
  expect_throws_with([&] { x.narrow(2, 0, 1); }, {"narrow", "dim 2", "[4, 5]"});
  expect_shares_storage(x, n);
}

TEST(Views, SliceWithStepsAndClampedBounds) {
  Tensor x = iota({10});
  Tensor s = x.slice(0, 1, 8, 3);
  EXPECT_EQ(s.shape(), (Shape{3}));
  EXPECT_EQ(s.strides(), (Shape{3}));
  EXPECT_EQ(s.storage_offset(), 1);
  EXPECT_EQ(vals(s), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(vals(x.slice(0, 1, 9, 3)), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(vals(x.slice(0, 1, 10, 3)), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(vals(x.slice(0, 0, 10, 4)), (std::vector<float>{0, 4, 8}));
  EXPECT_EQ(vals(x.slice(0, -3, 100)), (std::vector<float>{7, 8, 9})) << "negative start, end clamped";
  EXPECT_EQ(vals(x.slice(0, -100, 2)), (std::vector<float>{0, 1})) << "start clamped to 0";
  EXPECT_EQ(vals(x.slice(0, 2, -5)), (std::vector<float>{2, 3, 4})) << "negative end";
  EXPECT_EQ(x.slice(0, 6, 3).numel(), 0) << "start after end gives an empty view";
  EXPECT_EQ(x.slice(0, 20, 30).numel(), 0);
  Tensor m = iota({3, 6});
  Tensor ms = m.slice(1, 0, 6, 2);
  EXPECT_EQ(ms.shape(), (Shape{3, 3}));
  EXPECT_EQ(ms.strides(), (Shape{6, 2}));
  EXPECT_EQ(vals(ms), (std::vector<float>{0, 2, 4, 6, 8, 10, 12, 14, 16}));
  Tensor ms2 = ms.slice(1, 1, 3, 1).slice(0, 0, 3, 2);  // slices of slices
  EXPECT_EQ(vals(ms2), (std::vector<float>{2, 4, 14, 16}));
  expect_throws_with([&] { x.slice(0, 0, 5, 0); }, {"slice", "step", "0"});
  expect_throws_with([&] { x.slice(0, 0, 5, -1); }, {"slice", "-1"});
  expect_throws_with([&] { x.slice(1, 0, 5); }, {"slice", "dim 1", "[10]"});
  expect_shares_storage(m, ms);
}

TEST(Views, SelectWithNegativeIndex) {
  Tensor x = iota({3, 4});
  Tensor r = x.select(0, -1);
  EXPECT_EQ(r.shape(), (Shape{4}));
  EXPECT_EQ(r.storage_offset(), 8);
  EXPECT_EQ(vals(r), (std::vector<float>{8, 9, 10, 11}));
  Tensor c = x.select(1, 2);
  EXPECT_EQ(c.shape(), (Shape{3}));
  EXPECT_EQ(c.strides(), (Shape{4}));
  EXPECT_EQ(vals(c), (std::vector<float>{2, 6, 10}));
  Tensor e = x.select(0, 1).select(0, -2);
  EXPECT_EQ(e.dim(), 0);
  EXPECT_EQ(e.item(), 6.0);
  expect_throws_with([&] { x.select(0, 3); }, {"select", "index 3", "size 3", "[3, 4]"});
  expect_throws_with([&] { x.select(1, -5); }, {"select", "-5", "size 4"});
  expect_throws_with([&] { x.select(2, 0); }, {"select", "dim 2", "[3, 4]"});
  expect_shares_storage(x, c);
}

TEST(Views, ExpandHasZeroStrides) {
  Tensor x = iota({3, 1});
  Tensor e = x.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  std::vector<float> ev = vals(e);
  for (int a = 0; a < 2; ++a)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) EXPECT_EQ(ev[(a * 3 + i) * 4 + j], static_cast<float>(i));
  EXPECT_EQ(x.expand({-1, 5}).shape(), (Shape{3, 5}));
  EXPECT_EQ(x.expand({3, 1}).strides(), (Shape{1, 1}));
  EXPECT_EQ(zae::scalar_tensor(2.0).expand({2, 2}).strides(), (Shape{0, 0}));
  EXPECT_EQ(vals(zae::scalar_tensor(2.0).expand({2, 2})), (std::vector<float>{2, 2, 2, 2}));
  expect_throws_with([&] { x.expand({3, 4}).expand({2, 3, 5}); }, {"expand", "[3, 4]", "[2, 3, 5]", "4"});
  expect_throws_with([&] { iota({2, 3}).expand({4, 3}); }, {"expand", "[2, 3]", "[4, 3]", "size 2"});
  expect_throws_with([&] { iota({2, 3}).expand({3}); }, {"expand", "[3]", "[2, 3]"});
  expect_throws_with([&] { x.expand({-1, 3, 4}); }, {"expand", "-1"});
  // Writing into an expanded view would store several results in one location.
  Tensor small = iota({3, 1});
  expect_throws_with([&] { small.expand({3, 4}).copy_(iota({3, 4})); }, {"copy_", "[3, 4]", "[1, 0]", "expanded"});
  expect_throws_with([&] { small.expand({3, 4}).add_(1.0); }, {"add_", "expanded"});
  expect_throws_with([&] { small.expand({2, 3, 1}).fill_(1.0); }, {"fill_", "[2, 3, 1]"});
  EXPECT_NO_THROW(small.expand({3, 1}).fill_(1.0)) << "an expand that broadcasts nothing stays writable";
  EXPECT_NO_THROW(small.expand({1, 3, 1}).fill_(1.0)) << "a new size-1 dim shares no location";
  Tensor base = iota({3, 1});
  Tensor ex = base.expand({3, 4});
  ASSERT_TRUE(ex.storage() == base.storage());
  base.fill_(7.0);
  EXPECT_EQ(vals(ex), std::vector<float>(12, 7.0f));
}

TEST(Views, SqueezeAndUnsqueeze) {
  Tensor x = iota({1, 3, 1, 2});
  EXPECT_EQ(x.squeeze().shape(), (Shape{3, 2}));
  EXPECT_EQ(x.squeeze(0).shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(x.squeeze(2).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(x.squeeze(-2).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(x.squeeze(1).shape(), (Shape{1, 3, 1, 2})) << "squeezing a dim that is not 1 is a no-op";
  EXPECT_EQ(iota({1, 1}).squeeze().shape(), (Shape{}));
  EXPECT_EQ(vals(x.squeeze()), vals(x));
  Tensor t = iota({2, 3}).t().unsqueeze(1);  // squeeze of a non-contiguous tensor stays a view
  EXPECT_EQ(t.squeeze().shape(), (Shape{3, 2}));
  EXPECT_TRUE(t.squeeze().storage() == t.storage());

  Tensor y = iota({2, 3});
  Tensor u0 = y.unsqueeze(0);
  EXPECT_EQ(u0.shape(), (Shape{1, 2, 3}));
  Tensor u1 = y.unsqueeze(-1);
  EXPECT_EQ(u1.shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(u1.strides()[0], 3);
  EXPECT_EQ(u1.strides()[1], 1);
  EXPECT_EQ(y.unsqueeze(-2).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(y.unsqueeze(2).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(y.unsqueeze(-3).shape(), (Shape{1, 2, 3}));
  EXPECT_TRUE(y.unsqueeze(1).is_contiguous());
  EXPECT_EQ(zae::scalar_tensor(1.0).unsqueeze(0).shape(), (Shape{1}));
  expect_throws_with([&] { y.unsqueeze(3); }, {"unsqueeze", "3", "[2, 3]"});
  expect_throws_with([&] { y.unsqueeze(-4); }, {"unsqueeze", "-4", "[2, 3]"});
  expect_throws_with([&] { x.squeeze(4); }, {"squeeze", "4", "[1, 3, 1, 2]"});
  expect_throws_with([&] { iota({1, 1, 1, 1, 1, 1, 1, 1}).unsqueeze(0); }, {"unsqueeze", "9", "8"});
  expect_shares_storage(x, x.squeeze());
  expect_shares_storage(y, u1);
}

TEST(Views, FlattenRanges) {
  Tensor x = iota({2, 3, 4, 5});
  EXPECT_EQ(x.flatten().shape(), (Shape{120}));
  EXPECT_EQ(x.flatten(1, 2).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(x.flatten(-2).shape(), (Shape{2, 3, 20}));
  EXPECT_EQ(x.flatten(0, 0).shape(), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(x.flatten(2, -1).shape(), (Shape{2, 3, 20}));
  EXPECT_TRUE(x.flatten(1, 2).storage() == x.storage());
  EXPECT_EQ(zae::scalar_tensor(3.0).flatten().shape(), (Shape{1}));
  Tensor t = x.transpose(1, 2);
  Tensor ft = t.flatten(1, 2);  // not viewable: a copy in the transposed order
  EXPECT_EQ(ft.shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(vals(ft), vals(t));
  expect_throws_with([&] { x.flatten(2, 1); }, {"flatten", "2", "1"});
  expect_throws_with([&] { x.flatten(0, 4); }, {"flatten", "4", "[2, 3, 4, 5]"});
}

TEST(Views, ContiguousAndClone) {
  Tensor x = iota({3, 4});
  EXPECT_TRUE(x.contiguous().is_same(x)) << "contiguous() of a contiguous tensor is the tensor itself";
  Tensor t = x.t();
  Tensor c = t.contiguous();
  EXPECT_FALSE(c.is_same(t));
  EXPECT_FALSE(c.storage() == x.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.strides(), (Shape{3, 1}));
  EXPECT_EQ(vals(c), vals(t));
  // Size-1 dims with odd strides still count as contiguous.
  Tensor s = x.select(1, 0).unsqueeze(1);  // (3, 1) with strides (4, 1)
  EXPECT_FALSE(s.is_contiguous());
  Tensor row = x.select(0, 1).unsqueeze(0);  // (1, 4), strides (4, 1)
  EXPECT_TRUE(row.is_contiguous());
  EXPECT_TRUE(row.contiguous().is_same(row));

  Tensor k = x.clone();
  EXPECT_FALSE(k.storage() == x.storage());
  EXPECT_EQ(vals(k), vals(x));
  k.fill_(0.0);
  EXPECT_EQ(vals(x)[5], 5.0f) << "clone is independent of its source";
  Tensor kt = t.clone();
  EXPECT_TRUE(kt.is_contiguous());
  EXPECT_EQ(vals(kt), vals(t));
  Tensor ki = zae::tensor({1, 2, 3}, {3}, {.dtype = DType::int32}).clone();
  EXPECT_EQ(ki.dtype(), DType::int32);
  EXPECT_EQ(ki.to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3}));
}

// ---- writes through views ------------------------------------------------------

TEST(ViewWrites, FillAndCopyThroughViewsAreVisibleInTheBase) {
  Tensor x = zae::zeros({3, 4});
  x.select(0, 1).fill_(5.0);
  x.slice(1, 0, 4, 3).fill_(1.0);  // columns 0 and 3
  EXPECT_EQ(vals(x), (std::vector<float>{1, 0, 0, 1, 1, 5, 5, 1, 1, 0, 0, 1}));
  x.t().select(0, 2).copy_(zae::tensor({7, 8, 9}));  // column 2
  EXPECT_EQ(vals(x), (std::vector<float>{1, 0, 7, 1, 1, 5, 8, 1, 1, 0, 9, 1}));
  x.view({12}).narrow(0, 10, 2).zero_();
  EXPECT_EQ(vals(x).back(), 0.0f);
  EXPECT_EQ(vals(x)[9], 0.0f);
  EXPECT_EQ(vals(x)[8], 1.0f);
  // A base write is visible through an earlier view.
  Tensor col = x.select(1, 1);
  x.fill_(3.0);
  EXPECT_EQ(vals(col), (std::vector<float>{3, 3, 3}));
  // A detached handle shares storage too.
  Tensor d = x.detach();
  d.select(0, 0).fill_(-4.0);
  EXPECT_EQ(vals(x)[0], -4.0f);
}

TEST(ViewWrites, InPlaceOnARequiresGradTensorNeedsNoGrad) {
  Tensor w = zae::zeros({2, 2}, {.requires_grad = true});
  expect_throws_with([&] { w.fill_(1.0); }, {"fill_", "requires grad", "[2, 2]"});
  {
    zae::NoGradGuard no_grad;
    w.select(0, 0).fill_(2.0);
    w.select(0, 1).copy_(zae::tensor({3, 4}));
  }
  EXPECT_EQ(vals(w), (std::vector<float>{2, 2, 3, 4}));
  // A tensor that does not require grad may be written with grad mode on.
  Tensor plain = zae::zeros({2});
  plain.fill_(1.0);
  EXPECT_EQ(vals(plain), (std::vector<float>{1, 1}));
  expect_throws_with([&] { plain.copy_(zae::ones({2}, {.requires_grad = true})); }, {"copy_", "requires grad"});
}

TEST(CopyInto, BroadcastsAndConverts) {
  Tensor x = zae::zeros({2, 3});
  x.copy_(zae::tensor({1, 2, 3}));
  EXPECT_EQ(vals(x), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  x.copy_(zae::tensor({10, 20}, {2, 1}));
  EXPECT_EQ(vals(x), (std::vector<float>{10, 10, 10, 20, 20, 20}));
  x.copy_(zae::scalar_tensor(-1.0, {.dtype = DType::float64}));
  EXPECT_EQ(vals(x), std::vector<float>(6, -1.0f));
  x.copy_(zae::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::int64}));
  EXPECT_EQ(vals(x), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  Tensor h = zae::zeros({3, 2}, {.dtype = DType::float16});
  h.copy_(x.t());
  EXPECT_EQ(vals(h), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  expect_throws_with([&] { x.copy_(zae::zeros({4})); }, {"[4]", "[2, 3]"});
}

TEST(CopyInto, OverlappingSourceAndDestination) {
  Tensor x = iota({3, 3});
  x.copy_(x.t());
  EXPECT_EQ(vals(x), (std::vector<float>{0, 3, 6, 1, 4, 7, 2, 5, 8}));
  // Shifted overlap along one dim: y[1:] = y[:-1].
  Tensor y = iota({6});
  y.slice(0, 1, 6).copy_(y.slice(0, 0, 5));
  EXPECT_EQ(vals(y), (std::vector<float>{0, 0, 1, 2, 3, 4}));
  Tensor z = iota({6});
  z.slice(0, 0, 5).copy_(z.slice(0, 1, 6));
  EXPECT_EQ(vals(z), (std::vector<float>{1, 2, 3, 4, 5, 5}));
  // Copy onto itself is a no-op.
  Tensor w = iota({4});
  w.copy_(w);
  EXPECT_EQ(vals(w), (std::vector<float>{0, 1, 2, 3}));
  // Reversing through a broadcast row of the same storage.
  Tensor m = iota({2, 2});
  m.copy_(m.select(0, 1));
  EXPECT_EQ(vals(m), (std::vector<float>{2, 3, 2, 3}));
}

// ---- data access ----------------------------------------------------------------

TEST(DataAccess, ToVectorAndItem) {
  Tensor x = iota({2, 3});
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(x.t().to_vector<int64_t>(), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(x.to_vector<int32_t>().size(), 6u);
  EXPECT_EQ(x.slice(1, 0, 3, 2).to_vector<float>(), (std::vector<float>{0, 2, 3, 5}));
  EXPECT_EQ(zae::scalar_tensor(2.5).item(), 2.5);
  EXPECT_EQ(x.select(0, 1).select(0, 2).item(), 5.0);
  EXPECT_EQ(iota({1, 1, 1}).item(), 0.0);
  EXPECT_EQ(zae::tensor({7}, {1}, {.dtype = DType::int64}).item<int64_t>(), 7);
  EXPECT_EQ(zae::full({1}, 1.0, {.dtype = DType::bool_}).item(), 1.0);
  EXPECT_EQ(zae::full({}, 0.5, {.dtype = DType::bfloat16}).item(), 0.5);
  expect_throws_with([&] { x.item(); }, {"item", "[2, 3]", "6"});
  expect_throws_with([&] { zae::zeros({0}).item(); }, {"item", "[0]", "0"});
  EXPECT_EQ(x.data<float>()[4], 4.0f);
  EXPECT_EQ(x.select(0, 1).data<float>()[0], 3.0f) << "data<T>() points at the view's first element";
  expect_throws_with([&] { x.data<double>(); }, {"float32", "float64"});
}

TEST(DataAccess, SizeStrideAndWrapDim) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(x.size(-1), 4);
  EXPECT_EQ(x.size(0), 2);
  EXPECT_EQ(x.stride(-3), 12);
  EXPECT_EQ(x.numel(), 24);
  EXPECT_EQ(x.dim(), 3);
  EXPECT_EQ(x.nbytes(), 96u);
  expect_throws_with([&] { x.size(3); }, {"dim 3", "[2, 3, 4]", "[-3, 2]"});
  expect_throws_with([&] { x.stride(-4); }, {"-4", "[2, 3, 4]"});
  expect_throws_with([] { Tensor().shape(); }, {"undefined"});
  EXPECT_FALSE(Tensor().defined());
  Tensor named = iota({2});
  named.set_name("weights");
  EXPECT_EQ(named.name(), "weights");
}

// ---- printing (engine/print.cpp) ------------------------------------------------

TEST(Print, SmallFloatTensorShowsValues) {
  Tensor x = zae::tensor({1.5, 2.25, 3.0, -4.0}, {2, 2});
  std::string s = x.str();
  EXPECT_TRUE(contains(s, "tensor(")) << s;
  EXPECT_TRUE(contains(s, "1.5")) << s;
  EXPECT_TRUE(contains(s, "2.25")) << s;
  EXPECT_TRUE(contains(s, "3.")) << s;
  EXPECT_TRUE(contains(s, "-4.")) << s;
  EXPECT_TRUE(contains(s, "[[")) << "a 2-D tensor prints nested brackets: " << s;
  EXPECT_FALSE(contains(s, "dtype")) << "float32 is the default dtype and is not shown: " << s;
  EXPECT_FALSE(contains(s, "...")) << s;
  std::ostringstream os;
  os << x;
  EXPECT_EQ(os.str(), s) << "operator<< prints str()";
}

TEST(Print, NonDefaultDTypeIsShown) {
  EXPECT_TRUE(contains(zae::tensor({1.0, 2.0}, {2}, {.dtype = DType::float64}).str(), "float64"));
  EXPECT_TRUE(contains(zae::tensor({1.0, 2.0}, {2}, {.dtype = DType::float16}).str(), "float16"));
  EXPECT_TRUE(contains(zae::tensor({1.0, 2.0}, {2}, {.dtype = DType::bfloat16}).str(), "bfloat16"));
  std::string i = zae::tensor({3, 4}, {2}, {.dtype = DType::int32}).str();
  EXPECT_TRUE(contains(i, "int32")) << i;
  EXPECT_TRUE(contains(i, "3")) << i;
  // As in PyTorch, bool and int64 are implied by the values and not named.
  std::string b = zae::tensor({1, 0}, {2}, {.dtype = DType::bool_}).str();
  EXPECT_TRUE(contains(b, "True")) << b;
  EXPECT_TRUE(contains(b, "False")) << b;
  std::string l = zae::arange(3).str();
  EXPECT_TRUE(contains(l, "2")) << l;
  EXPECT_FALSE(contains(l, ".")) << "integers print without a decimal point: " << l;
}

TEST(Print, AutogradStateIsShown) {
  Tensor x = zae::tensor({1.0, 2.0, 3.0, 4.0}, {4}, {.requires_grad = true});
  std::string s = x.str();
  EXPECT_TRUE(contains(s, "requires_grad")) << s;
  Tensor v = x.view({2, 2});
  std::string sv = v.str();
  EXPECT_TRUE(contains(sv, "grad_fn")) << sv;
  EXPECT_TRUE(contains(sv, "ViewBackward")) << sv;
  EXPECT_FALSE(contains(zae::tensor({1.0}).str(), "grad")) << "no autograd noise on plain tensors";
}

TEST(Print, LargeTensorsAreElided) {
  Tensor big = zae::arange(2000);  // int64: no scientific notation to guess
  std::string s = big.str();
  EXPECT_TRUE(contains(s, "...")) << s.substr(0, 200);
  EXPECT_TRUE(contains(s, "1999")) << "the tail is shown";
  EXPECT_FALSE(contains(s, "1000")) << "the middle is elided";
  EXPECT_LT(s.size(), 2000u);
  std::string m = zae::zeros({50, 50}).str();
  EXPECT_TRUE(contains(m, "...")) << m.substr(0, 200);
  EXPECT_FALSE(contains(zae::zeros({10, 10}).str(), "..."));
  // Empty and 0-dim tensors print too.
  EXPECT_TRUE(contains(zae::zeros({0}).str(), "tensor(")) << zae::zeros({0}).str();
  EXPECT_TRUE(contains(zae::scalar_tensor(2.5).str(), "2.5")) << zae::scalar_tensor(2.5).str();
  EXPECT_TRUE(contains(iota({2, 3}).t().str(), "5")) << "non-contiguous tensors print";
}

}  // namespace
