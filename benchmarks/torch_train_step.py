#!/usr/bin/python3
"""PyTorch peer of benchmarks/bench_cpu_train_step.cpp: the same CPU training step.

One step = zero_grad + forward + cross_entropy + backward + AdamW(lr=1e-3) step, float32,
batch 256, on one fixed random batch, for
  mlp  Linear(784,1024)-ReLU-Linear(1024,1024)-ReLU-Linear(1024,10)
  cnn  Conv2d(1,32,3,p=1)-ReLU-MaxPool2d(2)-Conv2d(32,64,3,p=1)-ReLU-MaxPool2d(2)-
       Flatten-Linear(3136,128)-ReLU-Linear(128,10) on 28x28.
Timing as the zae benchmark: validate (5 steps: finite losses, decreasing), warm up,
then `--repetitions` repetitions of at least `--min-time` seconds of steps each; the
ms/step of each repetition is its wall time / its step count; prints the median (and
the median process CPU time per step).

Run with Debian's PyTorch 1.13: /usr/bin/python3 benchmarks/torch_train_step.py
Output: one line per model,
  "torch <model> <median wall ms/step> <samples/s> <threads> <median process CPU ms/step>"
(CPU time of all threads: the work done), preceded by '#' comment lines.
"""
import argparse
import math
import sys

import torch
import torch.nn as nn

from torch_timing import time_steps

BATCH = 256
CLASSES = 10


def make_model(name):
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, CLASSES))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, CLASSES))


def bench(name, repetitions, min_time):
    torch.manual_seed(1234)
    model = make_model(name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    shape = (BATCH, 784) if name == "mlp" else (BATCH, 1, 28, 28)
    x = torch.randn(shape, dtype=torch.float32)
    y = torch.randint(0, CLASSES, (BATCH,))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    losses = [step().item() for _ in range(5)]
    if not (all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]):
        sys.exit(f"torch {name}: validation failed, losses {losses}")
    return time_steps(step, repetitions, min_time)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per repetition")
    p.add_argument("models", nargs="*", default=["mlp", "cnn"], help="mlp and/or cnn (default both)")
    a = p.parse_args()
    for name in a.models:
        if name not in ("mlp", "cnn"):
            p.error(f"unknown model {name!r} (expected mlp or cnn)")
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"repetitions {a.repetitions} x >= {a.min_time} s")
    for name in a.models:
        med, reps, cpu = bench(name, a.repetitions, a.min_time)
        print(f"# torch {name} per repetition (ms/step): " + " ".join(f"{v:.2f}" for v in reps))
        print(f"torch {name} {med:.3f} {BATCH / med * 1e3:.1f} {torch.get_num_threads()} {cpu:.3f}", flush=True)


if __name__ == "__main__":
    main()
