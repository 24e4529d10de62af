"""A training's time budget (`--minutes`): how many steps fit in the time left, re-judged
from the pace of the steps so far, so the learning-rate schedule has decayed when the time
is up.

The budget counts from when the command began (start-up and data preparation are part of
it). The pace counts from the first step of this process (it warms caches up) and again
after a pause. The closing work a budgeted run still owes when time is up (a sample, an
evaluation, a save) is kept out of the time left, at the longest any of them has taken.
The trainer owns none of this arithmetic; it asks, and under torchrun agrees the answers
across ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLOSING_TASKS = 3  # a sample, an evaluation and a save end a budgeted run
MIN_PACE_STEPS = 3  # steps run before their pace is trusted


class TimeBudget:
    """The steps a run may make: `bound` (what its epochs and max_steps allow), cut to what
    fits before `deadline` (time.monotonic() seconds; None: no budget)."""

    def __init__(self, bound: int, minutes: float | None, started: float | None = None) -> None:
        begun = time.monotonic() if started is None else started
        self.bound = bound
        self.deadline = begun + minutes * 60 if minutes else None
        self._pace_from: tuple[int, float] | None = None  # (steps done, time) the pace counts from
        self._closing = 0.0  # seconds the longest closing task took

    @property
    def limited(self) -> bool:
        return self.deadline is not None

    def seconds_left(self) -> float | None:
        """Seconds until the deadline; None without a budget."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def ends_by(self) -> float | None:
        """The deadline as wall-clock time (time.time()), for events."""
        left = self.seconds_left()
        return None if left is None else time.time() + left

    def restart_pace(self) -> None:
        """After a pause: the time paused says nothing of the pace of steps."""
        self._pace_from = None

    def timed(self, work: Callable[[], T]) -> T:
        """Run an evaluation, a save or a sample, keeping the longest as what each task that
        closes a budgeted run may cost."""
        t0 = time.monotonic()
        result = work()
        self._closing = max(self._closing, time.monotonic() - t0)
        return result

    def fit(self, steps_done: int, planned: int) -> int:
        """The total steps that fit at the pace measured so far (evaluations and saves
        included), less the closing tasks; `planned` while the pace is not yet known. Never
        more than `bound`; `steps_done` once the time is up. Unchanged without a budget."""
        if self.deadline is None:
            return planned
        now = time.monotonic()
        if self._pace_from is None:  # the first step of this process warms caches up
            self._pace_from = (steps_done, now)
        first, since = self._pace_from
        ran = steps_done - first
        left = self.deadline - now - CLOSING_TASKS * self._closing
        if left <= 0:
            return steps_done
        if ran >= MIN_PACE_STEPS:
            return min(self.bound, steps_done + int(left / ((now - since) / ran)))
        return planned

    def cut_short(self, total: int) -> bool:
        """Whether the budget, not the epochs or max_steps, set the run's last step."""
        return self.deadline is not None and total < self.bound
