"""The torch.compile lever at the seed configuration: compile time, then steps/s against
eager, interleaved.

    python benchmarks/compile_probe.py [--steps 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tui_gpt.core.config import model_config
from tui_gpt.core.device import autocast
from tui_gpt.core.model import GPT

CPU = torch.device("cpu")


def step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    with autocast(CPU, "bf16"):
        logits = model(x)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten()).backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = torch.randint(0, 50257, (2, 256)), torch.randint(0, 50257, (2, 256))
    models = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(123)
        model = GPT(model_config("gpt2-small", 50257, 256)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1, fused=True)
        run = torch.compile(model) if name == "compiled" else model
        start = time.perf_counter()
        step(run, opt, x, y)
        print(
            f"{name}: first step (compile included) {time.perf_counter() - start:.1f} s", flush=True
        )
        models[name] = (run, opt)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (run, opt) in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(run, opt, x, y)
            times[name].append((time.perf_counter() - start) / args.steps)
    for name, ts in times.items():
        print(
            f"{name}: {512 / statistics.median(ts):.0f} tok/s (median of {args.rounds} rounds x {args.steps} steps)"
        )


if __name__ == "__main__":
    main()
