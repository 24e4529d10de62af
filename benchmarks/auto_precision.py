"""Is `--precision auto` the fastest choice at every size people train? The real training
loop (`tui-gpt train`, each run a fresh process), at nano, micro, mini and 124M, in fp32,
bf16 and auto, variants interleaved round by round; tokens/s from the median wall time
between step events after the first ten, and which runtime each run chose (its plan line:
the precision, and under bf16 whether attention ran in fp32).

    python benchmarks/auto_precision.py DATA [--rounds 2] [--steps 40] [--json OUT]

DATA: a text of a megabyte or more (Tiny Shakespeare). Byte tokens for the small sizes,
GPT-2's for 124M (as its preset); the reference recipe's AdamW, dropout 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (preset, tokenizer, context, batch, steps at most)
SHAPES = {
    "nano": ("nano", "byte", 64, 12, None),
    "micro": ("micro", "byte", 64, 12, None),
    "mini": ("mini", "byte", 256, 8, None),
    "124M": ("gpt2-small", "gpt2", 256, 2, 24),
}
PRECISIONS = ("fp32", "bf16", "auto")


def one_run(data: str, shape: str, precision: str, steps: int, runs: Path) -> dict:
    preset, tokenizer, context, batch, most = SHAPES[shape]
    steps = min(steps, most or steps)
    cmd = [sys.executable, "-m", "tui_gpt", "--run-dir", str(runs), "train", data,
           "--recipe", "reference", "--preset", preset, "--tokenizer", tokenizer,
           "--context-length", str(context), "--batch-size", str(batch), "--dropout", "0",
           "--precision", precision, "--max-steps", str(steps), "--eval-freq", "100000",
           "--eval-iter", "1", "--sample-tokens", "0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    times = [e["time"] for e in events if e["event"] == "step"]
    started = next(e for e in events if e["event"] == "run_started")
    skip = min(10, len(times) // 2)
    gaps = [b - a for a, b in zip(times[skip:], times[skip + 1 :], strict=False)]
    step_s = statistics.median(gaps)
    plan = next((line for line in done.stdout.splitlines() if line.startswith("plan:")), "")
    # The plan names the runtime it measured fastest: "(auto: bf16 (fp32 attention) 29 ms a step; ...".
    chose = re.search(r"\(auto: (.+?) [\d,.]+ ms a step", plan)
    return {
        "shape": shape, "precision": precision,
        "chose": chose.group(1) if chose else started["precision"],
        "step_ms": 1000 * step_s, "tokens_per_s": context * batch / step_s, "plan": plan,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TUI_GPT_CACHE_DIR"] = str(Path(tmp) / "cache")  # nothing remembered
        for round_ in range(args.rounds):
            for shape in args.shapes.split(","):
                for precision in PRECISIONS:
                    runs = Path(tmp) / "runs"
                    runs.mkdir(exist_ok=True)
                    r = one_run(args.data, shape, precision, args.steps, runs)
                    r["round"] = round_
                    results.append(r)
                    print(f"round {round_} {shape:6} {precision:5} chose {r['chose']:21} "
                          f"{r['step_ms']:9.1f} ms/step {r['tokens_per_s']:10,.0f} tok/s", flush=True)  # fmt: skip
    print("\nshape   fp32 tok/s   bf16 tok/s   auto tok/s (chose)   auto / fastest explicit")
    for shape in args.shapes.split(","):
        med = {p: statistics.median(r["tokens_per_s"] for r in results
                                    if r["shape"] == shape and r["precision"] == p)
               for p in PRECISIONS}  # fmt: skip
        chose = sorted({r["chose"] for r in results if r["shape"] == shape and r["precision"] == "auto"})
        ratio = med["auto"] / max(med["fp32"], med["bf16"])
        print(f"{shape:6} {med['fp32']:11,.0f} {med['bf16']:12,.0f} {med['auto']:12,.0f} "
              f"({'/'.join(chose)})   {ratio:.2f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
