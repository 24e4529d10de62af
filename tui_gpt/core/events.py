"""What the trainer says while it works: typed events, each with a stable JSON form.

Every event carries `event` (its name), `time` (unix seconds), `step`, `epoch` and
`tokens_seen`. `step` follows the reference's numbering: the first optimizer update is
step 0, and evaluation happens when `step % eval_freq == 0`. `epoch` counts from 1.
Sinks (the run folder's events.jsonl, the console, the app) receive the same objects, and
every line a person reads about them is formatted here, once.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(kw_only=True)
class Event:
    name: ClassVar[str] = "event"
    step: int = -1
    epoch: int = 0
    tokens_seen: int = 0
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.name, **asdict(self)}


@dataclass(kw_only=True)
class RunStarted(Event):
    name: ClassVar[str] = "run_started"
    run_id: str = ""
    params: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    fp32_attention: bool = False  # under bf16: attention kept in fp32 (core/model.py)
    threads: int = 1
    world_size: int = 1  # processes training together (torchrun)
    strategy: str = "single"  # how they share the model: "ddp", "fsdp" (core/distributed.py)
    train_batches: int = 0
    val_batches: int = 0
    total_steps: int = 0
    resumed: bool = False
    grad_accum: int = 1  # micro-batches per update
    peak_flops: float | None = None  # per device, what MFU is measured against
    peak_source: str = ""  # "measured", "published for <GPU>", "given"
    memory_estimate: int = 0  # bytes a step needs at its peak (core/memory.py)
    arch: str = "gpt2"  # the model's block (core/model.py)
    ends_by: float | None = None  # unix time a time budget (--minutes) runs out; None: none


@dataclass(kw_only=True)
class Step(Event):
    name: ClassVar[str] = "step"
    loss: float = 0.0
    lr: float = 0.0
    tok_per_s: float = 0.0
    mfu: float | None = None  # model FLOPs utilisation of the device's peak


@dataclass(kw_only=True)
class PlanChanged(Event):
    """A time budget (`--minutes`) re-estimated how many steps the run will make."""

    name: ClassVar[str] = "plan"
    total_steps: int = 0


@dataclass(kw_only=True)
class Eval(Event):
    name: ClassVar[str] = "eval"
    train_loss: float = 0.0
    val_loss: float = 0.0
    # The same losses in bits per UTF-8 byte: comparable across tokenizers.
    train_bpb: float | None = None
    val_bpb: float | None = None


@dataclass(kw_only=True)
class Sample(Event):
    name: ClassVar[str] = "sample"
    text: str = ""


@dataclass(kw_only=True)
class EpochEnd(Event):
    name: ClassVar[str] = "epoch_end"


@dataclass(kw_only=True)
class CheckpointSaved(Event):
    name: ClassVar[str] = "checkpoint"
    kind: str = "latest"  # latest | best
    path: str = ""


@dataclass(kw_only=True)
class Paused(Event):
    name: ClassVar[str] = "paused"


@dataclass(kw_only=True)
class Resumed(Event):
    name: ClassVar[str] = "resumed"


@dataclass(kw_only=True)
class Stopped(Event):
    name: ClassVar[str] = "stopped"
    reason: str = ""


@dataclass(kw_only=True)
class Finished(Event):
    name: ClassVar[str] = "finished"
    reason: str = ""  # what ended it: one of FINISH_REASONS ("" in runs from before)
    planned_steps: int = 0  # the steps this training was planned for when it started
    minutes: float | None = None  # its time budget, if any


# What can end a training that runs to its end, as finished_line() says it.
FINISH_REASONS = ("epochs", "max_steps", "budget")


@dataclass(kw_only=True)
class Error(Event):
    name: ClassVar[str] = "error"
    message: str = ""


@dataclass(kw_only=True)
class Notice(Event):
    """Something the user should see that is neither progress nor failure (compiling...)."""

    name: ClassVar[str] = "notice"
    message: str = ""


# What the measures the step lines, the dashboard and `compare` show mean: one line each,
# for the app's help, its tooltips and `train --help`.
GLOSSARY = {
    "MFU": "model FLOPs utilisation: the share of the device's peak arithmetic that the "
    "model's own FLOPs use (higher is better; CPUs reach far less than GPUs)",
    "bits per byte": "the loss in bits per UTF-8 byte of text: comparable between "
    "tokenizers, lower is better (8 would be no better than guessing bytes)",
    "perplexity": "e to the power of the loss: in effect, how many tokens the model hesitates "
    "between at each step (lower is better)",
}


EVENT_TYPES: dict[str, type[Event]] = {cls.name: cls for cls in Event.__subclasses__()}


def event_from_dict(d: Any) -> Event | None:
    """The event a JSON line describes, or None for an unknown or malformed one (a field of
    the wrong type included: a damaged line must not break a reader)."""
    if not isinstance(d, dict):
        return None
    cls = EVENT_TYPES.get(d.get("event", ""))
    if cls is None:
        return None
    try:
        event = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
    except TypeError:
        return None
    for f in cls.__dataclass_fields__.values():
        value = getattr(event, f.name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (f.type in ("int", "float") and not number) or (
            f.type == "str" and not isinstance(value, str)
        ):
            return None
    return event


# ---------------------------------------------------------------------- what people read


def duration(seconds: float) -> str:
    """m:ss or h:mm:ss; "-" when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """"1 run", "2 runs", "1,024 files": a number with its noun in the right form."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def size(n: int) -> str:
    """Bytes for people: KiB below a MiB, GiB from 10 GiB on, MiB between."""
    mib = 2**20
    if n < mib:
        return f"{n / 1024:,.0f} KiB" if n >= 1024 else f"{n} bytes"
    return f"{n / mib:,.0f} MiB" if n < 10 * 2**30 else f"{n / 2**30:,.1f} GiB"


def eval_line(e: Eval) -> str:
    """The reference's evaluation line."""
    return (
        f"Ep {e.epoch} (Step {e.step:06d}): "
        f"Train loss {e.train_loss:.3f}, Val loss {e.val_loss:.3f}"
    )


