"""What Muon costs in a step: the default recipe's update (llama block, vocabulary 4,096,
batch 16) with `--optimizer muon` against the same update with AdamW for every weight, in
one process, interleaved round by round, at each size, in the runtime `auto` chooses for
that shape on this machine. Muon's share is (muon - adamw) / muon.

    python benchmarks/muon_cost.py [--sizes nano,micro,milli,mini] [--rounds 5] [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tui_gpt.core import estimate, process  # noqa: E402
from tui_gpt.core.bench import random_batch_trainer  # noqa: E402
from tui_gpt.core.config import ModelChoice, TrainConfig  # noqa: E402
from tui_gpt.core.device import Runtime, resolve_threads  # noqa: E402

CONTEXT = {"nano": 64, "micro": 64, "milli": 128, "mini": 128}
VOCAB, BATCH = 4096, 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="nano,micro,milli,mini")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    print("| size | context | runtime | AdamW ms/step | Muon ms/step | Muon's share |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for size in args.sizes.split(","):
        ctx = CONTEXT[size]
        base = Runtime(torch.device("cpu"), "fp32", resolve_threads(None))
        cfg = TrainConfig(batch_size=BATCH, optimizer="muon", precision="auto")
        shape = ModelChoice(size, arch="llama", dropout=0.0).config(VOCAB, ctx)
        runtime, _, _ = estimate.fastest(shape, cfg, ctx, base)
        trainers = {
            opt: random_batch_trainer(size, ctx, replace(cfg, optimizer=opt), runtime,
                                      vocab_size=VOCAB, arch="llama", dropout=0.0)  # fmt: skip
            for opt in ("adamw", "muon")
        }
        times: dict[str, list[float]] = {opt: [] for opt in trainers}
        with process.reusing_memory():
            for _ in range(args.rounds):
                for opt, (trainer, x, y) in trainers.items():
                    trainer.update(x, y)  # warm after the other's steps
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        trainer.update(x, y)
                    times[opt].append((time.perf_counter() - start) / args.steps)
        adamw, muon = (statistics.median(times[o]) * 1000 for o in ("adamw", "muon"))
        print(f"| {size} | {ctx} | {runtime.label} | {adamw:,.1f} | {muon:,.1f} | "
              f"{(muon - adamw) / muon:.0%} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
