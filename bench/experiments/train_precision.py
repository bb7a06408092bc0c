"""Training-step throughput on the CPU: float32 vs bfloat16 autocast, side by side in one run.

    .venv/bin/python bench/experiments/train_precision.py [--threads 1] [--batch 32] [--size 112] [--rounds 2]

Each round times forward + backward + SGD step of every backbone in both precisions (best of 3 steps
after a warm-up step) and prints images/s and the bf16/fp32 ratio. bfloat16 pays where the CPU has
AVX512-BF16 or AMX; elsewhere it is emulated and slower.
"""
from __future__ import annotations

import argparse
import time

import torch

from facecore.core.runtime import set_threads
from facecore.networks.models import create_model


def step_rate(model: torch.nn.Module, x: torch.Tensor, bf16: bool, steps: int = 3) -> float:
    """Images per second of the fastest of ``steps`` training steps (one warm-up step first)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return len(x) / min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--archs", default="inceptionresnetv1,efficientnet-b0")
    a = ap.parse_args()
    set_threads(a.threads)
    print(f"{a.threads} thread(s), batch {a.batch}, {a.size}x{a.size}")
    for arch in a.archs.split(","):
        model = create_model(arch, embedding_dim=512).to(memory_format=torch.channels_last).train()
        x = torch.randn(a.batch, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
        for r in range(a.rounds):
            fp32, bf16 = step_rate(model, x, False), step_rate(model, x, True)
            print(f"{arch:18s} round {r + 1}: fp32 {fp32:6.1f} img/s, bf16 {bf16:6.1f} img/s, ratio {bf16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
