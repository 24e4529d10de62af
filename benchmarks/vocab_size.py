"""GPT-2's 50,257-token vocabulary against a 4,096-token BPE trained on the data itself: the
`micro` preset on Tiny Shakespeare, each for the same wall-clock minutes, one after the
other in this process's machine. Reports training tokens/s, parameters and the validation
bits per byte reached (bits per byte compare across tokenizers; loss per token does not).

    python benchmarks/vocab_size.py [--minutes 3] [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))


def train_for(data: Path, tokenizer: str, minutes: float, runs: Path) -> dict:
    """Train until the time is up (Ctrl+C, as a user would stop it), then read the run."""
    cmd = [sys.executable, "-m", "tui_gpt", "--run-dir", str(runs), "train", str(data),
           "--preset", "micro", "--tokenizer", tokenizer, "--epochs", "1000", "--eval-freq", "50",
           "--eval-iter", "10", "--batch-size", "8", "--sample-tokens", "0"]  # fmt: skip
    before = set(runs.glob("*")) if runs.exists() else set()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 600  # preparing may take a while; the clock starts with training
    while time.monotonic() < deadline:
        new = [p for p in runs.glob("*") if p not in before] if runs.exists() else []
        if new and '"run_started"' in (new[0] / "events.jsonl").read_text(errors="replace"):
            break
        time.sleep(0.5)
    time.sleep(minutes * 60)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    [run] = [p for p in runs.glob("*") if p not in before]
    shown = subprocess.run([sys.executable, "-m", "tui_gpt", "runs", "show", str(run), "--json"],
                           capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    return json.loads(shown.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--data", default=str(SHARED / "data" / "tinyshakespeare.txt"))
    args = parser.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tok = Path(tmp) / "shakespeare-4096.json"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tui_gpt", "tokenizer", "train", str(data),
                        "--vocab-size", "4096", "--out", str(tok)], check=True, cwd=ROOT,
                       capture_output=True)  # fmt: skip
        print(
            f"tokenizer train (4,096) on {data.name}: {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        results = {}
        for name in ("gpt2", str(tok)):
            results[name] = train_for(data, name, args.minutes, Path(tmp) / "runs")
            r = results[name]
            print(f"  {r['tokenizer']}: {r['steps']} steps, {r['tok_per_s']:.0f} tok/s", flush=True)
    print(f"\n### micro on {data.name}, {args.minutes:g} minutes of training each\n")
    print(
        "| vocabulary | parameters | steps | tokens/s | best val bits/byte | last val bits/byte | best val loss |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        label = "GPT-2, 50,257" if name == "gpt2" else "trained BPE, 4,096"
        print(f"| {label} | {r['params']:,} | {r['steps']:,} | {r['tok_per_s']:,.0f} | "
              f"{r['best_val_bpb']:.3f} | {r['last_val_bpb']:.3f} | {r['best_val_loss']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
