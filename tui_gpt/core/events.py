"""What the trainer says while it works: typed events, each with a stable JSON form.

Every event carries `event` (its name), `time` (unix seconds), `step`, `epoch` and
`tokens_seen`. `step` follows the reference's numbering: the first optimizer update is
step 0, and evaluation happens when `step % eval_freq == 0`. `epoch` counts from 1.
Sinks (the run folder's events.jsonl, the console, the app) receive the same objects.
"""

from __future__ import annotations

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
    threads: int = 1
    world_size: int = 1  # processes training together (torchrun)
    train_batches: int = 0
    val_batches: int = 0
    total_steps: int = 0
    resumed: bool = False


@dataclass(kw_only=True)
class Step(Event):
    name: ClassVar[str] = "step"
    loss: float = 0.0
    lr: float = 0.0
    tok_per_s: float = 0.0


@dataclass(kw_only=True)
class Eval(Event):
    name: ClassVar[str] = "eval"
    train_loss: float = 0.0
    val_loss: float = 0.0


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


@dataclass(kw_only=True)
class Error(Event):
    name: ClassVar[str] = "error"
    message: str = ""


@dataclass(kw_only=True)
class Notice(Event):
    """Something the user should see that is neither progress nor failure (compiling...)."""

    name: ClassVar[str] = "notice"
    message: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        Notice,
        RunStarted,
        Step,
        Eval,
        Sample,
        EpochEnd,
        CheckpointSaved,
        Paused,
        Resumed,
        Stopped,
        Finished,
        Error,
    )
}


def event_from_dict(d: dict[str, Any]) -> Event | None:
    """The event a JSON line describes, or None for an unknown or malformed one."""
    cls = EVENT_TYPES.get(d.get("event", ""))
    if cls is None:
        return None
    known = set(cls.__dataclass_fields__)
    try:
        return cls(**{k: v for k, v in d.items() if k in known})
    except TypeError:
        return None
