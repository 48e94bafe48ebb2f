#!/usr/bin/python3
"""PyTorch peer of benchmarks/bench_cpu_gpt2.cpp: the same GPT-2 training step on the CPU.

The model is nanoGPT's GPT-2 (tests/fixtures/gpt2_torch.py, shared with gen_gpt2.py; as nn::GPT2):
token + position embeddings, pre-LayerNorm blocks (x + attn(ln_1(x)), x + mlp(ln_2(x))),
causal self-attention computed explicitly (c_attn C -> 3C, q k^T / sqrt(hd), causal mask,
softmax, @ v, c_proj), MLP c_fc (C -> 4C) -> GELU(tanh) -> c_proj, ln_f, lm_head tied to
wte; LayerNorm eps 1e-5, dropout 0; GPT-2's init (N(0, 0.02), residual projections
N(0, 0.02 / sqrt(2 n_layer)), biases 0; seed 1234).
Config: vocab 8192, block 128, n_layer 4, n_head 4, n_embd 256; batch 8 x 128 random tokens
(fixed seed), float32. One step = zero_grad + forward + cross_entropy + backward +
torch.optim.AdamW(lr=1e-3, weight_decay=0) step (foreach left at its default).
Timing as the zae benchmark: validate (5 steps on the fixed batch: finite losses, the first
near ln(8192), each lower than the one before), warm up, then `--repetitions` repetitions
of at least `--min-time` seconds of steps each; the ms/step of each repetition is its wall
time / its step count; prints the median (and the median process CPU time per step).

Run with Debian's PyTorch 1.13: /usr/bin/python3 benchmarks/torch_gpt2_cpu.py
Output: one line,
  "torch gpt2 <median wall ms/step> <tokens/s> <threads> <median process CPU ms/step>"
(CPU time of all threads: the work done), preceded by '#' comment lines.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

from torch_timing import time_steps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import gpt2_torch  # noqa: E402  (the nanoGPT model, shared with the parity fixture)

VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD = 8192, 128, 4, 4, 256
BATCH, SEQ = 8, 128


class GPT(gpt2_torch.GPT):
    def __init__(self):
        super().__init__(VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD)
        gpt2_torch.init_gpt2(self, seed=1234)

    def loss(self, idx, targets):
        logits = self(idx)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)


def bench(repetitions, min_time):
    torch.manual_seed(1234)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=g)
    idx, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step():
        opt.zero_grad()
        loss = model.loss(idx, targets)
        loss.backward()
        opt.step()
        return loss

    losses = [step().item() for _ in range(5)]
    ok = (all(math.isfinite(v) for v in losses) and abs(losses[0] - math.log(VOCAB)) < 1.0
          and all(b < a for a, b in zip(losses, losses[1:])))
    if not ok:
        sys.exit(f"torch gpt2: validation failed, losses {losses} "
                 f"(expected finite, first near ln({VOCAB}) = {math.log(VOCAB):.3f}, decreasing)")
    return (*time_steps(step, repetitions, min_time), losses)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--min-time", type=float, default=3.0, help="seconds per repetition")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"repetitions {a.repetitions} x >= {a.min_time} s")
    med, reps, cpu, losses = bench(a.repetitions, a.min_time)
    print("# torch gpt2 validation losses: " + " ".join(f"{v:.4f}" for v in losses))
    print("# torch gpt2 per repetition (ms/step): " + " ".join(f"{v:.2f}" for v in reps))
    tokens = BATCH * SEQ
    print(f"torch gpt2 {med:.3f} {tokens / med * 1e3:.1f} {torch.get_num_threads()} {cpu:.3f}", flush=True)


if __name__ == "__main__":
    main()
