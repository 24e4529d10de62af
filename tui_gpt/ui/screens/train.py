"""The training dashboard: step log, loss chart, samples, progress and run facts.

Fed by `TrainingEvent` messages: posted by the training thread of this process, or read
from a run folder's events.jsonl when watching a run trained elsewhere (`tui-gpt watch`).
"""

from __future__ import annotations

import math
import time
from collections import deque

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar, RichLog, Static

from tui_gpt.core.control import RemoteControl
from tui_gpt.core.runs import EventFollower, Run, liveness
from tui_gpt.ui.messages import TrainingEnded, TrainingEvent
from tui_gpt.ui.widgets.loss_chart import LossChart


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _as_text(line: str | Text) -> Text:
    return line if isinstance(line, Text) else Text(line)


LOG_LINES = 5000  # the step log keeps this many lines; the chart keeps every evaluation
SAMPLE_LINES = 2000


class TrainScreen(Screen):
    BINDINGS = [
        Binding("p", "pause", "Pause/resume"),
        Binding("s", "stop", "Stop & save"),
        Binding("c", "checkpoint", "Checkpoint"),
        Binding("g", "generator", "Generate"),
        Binding("v", "toggle_chart", "Loss/perplexity"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, run: Run, live: bool, redraw_interval: float = 0.25) -> None:
        super().__init__()
        self.run = run
        self.live = live  # True: this process trains; False: follow the run folder
        self.follower = None if live else EventFollower(run.events_path)
        self.state = "starting" if live else "watching"
        self.total_steps = 0
        self.first_step: int | None = None
        self.first_time = time.time()
        self._last_step: dict | None = None
        self._shown_step: dict | None = None
        self.epoch_samples = 0
        self._redraw = redraw_interval

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            with Vertical(id="chart-pane"):
                yield LossChart(redraw_interval=self._redraw, id="chart")
            with Vertical(id="side"):
                yield Static("", id="facts")
                yield Label("", id="progress-label")
                yield ProgressBar(total=None, show_eta=False, id="progress")
        with Horizontal(id="bottom"):
            yield RichLog(id="log", wrap=True, max_lines=LOG_LINES, min_width=20)
            yield RichLog(id="samples", wrap=True, max_lines=SAMPLE_LINES, min_width=20)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"run {self.run.id}"
        self.sub_title = "training" if self.live else "watching"
        self.query_one("#log", RichLog).border_title = "step log"
        self.query_one("#samples", RichLog).border_title = "samples"
        self.set_interval(self._redraw, self._show_progress)
        if self.follower is not None:
            # After the first layout: the logs render each line once, at their real width.
            self.call_after_refresh(self._poll_file)
            self.set_interval(0.5 if self._redraw < 0.5 else 1.0, self._poll_file)

    # ------------------------------------------------------------------ events in

    def _poll_file(self) -> None:
        self.handle_many(self.follower.poll(last_step_only=True))
        if self.state in ("running", "paused", "watching"):
            status = self.run.status()
            if (
                status.get("status") in ("running", "paused")
                and liveness(self.run).state == "stale"
            ):
                self.state = "stale"
                self.sub_title = (
                    "stale: the training process is gone (resume it from the runs list)"
                )

    @on(TrainingEvent)
    def _on_training_event(self, message: TrainingEvent) -> None:
        self.handle(message.event)

    @on(TrainingEnded)
    def _on_training_ended(self, message: TrainingEnded) -> None:
        self.state = message.outcome
        self.sub_title = message.outcome
        if message.error:
            self.query_one("#log", RichLog).write(Text(f"error: {message.error}", style="bold red"))
            self.notify(message.error, title="Training failed", severity="error", timeout=10)
        else:
            self.notify(f"Training {message.outcome}. Checkpoint saved.", title=self.run.id)

    def handle(self, event: dict) -> None:
        self.handle_many([event])

    def handle_many(self, events: list[dict]) -> None:
        """Apply events in order. Cheap per event: the chart only collects points and the
        logs only their last lines, so opening a 100,000-event run takes about a second;
        widgets are touched once per batch."""
        chart = self.query_one(LossChart)
        log_lines: deque = deque(maxlen=LOG_LINES)
        sample_lines: deque = deque(maxlen=SAMPLE_LINES)
        for event in events:
            kind = event.get("event")
            chart.add_event(event)
            if kind == "step":
                self._last_step = event
            elif kind == "eval":
                log_lines.append(
                    f"Ep {event['epoch']} (Step {event['step']:06d}): "
                    f"Train loss {event['train_loss']:.3f}, Val loss {event['val_loss']:.3f}"
                )
            elif kind == "sample":
                self.epoch_samples += 1
                sample_lines.append(
                    Text(f"epoch {event['epoch']} · step {event['step']}", style="bold cyan")
                )
                # one paragraph, as the CLI prints it
                sample_lines.append(event.get("text", "").replace("\n", " "))
            elif kind == "run_started":
                self._started(event)
                verb = "resumed" if event.get("resumed") else "started"
                log_lines.append(Text(f"{verb} · {self.total_steps} steps", style="dim"))
            elif kind == "notice":
                log_lines.append(Text(str(event.get("message", "")), style="italic"))
            elif kind == "checkpoint" and event.get("kind") == "latest":
                log_lines.append(Text(f"checkpoint saved at step {event['step']}", style="dim"))
            elif kind in ("paused", "resumed"):
                self.state = "paused" if kind == "paused" else "running"
                log_lines.append(Text(kind, style="yellow"))
            elif kind in ("stopped", "finished"):
                self.state = kind
                log_lines.append(Text(f"{kind} {event.get('reason', '')}".strip(), style="bold"))
            elif kind == "error":
                self.state = "failed"
                log_lines.append(Text(f"error: {event.get('message')}", style="bold red"))
        if self.state in ("paused", "running", "stopped", "finished", "failed"):
            self.sub_title = self.state
        # One write per batch: rendering is per call, so thousands of lines in one call
        # cost far less than thousands of calls.
        if log_lines:
            self.query_one("#log", RichLog).write(Text("\n").join(map(_as_text, log_lines)))
        if sample_lines:
            self.query_one("#samples", RichLog).write(Text("\n").join(map(_as_text, sample_lines)))
        if len(events) > 1:
            self._show_progress()

    def _started(self, event: dict) -> None:
        self.total_steps = int(event.get("total_steps", 0))
        self.first_step = int(event.get("step", -1)) + 1
        self.first_time = float(event.get("time", time.time()))
        self.state = "running"
        self.query_one("#progress", ProgressBar).update(total=max(1, self.total_steps))
        world = int(event.get("world_size", 1))
        self.query_one("#facts", Static).update(
            f"[b]{event.get('params', 0):,}[/b] parameters\n"
            f"device {event.get('device')} · {event.get('precision')} · "
            f"{event.get('threads')} threads"
            + (f" · {world} processes" if world > 1 else "")
            + "\n"
            f"{event.get('train_batches')} batches/epoch · {event.get('val_batches')} val batches"
        )

    def _show_progress(self) -> None:
        """Progress bar and line from the newest step; at most a few times a second while
        training, so redrawing never competes with the trainer for the CPU."""
        event = self._last_step
        if event is None or event is self._shown_step:
            return
        self._shown_step = event
        done = int(event["step"]) + 1
        self.query_one("#progress", ProgressBar).update(progress=done)
        ran = done - (self.first_step or 0)
        elapsed = float(event.get("time", 0)) - self.first_time
        eta = elapsed / ran * (self.total_steps - done) if ran > 0 else float("nan")
        if self.state not in ("running", "paused"):
            eta = float("nan")
        self.query_one("#progress-label", Label).update(
            f"epoch {event['epoch']} · step {done}/{self.total_steps} · "
            f"{event.get('tok_per_s', 0):,.0f} tok/s · ETA {_eta(eta)} · loss {event.get('loss', 0):.3f}"
        )

    # ------------------------------------------------------------------ actions

    def _control(self):
        """This window's trainer, or the control channel of a run trained elsewhere (in the
        background, in another terminal or another SSH session)."""
        job = getattr(self.app, "job", None)
        if job is not None and job.run.path == self.run.path and self.app.training_active:
            return self.app.control
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
        if control.paused:
            control.resume()
        else:
            control.pause()
            self.notify("Pausing after the current step")

    def action_stop(self) -> None:
        control = self._control()
        if control is not None:
            control.stop("stopped from the dashboard")
            self.notify("Stopping after the current step; saving a checkpoint")

    def action_checkpoint(self) -> None:
        control = self._control()
        if control is not None:
            control.request_checkpoint()
            self.notify("Saving a checkpoint after the current step")

    def action_toggle_chart(self) -> None:
        self.query_one(LossChart).toggle_perplexity()

    def action_generator(self) -> None:
        self.app.open_chat(self.run)

    def action_back(self) -> None:
        self.app.pop_screen()
