"""How `--preset auto` and blank epochs (the default recipe) do against shapes picked by hand,
at equal time budgets, on a small, a medium and a large corpus.

For each corpus and budget: `tui-gpt train DATA --minutes M` with nothing else, then each
hand-picked preset with the same budget. Every run scores its last weights with `tui-gpt
eval` on every token of its validation split (bits per byte). Each corpus has one data and
cache folder, prepared once beforehand (`tui-gpt prepare`: the tokenizer fitted, the text
tokenized, as for any second run on a text); the step-time cache is emptied before every
run, so the default pays for each measurement it makes, as on a first run.

Corpora (default): The Verdict (20 KB, ../shared/data), Tiny Shakespeare (1.1 MB, likewise),
and PyTorch's own Python sources (every .py file of the installed torch package, sorted by
path, joined: about 46 MB with torch 2.13.0; present wherever tui-gpt runs).

    python benchmarks/sizing.py --seconds T [--fractions 0.125,1,4] [--corpora verdict,shakespeare,torch] [--json OUT]

T is the reference time the budgets are fractions of (nanoGPT's CPU recipe on Tiny
Shakespeare, measured by benchmarks/time_to_quality.py in the same session).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from time_to_quality import tui  # noqa: E402  (the same `tui-gpt` runner)

SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))

# name: the flags that pin a shape, its epochs and its dropout
HAND = {
    "nano 64, 4 ep": "--preset nano --context-length 64 --epochs 4 --dropout 0",
    "micro 64, 4 ep": "--preset micro --context-length 64 --epochs 4 --dropout 0",
    "milli 128, 4 ep": "--preset milli --context-length 128 --epochs 4 --dropout 0",
    "nano 64, 16 ep, dropout 0.3": "--preset nano --context-length 64 --epochs 16 --dropout 0.3",
    "micro 64, 16 ep, dropout 0.3": "--preset micro --context-length 64 --epochs 16 --dropout 0.3",
}
# The hand presets tried on each corpus (a 4-epoch milli on 20 KB, or 16 epochs of 46 MB,
# would say nothing new).
TRIED = {
    "verdict": ["nano 64, 4 ep", "micro 64, 4 ep", "nano 64, 16 ep, dropout 0.3",
                "micro 64, 16 ep, dropout 0.3"],
    "shakespeare": ["nano 64, 4 ep", "micro 64, 4 ep", "milli 128, 4 ep"],
    "torch": ["nano 64, 4 ep", "micro 64, 4 ep", "milli 128, 4 ep"],
}  # fmt: skip


def torch_sources(out: Path) -> Path:
    import torch

    files = sorted(Path(torch.__file__).parent.rglob("*.py"))
    with out.open("w", encoding="utf-8") as f:
        for p in files:
            f.write(p.read_text(encoding="utf-8", errors="replace") + "\n")
    return out


def one_run(data: Path, work: Path, seconds: float, flags: str) -> dict:
    env = {**os.environ, "TUI_GPT_DATA_DIR": str(work / "data"),
           "TUI_GPT_CACHE_DIR": str(work / "cache")}  # fmt: skip
    (work / "cache" / "step-times.json").unlink(missing_ok=True)
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    started = time.perf_counter()
    out = tui(runs, env, "train", str(data), "--minutes", f"{seconds / 60:.4f}",
              "--sample-tokens", "0", *flags.split())  # fmt: skip
    wall = time.perf_counter() - started
    [run] = list(runs.iterdir())
    scored = json.loads(tui(runs, env, "eval", run.name, "--checkpoint", "latest", "--json"))
    saved = json.loads((run / "settings.json").read_text())
    steps = sum(1 for line in (run / "events.jsonl").open() if '"event": "step"' in line)
    sized = next((line for line in out.splitlines() if line.startswith("sized: ")), "")
    shape = (f"{saved['model']['preset']} {saved['model']['context_length']}, "
             f"{saved['train']['epochs']} ep, dropout {saved['model']['dropout']:g}")  # fmt: skip
    return {"wall": round(wall, 1), "steps": steps, "bpb": round(scored["bpb"], 4),
            "shape": shape, "sized": sized}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, required=True, help="the reference time T")
    ap.add_argument("--fractions", default="0.125,1,4")
    ap.add_argument("--corpora", default="verdict,shakespeare,torch")
    ap.add_argument("--hand", help="the hand presets to try, by name (default: each corpus's list)")
    ap.add_argument("--defaults-only", action="store_true",
                    help="only the default runs (after a change to the rule: hand-picked shapes do not depend on it)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = {"verdict": SHARED / "data" / "the-verdict.txt",
                 "shakespeare": SHARED / "data" / "tinyshakespeare.txt"}  # fmt: skip
        for name in args.corpora.split(","):
            data = paths.get(name) or torch_sources(root / "torch-sources.txt")
            work = root / name
            env = {**os.environ, "TUI_GPT_DATA_DIR": str(work / "data"),
                   "TUI_GPT_CACHE_DIR": str(work / "cache")}  # fmt: skip
            tui(work / "runs", env, "prepare", str(data))  # the tokenizer and the tokens, once
            for fraction in (float(f) for f in args.fractions.split(",")):
                seconds = args.seconds * fraction
                row = {"default": one_run(data, work, seconds, "")}
                print(f"{name} {fraction:g}x ({seconds:.0f} s) default: {row['default']}", flush=True)
                tried = args.hand.split(",") if args.hand else TRIED[name]
                if args.defaults_only:
                    results[f"{name} {fraction:g}x"] = row
                    continue
                for hand in tried:
                    row[hand] = one_run(data, work, seconds, HAND[hand])
                    print(f"{name} {fraction:g}x {hand}: {row[hand]}", flush=True)
                best = min(row[h]["bpb"] for h in tried)
                row["default_minus_best_hand"] = round(row["default"]["bpb"] - best, 4)
                results[f"{name} {fraction:g}x"] = row
                print(f"{name} {fraction:g}x: default - best hand = {row['default_minus_best_hand']:+.3f}",
                      flush=True)  # fmt: skip
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
