"""The training dashboard: step log, loss chart, samples, progress and run facts.

Fed by `TrainingEvent` messages: posted by the training thread of this process, or read
from a run folder's events.jsonl when watching a run trained elsewhere (`tui-gpt watch`).
"""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar, RichLog, Static

from tui_gpt.core.runs import EventFollower, Run, pid_alive
from tui_gpt.ui.messages import TrainingEnded, TrainingEvent
from tui_gpt.ui.widgets.loss_chart import LossChart


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


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
        self.started = time.monotonic()
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
            yield RichLog(id="log", wrap=True, max_lines=5000, min_width=20)
            yield RichLog(id="samples", wrap=True, max_lines=2000, min_width=20)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"run {self.run.id}"
        self.sub_title = "training" if self.live else "watching"
        self.query_one("#log", RichLog).border_title = "step log"
        self.query_one("#samples", RichLog).border_title = "samples"
        if self.follower is not None:
            self._poll_file()
            self.set_interval(0.5 if self._redraw < 0.5 else 1.0, self._poll_file)

    # ------------------------------------------------------------------ events in

    def _poll_file(self) -> None:
        for event in self.follower.poll():
            self.handle(event)
        if self.state in ("running", "paused", "watching"):
            status = self.run.status()
            if status.get("status") == "running" and not pid_alive(status.get("pid")):
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
        kind = event.get("event")
        log = self.query_one("#log", RichLog)
        self.query_one(LossChart).add_event(event)
        if kind == "run_started":
            self.total_steps = int(event.get("total_steps", 0))
            self.first_step = int(event.get("step", -1)) + 1
            self.started = time.monotonic()
            self.state = "running"
            self.query_one("#progress", ProgressBar).update(total=max(1, self.total_steps))
            self.query_one("#facts", Static).update(
                f"[b]{event.get('params', 0):,}[/b] parameters\n"
                f"device {event.get('device')} · {event.get('precision')} · {event.get('threads')} threads\n"
                f"{event.get('train_batches')} batches/epoch · {event.get('val_batches')} val batches"
            )
            log.write(
                Text(
                    ("resumed" if event.get("resumed") else "started")
                    + f" · {self.total_steps} steps",
                    style="dim",
                )
            )
        elif kind == "step":
            self._progress(event)
        elif kind == "eval":
            log.write(
                f"Ep {event['epoch']} (Step {event['step']:06d}): "
                f"Train loss {event['train_loss']:.3f}, Val loss {event['val_loss']:.3f}"
            )
        elif kind == "sample":
            self.epoch_samples += 1
            samples = self.query_one("#samples", RichLog)
            samples.write(Text(f"epoch {event['epoch']} · step {event['step']}", style="bold cyan"))
            samples.write(event.get("text", "").replace("\n", " "))  # one paragraph, as the CLI
        elif kind == "checkpoint" and event.get("kind") == "latest":
            log.write(Text(f"checkpoint saved at step {event['step']}", style="dim"))
        elif kind in ("paused", "resumed"):
            self.state = "paused" if kind == "paused" else "running"
            self.sub_title = self.state
            log.write(Text(kind, style="yellow"))
        elif kind in ("stopped", "finished"):
            self.state = kind
            self.sub_title = kind
            log.write(Text(f"{kind} {event.get('reason', '')}".strip(), style="bold"))
        elif kind == "error":
            self.state = "failed"
            log.write(Text(f"error: {event.get('message')}", style="bold red"))

    def _progress(self, event: dict) -> None:
        done = int(event["step"]) + 1
        self.query_one("#progress", ProgressBar).update(progress=done)
        ran = done - (self.first_step or 0)
        elapsed = time.monotonic() - self.started
        eta = elapsed / ran * (self.total_steps - done) if ran > 0 and self.live else float("nan")
        self.query_one("#progress-label", Label).update(
            f"epoch {event['epoch']} · step {done}/{self.total_steps} · "
            f"{event.get('tok_per_s', 0):,.0f} tok/s · ETA {_eta(eta)} · loss {event.get('loss', 0):.3f}"
        )

    # ------------------------------------------------------------------ actions

    def _control(self):
        job = getattr(self.app, "job", None)
        if job is None or job.run.path != self.run.path or not self.app.training_active:
            self.notify("No training is running in this window", severity="warning")
            return None
        return self.app.control

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
