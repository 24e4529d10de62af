"""Loss charts drawn with plotext, as text: used by `tui-gpt plot` and the app's dashboard.

Training and validation loss against epochs (bottom axis) with tokens seen on the top axis,
as the reference's figure; and perplexity against tokens seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import plotext as plt

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import Eval, Event, RunStarted, Step
from tui_gpt.core.experiments import X_LABELS, RunDetails, XAxis, metric_for, short_names, values

# Below this plotext draws garbage (an axis upside down): refuse with a clear line instead.
MIN_WIDTH, MIN_HEIGHT = 30, 8


@dataclass
class StepLosses:
    """The training loss of every step (the dashboard's line between evaluations)."""

    steps: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    def averaged(self, points: int) -> StepLosses:
        """At most about `points` points, each the mean of a run of steps: thinner for the
        chart and smoother than single noisy batches."""
        n = len(self.steps)
        if n <= points:
            return self
        width = -(-n // points)
        out = StepLosses()
        for i in range(0, n, width):
            chunk = [v for v in self.loss[i : i + width] if math.isfinite(v)]
            out.steps.append(self.steps[min(i + width, n) - 1])
            out.tokens.append(self.tokens[min(i + width, n) - 1])
            out.loss.append(sum(chunk) / len(chunk) if chunk else math.nan)
        return out


@dataclass
class LossHistory:
    """Evaluation points collected from eval events (or a run's events.jsonl); with
    `per_step`, also every step's training loss."""

    steps: list[int] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)  # fractional epoch at each evaluation
    tokens: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    batches_per_epoch: int = 0
    train_bpb: list[float] = field(default_factory=list)  # NaN where a run did not record it
    val_bpb: list[float] = field(default_factory=list)
    per_step: bool = False
    step_losses: StepLosses = field(default_factory=StepLosses)

    def add_event(self, event: Event) -> None:
        if isinstance(event, RunStarted) and event.train_batches:
            self.batches_per_epoch = event.train_batches
        elif isinstance(event, Step) and self.per_step:
            self.step_losses.steps.append(event.step)
            self.step_losses.tokens.append(event.tokens_seen)
            self.step_losses.loss.append(event.loss)
        elif isinstance(event, Eval):
            self.steps.append(event.step)
            self.epochs.append((event.step + 1) / (self.batches_per_epoch or 1))
            self.tokens.append(event.tokens_seen)
            self.train.append(event.train_loss)
            self.val.append(event.val_loss)
            self.train_bpb.append(math.nan if event.train_bpb is None else event.train_bpb)
            self.val_bpb.append(math.nan if event.val_bpb is None else event.val_bpb)

    @property
    def has_bpb(self) -> bool:
        return any(math.isfinite(v) for v in self.val_bpb)

    def epochs_or_steps(self) -> list[float]:
        """The evaluations' x positions: epochs where known, else steps."""
        return self.epochs if self.batches_per_epoch else [float(s) for s in self.steps]

    def epoch_of(self, step: int) -> float:
        """The fractional epoch after `step` (0-based), or the step where epochs are unknown."""
        return (step + 1) / self.batches_per_epoch if self.batches_per_epoch else step


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else float("nan") for v in values]


