"""The JSON files tui-gpt keeps, parsed once at the edge into typed records.

A run folder's `run.json`, `status.json` and `process.json`, and the app's own small files,
are read here and nowhere else. Each field is checked for its type as it is read, so a
damaged or hand-edited file is one `DamagedFile` naming the file and the field, never a
`TypeError` three modules away. Writers keep the fields they do not know (`extra`), so a
file written by a newer tui-gpt survives an older one's label or resume.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

from tui_gpt.core.config import TrainConfig
from tui_gpt.core.errors import DamagedFile, TuiGptError
from tui_gpt.core.reading import read_json
from tui_gpt.core.shape import GPTConfig, parse_model_config

T = TypeVar("T")

class Fields:
    """Typed reads of one JSON object's fields; a wrong type is a DamagedFile naming the
    file and the field."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise DamagedFile(f"{where}: damaged (not a JSON object)")
        self.obj, self.where = obj, where

    def _bad(self, key: str, wanted: str) -> DamagedFile:
        value = repr(self.obj[key])
        return DamagedFile(f"{self.where}: damaged ({key} should be {wanted}, is {value[:40]})")

    def _get(self, key: str, ok: Callable[[Any], bool], wanted: str, default: Any) -> Any:
        if key not in self.obj or self.obj[key] is None:
            return default
        if not ok(self.obj[key]):
            raise self._bad(key, wanted)
        return self.obj[key]

    def text(self, key: str, default: str = "") -> str:
        return cast(str, self._get(key, lambda v: isinstance(v, str), "text", default))

    def opt_text(self, key: str) -> str | None:
        return cast("str | None", self._get(key, lambda v: isinstance(v, str), "text", None))

    def integer(self, key: str, default: int, low: int | None = None) -> int:
        def ok(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)

        wanted = "a whole number" + (f" of at least {low}" if low is not None else "")
        return cast(int, self._get(key, ok, wanted, default))

    def opt_integer(self, key: str, low: int | None = None) -> int | None:
        if self.obj.get(key) is None:
            return None
        return self.integer(key, 0, low)

    def number(self, key: str) -> float | None:
        def ok(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)

        value = self._get(key, ok, "a number", None)
        return None if value is None else float(value)

    def obj_of(self, key: str) -> Fields:
        value = self._get(key, lambda v: isinstance(v, dict), "a JSON object", {})
        return Fields(value, f"{self.where} {key}")

    def texts(self, key: str) -> tuple[str, ...]:
        def ok(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(s, str) for s in v)

        return tuple(self._get(key, ok, "a list of texts", []))

    def choice(self, key: str, choices: tuple[T, ...], default: T) -> T:
        return cast(
            T, self._get(key, lambda v: v in choices, " or ".join(map(str, choices)), default)
        )


# ----------------------------------------------------------------------------- run.json


@dataclass(frozen=True)
class DatasetRecord:
    """What a run was trained on: the data's files and fingerprint."""

    files: tuple[str, ...] = ()
    sha256: str = ""
    chars: int | None = None
    tokens: int | None = None
    train_ratio: float | None = None
    text_field: str | None = None

    @property
    def name(self) -> str:
        """The file's name, or how many files."""
        if len(self.files) == 1:
            return Path(self.files[0]).name
        return f"{len(self.files)} files" if self.files else ""

    @classmethod
    def parse(cls, f: Fields) -> DatasetRecord:
        return cls(
            files=f.texts("files"),
            sha256=f.text("sha256"),
            chars=f.opt_integer("chars", 0),
            tokens=f.opt_integer("tokens", 0),
            train_ratio=f.number("train_ratio"),
            text_field=f.opt_text("text_field"),
        )


# run.json's format: 1 names the training window `context_length` (0, before the format was
# written, called it `seq_len`; it is still read).
RUN_FORMAT = 1
RUN_FILE = "run.json"  # the file in a run folder that makes it one


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a run is (its data, tokenizer, model shape, training settings). Read
    with `parse`, written with `to_json`: the file's one reader and one writer."""

    id: str = ""
    created: float | None = None
    preset: str = ""
    label: str = ""
    dataset: DatasetRecord = field(default_factory=DatasetRecord)
    data_path: str = ""
    tokenizer: str = "gpt2"
    vocab_dir: str | None = None
    model: dict[str, Any] | None = None  # GPTConfig's fields; `model_config()` checks them
    context_length: int | None = None  # the training window, in tokens
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig's JSON form
    params: int | None = None
    init_from: str | None = None  # the checkpoint `--init-from` started it from
    imported_from: str | None = None  # the weights `import-gpt2` read
    world_size: int = 1
    versions: dict[str, str] = field(default_factory=dict)  # tui_gpt, python, torch
    format: int = RUN_FORMAT
    where: str = RUN_FILE
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # as read, unknown keys kept

    @classmethod
    def parse(cls, obj: Any, where: str) -> RunRecord:
        f = Fields(obj, where)
        model = f.obj_of("model").obj if f.obj.get("model") is not None else None
        window = "context_length" if "context_length" in f.obj else "seq_len"  # format 0
        versions = f.obj_of("versions").obj
        return cls(
            id=f.text("id"),
            created=f.number("created"),
            preset=f.text("preset"),
            label=f.text("label"),
            dataset=DatasetRecord.parse(f.obj_of("dataset")),
            data_path=f.text("data_path"),
            tokenizer=f.text("tokenizer", "gpt2"),
            vocab_dir=f.opt_text("vocab_dir"),
            model=model,
            context_length=f.opt_integer(window, 1),
            train=dict(f.obj_of("train").obj),
            params=f.opt_integer("params", 0),
            init_from=f.opt_text("init_from"),
            imported_from=f.opt_text("imported_from"),
            world_size=f.integer("world_size", 1, low=1),
            versions={str(k): str(v) for k, v in versions.items()},
            format=f.integer("format", 0, low=0),
            where=where,
            raw=dict(f.obj),
        )

    def to_json(self) -> str:
        """The file's text, in this version's format (`seq_len` becomes `context_length`)."""
        return json.dumps(_with_unknown(self, format=RUN_FORMAT, seq_len=None), indent=2)

    def train_config(self) -> TrainConfig:
        """The run's TrainConfig; bad values are a DamagedFile."""
        try:
            return TrainConfig.from_dict(self.train)
        except TuiGptError as exc:
            raise DamagedFile(f"{self.where}: damaged train settings ({exc})") from None

    def model_config(self) -> GPTConfig:
        """The run's GPTConfig, bounds checked as a checkpoint's is."""
        if self.model is None:
            raise DamagedFile(f"{self.where}: damaged (no model)")
        return parse_model_config(self.model, self.where)


