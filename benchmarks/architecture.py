"""The chapter's GPT-2 block against the modern one (`--arch llama`) and its options, at the
sizes people train on a CPU: each variant trained through the real CLI for the same number
of steps on the same data, then scored on the whole validation split (`tui-gpt eval`: every
token once, bits per byte). Equal steps: quality per token seen, whatever the hardware;
the wall time of each is reported beside it.

    python benchmarks/architecture.py [--data PATH] [--sizes micro mini] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))

VARIANTS = {
    "gpt2": [],
    "llama": ["--arch", "llama"],
    "llama + QK-norm": ["--arch", "llama", "--qk-norm"],
    "llama, KV heads / 2": ["--arch", "llama", "--kv-heads", "HALF"],
}
# Per size: (preset, context, batch, steps, peak lr); warmup 10% and cosine to lr / 10.
SIZES = {"micro": ("micro", 128, 16, 600, 2e-3), "mini": ("mini", 256, 4, 300, 1e-3)}
HEADS = {"micro": 4, "mini": 6}


def tui(*args: str, runs: Path) -> str:
    cmd = [sys.executable, "-m", "tui_gpt", "--run-dir", str(runs), *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(args[:3])}: {out.stderr.strip()}")
    return out.stdout


def measure(data: Path, size: str, variant: str, runs: Path) -> dict:
    preset, ctx, batch, steps, lr = SIZES[size]
    extra = [a if a != "HALF" else str(HEADS[size] // 2) for a in VARIANTS[variant]]
    before = set(runs.glob("*")) if runs.exists() else set()
    started = time.perf_counter()
    tui("train", str(data), "--preset", preset, "--context-length", str(ctx), "--tokenizer",
        "byte", "--batch-size", str(batch), "--max-steps", str(steps), "--epochs", "100",
        "--lr", str(lr), "--min-lr", str(lr / 10), "--warmup-steps", str(steps // 10),
        "--schedule", "cosine", "--dropout", "0", "--eval-freq", str(steps), "--eval-iter", "1",
        "--sample-tokens", "0", *extra, runs=runs)  # fmt: skip
    seconds = time.perf_counter() - started
    [run] = [p for p in runs.glob("*") if p not in before]
    scored = json.loads(tui("eval", run.name, "--checkpoint", "latest", "--json", runs=runs))
    return {"size": size, "variant": variant, "steps": steps, "train_seconds": round(seconds, 1),
            "val_bpb": round(scored["bpb"], 4), "val_loss": round(scored["loss"], 4),
            "params": json.loads((run / "run.json").read_text())["params"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "tinyshakespeare.txt")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for variant in args.variants:
                row = measure(args.data, size, variant, Path(tmp) / "runs")
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print("\n| size | block | parameters | steps | train s | val bits/byte |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['size']} | {r['variant']} | {r['params']:,} | {r['steps']} | "
              f"{r['train_seconds']} | {r['val_bpb']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
