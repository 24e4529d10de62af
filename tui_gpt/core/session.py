"""One training at a time in a process, whoever drives it: `tui-gpt train` on the main
thread, the app from a worker thread. It holds what both need and neither should keep in
its own way: the control (stop, pause, checkpoint) that exists before the job does, the job
once assembled, where the training stands, and whether it is over.

It knows nothing of terminals or widgets: the caller passes sinks and callbacks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import Event, Progress
from tui_gpt.core.jobs import JobHooks, TrainingJob
from tui_gpt.core.runs import Run
from tui_gpt.core.trainer import Sink, TrainerControl

Build = Callable[[JobHooks], TrainingJob]


class TrainingSession:
    """The training of this process. `begin()` claims it (a second training is refused),
    `run()` assembles the job and trains it to the end, on whatever thread calls it; `stop()`
    and `wait()` may be called from any thread, before the job exists too: a stop asked for
    while the dataset is still being prepared ends the trainer at its first step."""

    def __init__(self) -> None:
        self.control = TrainerControl()
        self.job: TrainingJob | None = None
        self.progress = Progress()  # where the training stands: step / planned steps
        self._active = False
        self._done = threading.Event()
        self._done.set()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """From begin() until run() returns (or fails)."""
        return self._active

    @property
    def run_folder(self) -> Run | None:
        """The run being trained, once its job is assembled."""
        job = self.job
        return job.run if self._active and job is not None else None

    def begin(self) -> TrainerControl:
        """Claim the session for a new training; its control is fresh, its progress empty."""
        with self._lock:
            if self._active:
                raise TuiGptError("a training is already running in this process")
            self._active = True
            self._done.clear()
            self.control = TrainerControl()
            self.progress = Progress()
            self.job = None
        return self.control

    def run(
        self,
        build: Build,
        sinks: list[Sink],
        *,
        tokenizing: Callable[[int, int], None] | None = None,
        notice: Callable[[str], None] | None = None,
        on_job: Callable[[TrainingJob], None] | None = None,
    ) -> str:
        """Assemble the job (`build`), call `on_job` with it, train to the end; returns
        "finished" or "stopped". Raises what assembling or training raises; either way the
        session is over when this returns. Call begin() first."""
        if not self._active:
            raise RuntimeError("TrainingSession.run() before begin()")
        try:
            hooks = JobHooks([self._follow, *sinks], self.control, tokenizing, notice)
            self.job = job = build(hooks)
            if on_job is not None:
                on_job(job)
            return job.run_training()
        finally:
            self._active = False
            self._done.set()

    def controls(self, run: Run) -> TrainerControl | None:
        """The control of `run` if it is the one training here now."""
        current = self.run_folder
        return self.control if current is not None and current.path == run.path else None

    def stop(self, reason: str) -> None:
        """Stop after the current step and save (nothing when no training runs)."""
        if self._active:
            self.control.stop(reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Until the training is over (at once when none runs); False on a timeout."""
        return self._done.wait(timeout)

    def _follow(self, event: Event) -> None:
        self.progress.update(event)
