"""The training dashboard: step log, loss chart, samples, progress and run facts.

Fed by `TrainingEvent` messages: posted by the training thread of this process, or read
from a run folder's events.jsonl when watching a run trained elsewhere (`tui-gpt watch`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Label, ProgressBar, RichLog, Static

from tui_gpt.core.control import RemoteControl
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import (
    GLOSSARY,
    CheckpointSaved,
    Error,
    Eval,
    Event,
    Finished,
    Notice,
    Paused,
    Progress,
    Resumed,
    RunStarted,
    Sample,
    Step,
    Stopped,
    end_line,
    eval_line,
    finished_line,
    run_extras,
    sample_text,
)
from tui_gpt.core.runs import ACTIVE, EventFollower, Run, liveness
from tui_gpt.core.trainer import TrainerControl
from tui_gpt.ui.host import host
from tui_gpt.ui.messages import TrainingEnded, TrainingEvent
from tui_gpt.ui.screens.confirm import ConfirmScreen
from tui_gpt.ui.widgets.header import Header
from tui_gpt.ui.widgets.loss_chart import CHART_STEPS, LossChart


def _as_text(line: str | Text) -> Text:
    return line if isinstance(line, Text) else Text(line)


ENDED = ("finished", "stopped", "failed", "stale")
LOG_LINES = 5000  # the step log keeps this many lines; the chart keeps every evaluation
SAMPLE_LINES = 2000


class TrainScreen(Screen):
    BINDINGS = [
        # One key, two meanings: the footer names the one that applies (check_action).
        Binding("p", "pause", "Pause", tooltip="Pause after the current step"),
        Binding("p", "resume", "Resume", tooltip="Resume the paused training"),
        Binding("s", "stop", "Stop", tooltip="Stop & save (asks first)"),
        Binding("c", "checkpoint", "Checkpoint"),
        Binding("g", "generator", "Chat", tooltip="Generate: open the generator"),
        Binding("v", "toggle_chart", "Chart", tooltip="Chart: loss, perplexity or bits per byte"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit", show=False, tooltip="Quit (as ctrl+q)"),
    ]

    def __init__(
        self, run: Run, live: bool, redraw_interval: float = 0.25, history: Sequence[Event] = ()
    ) -> None:
        super().__init__()
        self.run = run
        self._history = list(history)  # earlier events of a run resumed here
        # The logs' lines as written, to wrap them again at a new width after a resize.
        self._log_raw: deque[str | Text] = deque(maxlen=LOG_LINES)
        self._samples_raw: deque[str | Text] = deque(maxlen=SAMPLE_LINES)
        self._rewrap: Timer | None = None
        self.live = live  # True: this process trains; False: follow the run folder
        self.follower = None if live else EventFollower(run.events_path)
        self.state = "starting" if live else "watching"
        self.ended = ""  # how a stopped or finished training ended, in words
        self.progress = Progress()
        self._shown: tuple[Step, bool] | None = None  # the step and state last drawn
        self.epoch_samples = 0
        self.best_bpb = math.inf
        self._evaluated_step: int | None = None  # the last evaluation's step (its save goes unsaid)
        self._redraw = redraw_interval

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            with Vertical(id="chart-pane"):
                yield LossChart(redraw_interval=self._redraw, id="chart")
            with Vertical(id="side"):  # most important first: a short pane cuts the end
                yield Label("", id="progress-label")
                yield ProgressBar(total=None, show_eta=False, id="progress")
                yield Label("", id="bpb")
                yield Static("", id="facts")
        with Horizontal(id="bottom"):
            yield RichLog(id="log", wrap=True, max_lines=LOG_LINES, min_width=20)
            yield RichLog(id="samples", wrap=True, max_lines=SAMPLE_LINES, min_width=20)
        yield Footer(show_command_palette=False)  # f1 Help says ctrl+p

    def on_screen_resume(self) -> None:
        # Escape walked back to the dashboard of an earlier training of this run, frozen
        # where that training ended: the run has trained here since, so go on past it.
        if host(self).superseded(self):
            self.app.pop_screen()

    def on_mount(self) -> None:
        self.title = f"run {self.run.id}"
        self.sub_title = "training" if self.live else "watching"
        self.query_one("#log", RichLog).border_title = "step log"
        self.query_one("#samples", RichLog).border_title = "samples"
        self.query_one("#progress-label").tooltip = f"MFU: {GLOSSARY['MFU']}"
        self.query_one("#bpb").tooltip = f"bits per byte: {GLOSSARY['bits per byte']}"
        self._progress_timer = self.set_interval(self._redraw, self._show_progress)
        if self._history:  # before any live event: those are messages, handled after this
            self.handle_many(self._history)
            self._history = []
        if self.follower is not None:
            # After the first layout: the logs render each line once, at their real width.
            self.call_after_refresh(self._poll_file)
            self.set_interval(0.5 if self._redraw < 0.5 else 1.0, self._poll_file)

    # ------------------------------------------------------------------ events in

    def _poll_file(self) -> None:
        if self.follower is None:
            return
        try:
            self.handle_many(self.follower.poll(most_steps=CHART_STEPS))
        except TuiGptError as exc:  # its events.jsonl replaced by a link, a FIFO...
            self.follower = None
            self.sub_title = f"cannot follow this run: {exc}"
            return
        watching = self.state in ("running", "paused", "watching")
        if watching and self.run.status_of() in ACTIVE and liveness(self.run).state == "stale":
            self.state = "stale"
            self.sub_title = "stale: the training process is gone (resume it from the runs list)"

    @on(TrainingEvent)
    def _on_training_event(self, message: TrainingEvent) -> None:
        self.handle_many([message.event])

    @on(TrainingEnded)
    def _on_training_ended(self, message: TrainingEnded) -> None:
        if message.outcome != self.state:  # the events said how it ended, with the reason
            self.state, self.sub_title = message.outcome, message.outcome
        self.refresh_bindings()
        if message.error:
            self.query_one("#log", RichLog).write(Text(f"error: {message.error}", style="bold red"))
            self.notify(message.error, title="Training failed", severity="error", timeout=10)
        else:
            self.notify(f"Training {self.sub_title}. Checkpoint saved.", title=self.run.id)

    def handle_many(self, events: list[Event]) -> None:
        """The one way events reach the dashboard, from this process's trainer or from a
        followed run folder. Cheap per event: the chart only collects points and the logs
        only their last lines; widgets are touched once per batch."""
        chart = self.query_one(LossChart)
        log_lines: deque[str | Text] = deque(maxlen=LOG_LINES)
        sample_lines: deque[str | Text] = deque(maxlen=SAMPLE_LINES)
        for event in events:
            chart.add_event(event)
            self.progress.update(event)
            if isinstance(event, Eval):
                log_lines.append(eval_line(event))
                self._evaluated_step = event.step
                if event.val_bpb is not None:
                    self.best_bpb = min(self.best_bpb, event.val_bpb)
                    bits = f"val {event.val_bpb:.3f} bits/byte (best {self.best_bpb:.3f})"
                    self.query_one("#bpb", Label).update(bits)
            elif isinstance(event, Sample):
                self.epoch_samples += 1
                sample_lines.append(
                    Text(f"epoch {event.epoch} · step {event.step}", style="bold cyan")
                )
                sample_lines.append(sample_text(event))  # one paragraph, as the CLI
            elif isinstance(event, RunStarted):
                self._started(event)
                verb = "resumed" if event.resumed else "started"
                log_lines.append(Text(f"{verb} · {event.total_steps:,} steps", style="dim"))
            elif isinstance(event, Notice):
                log_lines.append(Text(event.message, style="italic"))
            elif isinstance(event, CheckpointSaved) and event.kind == "latest":
                # A small model saves after nearly every evaluation: those go unsaid.
                if event.step != self._evaluated_step:
                    log_lines.append(Text(f"checkpoint saved at step {event.step}", style="dim"))
            elif isinstance(event, Paused | Resumed):
                self.state = "paused" if isinstance(event, Paused) else "running"
                log_lines.append(Text(event.name, style="yellow"))
            elif isinstance(event, Stopped | Finished):
                self.state = event.name
                self.ended = (
                    event.reason if isinstance(event, Stopped) else finished_line(event)
                )
                log_lines.append(Text(end_line(event), style="bold"))
            elif isinstance(event, Error):
                self.state = "failed"
                log_lines.append(Text(f"error: {event.message}", style="bold red"))
        if self.state in ("paused", "running", "failed"):
            self.sub_title = self.state
        elif self.state in ("stopped", "finished"):
            self.sub_title = f"{self.state}: {self.ended}" if self.ended else self.state
        self.refresh_bindings()
        # One write per batch: rendering is per call, so thousands of lines in one call
        # cost far less than thousands of calls.
        if log_lines:
            self._log_raw.extend(log_lines)
            self.query_one("#log", RichLog).write(Text("\n").join(map(_as_text, log_lines)))
        if sample_lines:
            self._samples_raw.extend(sample_lines)
            self.query_one("#samples", RichLog).write(Text("\n").join(map(_as_text, sample_lines)))
        if len(events) > 1 or self.state in ENDED:
            self._show_progress()
        # An ended run's progress no longer changes: no redraw timer while it sits idle
        # (a later resume from here starts again through _started).
        if self.state in ENDED:
            self._progress_timer.pause()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Pause, stop and checkpoint are not offered once the run has ended; p offers
        Pause while it runs and Resume while it is paused."""
        if action == "resume":
            return self.state == "paused"
        if action == "pause" and self.state == "paused":
            return False
        return not (action in ("pause", "stop", "checkpoint") and self.state in ENDED)

    def on_resize(self, _event: events.Resize) -> None:
        # RichLog wraps a line once, when written: after the terminal settles on its new
        # size, write everything again at the new width.
        if self._rewrap is not None:
            self._rewrap.stop()
        self._rewrap = self.set_timer(0.2, self._write_logs_again)

    def _write_logs_again(self) -> None:
        for name, raw in (("#log", self._log_raw), ("#samples", self._samples_raw)):
            log = self.query_one(name, RichLog)
            log.clear()
            if raw:
                log.write(Text("\n").join(map(_as_text, raw)))

    def _started(self, event: RunStarted) -> None:
        self.state = "running"
        self._progress_timer.resume()
        self.query_one("#progress", ProgressBar).update(total=max(1, event.total_steps))
        # Short lines, most important first: at 80 x 24 the pane has about ten rows.
        self.query_one("#facts", Static).update(
            f"[b]{event.params:,}[/b] parameters · {event.arch}\n"
            f"{event.device} · {event.precision} · {event.threads} threads"
            + f"\n{event.train_batches:,} + {event.val_batches:,} batches (train + val)"
            + "".join(f"\n{fact}" for fact in run_extras(event))
        )

    def _show_progress(self) -> None:
        """Progress bar and line from the newest step; at most a few times a second while
        training, so redrawing never competes with the trainer for the CPU."""
        step = self.progress.last
        running = self.state in ("running", "paused")
        if step is None or (step, running) == self._shown:
            return
        self._shown = (step, running)  # a run that ends after its last step loses its ETA
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=max(1, self.progress.total), progress=self.progress.done)
        self.query_one("#progress-label", Label).update(self.progress.line(eta=running))

    # ------------------------------------------------------------------ actions

    def _control(self) -> TrainerControl | RemoteControl | None:
        """This window's trainer, or the control channel of a run trained elsewhere (in the
        background, in another terminal or another SSH session)."""
        local = host(self).local_control(self.run)
        if local is not None:
            return local
        life = liveness(self.run)
        if life.state == "live":
            return RemoteControl(self.run)
        self.notify(
            f"This run is not training (process {life.state}); resume it from the runs list",
            severity="warning",
        )
        return None

    def action_pause(self) -> None:
        control = self._control()
        if control is None:
            return
        if control.paused:  # asked already; the Paused event has not come yet
            control.resume()
        else:
            control.pause()
            self.notify("Pausing after the current step")

    def action_resume(self) -> None:
        control = self._control()
        if control is not None:
            control.resume()

    def action_stop(self) -> None:
        """Stop after the current step and save; asked first (one key ends a long run)."""
        control = self._control()
        if control is None:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                control.stop("from the dashboard")
                self.notify("Stopping after the current step; saving a checkpoint")

        question = f"Stop run {self.run.id}? It saves a checkpoint; resume it later with r."
        self.app.push_screen(ConfirmScreen(question), answer)

    def action_checkpoint(self) -> None:
        control = self._control()
        if control is not None:
            control.request_checkpoint()
            self.notify("Saving a checkpoint after the current step")

    def action_toggle_chart(self) -> None:
        self.query_one(LossChart).next_view()

    def action_generator(self) -> None:
        host(self).open_chat(self.run)

    def action_back(self) -> None:
        self.app.pop_screen()
