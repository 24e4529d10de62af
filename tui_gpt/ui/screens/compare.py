"""Runs side by side: validation (and training) curves overlaid, the x axis switchable
between tokens seen, steps and training time, and a table of the settings that differ with
each run's best validation loss, time to it and speed."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui_gpt.charts import compare_chart
from tui_gpt.core.experiments import X_AXES, RunDetails, comparison_rows, details
from tui_gpt.core.runs import Run
from tui_gpt.ui.messages import RunsRead
from tui_gpt.ui.widgets.header import Header


class ChartView(Static):
    """The chart's place: drawn again by its screen whenever its size changes (the table
    below takes its height late, and the terminal may be resized)."""

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, CompareScreen):
            screen.call_after_refresh(screen.draw)


class CompareScreen(Screen):
    BINDINGS = [
        Binding("x", "next_axis", "X axis"),
        Binding("t", "toggle_train", "Train curves"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = paths
        self.runs: list[RunDetails] = []
        self.axis = X_AXES[0]
        self.train = False
        self.drawn_size: Size | None = None  # what the chart was last drawn for

    def compose(self) -> ComposeResult:
        yield Header()
        yield ChartView("reading the runs ...", id="compare-chart")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Footer(show_command_palette=False)  # f1 Help says ctrl+p

    def on_mount(self) -> None:
        self.title = f"comparing {len(self.paths)} runs"
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        runs = [details(Run(p)) for p in self.paths]
        self.post_message(RunsRead(runs))

    def on_runs_read(self, message: RunsRead) -> None:
        self.runs = message.runs
        table = self.query_one(DataTable)
        table.clear(columns=True)
        header, *rows = comparison_rows(self.runs)
        table.add_columns(*header)
        for row in rows:
            table.add_row(*row)
        self.call_after_refresh(self.draw)  # once the table has taken its rows' height

    def draw(self) -> None:
        """The chart for the size its widget has now (plotext draws for one size)."""
        chart = self.query_one("#compare-chart", Static)
        self.sub_title = f"x: {self.axis}" + (" · training curves too" if self.train else "")
        size = chart.content_size
        if self.runs and size.width >= 30 and size.height >= 8:
            text = compare_chart(self.runs, self.axis, size.width, size.height, self.train)
            chart.update(Text.from_ansi(text))
            self.drawn_size = size

    def action_next_axis(self) -> None:
        self.axis = X_AXES[(X_AXES.index(self.axis) + 1) % len(X_AXES)]
        self.draw()

    def action_toggle_train(self) -> None:
        self.train = not self.train
        self.draw()
