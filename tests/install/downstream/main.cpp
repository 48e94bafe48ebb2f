// Uses the installed headers and library: y = sum(x * x) and its gradient 2x.
#include <cstdio>

#include "engine/zae.h"

int main() {
  zae::Tensor x = zae::tensor({1.0, 2.0, 3.0}, {3}, {.dtype = zae::DType::float64, .requires_grad = true});
  zae::Tensor y = (x * x).sum();
  y.backward();
  std::vector<double> g = x.grad().to_vector<double>();
  bool ok = y.item() == 14.0 && g[0] == 2.0 && g[1] == 4.0 && g[2] == 6.0;
  std::printf("downstream: y = %g, grad = [%g, %g, %g] -> %s\n", y.item(), g[0], g[1], g[2], ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
