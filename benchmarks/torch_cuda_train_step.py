#!/usr/bin/env python3
"""PyTorch peer of benchmarks/bench_cuda_train_step.cpp, on the same GPU in the same call.

The same models (mlp 784-1024-1024-10 at batch 256 and 4096, cnn conv32-conv64-fc128 at
batch 256), the same step (zero_grad + forward + cross_entropy + backward + AdamW(lr=1e-3)
step, the loss not read back), float32 and bfloat16 autocast, timed
  eager  - PyTorch's default AdamW (foreach)
  graph  - the whole step captured with torch.cuda.graph and replayed (AdamW(capturable=True),
           static input tensors), PyTorch's documented whole-network capture recipe.
Timing as the C++ benchmark: validate (5 steps: finite, first near ln(10), last lower),
warm up, 5 rounds of `steps` steps timed on the host from a synchronised start to a
synchronize after the last step; median round / steps. Peak memory: max_memory_allocated
from before the model is built.

Usage: python3 benchmarks/torch_cuda_train_step.py [zae bench log with TRAIN lines]
Prints "TORCH_TRAIN model batch precision mode ms peak_MiB" lines and, given the zae log,
"RATIO_TRAIN ..." lines: PyTorch's ms / zae's ms for the same configuration (> 1: zae faster),
against both PyTorch eager and PyTorch with CUDA graphs.
"""
import math
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = 10


def make_model(cnn):
    if not cnn:
        return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, CLASSES))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, CLASSES))


def run(cnn, batch, bf16, graph, steps):
    dev = torch.device("cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(1234)
    model = make_model(cnn).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, capturable=graph)
    g = torch.Generator().manual_seed(1234)
    shape = (batch, 1, 28, 28) if cnn else (batch, 784)
    x = torch.randn(shape, generator=g).to(dev)
    y = torch.randint(0, CLASSES, (batch,), generator=g).to(dev)

    def step():
        opt.zero_grad(set_to_none=not graph)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    losses = [step().item() for _ in range(5)]
    ok = all(math.isfinite(v) for v in losses) and abs(losses[0] - math.log(CLASSES)) < 1.0 and losses[-1] < losses[0]
    if not ok:
        sys.exit(f"torch train step validation failed: {losses}")
    fn = step
    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        cg = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(cg):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                static_loss = F.cross_entropy(model(x), y)
            static_loss.backward()
            opt.step()
        fn = cg.replay
    for _ in range(5):
        fn()
    rounds = []
    for _ in range(5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
        rounds.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(rounds), torch.cuda.max_memory_allocated() / 2**20


def main():
    ours = {}
    if len(sys.argv) > 1:
        for line in open(sys.argv[1]):
            m = re.match(r"TRAIN (\S+) (\d+) (\S+) (\S+) ([\d.]+) ([\d.]+)", line)
            if m:
                ours[(m[1], int(m[2]), m[3], m[4])] = (float(m[5]), float(m[6]))
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}")
    configs = [(False, 256, 100), (False, 4096, 30), (True, 256, 50)]
    theirs = {}
    for bf16 in (False, True):
        for cnn, batch, steps in configs:
            for graph in (False, True):
                name, prec, mode = ("cnn" if cnn else "mlp"), ("bf16" if bf16 else "fp32"), ("graph" if graph else "eager")
                ms, peak = run(cnn, batch, bf16, graph, steps)
                theirs[(name, batch, prec, mode)] = (ms, peak)
                print(f"TORCH_TRAIN {name} {batch} {prec} {mode} {ms:.4f} {peak:.1f}", flush=True)
    for (name, batch, prec, mode), (ms, peak) in sorted(ours.items()):
        for peer in ("eager", "graph"):
            t = theirs.get((name, batch, prec, peer))
            if t:
                print(f"RATIO_TRAIN {name} b{batch} {prec} zae-{mode} {ms:.4f} ms vs torch-{peer} {t[0]:.4f} ms: "
                      f"{t[0] / ms:.2f}x  peak {peak:.0f} vs {t[1]:.0f} MiB")


if __name__ == "__main__":
    main()
