"""The model and the epochs a time budget buys: `--preset auto` and `--epochs` left blank,
the default recipe's.

In a fixed number of minutes a bigger model learns more from each token but makes fewer
updates, and a small text runs out of new tokens: the best shape depends on the budget, the
machine's speed and the text's size. Shapes on a ladder (nano to mini, context 64 to 256)
are measured on this machine in the step the run will take (core/estimate.py; remembered
per machine and shape, so the next plan is instant):

- nano first: where it makes fewer than `MIN_STEPS` updates (a short budget, or a text
  whose epochs are fewer steps), it trains;
- then micro at context 64: where it makes fewer, nano trains; where its epochs end before
  the budget, micro trains: the text, not the time, limits it, and a larger model over-fits
  it (docs/recipes.md);
- otherwise the largest larger shape that still makes `MIN_STEPS` before the budget ends.

Each larger shape is first guessed from the last measured one at an optimistic pace, and
measured only if the guess qualifies, so a short budget does not spend itself measuring.

Epochs left blank are `PLAIN_EPOCHS` without dropout; where those are fewer than
`MIN_STEPS` steps and the budget fits more passes (a small text), as many as fit, at most
`MAX_EPOCHS`, with `REPEAT_DROPOUT` unless a dropout is given.

The choice is a preset, a context length, epochs and dropout, written into the run's
settings like any other: the run is reproducible from its settings.json, and what is given
by hand (`--preset`, `--context-length`, `--epochs`, `--dropout`) is never second-guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from tui_gpt.core import memory
from tui_gpt.core.config import (
    AUTO,
    MAX_EPOCHS,
    PLAIN_EPOCHS,
    REPEAT_DROPOUT,
    ModelChoice,
    TrainConfig,
    count_params,
    model_config,
)
from tui_gpt.core.data import PreparedData, plan
from tui_gpt.core.device import Runtime
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.estimate import Plan, fastest, make_plan
from tui_gpt.core.events import count
from tui_gpt.core.shape import GPTConfig

# (preset, context length), in the order of their step time on every CPU measured
# (docs/recipes.md: "How `--preset auto` sizes a model").
LADDER: tuple[tuple[str, int], ...] = (
    ("nano", 64),
    ("micro", 64),
    ("milli", 64),
    ("milli", 128),
    ("mini", 128),
    ("mini", 256),
)
# `auto` without a budget (or under torchrun): the shape the default recipe had before.
UNSIZED = ("micro", 64)
# Below this many updates a bigger model has not learned what a smaller one learns in more.
MIN_STEPS = 500
# A rung's step is guessed from the last measured one as this share of their compute ratio
# (small models run below their FLOP count's share: fixed costs per step), so a rung is
# measured only if it might qualify.
OPTIMISM = 0.5


@dataclass(frozen=True)
class Rung:
    """One shape weighed: its settings, its measured step and its plan under the budget
    (at the epochs given, or at PLAIN_EPOCHS where they are blank)."""

    preset: str
    context_length: int
    shape: GPTConfig
    step_seconds: float  # measured: one update, evaluations left out
    plan: Plan
    passes: float  # the epochs the whole budget would fit

    @property
    def enough(self) -> bool:
        return self.plan.steps >= MIN_STEPS

    @property
    def room(self) -> bool:
        """Whether its epochs end before the budget does (time is left for more)."""
        return not self.plan.budget_binds


@dataclass(frozen=True)
class Sizing:
    """The settings with a concrete preset, context, epochs and dropout, and what was
    weighed to choose them."""

    choice: ModelChoice
    train: TrainConfig
    chosen: Rung | None = None  # None where no shape was measured
    tried: tuple[Rung, ...] = ()
    sized: tuple[str, ...] = ()  # the settings chosen here: "preset", "epochs", "dropout"

    def line(self) -> str:
        """What was sized and why, for the run's first lines and the app's plan."""
        if self.chosen is None or not self.sized:
            return ""
        c, parts = self.chosen, []
        if "preset" in self.sized:
            if c.room and not c.enough:
                why = "a small text: the smallest shape"
            elif not c.enough:
                why = f"no shape makes {MIN_STEPS:,} steps in the budget"
            elif c.room:
                why = "the text, not the time, limits it"
            else:
                why = f"the largest that makes {MIN_STEPS:,} steps in the budget"
            parts.append(
                f"{c.preset} ({c.shape.n_layers} x {c.shape.emb_dim}, "
                f"{count_params(c.shape) / 1e6:,.1f}M), context {c.context_length} ({why})"
            )
        if "epochs" in self.sized:
            parts.append(f"{count(self.train.passes, 'epoch')} at most")
        if "dropout" in self.sized:
            parts.append(f"dropout {self.choice.dropout:g}")
        return "sized: " + ", ".join(parts)


def size(
    choice: ModelChoice,
    cfg: TrainConfig,
    vocab_size: int,
    data: PreparedData,
    runtime: Runtime,
    seconds_left: float | None = None,
    measure: bool = True,
    room: int | None = None,
    alone: bool = True,
) -> Sizing:
    """`choice` and `cfg` with what they leave to the budget chosen: the preset (and, unless
    given, the context) under `auto`, blank epochs, and with them a blank dropout. Without
    a time budget `auto` is micro at 64. `room`: bytes free for the training, where known (a
    shape that does not fit is not tried). Without `measure` only remembered step times
    count. Under torchrun (not `alone`) the processes would each measure, and might choose
    apart: nothing is measured, `auto` is micro at 64 and blank epochs are PLAIN_EPOCHS."""
    sized = tuple(name for name, blank in (("preset", choice.preset == AUTO),
                  ("epochs", cfg.epochs is None),
                  ("dropout", cfg.epochs is None and choice.dropout is None)) if blank)  # fmt: skip
    if not sized:
        return Sizing(choice, cfg)
    if cfg.minutes is None or not alone:  # no budget to size to, or not one process's
        preset, context = UNSIZED
        if choice.preset == AUTO:
            choice = replace(choice, preset=preset, context_length=choice.context_length or context)
        return _with_epochs(choice, cfg, None, sized)
    weigh = _Weighing(choice, cfg, vocab_size, data, runtime, seconds_left, measure, room)
    if choice.preset != AUTO:  # blank epochs alone: the shape given is the one weighed
        rung = weigh.rung(choice.preset, window(choice, vocab_size), None)
        return replace(_with_epochs(choice, cfg, rung, sized), chosen=rung)
    chosen = weigh.ladder()
    if chosen is None:
        raise TuiGptError("--preset auto: no model shape fits this text and this machine")
    choice = replace(choice, preset=chosen.preset, context_length=chosen.context_length)
    return replace(_with_epochs(choice, cfg, chosen, sized), chosen=chosen, tried=tuple(weigh.tried))


@dataclass
class _Weighing:
    """The rungs of one sizing, measured as they are needed."""

    choice: ModelChoice
    cfg: TrainConfig
    vocab_size: int
    data: PreparedData
    runtime: Runtime
    seconds_left: float | None
    measure: bool
    room: int | None
    tried: list[Rung] = field(default_factory=list)

    def ladder(self) -> Rung | None:
        """Nano, then micro at 64 where it might make MIN_STEPS, then up while the next
        shape still makes MIN_STEPS before its epochs end (a larger model than the text's
        epochs need over-fits it: docs/recipes.md)."""
        rungs = _ladder(self.choice)
        start = next(i for i, (preset, _) in enumerate(rungs) if preset == UNSIZED[0])
        smallest = self.rung(*rungs[0], None)
        if smallest is not None and (not smallest.enough or start == 0):
            return smallest  # a short budget, or a small text: the smallest shape
        base = self.rung(*rungs[start], smallest)
        if base is None or not base.enough:  # (micro too slow: nano, measured)
            return smallest or base
        chosen = base
        if not base.room:
            for preset, context in rungs[start + 1 :]:
                bigger = self.rung(preset, context, chosen)
                if bigger is None or not bigger.enough or bigger.room:
                    break
                chosen = bigger
        return chosen

    def rung(self, preset: str, context: int, last: Rung | None) -> Rung | None:
        """The rung measured, or None where it does not fit (its shape, the text, memory),
        cannot be measured now, or, guessed from `last` at an optimistic pace, could not
        make MIN_STEPS (then it is not measured)."""
        cfg = self.cfg if self.cfg.epochs is not None else replace(self.cfg, epochs=PLAIN_EPOCHS)
        # Measured as it will train: a blank dropout with blank epochs is 0 (but for a
        # small text), so the run's own plan finds this measurement remembered.
        blank = self.choice.dropout is None and self.cfg.epochs is None
        as_trained = replace(self.choice, preset=preset, dropout=0.0 if blank else self.choice.dropout)
        try:
            shape = as_trained.config(self.vocab_size, context)
        except TuiGptError:  # heads that --kv-heads does not divide
            return None
        need = memory.estimate(shape, memory.shape(cfg, context, self.runtime, shape)).total
        batches = plan(self.data, context, cfg.batch_size, cfg.stride, cfg.grad_accum).train_batches
        if batches == 0 or (self.room is not None and need > self.room):
            return None
        if last is not None:
            ratio = _step_compute(shape, context) / _step_compute(last.shape, last.context_length)
            guess = last.step_seconds * OPTIMISM * ratio
            if _plan(cfg, guess, batches, context, self.seconds_left).steps < MIN_STEPS:
                return None
        try:
            _, step_s, _ = fastest(shape, cfg, context, self.runtime, self.measure)
        except RuntimeError:  # its throwaway copy did not fit (torch's out-of-memory errors)
            return None
        if step_s is None:
            return None
        budget = _plan(cfg, step_s, batches, context, self.seconds_left)
        whole = _plan(replace(cfg, epochs=10**9), step_s, batches, context, self.seconds_left)
        rung = Rung(preset, context, shape, step_s, budget, whole.steps / batches)
        self.tried.append(rung)
        return rung


def _with_epochs(
    choice: ModelChoice, cfg: TrainConfig, rung: Rung | None, sized: tuple[str, ...]
) -> Sizing:
    """Blank epochs (and with them a blank dropout): PLAIN_EPOCHS without dropout, unless
    those are fewer than MIN_STEPS steps of the rung and the budget fits more passes; then
    as many as fit, at most MAX_EPOCHS, with REPEAT_DROPOUT."""
    if cfg.epochs is None:
        repeat = rung is not None and not rung.enough and rung.passes > PLAIN_EPOCHS
        epochs = min(MAX_EPOCHS, math.ceil(rung.passes)) if rung and repeat else PLAIN_EPOCHS
        cfg = replace(cfg, epochs=epochs)
        if choice.dropout is None:
            choice = replace(choice, dropout=REPEAT_DROPOUT if repeat else 0.0)
    return Sizing(choice, cfg, sized=sized)


def window(choice: ModelChoice, vocab_size: int) -> int:
    """The context length of a run of `choice` as far as it is known before sizing: the one
    given, the preset's, or under `auto` the shortest a rung has (what the split must hold)."""
    if choice.context_length:
        return choice.context_length
    if choice.preset == AUTO:
        return min(context for _, context in LADDER)
    return model_config(choice.preset, vocab_size).context_length


def _step_compute(shape: GPTConfig, context: int) -> float:
    """A step's compute, in proportion: per token, the weights it is multiplied by (all
    but the embedding table's lookup) and attention over the window; times the window."""
    weights = count_params(replace(shape, context_length=context)) - shape.vocab_rows * shape.emb_dim
    attention = 2 * shape.n_layers * context * shape.emb_dim
    return context * (weights + attention)


def _ladder(choice: ModelChoice) -> list[tuple[str, int]]:
    """The rungs tried: at the context given by hand, if any (each preset once)."""
    if choice.context_length is None:
        return list(LADDER)
    return list(dict.fromkeys((preset, choice.context_length) for preset, _ in LADDER))


def _plan(
    cfg: TrainConfig, step_s: float, batches: int, context: int, seconds_left: float | None
) -> Plan:
    bound = cfg.step_bound(batches)
    return make_plan(cfg, step_s, batches, cfg.tokens_per_step(context), bound, seconds_left)
