"""Does the app slow training down, and does training freeze the app?

    python benchmarks/app_overhead.py [--preset micro] [--steps 60] [--rounds 2] [--context-length N]

Trains the same run headless (the trainer alone) and inside the app (a headless Textual
session driving the real dashboard), interleaved, and reports tokens/s of each and the
worst and 99th-percentile event-loop lag while training in the app: a 20 ms timer in the
app's loop measures how late it wakes up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec  # noqa: E402
from tui_gpt.core.jobs import JobHooks, assemble  # noqa: E402

DATA = SHARED / "data" / "tinyshakespeare.txt"


def config(steps: int) -> TrainConfig:
    return TrainConfig(epochs=1, max_steps=steps, eval_freq=20, eval_iter=2, sample_tokens=20)


def rate(events: list[dict]) -> float:
    """Tokens/s over the steps after the first five (warm-up excluded), from event times."""
    steps = [e for e in events if e["event"] == "step"][5:]
    tokens = steps[-1]["tokens_seen"] - steps[0]["tokens_seen"]
    return tokens / (steps[-1]["time"] - steps[0]["time"])


def headless(preset: str, steps: int, root: Path, ctx: int | None) -> float:
    seen: list[dict] = []
    spec = TrainSpec(str(DATA), ModelChoice(preset, ctx), config(steps))
    job = assemble(spec, runs_dir=root, hooks=JobHooks([lambda e: seen.append(e.to_dict())]))
    job.run_training()
    return rate(seen)


async def in_app(preset: str, steps: int, root: Path, ctx: int | None) -> tuple[float, list[float]]:
    from tui_gpt.ui.app import TuiGptApp
    from tui_gpt.ui.screens.train import TrainScreen

    app = TuiGptApp(root)
    lags: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        app.start_training(TrainSpec(str(DATA), ModelChoice(preset, ctx), config(steps)))
        while not isinstance(app.screen, TrainScreen):
            await pilot.pause(0.05)
        while app.training_active:
            start = time.perf_counter()
            await asyncio.sleep(0.02)
            lags.append(time.perf_counter() - start - 0.02)
        run = app.screen.run
    return rate(run.events()), lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="micro")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--context-length", type=int, help="default: the preset's")
    args = parser.parse_args()
    plain, app, all_lags = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            plain.append(headless(args.preset, args.steps, Path(tmp), args.context_length))
            tok, lags = asyncio.run(in_app(args.preset, args.steps, Path(tmp), args.context_length))
            app.append(tok)
            all_lags += lags
            print(
                f"  round {r + 1}: headless {plain[-1]:.0f} tok/s, app {app[-1]:.0f} tok/s",
                file=sys.stderr,
            )
    lags_ms = sorted(x * 1000 for x in all_lags)
    p99 = lags_ms[int(0.99 * (len(lags_ms) - 1))]
    h, a = statistics.median(plain), statistics.median(app)
    print(
        f"\n### The app while training: preset {args.preset}, {args.steps} steps, {args.rounds} interleaved rounds\n"
    )
    print("| | value |")
    print("| --- | ---: |")
    print(f"| headless tokens/s (median) | {h:,.0f} |")
    print(f"| in-app tokens/s (median) | {a:,.0f} |")
    print(f"| in-app / headless | {a / h:.0%} |")
    print(f"| event-loop lag, 99th percentile | {p99:.1f} ms |")
    print(f"| event-loop lag, worst | {lags_ms[-1]:.1f} ms |")


if __name__ == "__main__":
    main()
