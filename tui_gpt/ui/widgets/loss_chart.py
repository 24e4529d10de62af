"""The loss chart: plotext drawn to text, redrawn at most a few times per second."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui_gpt.charts import VIEWS, LossHistory, View, loss_chart
from tui_gpt.core.events import Eval, Event, RunStarted, Step

# Step events a dashboard decodes when it catches up on a run's file: evenly spaced, enough
# for the training line at any terminal width (decoding all of a long run's would stall it).
CHART_STEPS = 2000


class LossChart(Static):
    DEFAULT_CSS = "LossChart { height: 1fr; min-height: 8; }"

    def __init__(self, redraw_interval: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = LossHistory(per_step=True)  # the line moves with every step
        self.view: View = "loss"
        self._dirty = True
        self._drawn = (0, 0)
        self._interval = redraw_interval

    def on_mount(self) -> None:
        self.set_interval(self._interval, self._redraw_if_needed)

    def add_event(self, event: Event) -> None:
        if isinstance(event, Eval | RunStarted | Step):
            self.history.add_event(event)
            self._dirty = True

    def next_view(self) -> None:
        """Loss, perplexity, bits per byte (where the run records it), loss again."""
        views = [v for v in VIEWS if v != "bpb" or self.history.has_bpb]
        self.view = (
            views[(views.index(self.view) + 1) % len(views)] if self.view in views else "loss"
        )
        self._dirty = True
        self._redraw_if_needed()

    def on_resize(self) -> None:
        self._dirty = True

    def _redraw_if_needed(self) -> None:
        size = (self.content_size.width, self.content_size.height)
        if not self._dirty and size == self._drawn:
            return
        self._dirty, self._drawn = False, size
        if size[0] < 10 or size[1] < 5:
            return
        self.update(Text.from_ansi(loss_chart(self.history, size[0], size[1], self.view)))
