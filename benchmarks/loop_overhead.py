"""How close is the training loop to the bare update step it runs? At each size, in one
process: a real training (`jobs.assemble` + `run_training`, as `tui-gpt train` runs it:
the data loader, the events, the control channel, the time and step bookkeeping) and then
`Trainer.update` alone, repeated on one batch of the same run, the same model and the same
runtime that run's `auto` chose. The ratio is the loop's tokens/s over the bare step's.

    python benchmarks/loop_overhead.py [--data FILE] [--sizes nano,micro,mini] [--steps 120] [--rounds 2]

Both recipes' shapes at each size: `reference` (gpt2 block, AdamW, byte tokens, batch 12,
context 64; 256 for mini) and the default `fast` recipe (llama block, Muon, its fitted
tokenizer, batch 16, context 64; 128 for mini). Dropout 0; no evaluation or sample during
the steps timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))

# recipe: (tokenizer, batch, {size: context})
RECIPES = {
    "reference": ("byte", 12, {"nano": 64, "micro": 64, "mini": 256}),
    "fast": ("fit", 16, {"nano": 64, "micro": 64, "mini": 128}),
}


def one(data: Path, recipe: str, size: str, steps: int, runs: Path) -> dict:
    from dataclasses import replace

    from tui_gpt.core import process
    from tui_gpt.core.config import RECIPES as SETTINGS
    from tui_gpt.core.config import TrainSpec
    from tui_gpt.core.jobs import assemble

    tokenizer, batch, contexts = RECIPES[recipe]
    model, train = SETTINGS[recipe].settings()
    model = replace(model, preset=size, context_length=contexts[size], tokenizer=tokenizer,
                    dropout=0.0)  # fmt: skip
    train = replace(train, batch_size=batch, max_steps=steps, epochs=100, minutes=None,
                    eval_freq=10**6, eval_iter=1, sample_tokens=0)  # fmt: skip
    job = assemble(TrainSpec(str(data), model, train), runs_dir=runs)
    job.run_training()
    events = [json.loads(line) for line in job.run.events_path.read_text().splitlines()]
    times = [e["time"] for e in events if e["event"] == "step"]
    skip = min(20, len(times) // 3)
    loop_s = statistics.median(b - a for a, b in zip(times[skip:], times[skip + 1 :], strict=False))
    trainer = job.trainer
    x, y = next(iter(trainer.train_loader))
    with process.reusing_memory():
        for _ in range(3):
            trainer.update(x, y)
        bare = []
        for _ in range(min(steps, 60)):
            start = time.perf_counter()
            trainer.update(x, y)
            bare.append(time.perf_counter() - start)
    bare_s = statistics.median(bare)
    tokens = x.numel()
    return {"recipe": recipe, "size": size, "runtime": trainer.runtime.label,
            "loop_tok_s": tokens / loop_s, "bare_tok_s": tokens / bare_s,
            "ratio": bare_s / loop_s}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "tinyshakespeare.txt")
    ap.add_argument("--sizes", default="nano,micro,mini")
    ap.add_argument("--recipes", default="reference,fast")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TUI_GPT_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["TUI_GPT_CACHE_DIR"] = str(Path(tmp) / "cache")
        for round_ in range(args.rounds):
            for recipe in args.recipes.split(","):
                for size in args.sizes.split(","):
                    steps = args.steps if size != "mini" else max(30, args.steps // 4)
                    r = one(args.data, recipe, size, steps, Path(tmp) / "runs")
                    rows.append(r)
                    print(f"round {round_} {recipe:9} {size:5} {r['runtime']:21} loop "
                          f"{r['loop_tok_s']:9,.0f} tok/s, bare step {r['bare_tok_s']:9,.0f}: "
                          f"{r['ratio']:.2f}", flush=True)  # fmt: skip
    print("\n| recipe | size | runtime | loop tok/s | bare update tok/s | loop / bare |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for recipe in args.recipes.split(","):
        for size in args.sizes.split(","):
            mine = [r for r in rows if r["recipe"] == recipe and r["size"] == size]
            loop = statistics.median(r["loop_tok_s"] for r in mine)
            bare = statistics.median(r["bare_tok_s"] for r in mine)
            ratio = statistics.median(r["ratio"] for r in mine)
            runtimes = "/".join(sorted({r["runtime"] for r in mine}))
            print(f"| {recipe} | {size} | {runtimes} | {loop:,.0f} | {bare:,.0f} | {ratio:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
