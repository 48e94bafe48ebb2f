#!/usr/bin/env python3
"""PyTorch peer of benchmarks/bench_cuda_gpt2.cpp: GPT-2 124M training steps on the same GPU
in the same call, eager and torch.compile.

The model is nanoGPT's GPT-2 (tests/fixtures/gpt2_torch.py with flash=True: attention through
F.scaled_dot_product_attention(is_causal=True)), GPT-2's init, vocab 50257, context 1024,
12 layers, 12 heads, 768 channels; batch 16 x 1024 random tokens (fixed seed); bfloat16
autocast with float32 parameters; torch.optim.AdamW(lr=1e-4, fused=True). One step =
zero_grad + forward + cross_entropy + backward + optimizer step, the loss not read back.
Timing as the C++ benchmark: validate (3 steps: finite losses, the first near ln(50257), the
last lower), warm up (torch.compile compiles here), then 3 rounds of `steps` steps timed on the
host from a synchronised start to a synchronize; median round / steps. Peak memory:
max_memory_allocated from before the model is built.

Usage: python3 benchmarks/torch_cuda_gpt2.py [zae bench log with a GPT2 line] [--no-compile]
Prints "TORCH_GPT2 mode ms/step tokens/s peak_GiB" lines and, given the zae log, RATIO_GPT2
lines (zae tokens/s / PyTorch's, > 1: zae faster) against eager and torch.compile.
"""
import math
import os
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import gpt2_torch  # noqa: E402

VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD = 50257, 1024, 12, 12, 768
BATCH, SEQ = 16, 1024


def run(compile_model, steps=10):
    dev = torch.device("cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    model = gpt2_torch.GPT(VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD, flash=True)
    gpt2_torch.init_gpt2(model, seed=1234)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    g = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=g).to(dev)
    idx, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    fwd = torch.compile(model) if compile_model else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(idx)
            loss = F.cross_entropy(logits.view(-1, VOCAB).float(), targets.view(-1))
        loss.backward()
        opt.step()
        return loss

    losses = [step().item() for _ in range(3)]
    if not (all(math.isfinite(v) for v in losses) and abs(losses[0] - math.log(VOCAB)) < 1.0
            and losses[-1] < losses[0]):
        sys.exit(f"torch gpt2 validation failed: {losses}")
    for _ in range(2):
        step()
    rounds = []
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        rounds.append((time.perf_counter() - t0) / steps * 1e3)
    ms = statistics.median(rounds)
    return ms, BATCH * SEQ / ms * 1e3, torch.cuda.max_memory_allocated() / 2**30


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    ours = None
    if args:
        for line in open(args[0]):
            m = re.match(r"GPT2 zae ([\d.]+) ([\d.]+) ([\d.]+)", line)
            if m:
                ours = (float(m[1]), float(m[2]), float(m[3]))
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}")
    modes = ["eager"] + ([] if "--no-compile" in sys.argv else ["compile"])
    for mode in modes:
        ms, tps, peak = run(mode == "compile")
        print(f"TORCH_GPT2 {mode} {ms:.3f} {tps:.0f} {peak:.2f}", flush=True)
        if ours:
            print(f"RATIO_GPT2 zae {ours[1]:.0f} tok/s ({ours[2]:.2f} GiB) vs torch-{mode} {tps:.0f} tok/s "
                  f"({peak:.2f} GiB): {ours[1] / tps:.2f}x; llm.c (REFERENCE.md) 528k tok/s, 8.8 GiB: "
                  f"{ours[1] / 528e3:.2f}x", flush=True)


if __name__ == "__main__":
    main()
