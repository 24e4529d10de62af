"""How long a training step takes, measured before a run starts, and the plan it gives.

A few updates of a throwaway copy of the model (same shape, optimizer, batch, precision
and threads; random tokens; the caller's random state untouched) give the seconds per
step. The answer is kept per machine and shape in the cache folder, so a second run or the
app's settings screen gets it at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import threading
import time
from dataclasses import asdict, dataclass, replace

import torch

from tui_gpt import paths
from tui_gpt.core import device, process
from tui_gpt.core.config import TrainConfig
from tui_gpt.core.device import Runtime, autocast
from tui_gpt.core.errors import DamagedFile
from tui_gpt.core.events import count
from tui_gpt.core.fsutil import atomic_write_text
from tui_gpt.core.loss import batch_loss
from tui_gpt.core.model import GPT
from tui_gpt.core.optim import make_optimizer
from tui_gpt.core.reading import read_json
from tui_gpt.core.shape import GPTConfig

# After one untimed step that warms caches and allocations up: at least TIMED_STEPS timed
# ones, more while they add up to under TIMED_SECONDS (at most MAX_TIMED_STEPS), the
# shortest taken. Small models' steps vary by 10-20% from one to the next on a busy CPU,
# about as much as the runtimes `auto` chooses between differ; their steps cost little.
TIMED_STEPS, TIMED_SECONDS, MAX_TIMED_STEPS = 2, 0.3, 12
# Held while a measurement uses torch's global random generator (and puts it back): a
# training in another thread of the same process (the app) seeds and builds its model only
# under it, so a measurement can never shift the numbers a run starts from.
GLOBAL_RNG = threading.Lock()


def _cache_file():
    return paths.cache_dir() / "step-times.json"


def _key(shape: GPTConfig, cfg: TrainConfig, context: int, runtime: Runtime) -> str:
    what = {
        "model": shape.to_dict(), "context": context, "batch": cfg.batch_size,
        "accum": cfg.grad_accum, "optimizer": cfg.optimizer,
        "recompute": cfg.activation_checkpointing, "device": str(runtime.device),
        "precision": runtime.precision, "threads": runtime.threads, "torch": torch.__version__,
        **({"fp32_attention": True} if runtime.fp32_attention else {}),
        "machine": f"{platform.machine()} {platform.processor()} {platform.node()}",
    }  # fmt: skip
    return json.dumps(what, sort_keys=True)


def cached_step_seconds(
    shape: GPTConfig, cfg: TrainConfig, context: int, runtime: Runtime
) -> float | None:
    """The seconds per step measured before on this machine for this setup, if any."""
    try:
        value = read_json(_cache_file()).get(_key(shape, cfg, context, runtime))
    except (OSError, DamagedFile, AttributeError):
        return None
    plausible = isinstance(value, int | float) and MIN_STEP_SECONDS <= value <= MAX_STEP_SECONDS
    return float(value) if plausible else None  # a damaged entry is measured again


# Bounds of a believable step time; outside them a cached value is damage, not a measurement.
MIN_STEP_SECONDS, MAX_STEP_SECONDS = 1e-6, 1e6


def step_seconds(shape: GPTConfig, cfg: TrainConfig, context: int, runtime: Runtime) -> float:
    """Seconds per optimizer update of a model of `shape` under `cfg`: cached, or measured
    now on a throwaway model (a second or two for the small presets). The random state of
    the CPU and of the run's device is as it was after. Raises what torch raises when the
    throwaway model does not fit beside the run's."""
    known = cached_step_seconds(shape, cfg, context, runtime)
    if known is not None:
        return known
    cuda = [runtime.device] if runtime.device.type == "cuda" else []
    with GLOBAL_RNG, torch.random.fork_rng(devices=cuda), process.reusing_memory():
        model = GPT(shape).to(runtime.device).train()
        model.checkpointing = cfg.activation_checkpointing
        model.fp32_attention = runtime.fp32_attention
        optimizer = make_optimizer(model, cfg, runtime)
        rows = cfg.batch_size
        x = torch.randint(0, shape.vocab_size, (rows, context), device=runtime.device)

        def one_step() -> float:
            start = time.perf_counter()
            for _ in range(cfg.grad_accum):
                with autocast(runtime.device, runtime.precision):
                    loss = batch_loss(model, x, x, runtime.device)
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

        one_step()  # warm-up, not timed
        times = [one_step() for _ in range(TIMED_STEPS)]
        while sum(times) < TIMED_SECONDS and len(times) < MAX_TIMED_STEPS:
            times.append(one_step())
    seconds = min(times)
    remember_step_seconds(shape, cfg, context, runtime, seconds)
    return seconds