def thinned(history: LossHistory, points: int) -> LossHistory:
    """At most about `points` evaluations, evenly spaced, always keeping the last: a chart
    cell cannot show more, and plotext's drawing time grows with the points."""
    n = len(history.steps)
    if n <= points:
        return history
    keep = list(range(0, n, -(-n // points)))
    if keep[-1] != n - 1:
        keep.append(n - 1)

    def pick(values: list) -> list:
        return [values[i] for i in keep]

    return LossHistory(
        pick(history.steps),
        pick(history.epochs),
        pick(history.tokens),
        pick(history.train),
        pick(history.val),
        history.batches_per_epoch,
        pick(history.train_bpb),
        pick(history.val_bpb),
        history.per_step,
        history.step_losses,
    )


def check_size(width: int, height: int) -> None:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise TuiGptError(
            f"a chart needs at least {MIN_WIDTH} columns and {MIN_HEIGHT} rows (got {width} x {height})"
        )


View = Literal["loss", "perplexity", "bpb"]
VIEWS: tuple[View, ...] = ("loss", "perplexity", "bpb")


def loss_chart(
    history: LossHistory, width: int, height: int, view: View = "loss", color: bool = True
) -> str:
    """The chart as a string (ANSI colours when `color`): loss against epochs with tokens
    seen on top, perplexity against tokens seen, or bits per byte against tokens seen."""
    history = thinned(history, 4 * max(width, 20))  # braille: 2 dots a column, with margin
    chart = _Chart(width, height, color)
    per_step = history.step_losses.averaged(2 * max(width, 20))
    if not history.steps and not (view == "loss" and per_step.steps):
        return chart.finish("no evaluation yet")
    if view == "perplexity":
        ppl = [math.exp(min(v, 700)) for v in history.val]
        tppl = [math.exp(min(v, 700)) for v in history.train]
        chart.line(history.tokens, tppl, "train perplexity", TRAIN_COLOR)
        chart.line(history.tokens, ppl, "val perplexity", VAL_COLOR)
        plt.xlabel("tokens seen")
        plt.yscale("log")
        return chart.finish("perplexity")
    if view == "bpb":
        chart.line(history.tokens, _finite(history.train_bpb), "train bits/byte", TRAIN_COLOR)
        chart.line(history.tokens, _finite(history.val_bpb), "val bits/byte", VAL_COLOR)
        plt.xlabel("tokens seen")
        return chart.finish(
            "bits per byte" if history.has_bpb else "bits per byte: not recorded by this run"
        )
    _loss_view(history, per_step, chart)
    return chart.finish("loss")


TRAIN_COLOR, VAL_COLOR = "cyan", "orange"
# The series of a comparison, in turn (plotext's names; a terminal's 16 colours).
PALETTE = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")


class _Chart:
    """One plotext figure, its title and legend on a line of their own above the plot:
    plotext's legend sits inside the plot's top-left corner, where falling loss curves start."""

    def __init__(self, width: int, height: int, color: bool) -> None:
        self.color = color
        self.keys: list[tuple[str, str]] = []  # (label, colour) per series, in order
        # Rows inside the frame: less the legend line, the frame, both axes' ticks and labels.
        self.plot_rows = max(height, MIN_HEIGHT) - 1 - 6
        plt.clear_figure()
        plt.plot_size(max(width, MIN_WIDTH), max(height, MIN_HEIGHT) - 1)
        plt.theme("pro" if color else "clear")

    def line(self, xs: list, ys: list[float], label: str, color: str, **kw: str) -> None:
        plt.plot(xs, ys, marker="braille", color=color, **kw)
        if label:
            self.keys.append((label, color))

    def finish(self, title: str) -> str:
        keys = "  ".join(
            (plt.colorize("━━", c) if self.color else "--") + " " + label for label, c in self.keys
        )
        head = f"{title}    {keys}" if keys else title
        text = plt.build()
        return head + "\n" + (text if self.color else plt.uncolorize(text))


def _loss_view(history: LossHistory, per_step: StepLosses, chart: _Chart) -> None:
    """Loss against epochs (steps where epochs are unknown), tokens seen on the top axis.
    The training line is every step's loss (averaged over runs of steps) where the history
    has it, so it moves between evaluations; else the evaluations' training loss."""
    if per_step.steps:
        train_x = [history.epoch_of(s) for s in per_step.steps]
        train, train_tokens = _finite(per_step.loss), per_step.tokens
    else:
        train_x, train, train_tokens = (
            history.epochs_or_steps(),
            _finite(history.train),
            history.tokens,
        )
    val_x, val = history.epochs_or_steps(), _finite(history.val)
    chart.line(train_x, train, "train loss", TRAIN_COLOR)
    if val_x:
        chart.line(val_x, val, "val loss", VAL_COLOR)
    # Tokens seen on the top axis: the training points on the upper x-axis too (so both axes
    # span the same range), ticks labelled with the tokens seen at them.
    chart.line(train_x, train, "", TRAIN_COLOR, xside="upper")
    picks = sorted({round(i * (len(train_x) - 1) / 3) for i in range(4)})
    plt.xticks([train_x[i] for i in picks], [_short(train_tokens[i]) for i in picks],
               xside="upper")  # fmt: skip
    plt.xlabel("epochs" if history.batches_per_epoch else "steps", xside="lower")
    plt.xlabel("tokens seen", xside="upper")
    _even_y_ticks([*train, *val], chart)


def nice_ticks(values: list[float], count: int = 5, whole: bool = False) -> list[float]:
    """About `count` evenly spaced round values across `values`' range (steps of 1, 2, 2.5
    or 5 times a power of ten; whole numbers only with `whole`)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return []
    lo, hi = min(finite), max(finite)
    if hi - lo <= 0:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 10) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _tick_text(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1000 else f"{value:g}"


def _even_y_ticks(values: list[float], chart: _Chart) -> None:
    # Ticks 1.5 rows apart or more: two on one row would leave plotext to pick either label
    # (it does, differently from one process to the next).
    finite = [v for v in values if math.isfinite(v)]
    span = max(finite) - min(finite) if finite else 0.0
    for count in (5, 4, 3, 2):
        ticks = nice_ticks(values, count)
        gap = ticks[1] - ticks[0] if len(ticks) > 1 else span
        if span <= 0 or gap / span * (chart.plot_rows - 1) >= 1.5:
            break
    if len(ticks) > 1:
        plt.yticks(ticks, [_tick_text(t) for t in ticks])


def _short(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def compare_chart(
    runs: list[RunDetails], axis: XAxis, width: int, height: int, train: bool = False,
    color: bool = True,
) -> str:  # fmt: skip
    """Validation loss of several runs on one chart (training loss too with `train`), the
    x axis tokens seen, steps or training time; the legend names runs by their short label.
    Runs with different tokenizers are drawn in bits per byte (a loss per token would not
    compare)."""
    chart = _Chart(width, height, color)
    metric = metric_for(runs)
    all_x, all_y = list[float](), list[float]()
    colors = iter(PALETTE * (1 + 2 * len(runs) // len(PALETTE)))
    for r, name in zip(runs, short_names(runs), strict=True):
        if not r.curve:
            continue
        xs = [p.x(axis) for p in r.curve]
        val = _finite(values(r, metric))
        chart.line(xs, val, f"{name} val", next(colors))
        all_x, all_y = all_x + xs, all_y + val
        if train:
            tr = _finite(values(r, metric, "train"))
            chart.line(xs, tr, f"{name} train", next(colors))
            all_y += tr
    what = "bits per byte" if metric == "bpb" else "loss"
    splits = "training and validation" if train else "validation"
    plt.xlabel(X_LABELS[axis])
    _even_y_ticks(all_y, chart)
    if axis != "time":  # steps and tokens are whole numbers
        ticks = nice_ticks(all_x, whole=True)
        if len(ticks) > 1:
            plt.xticks(ticks, [_short(int(t)) for t in ticks])
    return chart.finish(f"{splits} {what}" if chart.keys else "no evaluation yet")


def save_figure(runs: list[RunDetails], path: str, axis: XAxis) -> None:
    """The runs' training and validation losses as a .png, .svg or .pdf (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: a file only
        from matplotlib import pyplot
    except ImportError:
        raise TuiGptError(
            "images need matplotlib: pip install 'tui-gpt[plots]' (or write a .csv)"
        ) from None
    fig, ax = pyplot.subplots(figsize=(7, 4), dpi=120)
    metric = metric_for(runs)
    for r, name in zip(runs, short_names(runs), strict=True):
        xs = [p.x(axis) for p in r.curve]
        (line,) = ax.plot(xs, values(r, metric), label=f"{name} validation")
        ax.plot(xs, values(r, metric, "train"), linestyle="--", color=line.get_color(),
                label=f"{name} training")  # fmt: skip
    ax.set_xlabel(X_LABELS[axis])
    ax.set_ylabel("bits per byte" if metric == "bpb" else "loss")
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise TuiGptError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(fig)
