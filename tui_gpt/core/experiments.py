"""Runs side by side: each run's facts at a glance, its evaluation curve, the settings that
differ between runs, and the curves as CSV rows. What `runs show`, `compare`, `plot --output`
and the app's details panel and comparison screen all read."""

from __future__ import annotations

import contextlib
import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tui_gpt.core.config import SETTINGS_FILE, TrainSpec
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import (
    Error,
    Eval,
    Event,
    Finished,
    Paused,
    Resumed,
    RunStarted,
    Step,
    Stopped,
    duration,
)
from tui_gpt.core.records import RunRecord, SplitScore
from tui_gpt.core.runs import Run, summarize

XAxis = Literal["tokens", "steps", "time"]
X_AXES: tuple[XAxis, ...] = ("tokens", "steps", "time")
X_LABELS = {"tokens": "tokens seen", "steps": "steps", "time": "training time (s)"}


@dataclass
class EvalPoint:
    step: int
    epoch: int
    tokens_seen: int
    time: float  # unix seconds of the evaluation
    seconds: float  # training wall time up to it, pauses between resumptions left out
    train_loss: float
    val_loss: float
    train_bpb: float | None = None  # bits per byte, in runs that recorded them
    val_bpb: float | None = None

    def x(self, axis: XAxis) -> float:
        # Steps as the step lines number them: the first update is step 0.
        return {"tokens": self.tokens_seen, "steps": self.step, "time": self.seconds}[axis]


@dataclass
class RunDetails:
    """A run's facts: what `runs show` prints and the runs browser's side panel shows."""

    id: str
    label: str
    path: str
    state: str
    dataset: str
    dataset_chars: int | None
    dataset_sha256: str
    tokenizer: str
    preset: str
    params: int | None
    device: str
    precision: str
    wall_seconds: float
    steps: int
    tokens_seen: int
    best_val_loss: float | None
    best_step: int | None
    seconds_to_best: float | None
    last_val_loss: float | None
    tok_per_s: float | None
    best_val_bpb: float | None = None  # bits per byte, where the run recorded them
    last_val_bpb: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    curve: list[EvalPoint] = field(default_factory=list)
    # Whole validation split scores (`tui-gpt eval`) of the checkpoints still in place.
    split_scores: dict[str, SplitScore] = field(default_factory=dict)

    @property
    def split_score(self) -> SplitScore | None:
        """The whole-split score to compare runs by: the best weights', else the latest's."""
        return self.split_scores.get("best") or self.split_scores.get("latest")

    def to_dict(self, with_curve: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("curve", "split_scores")}
        d["split_scores"] = {k: asdict(v) for k, v in self.split_scores.items()}
        if with_curve:
            d["curve"] = [p.__dict__ for p in self.curve]
        return d


def flat_settings(run: Run, info: RunRecord) -> dict[str, Any]:
    """Every setting the run was trained with, flat: its settings.json (model and training
    settings) or, for runs from before it (or with a damaged one), what run.json kept; plus
    the dataset."""
    try:
        spec = TrainSpec.read(run.path / SETTINGS_FILE)
    except TuiGptError:
        spec = None
    if spec is not None:
        flat = {**asdict(spec.model), **spec.train.to_dict()}
    else:
        flat = {"preset": info.preset, "tokenizer": info.tokenizer,
                "context_length": info.context_length, **info.train}  # fmt: skip
    if info.model is not None:  # the model's real shape decides, not a name
        with contextlib.suppress(TuiGptError):  # a damaged model: the run is shown damaged
            flat["context_length"] = info.context_length or info.model_config().context_length
    flat["dataset"] = info.dataset.sha256[:12]
    return flat


def training_seconds(events: list[Event]) -> list[float]:
    """Training wall time at each event: the spans from each start or resumption to the end
    of that training, less the time spent paused, so the hours a stopped or finished run
    waited before `--resume` or training further (and what that resumption said before it
    started) and a paused run's wait do not count."""
    out, total, last, running = [], 0.0, None, False
    for e in events:
        if isinstance(e, RunStarted):
            running = True
        elif running and last is not None:
            total += e.time - last
        if isinstance(e, Paused | Stopped | Finished | Error):
            running = False
        elif isinstance(e, Resumed):
            running = True
        last = e.time
        out.append(total)
    return out


def curve(events: list[Event]) -> list[EvalPoint]:
    """The evaluations of a run with the training time up to each."""
    return [
        EvalPoint(
            e.step,
            e.epoch,
            e.tokens_seen,
            e.time,
            t,
            e.train_loss,
            e.val_loss,
            e.train_bpb,
            e.val_bpb,
        )  # fmt: skip
        for e, t in zip(events, training_seconds(events), strict=True)
        if isinstance(e, Eval)
    ]