def finished_line(e: Finished) -> str:
    """Why a training ended, in words: "time budget (5 min) reached at step 60 of 176
    planned", "4 epochs done (51 steps)", "max steps reached (40)"; "" where the run is
    from before its events said."""
    done = e.step + 1
    if e.reason == "budget":
        budget = f" ({e.minutes:g} min)" if e.minutes else ""
        planned = f" of {e.planned_steps:,} planned" if e.planned_steps > done else ""
        return f"time budget{budget} reached at step {done:,}{planned}"
    if e.reason == "max_steps":
        return f"max steps reached ({done:,})"
    if e.reason == "epochs":
        return f"{count(e.epoch, 'epoch')} done ({count(done, 'step')})"
    return ""


def end_line(e: Stopped | Finished) -> str:
    """How a training ended, for the CLI and the dashboard alike: "stopped: why",
    "finished: 4 epochs done (51 steps)" ("finished" alone for a run from before its events
    said why)."""
    why = e.reason if isinstance(e, Stopped) else finished_line(e)
    return f"{e.name}: {why}" if why else e.name


def sample_text(e: Sample) -> str:
    """A sample as one paragraph (a log line), wherever it is shown."""
    return e.text.replace("\n", " ")


def started_line(e: RunStarted) -> str:
    return (
        (f"resuming run {e.run_id} at step {e.step + 1:,}" if e.resumed else f"training run {e.run_id}")
        + f": {e.params:,} parameters "
        f"({e.arch}), "
        f"{e.total_steps:,} steps ({e.train_batches:,} batches/epoch, {e.val_batches:,} validation), "
        f"device {e.device}, precision {e.precision}, {e.threads} threads"
        + "".join(f", {fact}" for fact in run_extras(e))
    )


def run_extras(e: RunStarted) -> list[str]:
    """What a run's start says beyond its shape and device: its processes, the memory it
    needs, accumulation, and the peak its MFU is measured against (most important first)."""
    facts = []
    if e.world_size > 1:
        facts.append(f"{e.world_size} processes ({e.strategy})")
    if e.memory_estimate:
        each = " per process" if e.world_size > 1 else ""
        facts.append(f"needs about {size(e.memory_estimate)} of memory{each}")
    if e.grad_accum > 1:
        facts.append(f"{e.grad_accum} micro-batches per update")
    if e.peak_flops:
        facts.append(f"MFU against a peak of {e.peak_flops / 1e12:,.2f} TFLOP/s ({e.peak_source})")
    return facts


class Progress:
    """Steps done, the total and the time left, from a run's events (their own times, so a
    run followed from its file reads the same as one trained here)."""

    def __init__(self) -> None:
        self.total = 0
        self.first_step = 0
        self.first_time = 0.0
        self.ends_by: float | None = None
        self.last: Step | None = None

    def update(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.total, self.first_step, self.first_time = (
                event.total_steps, event.step + 1, event.time
            )  # fmt: skip
            self.ends_by = event.ends_by
        elif isinstance(event, PlanChanged):
            self.total = event.total_steps
        elif isinstance(event, Step):
            self.last = event

    @property
    def done(self) -> int:
        return self.last.step + 1 if self.last is not None else 0

    def eta(self) -> float:
        """Seconds left at the pace since the run (or its resumption) started, never past
        the end of its time budget; NaN unknown."""
        ran = self.done - self.first_step
        if self.last is None or ran <= 0:
            return math.nan
        left = (self.last.time - self.first_time) / ran * (self.total - self.done)
        if self.ends_by is not None:  # the trainer ends the run by then whatever the pace
            left = min(left, max(0.0, self.ends_by - self.last.time))
        return left

    def line(self, eta: bool = True) -> str:
        """The newest step in a line; `eta=False` for a run that has ended (nothing left)."""
        e = self.last
        if e is None:
            return ""
        return (
            f"epoch {e.epoch} · {self.done:,}/{self.total:,} steps · loss {e.loss:.3f} · "
            f"{e.tok_per_s:,.0f} tok/s"
            + (f" · MFU {e.mfu:.0%}" if e.mfu is not None else "")
            + (f" · ETA {duration(self.eta())}" if eta else "")
        )
