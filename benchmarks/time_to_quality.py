"""Quality per minute, side by side: nanoGPT's own CPU recipe against tui-gpt's defaults.

1. nanoGPT (from a checkout you give; nothing of it is kept here) trains the recipe its
   README gives for CPUs on the text, character-level: 4 layers x 128, block 64, batch 12,
   2,000 iterations, lr 1e-3 with warmup 100 and cosine to 1e-4, dropout 0. Its wall time
   is T; its best checkpoint is scored on the whole validation split (the last 10% of the
   characters, non-overlapping windows of 64) in bits per byte.
2. tui-gpt trains with only the data and `--minutes` given, for T/8, T and 4T (`--fractions`), in fresh
   data and cache folders (so fitting its tokenizer and tokenizing count against the
   budget), and `tui-gpt eval` scores the last weights on the same characters.
3. The step speed of both at nanoGPT's shape (micro, context 64, batch 12, byte tokens):
   nanoGPT's own per-iteration times against the tok/s of tui-gpt's training loop.

    python benchmarks/time_to_quality.py --nanogpt PATH [--data FILE] [--fractions 0.125,1,4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))
NANOGPT_CPU_RECIPE = [
    "--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1", "--block_size=64",
    "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
    "--lr_decay_iters=2000", "--dropout=0.0",
]  # fmt: skip
DATASET = "ttq_char"


def char_split(text: str) -> tuple[str, str]:
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]


def nanogpt_run(checkout: Path, text: str, work: Path) -> dict:
    """Train nanoGPT's CPU recipe in `work`; its wall time, iteration times and best weights."""
    import numpy as np

    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = work / "data" / DATASET
    data.mkdir(parents=True)
    train, val = char_split(text)
    for name, part in (("train", train), ("val", val)):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(data / f"{name}.bin")
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}
    (data / "meta.pkl").write_bytes(pickle.dumps(meta))
    # Its train.py reads these two from the working directory.
    shutil.copy(checkout / "configurator.py", work)
    (work / "config").mkdir()
    shutil.copy(checkout / "config" / "train_shakespeare_char.py", work / "config")
    cmd = [sys.executable, str(checkout / "train.py"), "config/train_shakespeare_char.py",
           *NANOGPT_CPU_RECIPE, f"--dataset={DATASET}", "--out_dir=out"]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode:
        raise SystemExit(f"nanoGPT failed: {out.stderr[-2000:]}")
    times = [float(m) for m in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", out.stdout, re.M)]
    return {"seconds": seconds, "iter_ms": statistics.median(times[10:]), "stoi": stoi,
            "ckpt": work / "out" / "ckpt.pt"}  # fmt: skip


def nanogpt_bpb(checkout: Path, ckpt_path: Path, stoi: dict[str, int], text: str) -> float:
    """nanoGPT's best weights on the whole validation split: bits per byte."""
    import torch

    sys.path.insert(0, str(checkout))
    from model import GPT, GPTConfig  # nanoGPT's own model.py

    ckpt = torch.load(ckpt_path, map_location="cpu")
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    _, val = char_split(text)
    ids = torch.tensor([stoi[c] for c in val])
    block = ckpt["model_args"]["block_size"]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, block):
            x = ids[start : start + block]
            y = ids[start + 1 : start + 1 + block]
            x = x[: len(y)]
            if len(y) == 0:
                break
            logits, _ = model(x[None], y[None])
            loss = torch.nn.functional.cross_entropy(logits[0], y, reduction="sum")
            total, count = total + loss.item(), count + len(y)
    scored_bytes = len(val[1 : count + 1].encode("utf-8"))
    return total / math.log(2) / scored_bytes


def tui(runs: Path, env: dict, *args: str) -> str:
    cmd = [sys.executable, "-m", "tui_gpt", "--run-dir", str(runs), *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"tui-gpt {' '.join(args[:3])}: {out.stderr.strip()[-2000:]}")
    return out.stdout