def undamaged(run: Run) -> Run:
    """The run, if its files can be read; otherwise the one line every command shows."""
    problem = summarize(run).problem
    if problem is not None:
        raise TuiGptError(f"run {run.id} is damaged: {problem}")
    return run


def details(run: Run) -> RunDetails:
    """The facts of one run; a damaged run is described as such, never an exception."""
    summary = summarize(run)
    try:
        info: RunRecord | None = run.record()
    except TuiGptError:  # described by the summary's problem
        info = None
    events = run.typed_events()
    started = [e for e in events if isinstance(e, RunStarted)]
    steps = [e for e in events if isinstance(e, Step)]
    points = curve(events)
    finite = [p for p in points if math.isfinite(p.val_loss)]
    best = min(finite, key=lambda p: p.val_loss, default=None)
    seconds = training_seconds(events)
    wall = seconds[-1] if seconds else 0.0
    tokens = steps[-1].tokens_seen if steps else 0
    return RunDetails(
        id=run.id,
        label=info.label if info else "",
        path=str(run.path),
        state=summary.describe(),
        dataset=summary.dataset,
        dataset_chars=info.dataset.chars if info else None,
        dataset_sha256=info.dataset.sha256 if info else "",
        tokenizer=info.tokenizer if info else "",
        preset=summary.preset,
        params=summary.params,
        device=started[-1].device if started else "",
        precision=started[-1].precision if started else "",
        wall_seconds=wall,
        steps=steps[-1].step + 1 if steps else 0,
        tokens_seen=tokens,
        best_val_loss=best.val_loss if best else None,
        best_step=best.step if best else None,
        seconds_to_best=best.seconds if best else None,
        last_val_loss=points[-1].val_loss if points else None,
        tok_per_s=tokens / wall if wall > 0 and tokens else None,
        best_val_bpb=min((p.val_bpb for p in points if p.val_bpb is not None), default=None),
        last_val_bpb=points[-1].val_bpb if points else None,
        settings=flat_settings(run, info) if info else {},
        curve=points,
        split_scores=_split_scores(run),
    )


def _split_scores(run: Run) -> dict[str, SplitScore]:
    try:
        return run.split_scores()
    except TuiGptError:  # a damaged scores.json: no scores, the rest of the run is fine
        return {}


def short_names(runs: list[RunDetails]) -> list[str]:
    """Names short enough for a chart legend and a table header: each run's label, else the
    time it began (HHMMSS), longer where two would read the same."""
    for cut in (slice(9, 15), slice(4, 15), slice(None)):
        names = [r.label or r.id[cut] or r.id for r in runs]
        if len(set(names)) == len(names):
            break
    return names


Metric = Literal["loss", "bpb"]


def metric_for(runs: list[RunDetails]) -> Metric:
    """Bits per byte where the runs' tokenizers differ (loss per token would not compare)
    and every run recorded them; the loss otherwise."""
    recorded = all(p.val_bpb is not None for r in runs for p in r.curve)
    return "bpb" if len({r.tokenizer for r in runs}) > 1 and recorded else "loss"


def values(r: RunDetails, metric: Metric, split: str = "val") -> list[float]:
    """A run's curve in the metric: its validation (or training) loss, or bits per byte."""
    field = f"{split}_{metric}" if metric == "bpb" else f"{split}_loss"
    return [
        float(getattr(p, field)) if getattr(p, field) is not None else math.nan for p in r.curve
    ]


def differing(runs: list[RunDetails]) -> dict[str, list[Any]]:
    """The settings whose values are not the same in every run: name -> value per run."""
    keys = sorted({k for r in runs for k in r.settings})
    table = {k: [r.settings.get(k) for r in runs] for k in keys}
    return {k: v for k, v in table.items() if any(x != v[0] for x in v)}


# fmt: off
# `training_seconds`: wall time spent training up to the evaluation (waits between a stop
# and a resume left out), as the charts' time axis; `time`: when it happened (Unix seconds).
CSV_COLUMNS = ("run", "step", "epoch", "tokens_seen", "training_seconds", "time", "train_loss",
               "val_loss", "val_perplexity")  # fmt: skip
BPB_COLUMNS = ("train_bits_per_byte", "val_bits_per_byte")  # in runs that recorded them
# fmt: on