def remember_step_seconds(
    shape: GPTConfig, cfg: TrainConfig, context: int, runtime: Runtime, seconds: float
) -> None:
    """Keep a step time for the next plan of this setup on this machine: the measurement's,
    then the real steps' of each training (a measurement taken on a busy machine, or cold,
    would otherwise stand for good)."""
    with contextlib.suppress(OSError, DamagedFile):  # a read-only cache: measured each time
        path = _cache_file()
        known_all = read_json(path) if path.is_file() else {}
        if not isinstance(known_all, dict):
            known_all = {}
        known_all[_key(shape, cfg, context, runtime)] = seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(known_all))


def candidates(cfg: TrainConfig, runtime: Runtime) -> list[Runtime]:
    """The runtimes `--precision auto` chooses between by measuring a step: on a CPU with
    bf16 units, where which is fastest depends on the model's size and the CPU
    (docs/performance.md, Speed), bf16 with attention in fp32, bf16, and fp32. Elsewhere,
    and for a precision given (or pinned by a resumed run), only `runtime`."""
    if cfg.precision != "auto" or runtime.device.type != "cpu" or not device.cpu_has_bf16():
        return [runtime]
    return [
        replace(runtime, precision="bf16", fp32_attention=True),
        replace(runtime, precision="bf16", fp32_attention=False),
        replace(runtime, precision="fp32", fp32_attention=False),
    ]


def fastest(
    shape: GPTConfig, cfg: TrainConfig, context: int, runtime: Runtime, measure: bool = True
) -> tuple[Runtime, float | None, str]:
    """The candidate runtime with the shortest step, its seconds per step and a note of the
    choice ("" where there was none). Without `measure`, only remembered steps count: the
    seconds are None where one is missing."""
    times = []
    for r in candidates(cfg, runtime):
        seconds = cached_step_seconds(shape, cfg, context, r)
        if seconds is None:
            if not measure:
                return runtime, None, ""
            seconds = step_seconds(shape, cfg, context, r)
        times.append((seconds, r))
    (best, chosen), *others = sorted(times, key=lambda t: t[0])
    # "auto: fp32 37 ms a step; bf16 45, ...": the bare steps measured, evaluations left out
    rest = "; ".join(f"{r.label} {seconds * 1000:,.0f}" for seconds, r in others)
    note = f"auto: {chosen.label} {best * 1000:,.0f} ms a step; {rest}" if others else ""
    return chosen, best, note


@dataclass
class Plan:
    """What a training will do, said before it starts."""

    steps: int  # updates planned (under a budget: those that fit at the measured pace)
    steps_per_epoch: int
    tokens_per_step: int
    step_seconds: float
    minutes: float | None = None  # the time budget, if any
    budget_binds: bool = False  # the budget, not the epochs or max steps, ends the run
    note: str = ""  # what `auto` chose, where it measured a choice

    @property
    def epochs(self) -> float:
        return self.steps / max(1, self.steps_per_epoch)

    @property
    def seconds(self) -> float:
        return self.steps * self.step_seconds

    def line(self) -> str:
        pace = f"{self.step_seconds * 1000:,.0f} ms/step measured"
        work = (
            f"{count(self.steps, 'step')} ({self.epochs:,.2f} epochs, "
            f"{self.steps * self.tokens_per_step:,} tokens)"
        )
        note = f" ({self.note})" if self.note else ""
        if self.minutes is not None and self.budget_binds:
            return f"plan: {self.minutes:g} min budget: about {work} at {pace}{note}"
        within = f" (within the {self.minutes:g} min budget)" if self.minutes is not None else ""
        return f"plan: {work}, about {duration_text(self.seconds)} at {pace}{note}{within}"

    def to_dict(self) -> dict:
        return asdict(self)


def make_plan(
    cfg: TrainConfig,
    step_s: float,
    steps_per_epoch: int,
    tokens_per_step: int,
    step_bound: int,
    seconds_left: float | None = None,
    note: str = "",
) -> Plan:
    """The plan of a training of at most `step_bound` more steps (its epochs and max steps)
    at `step_s` per update. Evaluations add about a third of a step per batch they read;
    under a time budget (`seconds_left`, else all of `cfg.minutes`) the steps are those
    that fit."""
    steps = bound = max(0, step_bound)
    per_step = step_s * (1 + 2 * cfg.eval_iter / 3 / cfg.eval_interval(bound))
    if cfg.minutes is not None and steps:
        left = cfg.minutes * 60 if seconds_left is None else seconds_left
        fit = left / per_step if per_step > 0 else math.inf
        steps = 0 if left <= 0 else min(steps, max(1, math.floor(min(fit, steps))))
    return Plan(
        steps, steps_per_epoch, tokens_per_step, per_step, cfg.minutes, steps < bound, note
    )


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
