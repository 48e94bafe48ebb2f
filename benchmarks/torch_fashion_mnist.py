#!/usr/bin/env python3
"""The `zae-train fashion-mnist` job in PyTorch, for side-by-side epoch times.

Same data (Debian's dataset-fashion-mnist files, normalised with mean 0.2860 and
std 0.3530), same models (MLP 784-512-256-10; CNN conv32-pool-conv64-pool-fc128-fc10),
same optimiser (AdamW lr 1e-3, weight decay 1e-4), batch 128, test batches of 1000.
Needs Debian's python3-torch: run with /usr/bin/python3.

    /usr/bin/python3 benchmarks/torch_fashion_mnist.py --model mlp --epochs 1 --threads 2

On the GPU machine (issue 9: wall time to 91% test accuracy, beside
`zae-train fashion-mnist --model cnn --device cuda --target-accuracy 0.91 --epochs 15 --no-bar`):

    python3 benchmarks/torch_fashion_mnist.py --model cnn --device cuda --target-accuracy 0.91 --epochs 15

The data stay in host memory (pinned on CUDA) and every batch is copied to the device, as the
zae job's DataLoader does; the loss is read back every step in both.
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn

ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    x = read_idx(f"{ROOT}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{ROOT}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    x = (x - 0.2860) / 0.3530
    return torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y)


def model(name):
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--target-accuracy", type=float, default=0.0,
                    help="stop after the first epoch whose test accuracy reaches it; print the time to it")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    if cuda:
        xtr, ytr, xte, yte = (t.pin_memory() for t in (xtr, ytr, xte, yte))
    net = model(a.model).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        start = time.perf_counter()
        net.train()
        perm = torch.randperm(len(xtr))
        total = 0.0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            x, y = xtr[idx], ytr[idx]
            if cuda:
                x, y = x.pin_memory().to(dev, non_blocking=True), y.pin_memory().to(dev, non_blocking=True)
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            total += loss.item()
        net.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 1000):
                x, y = xte[i:i + 1000].to(dev, non_blocking=True), yte[i:i + 1000].to(dev, non_blocking=True)
                correct += (net(x).argmax(1) == y).sum().item()
        secs = time.perf_counter() - start
        accuracy = correct / len(xte)
        print(f"torch {a.model} epoch {epoch}: train_loss {total / ((len(xtr) + 127) // 128):.4f} "
              f"test_accuracy {accuracy:.4f} time {secs:.1f} s", flush=True)
        if a.target_accuracy > 0 and accuracy >= a.target_accuracy:
            print(f"torch {a.model} reached {100 * a.target_accuracy:.1f}% test accuracy after {epoch} epoch(s), "
                  f"{time.perf_counter() - t0:.2f} s", flush=True)
            return
    if a.target_accuracy > 0:
        print(f"torch {a.model} did not reach {100 * a.target_accuracy:.1f}% test accuracy in {a.epochs} epoch(s)")


if __name__ == "__main__":
    main()
