"""What screens may ask of the app: a typed interface, so a screen never reaches into the
app's attributes and the app is free to change how it keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from textual.screen import Screen

    from tui_gpt.core.config import TrainSpec
    from tui_gpt.core.runs import Run
    from tui_gpt.core.trainer import TrainerControl


class Host(Protocol):
    runs_dir: Path
    redraw_interval: float

    @property
    def training_active(self) -> bool: ...

    def start_training(self, spec: TrainSpec) -> None: ...

    def start_background(self, spec: TrainSpec) -> None: ...

    def resume_training(self, run: Run, changes: dict[str, Any] | None = None) -> None: ...

    def resume_in_background(self, run: Run) -> None: ...

    def open_dashboard(self, run: Run) -> None: ...

    def open_chat(self, run: Run, which: str = "best") -> None: ...

    def superseded(self, screen: Screen) -> bool:
        """Whether `screen` is the dashboard of an earlier training of a run that has
        trained here again since: its state is history, never to be shown again."""
        ...

    def local_control(self, run: Run) -> TrainerControl | None:
        """The control of the training of `run` in this window, if it trains here now."""
        ...


def host(screen: Screen) -> Host:
    return cast(Host, screen.app)