def tui_budget_run(data: Path, minutes: float, work: Path, extra: list[str]) -> dict:
    """`tui-gpt train DATA --minutes M` in fresh folders; wall time and whole-split bpb."""
    env = {**os.environ, "TUI_GPT_DATA_DIR": str(work / "data"), "TUI_GPT_CACHE_DIR": str(work / "cache")}
    runs = work / "runs"
    started = time.perf_counter()
    tui(runs, env, "train", str(data), "--minutes", f"{minutes:.4f}", *extra)
    seconds = time.perf_counter() - started
    [run] = list(runs.iterdir())
    scored = json.loads(tui(runs, env, "eval", run.name, "--checkpoint", "latest", "--json"))
    steps = sum(1 for line in (run / "events.jsonl").open() if '"event": "step"' in line)
    return {"minutes": round(minutes, 3), "seconds": round(seconds, 1), "steps": steps,
            "val_bpb": round(scored["bpb"], 4)}  # fmt: skip


def tui_step_speed(data: Path, work: Path, steps: int = 300) -> float:
    """tui-gpt's training loop at nanoGPT's shape: median tokens per second over the steps."""
    env = {**os.environ, "TUI_GPT_DATA_DIR": str(work / "data"), "TUI_GPT_CACHE_DIR": str(work / "cache")}
    runs = work / "runs"
    tui(runs, env, "train", str(data), "--recipe", "reference", "--preset", "micro",
        "--context-length", "64", "--batch-size", "12", "--tokenizer", "byte", "--dropout", "0",
        "--max-steps", str(steps), "--eval-freq", "100000", "--sample-tokens", "0",
        "--lr", "1e-3")  # fmt: skip
    [run] = list(runs.iterdir())
    times = [json.loads(line)["time"] for line in (run / "events.jsonl").open()
             if '"event": "step"' in line]  # fmt: skip
    gaps = [b - a for a, b in zip(times[10:], times[11:], strict=False)]
    return 12 * 64 / statistics.median(gaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT")
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "tinyshakespeare.txt")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--tui-args", default="", help="extra tui-gpt train flags (for trying recipes)")
    ap.add_argument("--fractions", default="0.125,1,4",
                    help="tui-gpt's budgets as fractions of nanoGPT's wall time (default 0.125,1,4)")
    args = ap.parse_args()
    text = args.data.read_text(encoding="utf-8")
    extra = args.tui_args.split()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nano = nanogpt_run(args.nanogpt, text, root / "nanogpt")
        nano_bpb = nanogpt_bpb(args.nanogpt, nano["ckpt"], nano["stoi"], text)
        wall = nano["seconds"]
        print(f"nanoGPT CPU recipe: {wall:.1f} s, val {nano_bpb:.4f} bits/byte, "
              f"{nano['iter_ms']:.1f} ms/iter", flush=True)  # fmt: skip
        budgets = {}
        for fraction in (float(f) for f in args.fractions.split(",")):
            got = tui_budget_run(args.data, wall * fraction / 60, root / f"x{fraction:g}", extra)
            budgets[f"{fraction:g}x"] = got
            print(f"tui-gpt defaults, --minutes {got['minutes']} ({fraction:g}x): {got}", flush=True)
        tok_s = tui_step_speed(args.data, root / "speed")
        nano_tok_s = 12 * 64 / (nano["iter_ms"] / 1000)
        print(f"step speed at micro/64/12/byte: tui-gpt {tok_s:,.0f} tok/s, nanoGPT "
              f"{nano_tok_s:,.0f} tok/s: {tok_s / nano_tok_s:.2f}x", flush=True)  # fmt: skip
    result = {
        "nanogpt": {"seconds": round(wall, 1), "val_bpb": round(nano_bpb, 4),
                    "iter_ms": round(nano["iter_ms"], 2), "tok_per_s": round(nano_tok_s)},
        "tui_gpt": budgets,
        "speed": {"tui_gpt_tok_per_s": round(tok_s), "ratio": round(tok_s / nano_tok_s, 2)},
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
