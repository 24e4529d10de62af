"""The tiny trainings many tests build, in one place: the training settings they start
from, a sink that records events (and can stop the run), and a job on the project's own
text with byte tokens (runs anywhere, no vocabulary to fetch)."""

from __future__ import annotations

from tests.conftest import NIGHT_KITCHEN
from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec
from tui_gpt.core.events import Event, Step
from tui_gpt.core.jobs import JobHooks, assemble
from tui_gpt.core.trainer import TrainerControl


def config(**changes) -> TrainConfig:
    base = dict(
        epochs=3,
        batch_size=8,
        eval_freq=5,
        eval_iter=2,
        precision="fp32",
        sample_tokens=10,
        lr=1e-3,
    )
    base.update(changes)
    return TrainConfig(**base)


class Recorder:
    def __init__(self, stop_after_step: int | None = None, control: TrainerControl | None = None):
        self.events: list[Event] = []
        self.stop_after_step, self.control = stop_after_step, control

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, Step) and event.step == self.stop_after_step:
            self.control.stop("test stop")

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def start(runs_dir, cfg, sinks=(), control=None):
    # The project's own text, byte tokens: 5,941 training tokens -> 92 windows of 64 -> 11
    # batches of 8 per epoch; runs anywhere, no vocabulary to fetch.
    spec = TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 64, "byte"), cfg)
    return assemble(spec, runs_dir=runs_dir, hooks=JobHooks(list(sinks), control))
