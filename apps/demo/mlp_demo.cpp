#include "apps/demo/mlp_demo.h"

#include <cmath>

#include "engine/zae.h"

namespace zae::demo {

std::vector<double> train_mlp_demo(const MlpDemoOptions& opts, const std::function<void(int64_t, double)>& on_step) {
  ZAE_CHECK(opts.samples >= 4 && opts.samples % 4 == 0, "demo: samples must be a positive multiple of 4, got ",
            opts.samples);
  Generator gen(opts.seed);
  const int64_t n = opts.samples, per_class = n / 4;

  // Data: class c sits at corner (+-1, +-1) with noise 0.15. x (n, 2), y (n).
  std::vector<float> centers = {-1, -1, -1, 1, 1, -1, 1, 1};
  Tensor noise = randn({n, 2}, {}, &gen) * 0.15;
  std::vector<float> xs(static_cast<size_t>(n * 2));
  std::vector<int64_t> ys(static_cast<size_t>(n));
  std::vector<float> nz = noise.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = i / per_class;
    ys[i] = c;
    xs[2 * i] = centers[2 * c] + nz[2 * i];
    xs[2 * i + 1] = centers[2 * c + 1] + nz[2 * i + 1];
  }
  Tensor x = tensor(xs, {n, 2});
  Tensor y = tensor(ys, {n});

  // Parameters, initialised like PyTorch's Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  auto init = [&](Shape shape, int64_t fan_in) {
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    Tensor w = rand(shape, {}, &gen) * (2 * bound) - bound;
    return w.detach().requires_grad_(true);
  };
  Tensor w1 = init({opts.hidden, 2}, 2), b1 = init({opts.hidden}, 2);
  Tensor w2 = init({4, opts.hidden}, opts.hidden), b2 = init({4}, opts.hidden);
  std::vector<Tensor> params = {w1, b1, w2, b2};

  std::vector<double> losses;
  for (int64_t step = 0; step < opts.steps; ++step) {
    Tensor hidden = tanh(linear(x, w1, b1));       // (n, hidden)
    Tensor logits = linear(hidden, w2, b2);         // (n, 4)
    Tensor loss = cross_entropy(logits, y);         // ()
    for (Tensor& p : params) p.set_grad(Tensor());  // zero_grad(set_to_none)
    loss.backward();
    {
      NoGradGuard no_grad;  // plain SGD: p -= lr * grad
      for (Tensor& p : params) p.add_(p.grad(), -opts.lr);
    }
    losses.push_back(loss.item());
    if (on_step) on_step(step, losses.back());
  }
  return losses;
}

}  // namespace zae::demo
