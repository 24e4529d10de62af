"""Recipes side by side at equal wall time: each variant trained through the real CLI with
the same `--minutes` budget (the whole command's wall time, start-up included), its last
weights scored by `tui-gpt eval` on every token of its validation split, in bits per byte.
This is how the default recipe's settings were chosen (docs/recipes.md).

Each variant is the default recipe plus some flags; one per line in a file, or the built-in
list below. Variants run one after the other, never at once (they would share the cores).

    python benchmarks/recipes.py DATA --minutes 0.57 [--variants FILE] [--json OUT]
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
VARIANTS = [
    "",  # the default recipe as it is
    "--optimizer adamw",
    "--context-length 128",
    "--batch-size 8",
    "--muon-lr 0.04",
    "--lr 3e-3",
    "--decay-fraction 0.5",
    "--preset nano",
]


def run_variant(data: Path, minutes: float, flags: str, work: Path) -> dict:
    env = {**os.environ, "TUI_GPT_DATA_DIR": str(work / "data"),
           "TUI_GPT_CACHE_DIR": str(work / "cache")}  # fmt: skip
    runs = work / "runs"
    cli = [sys.executable, "-m", "tui_gpt", "--run-dir", str(runs)]
    started = time.perf_counter()
    out = subprocess.run([*cli, "train", str(data), "--minutes", str(minutes), *flags.split()],
                         cwd=ROOT, capture_output=True, text=True, env=env)  # fmt: skip
    seconds = time.perf_counter() - started
    if out.returncode:
        return {"flags": flags, "error": out.stderr.strip()[-300:]}
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    scored = json.loads(subprocess.run([*cli, "eval", run.name, "--checkpoint", "latest", "--json"],
                                       cwd=ROOT, capture_output=True, text=True, env=env).stdout)  # fmt: skip
    steps = sum(1 for line in (run / "events.jsonl").open() if '"event": "step"' in line)
    return {"flags": flags or "(default)", "seconds": round(seconds, 1), "steps": steps,
            "val_bpb": round(scored["bpb"], 4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--variants", type=Path, help="a file of flag lines (default: the built-in list)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    variants = VARIANTS
    if args.variants:
        variants = [line.strip() for line in args.variants.read_text().splitlines()
                    if not line.startswith("#")]  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, flags in enumerate(variants):
            # A fresh data folder each: the fitted tokenizer is fitted (and paid for) each time.
            result = run_variant(args.data, args.minutes, flags, Path(tmp) / str(i))
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
