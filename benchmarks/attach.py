"""How long the dashboard takes to attach to a long run.

Writes a synthetic run folder of N events (default 100,000: steps, an evaluation every 5
steps, a sample every 1,000) in a temporary directory, opens the app's dashboard on it
headless, and times from opening the dashboard to having read the whole file with the chart,
step log and samples filled.

    python benchmarks/attach.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from pathlib import Path

from tui_gpt.core.runs import Run, create_run
from tui_gpt.ui.app import TuiGptApp


def write_run(root: Path, n: int) -> Run:
    run = create_run(root, "long.txt", "nano", {"dataset": {"files": ["long.txt"]}, "model": {}})
    t = time.time()
    lines = [
        {
            "event": "run_started",
            "step": -1,
            "epoch": 1,
            "tokens_seen": 0,
            "time": t,
            "run_id": run.id,
            "params": 1,
            "device": "cpu",
            "precision": "bf16",
            "threads": 2,
            "train_batches": 1000,
            "val_batches": 10,
            "total_steps": n,
            "resumed": False,
        }
    ]
    step = 0
    while len(lines) < n:
        epoch, loss = step // 1000 + 1, 10 * math.exp(-step / 9000) + 1
        base = {"step": step, "epoch": epoch, "tokens_seen": step * 512, "time": t + step}
        lines.append({"event": "step", **base, "loss": loss, "lr": 4e-4, "tok_per_s": 300.0})
        if step % 5 == 0:
            lines.append({"event": "eval", **base, "train_loss": loss, "val_loss": loss + 0.5})
        if step % 1000 == 999:
            lines.append({"event": "sample", **base, "text": "Every effort moves you " * 4})
        step += 1
    run.events_path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    run.set_status("running", step=step - 1)
    return run


async def attach(run: Run) -> float:
    app = TuiGptApp(run.path.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        start = time.perf_counter()
        app.open_dashboard(run)
        size = run.events_path.stat().st_size
        while getattr(app.screen, "follower", None) is None or app.screen.follower.offset < size:
            await pilot.pause(0.01)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp), args.events)
        size = run.events_path.stat().st_size
        seconds = asyncio.run(attach(run))
    print(f"{args.events:,} events ({size / 1e6:.1f} MB): dashboard attached in {seconds:.2f} s")


if __name__ == "__main__":
    main()
