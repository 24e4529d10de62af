"""The runs browser: every run with its state, steps and best validation loss, the selected
run's facts at the side; mark runs to compare them; refreshes itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui_gpt.core.config import further
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import RunStarted, count, event_from_dict
from tui_gpt.core.experiments import describe, details
from tui_gpt.core.export import Format, default_out, export
from tui_gpt.core.runs import Run, RunSummary, delete_run, list_runs, read_events, set_label
from tui_gpt.ui.host import host
from tui_gpt.ui.messages import Say, TextReady
from tui_gpt.ui.screens.compare import CompareScreen
from tui_gpt.ui.screens.confirm import ConfirmScreen
from tui_gpt.ui.screens.prompt import PromptScreen, TypedAhead
from tui_gpt.ui.widgets.header import Header

REFRESH_SECONDS = 3.0

# The table's eight columns need about 100; below this width the details go under the table
# instead of beside it, where they would wrap every line.
NARROW = 140  # columns


class RunsTable(DataTable):
    # The table's own Enter (it reports the row, which the screen opens), named in the footer.
    BINDINGS = [Binding("enter", "select_cursor", "Open", tooltip="Open the dashboard")]


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="Open the dashboard"),
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("m", "compare", "Compare", tooltip="Compare marked"),
        Binding("c", "chat", "Chat", tooltip="Generate: open the generator"),
        Binding("r", "resume", "Resume"),
        Binding("b", "resume_background", "Resume in background", show=False),
        Binding("x", "extend", "Further", tooltip="Train further (more steps or epochs)", show=False),
        Binding("l", "label", "Label", show=False),
        Binding("e", "export", "Export", tooltip="Export (Hugging Face or GGUF)", show=False),
        Binding("d", "delete", "Delete"),
        Binding("f5", "reload", "Refresh", show=False),
        Binding("escape", "app.pop_screen", "Back", show=False),
    ]

    # Actions that ask for a line of text: keys typed right after theirs go into the answer.
    ASKING = ("extend", "label", "export")

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.summaries: list[RunSummary] = []
        self.marked: set[str] = set()  # run paths
        self._ahead: TypedAhead | None = None  # keys typed before an asking dialog is up
        self._asked: TypedAhead | None = None  # those of the dialog up now

    def on_key(self, event: events.Key) -> None:
        # A burst such as "x2e<Enter>" arrives whole before x's dialog is up: the keys after
        # x are kept for it (not taken as the runs list's own keys: e would export).
        if self._ahead is not None and self._ahead.take(event):
            event.stop()
            event.prevent_default()
            return
        if event.key == "enter" and self._asked is not None and not self._asked.submitted:
            # Up by now, but this Enter was typed for it.
            self._asked.submitted = True
            event.stop()
            event.prevent_default()
            dialog = self.app.screen
            if isinstance(dialog, PromptScreen) and dialog.typed is self._asked:
                dialog.answer_now()  # else it answers as it opens
            return
        asks = {b.key for b in self.BINDINGS if isinstance(b, Binding) and b.action in self.ASKING}
        if event.key in asks:
            self._ahead = TypedAhead()

    def _typed_ahead(self) -> TypedAhead | None:
        """What was typed after an asking action's key; every asking action takes it first,
        so that none is left to swallow later keys whether or not a dialog opens."""
        typed, self._ahead = self._ahead, None
        return typed

    def _ask(self, dialog: PromptScreen, answer: Callable[[str | None], None]) -> None:
        """Open an asking action's dialog; until it is answered, an Enter that reaches the
        table (typed in the same burst) is the dialog's."""
        self._asked = dialog.typed

        def answered(text: str | None) -> None:
            self._asked = None
            answer(text)

        self.app.push_screen(dialog, answered)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-body"):
            yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="run-details-pane"):
                yield Static("", id="run-details")
        yield Static("", id="runs-hint")
        yield Footer(show_command_palette=False)  # f1 Help says ctrl+p

    def on_mount(self) -> None:
        self.title = "runs"
        table = self.query_one(DataTable)
        # The columns a user asks for first come first; the full id is in the details.
        table.add_columns("", "run", "state", "steps", "best val", "dataset", "preset", "created")
        self.action_reload()
        table.focus()
        self.set_interval(REFRESH_SECONDS, self.action_reload)

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW, "narrow")

    def action_reload(self) -> None:
        table = self.query_one(DataTable)
        current = self.selected()
        self.summaries = list_runs(self.runs_dir)
        table.clear()
        for s in self.summaries:
            created = time.strftime("%m-%d %H:%M", time.localtime(s.created)) if s.created else "-"
            best = f"{s.best_val_loss:.3f}" if s.best_val_loss is not None else "-"
            table.add_row(
                "✓" if s.path in self.marked else " ", s.label or s.id[:15], s.brief(),
                str(s.steps), best, s.dataset, s.preset, created, key=s.path,
            )  # fmt: skip
        paths = [s.path for s in self.summaries]
        if current is not None and str(current.path) in paths:
            table.move_cursor(row=paths.index(str(current.path)))
        hint = (
            f"{count(len(self.summaries), 'run')} in {self.runs_dir}"
            if self.summaries
            else f"no runs yet in {self.runs_dir}"
        )
        if self.marked:
            hint += f" · {len(self.marked)} marked: m compares them"
        # The keys the footer has no room for at 80 columns (all are in F1 and ctrl+p).
        hint += "\nalso: x train further · b resume in background · l label · e export"
        self.query_one("#runs-hint", Static).update(hint)

    def selected(self) -> Run | None:
        table = self.query_one(DataTable)
        if (
            not self.summaries
            or table.cursor_row is None
            or table.cursor_row >= len(self.summaries)
        ):
            return None
        return Run(self.summaries[table.cursor_row].path)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # The table takes Enter for itself and reports the row it selected.
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        run = self.selected()
        if run is not None:
            self._show_details(run)

    @work(thread=True, exclusive=True, group="details")
    def _show_details(self, run: Run) -> None:
        try:
            text = "\n".join(describe(details(run)))
        except TuiGptError as exc:  # a damaged run is shown as one, never takes the app down
            text = f"Cannot read this run: {exc}"
        self.post_message(TextReady(text))

    def on_text_ready(self, message: TextReady) -> None:
        self.query_one("#run-details", Static).update(message.text)

    def action_mark(self) -> None:
        run = self.selected()
        if run is not None:
            self.marked ^= {str(run.path)}
            self.action_reload()

    def action_compare(self) -> None:
        known = {s.path for s in self.summaries}
        marked = [Path(p) for p in sorted(self.marked) if p in known]
        if len(marked) < 2:
            self.notify("Mark two runs or more with space first", severity="warning")
            return
        self.app.push_screen(CompareScreen(marked))

    def action_label(self) -> None:
        typed = self._typed_ahead()
        run = self.selected()
        if run is None:
            return

        def answer(text: str | None) -> None:
            if text is None:
                return
            try:
                set_label(run, text)
            except TuiGptError as exc:
                self.notify(str(exc), severity="error")
            self.action_reload()

        current = next((s.label for s in self.summaries if s.path == str(run.path)), "")
        self._ask(PromptScreen(f"Label for {run.id}", current, typed=typed), answer)

    def action_export(self) -> None:
        """Export the selected run: a folder for Hugging Face, a .gguf file for llama.cpp;
        the place asked for says which."""
        typed = self._typed_ahead()
        run = self.selected()
        if run is None:
            return

        def answer(text: str | None) -> None:
            if not text or not text.strip():
                return
            out = Path(text.strip()).expanduser()
            if out.exists() and not out.is_symlink():
                # The app's answer to the CLI's --force: asked, and still only ever over an
                # earlier export (core.export refuses anything else).
                question = f"{out} exists. Replace it (only an earlier export is replaced)?"

                def confirmed(yes: bool | None) -> None:
                    if yes:
                        self._export(run, out, True)

                self.app.push_screen(ConfirmScreen(question), confirmed)
            else:
                self._export(run, out, False)

        place = default_out(run.path, "hf", "f32")
        question = f"Export {run.id} to (a folder: Hugging Face; a .gguf file: llama.cpp)"
        self._ask(PromptScreen(question, str(place), "export", typed), answer)

    @work(thread=True, exclusive=True, group="export")
    def _export(self, run: Run, out: Path, replace: bool) -> None:
        fmt: Format = "gguf" if out.suffix == ".gguf" else "hf"
        try:
            done = export(run, fmt, out, "f16" if fmt == "gguf" else "f32", force=replace)
        except TuiGptError as exc:
            self.app.post_message(Say(str(exc), "Not exported", "error"))
            return
        self.app.post_message(Say(str(done.path), f"Exported ({fmt})", timeout=10))

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
        if run is None or self._not_resumable(run):
            return
        host(self).resume_training(run)

    def action_extend(self) -> None:
        """Train the selected run further by a number of steps, or of epochs ("2e"), resumed
        in this window; what that means is said before it starts."""
        typed = self._typed_ahead()
        run = self.selected()
        if run is None:
            return
        # Quick reads only (status.json and the first start in the event log), so the
        # dialog is up before the keys typed after x in one burst arrive.
        try:
            run.record().train_config()
            done = run.status().step + 1
        except TuiGptError as exc:
            self.notify(f"Cannot read this run's settings: {exc}", severity="error")
            return
        started = (event_from_dict(line) for line in read_events(run.events_path))
        first = next((e for e in started if isinstance(e, RunStarted)), None)
        per_epoch = first.train_batches if first is not None else 0
        if per_epoch <= 0:
            self.notify("This run never started training; resume it instead", severity="warning")
            return

        def answer(text: str | None) -> None:
            if not text or not text.strip():
                return
            try:
                changes, plan = further(text, done, per_epoch)
            except ValueError:
                self.notify("A number of steps (500) or of epochs (2e)", severity="error")
                return
            self.notify(f"Training {run.id} for {plan}")
            host(self).resume_training(run, changes)

        title = (f"Train {run.id} further: more steps, or epochs with e (500, 2e). It has made "
                 f"{done:,} steps, {done / per_epoch:,.2f} epochs of {per_epoch:,} steps")  # fmt: skip
        self._ask(PromptScreen(title, str(max(done, 1)), "train", typed), answer)

    def action_resume_background(self) -> None:
        run = self.selected()
        if run is None or self._not_resumable(run):
            return
        host(self).resume_in_background(run)

    def _not_resumable(self, run: Run) -> bool:
        """A finished run is trained further (x), not resumed: resuming it would just start
        its time budget (or nothing) again. Says so."""
        if run.status_of() != "finished":
            return False
        self.notify(f"{run.id} finished; x trains it further", severity="warning")
        return True

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
                self.marked.discard(str(run.path))
                self.notify(f"Deleted {run.id}")
                self.action_reload()

        self.app.push_screen(ConfirmScreen(f"Delete run {run.id} and its checkpoints?"), answer)
