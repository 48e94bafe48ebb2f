// nn::checkpoint (activation checkpointing): the output and every gradient equal the plain
// run's bit for bit on the CPU - with dropout inside (the generator is rewound for the
// recompute), under bf16 autocast, with an input that needs no gradient - the intermediate
// activations are not kept, and GPT-2 with checkpoint_blocks trains like without.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/zae.h"
#include "nn/activation.h"
#include "nn/checkpoint.h"
#include "nn/container.h"
#include "nn/dropout.h"
#include "nn/gpt2.h"
#include "nn/linear.h"
#include "tests/support/test_util.h"

namespace {

using namespace zae;
using namespace zae::nn;

std::shared_ptr<Sequential> block(double dropout) {
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
      std::make_shared<Linear>(6, 16), std::make_shared<GELU>(), std::make_shared<Dropout>(dropout),
      std::make_shared<Linear>(16, 6)});
}

struct Outcome {
  Tensor y, x_grad;
  std::vector<Tensor> param_grads;
  uint64_t offset_after = 0;
};

// One forward + backward of sum(block(x) * w), checkpointed or not, from the same seeds.
Outcome run(bool checkpointed, double dropout, DType autocast_dtype = DType::float32, bool x_requires_grad = true) {
  manual_seed(7);
  auto net = block(dropout);
  Tensor x = randn({5, 6});
  Tensor w = randn({5, 6});
  if (x_requires_grad) x.requires_grad_(true);
  manual_seed(99);  // the dropout masks' stream
  Tensor y;
  {
    autocast::Guard cast(autocast_dtype);
    y = checkpointed ? checkpoint(*net, x) : net->forward(x);
  }
  Outcome r;
  r.offset_after = default_generator().offset();
  (y.to(DType::float32) * w).sum().backward();
  r.y = y.detach();
  if (x_requires_grad) r.x_grad = x.grad();
  for (const Tensor& p : net->parameters()) r.param_grads.push_back(p.grad());
  return r;
}

void expect_same(const Outcome& a, const Outcome& b) {
  EXPECT_TRUE(test::same_bits(a.y, b.y)) << "outputs differ";
  EXPECT_TRUE(test::same_bits(a.x_grad, b.x_grad)) << "input gradients differ";
  ASSERT_EQ(a.param_grads.size(), b.param_grads.size());
  for (size_t i = 0; i < a.param_grads.size(); ++i) {
    ASSERT_TRUE(a.param_grads[i].defined() && b.param_grads[i].defined()) << "parameter " << i << " got no gradient";
    EXPECT_TRUE(test::same_bits(a.param_grads[i], b.param_grads[i])) << "parameter " << i;
  }
}

TEST(Checkpoint, OutputAndGradientsEqualThePlainRunBitwise) {
  const Outcome plain = run(false, 0.0), ck = run(true, 0.0);
  expect_same(plain, ck);
  EXPECT_EQ(plain.offset_after, ck.offset_after);
}

TEST(Checkpoint, DropoutMasksRepeatInTheRecompute) {
  const Outcome plain = run(false, 0.5), ck = run(true, 0.5);
  expect_same(plain, ck);
  // The recompute rewound the generator and put it back: the stream goes on where the
  // forward left it, as without checkpointing.
  EXPECT_EQ(plain.offset_after, ck.offset_after);
}

TEST(Checkpoint, RecomputesUnderTheForwardsAutocastDtype) {
  const Outcome plain = run(false, 0.0, DType::bfloat16), ck = run(true, 0.0, DType::bfloat16);
  EXPECT_EQ(ck.y.dtype(), DType::bfloat16);
  expect_same(plain, ck);
}

TEST(Checkpoint, ParametersGetGradientsWhenTheInputNeedsNone) {
  const Outcome plain = run(false, 0.0, DType::float32, false), ck = run(true, 0.0, DType::float32, false);
  expect_same(plain, ck);
}

TEST(Checkpoint, KeepsOnlyTheInputAndIsPlainUnderNoGrad) {
  manual_seed(3);
  auto net = block(0.0);
  Tensor x = randn({4, 6}).requires_grad_(true);
  Tensor y = checkpoint(*net, x);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_EQ(y.grad_fn()->name(), "CheckpointBackward");
  // The graph behind y is one node with edges to x and the 4 parameters, not the block's ops.
  EXPECT_EQ(y.grad_fn()->next_edges.size(), 5u);
  for (const auto& e : y.grad_fn()->next_edges) EXPECT_TRUE(e.fn == nullptr || e.fn->is_accumulator());
  {
    NoGradGuard no_grad;
    Tensor z = checkpoint(*net, x);
    EXPECT_FALSE(z.requires_grad());
    EXPECT_TRUE(test::same_bits(z, y.detach()));
  }
  test::expect_throws_with([&] { checkpoint(*net, Tensor()); }, {"checkpoint", "undefined input"});
}

TEST(Checkpoint, Gpt2WithCheckpointedBlocksHasTheSameLossAndGradients) {
  GPT2Config c;
  c.vocab_size = 64;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 32;
  Tensor idx = randint(0, c.vocab_size, {2, 8}, {.dtype = DType::int64});
  Tensor targets = randint(0, c.vocab_size, {2, 8}, {.dtype = DType::int64});
  auto loss_and_grads = [&](bool checkpointed) {
    manual_seed(1234);
    GPT2Config cc = c;
    cc.checkpoint_blocks = checkpointed;
    GPT2 model(cc);
    Tensor loss = model.loss(idx, targets);
    loss.backward();
    std::vector<Tensor> out{loss.detach()};
    for (const Tensor& p : model.parameters()) out.push_back(p.grad());
    return out;
  };
  const auto plain = loss_and_grads(false), ck = loss_and_grads(true);
  ASSERT_EQ(plain.size(), ck.size());
  EXPECT_NEAR(ck[0].item(), plain[0].item(), 1e-6);
  for (size_t i = 1; i < plain.size(); ++i) {
    ASSERT_TRUE(ck[i].defined()) << "parameter " << i - 1 << " got no gradient with checkpointed blocks";
    EXPECT_LE(test::max_abs_diff(ck[i], plain[i]), 1e-6 * (1.0 + test::max_abs(plain[i]))) << "parameter " << i - 1;
  }
}

}  // namespace