# ----------------------------------------------------------------------------- status.json

# What status.json says of a run, as its trainer last wrote it.
Status = Literal["running", "paused", "stopped", "finished", "failed", "imported", "unknown"]


@dataclass(frozen=True)
class StatusRecord:
    """status.json: how the run stands, as its trainer last wrote it."""

    status: Status = "unknown"
    step: int = -1
    epoch: int = 0
    tokens_seen: int = 0
    best_val_loss: float | None = None
    best_val_bpb: float | None = None
    pid: int | None = None
    updated: float | None = None
    error: str = ""
    ended: str = ""  # why a finished training ended, in words
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, obj: Any, where: str) -> StatusRecord:
        f = Fields(obj, where)
        return cls(
            status=f.choice("status", get_args(Status), "unknown"),
            step=f.integer("step", -1, low=-1),
            epoch=f.integer("epoch", 0, low=0),
            tokens_seen=f.integer("tokens_seen", 0, low=0),
            best_val_loss=f.number("best_val_loss"),
            best_val_bpb=f.number("best_val_bpb"),
            pid=f.opt_integer("pid", 0),
            updated=f.number("updated"),
            error=f.text("error"),
            ended=f.text("ended"),
            raw=dict(f.obj),
        )

    def to_json(self) -> str:
        return json.dumps(_with_unknown(self))


# ----------------------------------------------------------------------------- scores.json


@dataclass(frozen=True)
class SplitScore:
    """One checkpoint scored on every token of the run's validation split (`tui-gpt eval`).
    `weights` identifies the checkpoint file scored (its size and modification time): a
    score of weights since replaced is stale."""

    checkpoint: str  # best | latest
    step: int  # the checkpoint's last step (-1 when unknown)
    weights: str
    loss: float
    bpb: float
    tokens: int
    time: float

    @classmethod
    def parse(cls, obj: Any, where: str) -> SplitScore:
        f = Fields(obj, where)
        loss, bpb = f.number("loss"), f.number("bpb")
        if loss is None or bpb is None:
            raise DamagedFile(f"{where}: damaged (no loss or bpb)")
        return cls(f.choice("checkpoint", ("best", "latest"), "best"), f.integer("step", -1),
                   f.text("weights"), loss, bpb, f.integer("tokens", 0, low=0),
                   f.number("time") or 0.0)  # fmt: skip


def parse_scores(obj: Any, where: str) -> dict[str, SplitScore]:
    """scores.json: {checkpoint: SplitScore}."""
    f = Fields(obj, where)
    return {k: SplitScore.parse(f.obj[k], f"{where} {k}") for k in ("best", "latest") if k in f.obj}


# ----------------------------------------------------------------------------- process.json


@dataclass(frozen=True)
class ProcessRecord:
    """process.json: the process training a run, and when it was last seen alive."""

    pid: int
    host: str
    heartbeat: float
    started: float | None = None
    ended: float | None = None

    @classmethod
    def parse(cls, obj: Any, where: str) -> ProcessRecord:
        f = Fields(obj, where)
        pid, beat = f.opt_integer("pid", 1), f.number("heartbeat")
        if pid is None or beat is None:
            raise DamagedFile(f"{where}: damaged (no pid or heartbeat)")
        return cls(pid, f.text("host"), beat, f.number("started"), f.number("ended"))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _with_unknown(record: Any, **changes: Any) -> dict[str, Any]:
    """A record's JSON form: its fields (`changes` made; None drops a key) after the keys it
    was read with that this version does not know (a newer tui-gpt's), kept as they were."""
    fields = {k: v for k, v in asdict(record).items() if k not in ("where", "raw")}
    merged = {**{k: v for k, v in record.raw.items() if k not in fields}, **fields, **changes}
    return {k: v for k, v in merged.items() if not (k in changes and v is None)}


def read_record(path: Path, parse: Callable[[Any, str], T]) -> T | None:
    """The record in a file; None when there is no file. Damage: DamagedFile."""
    try:
        obj = read_json(path)
    except FileNotFoundError:
        return None
    return parse(obj, str(path))
