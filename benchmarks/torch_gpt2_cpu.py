#!/usr/bin/python3
"""PyTorch peer of benchmarks/bench_cpu_gpt2.cpp: the same GPT-2 training step on the CPU.

The model is nanoGPT's GPT-2 written out (as tests/fixtures/gen_gpt2.py and nn::GPT2):
token + position embeddings, pre-LayerNorm blocks (x + attn(ln_1(x)), x + mlp(ln_2(x))),
causal self-attention computed explicitly (c_attn C -> 3C, q k^T / sqrt(hd), causal mask,
softmax, @ v, c_proj), MLP c_fc (C -> 4C) -> GELU(tanh) -> c_proj, ln_f, lm_head tied to
wte; LayerNorm eps 1e-5, dropout 0; GPT-2's init (N(0, 0.02), residual projections
N(0, 0.02 / sqrt(2 n_layer)), biases 0).
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
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD = 8192, 128, 4, 4, 256
BATCH, SEQ = 8, 128


class CausalSelfAttention(nn.Module):
    def __init__(self, c, nh, block):
        super().__init__()
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.nh = nh
        # the causal mask, built once (nanoGPT's registered buffer)
        self.register_buffer("mask", torch.triu(torch.ones(block, block, dtype=torch.bool), diagonal=1))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        hd = c // self.nh
        q = q.view(b, t, self.nh, hd).transpose(1, 2)
        k = k.view(b, t, self.nh, hd).transpose(1, 2)
        v = v.view(b, t, self.nh, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = F.softmax(att.masked_fill(self.mask[:t, :t], float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c, 4 * c)
        self.c_proj = nn.Linear(4 * c, c)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c, nh, block):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c)
        self.attn = CausalSelfAttention(c, nh, block)
        self.ln_2 = nn.LayerNorm(c)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(VOCAB, N_EMBD),
            wpe=nn.Embedding(BLOCK, N_EMBD),
            h=nn.ModuleList([Block(N_EMBD, N_HEAD, BLOCK) for _ in range(N_LAYER)]),
            ln_f=nn.LayerNorm(N_EMBD)))
        self.lm_head = nn.Linear(N_EMBD, VOCAB, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        std_proj = 0.02 / math.sqrt(2 * N_LAYER)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if ".ln_" in name or name.startswith("transformer.ln_f"):
                    continue  # LayerNorm keeps weight 1, bias 0
                if name.endswith("bias"):
                    p.zero_()
                else:
                    p.normal_(0.0, std_proj if name.endswith("c_proj.weight") else 0.02)

    def loss(self, idx, targets):
        pos = torch.arange(idx.shape[1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
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
    for _ in range(2):
        step()
    per_step, cpu_per_step = [], []
    for _ in range(repetitions):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        per_step.append(elapsed / n * 1e3)
        cpu_per_step.append((time.process_time() - c0) / n * 1e3)
    return statistics.median(per_step), per_step, statistics.median(cpu_per_step), losses


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
