"""Helpers for driving the app: wait for conditions (never fixed sleeps), build tiny runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from tui_gpt.core import checkpoint
from tui_gpt.core.config import model_config
from tui_gpt.core.model import GPT
from tui_gpt.core.records import DatasetRecord, RunRecord
from tui_gpt.core.runs import Run


async def wait_for(pilot, condition, timeout: float = 120.0) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(0.05)


def fake_run(
    root: Path,
    run_id: str,
    *,
    steps: int = 20,
    status: str = "finished",
    created: float = 1_790_000_000,
    lr: float = 4e-4,
) -> Path:
    """A finished-looking run folder with deterministic events and a tiny checkpoint."""
    path = root / run_id
    (path / "checkpoints").mkdir(parents=True)
    record = RunRecord(
        id=run_id, created=created, preset="nano", params=123456, tokenizer="byte",
        dataset=DatasetRecord(files=("/data/story.txt",)),
    )
    Run(path).write_record(record)
    spec = {
        "data": "/data/story.txt",
        "model": {"preset": "nano", "tokenizer": "byte"},
        "train": {"lr": lr},
    }
    (path / "settings.json").write_text(json.dumps(spec))
    events = [
        {
            "event": "run_started",
            "time": created,
            "step": -1,
            "epoch": 1,
            "tokens_seen": 0,
            "run_id": run_id,
            "params": 123456,
            "device": "cpu",
            "precision": "fp32",
            "threads": 2,
            "train_batches": 5,
            "val_batches": 1,
            "total_steps": steps,
            "resumed": False,
        },
    ]
    for step in range(steps):
        epoch = step // 5 + 1
        events.append(
            {
                "event": "step",
                "time": created + step,
                "step": step,
                "epoch": epoch,
                "tokens_seen": (step + 1) * 64,
                "loss": 5 - step * 0.2,
                "lr": 4e-4,
                "tok_per_s": 1000.0,
            }
        )
        if step % 5 == 0:
            events.append(
                {
                    "event": "eval",
                    "time": created + step,
                    "step": step,
                    "epoch": epoch,
                    "tokens_seen": (step + 1) * 64,
                    "train_loss": 5 - step * 0.2,
                    "val_loss": 5.5 - step * 0.1,
                }
            )
        if step % 5 == 4:
            events.append(
                {
                    "event": "sample",
                    "time": created + step,
                    "step": step,
                    "epoch": epoch,
                    "tokens_seen": (step + 1) * 64,
                    "text": f"Every effort moves you, said epoch {epoch}.",
                }
            )
    events.append(
        {
            "event": status,
            "time": created + steps,
            "step": steps - 1,
            "epoch": 4,
            "tokens_seen": steps * 64,
        }
    )
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (path / "status.json").write_text(
        json.dumps({"status": status, "step": steps - 1, "best_val_loss": 3.6, "pid": 0})
    )
    torch.manual_seed(0)
    model = GPT(model_config("nano", 257, 32))
    checkpoint.save(path / "checkpoints" / "best.safetensors", model, extra={"tokenizer": "byte"})
    return path


def screen_text(app) -> str:
    """What the terminal shows now, one line per row (the screen's compositor: dialogs over
    it are not included)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
