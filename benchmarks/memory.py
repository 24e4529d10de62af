"""The memory estimate (core/memory.py) against measured peaks, and what activation
checkpointing and gradient accumulation cost and save.

    python benchmarks/memory.py            # about 6 minutes on 2 cores

Each shape runs `tui-gpt bench train --json` in a fresh process: the training's peak is the
process's peak resident memory minus what it held before building the model. Prints a
markdown table.
"""

from __future__ import annotations

import json
import subprocess
import sys

SHAPES = [
    ("gpt2-small", 256, 2, []),
    ("gpt2-small", 256, 4, []),
    ("gpt2-small", 256, 1, ["--grad-accum", "4"]),
    ("mini", 512, 8, []),
    ("gpt2-medium", 1024, 2, []),
    ("gpt2-medium", 1024, 2, ["--activation-checkpointing"]),
]


def measure(preset: str, ctx: int, batch: int, extra: list[str], steps: int) -> dict:
    cmd = [sys.executable, "-m", "tui_gpt", "bench", "train", "--preset", preset,
           "--context-length", str(ctx), "--batch-size", str(batch), "--steps", str(steps),
           "--json", *extra]  # fmt: skip
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    print("| preset | context | batch | options | estimate | measured | estimate / measured "
          "| tok/s | MFU |")  # fmt: skip
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for preset, ctx, batch, extra in SHAPES:
        r = measure(preset, ctx, batch, extra, steps)
        est, got = r["memory_estimate_mib"], r["training_peak_mib"]
        print(
            f"| {preset} | {ctx} | {batch} | {' '.join(extra) or '-'} | {est:,.0f} MiB "
            f"| {got:,.0f} MiB | {est / got:.2f} | {r['tok_per_s']:,.0f} | {r['mfu']:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
