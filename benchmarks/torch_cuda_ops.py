#!/usr/bin/env python3
"""PyTorch's timings of the ops bench_cuda_kernels times, on the same GPU in the same call.

Usage (on the GPU machine, after bench_cuda_kernels wrote its log):
    python3 benchmarks/torch_cuda_ops.py [bench.log]
Prints "TORCH name dtype shape ms GB/s" lines and, given the zae log, a RATIO table:
zae GB/s (or TFLOP/s) divided by PyTorch's for each kernel (> 1: zae is faster).
Timing: CUDA events around back-to-back calls after warm-up, median of 5 rounds,
exactly as the C++ benchmark does.
"""
import re
import statistics
import sys

import torch


def time_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    rounds = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        b.synchronize()
        rounds.append(a.elapsed_time(b) / iters)
    return statistics.median(rounds)


DT = {"float32": torch.float32, "bfloat16": torch.bfloat16}
rows = {}


def report(name, dtype, shape, nbytes, ms, tflops=None):
    gbs = nbytes / (ms * 1e-3) / 1e9 if nbytes else 0.0
    rows[(name, dtype)] = tflops if tflops is not None else gbs
    print(f"TORCH {name} {dtype} {shape} {ms:.4f} {gbs:.1f}" + (f" {tflops:.1f}TF" if tflops else ""), flush=True)


def main():
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
    for dname, dt in DT.items():
        es = torch.finfo(dt).bits // 8
        n = 1 << 26
        a, b = torch.randn(n, device=dev, dtype=dt), torch.randn(n, device=dev, dtype=dt)
        report("add", dname, "67108864", 3 * n * es, time_ms(lambda: torch.add(a, b), 20))
        report("sum", dname, "67108864", n * es, time_ms(lambda: a.sum(), 20))
        x = torch.randn(16384, 4096, device=dev, dtype=dt)
        report("softmax", dname, "16384x4096", 2 * x.numel() * es, time_ms(lambda: torch.softmax(x, -1), 10))
        x = torch.randn(32768, 768, device=dev, dtype=dt)
        w, bias = torch.ones(768, device=dev, dtype=dt), torch.zeros(768, device=dev, dtype=dt)
        ln = torch.nn.functional.layer_norm
        with torch.no_grad():
            report("layer_norm_fwd", dname, "32768x768", 2 * x.numel() * es,
                   time_ms(lambda: ln(x, (768,), w, bias), 10))
        xg, wg, bg = (t.detach().requires_grad_() for t in (x, w, bias))
        dy = torch.randn_like(x)
        report("layer_norm_fwd_bwd", dname, "32768x768", 5 * x.numel() * es,
               time_ms(lambda: ln(xg, (768,), wg, bg).backward(dy), 10))
        logits = torch.randn(8192, 50257, device=dev, dtype=dt, requires_grad=True)
        target = torch.randint(0, 50257, (8192,), device=dev)
        ce = torch.nn.functional.cross_entropy
        report("cross_entropy_fwd_bwd", dname, "8192x50257", 3 * logits.numel() * es,
               time_ms(lambda: ce(logits, target).backward(), 5))
        del a, b, x, xg, dy, logits
        torch.cuda.empty_cache()
    p = torch.randn(124_000_000, device=dev, requires_grad=True)
    p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW([p], lr=1e-4, fused=True)
    report("adamw_step", "float32", "124M", 7 * p.numel() * 4, time_ms(opt.step, 5))
    for dname, dt, s in (("float32", torch.float32, 4096), ("bfloat16", torch.bfloat16, 8192)):
        a, b = torch.randn(s, s, device=dev, dtype=dt), torch.randn(s, s, device=dev, dtype=dt)
        ms = time_ms(lambda: a @ b, 10)
        report("matmul", dname, f"{s}x{s}x{s}", 0, ms, tflops=2 * s**3 / (ms * 1e-3) / 1e12)

    if len(sys.argv) > 1:
        zae = {}
        with open(sys.argv[1]) as f:
            for line in f:
                m = re.match(r"KERNEL (\S+) (\S+) (\S+) \S+ \S+ (\S+) ", line)
                if m:
                    zae[(m.group(1), m.group(2))] = float(m.group(4))
                m = re.match(r"MATMUL (\S+) (\S+) zae (\S+) TFLOP/s", line)
                if m:
                    zae[("matmul", m.group(1))] = float(m.group(3))
        print("RATIO kernel                 dtype      zae      torch    zae/torch")
        for key, t in rows.items():
            z = zae.get(key)
            ratio = f"{z / t:8.3f}" if z and t else "     n/a"
            print(f"RATIO {key[0]:22s} {key[1]:9s} {z or 0:8.1f} {t:8.1f} {ratio}")


if __name__ == "__main__":
    main()
