"""The runs browser: every run with status, steps and best validation loss."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui_gpt.core.runs import Run, RunSummary, delete_run, list_runs
from tui_gpt.ui.host import host
from tui_gpt.ui.screens.confirm import ConfirmScreen
from tui_gpt.ui.widgets.header import Header


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Dashboard"),
        Binding("c", "chat", "Generate"),
        Binding("r", "resume", "Resume"),
        Binding("b", "resume_background", "Resume in background"),
        Binding("d", "delete", "Delete"),
        Binding("f5", "reload", "Refresh"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.summaries: list[RunSummary] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "runs"
        table = self.query_one(DataTable)
        table.add_columns("run", "created", "dataset", "preset", "steps", "best val", "state")
        self.action_reload()
        table.focus()

    def action_reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.summaries = list_runs(self.root)
        for s in self.summaries:
            created = (
                time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created)) if s.created else "-"
            )
            best = f"{s.best_val_loss:.3f}" if s.best_val_loss is not None else "-"
            table.add_row(
                s.id, created, s.dataset, s.preset, str(s.steps), best, s.describe(), key=s.path
            )
        self.query_one("#runs-hint", Static).update(
            f"{len(self.summaries)} run(s) in {self.root}"
            if self.summaries
            else f"no runs yet in {self.root}"
        )

    def selected(self) -> Run | None:
        table = self.query_one(DataTable)
        if not self.summaries or table.cursor_row is None:
            return None
        return Run(self.summaries[table.cursor_row].path)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # The table takes Enter for itself and reports the row it selected.
        self.action_open()

    def action_open(self) -> None:
        run = self.selected()
        if run is not None:
            host(self).open_dashboard(run)

    def action_chat(self) -> None:
        run = self.selected()
        if run is not None:
            host(self).open_chat(run)

    def action_resume(self) -> None:
        run = self.selected()
        if run is not None:
            host(self).resume_training(run)

    def action_resume_background(self) -> None:
        run = self.selected()
        if run is not None:
            host(self).resume_in_background(run)

    def action_delete(self) -> None:
        run = self.selected()
        if run is None:
            return
        if self.summaries[self.query_one(DataTable).cursor_row].state == "live":
            self.notify(
                "This run is training; stop it first (s on its dashboard)", severity="warning"
            )
            return
        if host(self).local_control(run) is not None:
            self.notify("This run is training; stop it first", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                delete_run(run)
                self.notify(f"Deleted {run.id}")
                self.action_reload()

        self.app.push_screen(ConfirmScreen(f"Delete run {run.id} and its checkpoints?"), answer)