def write_csv(runs: list[RunDetails], path: Path) -> int:
    """One row per evaluation of each run; returns the number of rows."""
    rows = 0
    bpb = any(p.val_bpb is not None for r in runs for p in r.curve)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS + (BPB_COLUMNS if bpb else ()))
        for r in runs:
            for p in r.curve:
                ppl = math.exp(p.val_loss) if p.val_loss < 700 else math.inf
                row = [r.id, p.step, p.epoch, p.tokens_seen, f"{p.seconds:.3f}", f"{p.time:.3f}",
                       repr(p.train_loss), repr(p.val_loss), repr(ppl)]  # fmt: skip
                if bpb:
                    row += ["" if v is None else repr(v) for v in (p.train_bpb, p.val_bpb)]
                out.writerow(row)
                rows += 1
    return rows


def short_count(n: int | None) -> str:
    """1.2M, 3.40B: a parameter count for a table."""
    if not n:
        return "-"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def describe(d: RunDetails) -> list[str]:
    """A run's facts as lines of text (also the app's details panel)."""

    chars = f"{d.dataset_chars:,} chars" if d.dataset_chars else ""
    lines = [
        f"run        {d.id}" + (f"  ({d.label})" if d.label else ""),
        f"state      {d.state}",
        f"dataset    {d.dataset} {chars} sha256 {d.dataset_sha256[:12]}",
        f"model      {d.preset} {short_count(d.params)} parameters, tokenizer {d.tokenizer}",
        f"ran on     {d.device or '-'} {d.precision}",
        f"trained    {d.steps:,} steps, {d.tokens_seen:,} tokens, {_clock(d.wall_seconds)}"
        + (f", {d.tok_per_s:,.0f} tok/s" if d.tok_per_s else ""),
        f"val loss   best {_num(d.best_val_loss)} (step {d.best_step if d.best_step is not None else '-'}, "
        f"after {_clock(d.seconds_to_best)}), last {_num(d.last_val_loss)}",
    ]
    if d.best_val_bpb is not None:
        lines.append(f"bits/byte  best {_num(d.best_val_bpb)}, last {_num(d.last_val_bpb)}")
    for name, sc in d.split_scores.items():  # tui-gpt eval: every validation token
        lines.append(f"whole val  {name} (step {sc.step}): {sc.bpb:.4f} bits/byte, "
                     f"loss {sc.loss:.4f}, {sc.tokens:,} tokens")  # fmt: skip
    lines.append("settings")
    shown = setting_lines(d.settings)
    width = max((len(name) for name, _ in shown), default=0)  # a column no wider than needed
    lines += [f"  {name:<{width}} {value}" for name, value in shown]
    return lines


def setting_lines(flat: dict[str, Any]) -> list[tuple[str, str]]:
    """Settings as a user types them: the flag, and the value as the form shows it (an
    unset one as what it means: "preset's", "off", "all"); those that did not shape the run
    (a llama-only setting of a gpt2 run) are left out."""
    from tui_gpt.core.config import ModelChoice, TrainConfig
    from tui_gpt.core.settings import specs

    known = {s.name: s for cls in (ModelChoice, TrainConfig) for s in specs(cls)}
    out = []
    for name, value in flat.items():
        spec = known.get(name)
        if spec is None:  # the dataset's hash, a setting of a newer tui-gpt
            out.append((name, str(value)))
        elif spec.applies(flat):
            out.append((spec.option, spec.show(value) or spec.blank or "-"))
    return out


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _clock(seconds: float | None) -> str:
    return "-" if seconds is None else duration(seconds)


def comparison_rows(runs: list[RunDetails]) -> list[tuple[str, ...]]:
    """The table under the chart: differing settings, then best / time to best / speed."""

    def fmt(v: object) -> str:
        return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    rows = [("", *short_names(runs))]
    rows += [(k, *map(fmt, v)) for k, v in differing(runs).items()]
    rows.append(("best val loss", *(_num(r.best_val_loss, ".4f") for r in runs)))
    if metric_for(runs) == "bpb":
        best = [min((v for v in values(r, "bpb") if math.isfinite(v)), default=None) for r in runs]
        rows.append(("best val bits/byte", *(_num(b, ".4f") for b in best)))
    if any(r.split_score for r in runs):  # `tui-gpt eval`: every validation token
        scored = [r.split_score for r in runs]
        rows.append(("whole val bits/byte", *("-" if sc is None else f"{sc.bpb:.4f}" for sc in scored)))
    rows.append(("time to best", *("-" if r.seconds_to_best is None else duration(r.seconds_to_best)
                                   for r in runs)))  # fmt: skip
    rows.append(("tokens/s", *("-" if not r.tok_per_s else f"{r.tok_per_s:,.0f}" for r in runs)))
    return rows
