"""The tui-gpt app: dataset selection -> training dashboard -> generator; runs browser.

Training runs in a thread worker against the core; its events reach the dashboard only as
messages. Quitting, SIGHUP (the terminal went away) and SIGTERM stop training after the
current step and save a checkpoint before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui_gpt import paths
from tui_gpt.core import detach, process
from tui_gpt.core.config import TrainSpec
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import Event
from tui_gpt.core.jobs import TrainingJob, assemble
from tui_gpt.core.runs import EventFollower, Run, liveness, short_name
from tui_gpt.core.sampling import load_for_sampling
from tui_gpt.core.session import Build, TrainingSession
from tui_gpt.core.trainer import TrainerControl
from tui_gpt.ui.messages import (
    DetachedStarted,
    ModelLoaded,
    Say,
    TrainingEnded,
    TrainingEvent,
    TrainingReady,
)
from tui_gpt.ui.screens.chat import ChatScreen
from tui_gpt.ui.screens.confirm import ConfirmScreen
from tui_gpt.ui.screens.dataset import DatasetScreen
from tui_gpt.ui.screens.help import HelpScreen, help_text
from tui_gpt.ui.screens.runs import RunsScreen
from tui_gpt.ui.screens.train import TrainScreen
from tui_gpt.ui.widgets.loss_chart import CHART_STEPS


def over_ssh() -> bool:
    return bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"))


class TuiGptApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tui-gpt"
    BINDINGS = [
        Binding("ctrl+r", "show_runs", "Runs", show=False),
        # Before a text field's own ctrl+d, but only while a training runs (check_action).
        Binding("ctrl+d", "show_dashboard", "Dashboard", show=False, priority=True),
        Binding("f1,question_mark", "help", "Help", key_display="f1"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, runs_dir: Path | None = None, watch: Run | None = None) -> None:
        super().__init__()
        self.runs_dir = runs_dir or paths.runs_dir()
        self.watch_run = watch
        self.session = TrainingSession()  # the training of this window, if any
        self._dashboard: TrainScreen | None = None  # the live dashboard of the latest one
        self._preparing: Notification | None = None  # said while a training is assembled
        # Over SSH every redraw crosses the network: draw the chart less often, no animation.
        self.redraw_interval = 1.0 if over_ssh() else 0.25
        if over_ssh():
            self.animation_level = "none"

    def on_mount(self) -> None:
        self._signal_loop = loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self.push_screen(DatasetScreen())
        if self.watch_run is not None:
            self.open_dashboard(self.watch_run)
        self.call_after_refresh(process.freeze_heap)
        self.set_interval(15, self._freeze_while_training)

    # ------------------------------------------------------------------ commands

    # Textual's own palette entries that this app keeps; the rest (maximize, screenshot)
    # are for developers, and its quit is replaced by this app's, which asks first.
    KEPT_SYSTEM_COMMANDS = ("Theme", "Keys")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every key binding of the current screen is also a palette command."""
        seen = set()
        for command in super().get_system_commands(screen):
            if command.title in self.KEPT_SYSTEM_COMMANDS:
                seen.add(command.title)
                yield command
        yield SystemCommand("Runs", "Browse, open, resume or delete runs", self.action_show_runs)
        if self.training_active:
            yield SystemCommand(
                "Dashboard", "Back to the training running in this window",
                self.action_show_dashboard,
            )  # fmt: skip
        yield SystemCommand(
            "Quit", "Quit tui-gpt (a training in this window is saved first)", self.action_quit
        )
        seen |= {"Runs", "Dashboard", "Quit"}
        for binding in screen.BINDINGS:
            # The footer's word is short; the palette and the help say it in full.
            title = isinstance(binding, Binding) and (binding.tooltip or binding.description)
            if not isinstance(binding, Binding) or binding.action in ("quit", "app.quit"):
                continue
            if title and title not in seen and screen.check_action(binding.action, ()):
                seen.add(title)
                yield SystemCommand(
                    title,
                    f"key: {binding.key}",
                    lambda action=binding.action: self.call_later(screen.run_action, action),
                )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification as plain text: the messages carry paths, settings and install
        hints ("pip install 'tui-gpt[gguf]'") that console markup would eat."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help(self) -> None:
        """Help for the screen in front: its keys, its settings, where runs live."""
        from tui_gpt.core.config import RECIPES, ModelChoice, SamplingConfig, TrainConfig

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        classes = {DatasetScreen: (ModelChoice, TrainConfig), ChatScreen: (SamplingConfig,)}
        defaults, source = {}, ""
        if isinstance(screen, DatasetScreen):  # a new run starts from the recipe chosen there
            model, train = RECIPES[screen.recipe].settings()
            defaults, source = {ModelChoice: model, TrainConfig: train}, f"recipe {screen.recipe}"
        text = help_text(screen, list(self.BINDINGS), self.runs_dir,
                         classes.get(type(screen), ()), defaults, source)  # fmt: skip
        self.push_screen(HelpScreen(text))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_dashboard":
            return self.training_active
        return True

    def live_sign(self, screen: Screen) -> str:
        """The header's sign of this window's training, on every screen but its dashboard:
        how far it is, and the key back to it. Empty when none runs."""
        run = self.session.run_folder
        if run is None:
            return ""
        if isinstance(screen, TrainScreen) and screen.run.path == run.path:
            return ""
        done, total = self.session.progress.done, self.session.progress.total
        where = f"{done:,}/{total:,} steps" if total else "starting"
        return f"● training {where} · ctrl+d"

    def action_show_dashboard(self) -> None:
        """Back to the dashboard of the training running in this window."""
        run = self.session.run_folder
        if run is None:
            self.notify("No training is running in this window")
            return
        if not (isinstance(self.screen, TrainScreen) and self.screen.run.path == run.path):
            self.open_dashboard(run)

    def action_show_runs(self) -> None:
        if not self.return_to(lambda screen: isinstance(screen, RunsScreen)):
            self.push_screen(RunsScreen(self.runs_dir))

    def return_to(self, wanted: Callable[[Screen], bool]) -> bool:
        """Back to an open screen that `wanted` picks, closing those above it, so going
        somewhere already open never grows the stack Escape walks back through. False
        when none is open."""
        stack = self.screen_stack
        target = next((screen for screen in reversed(stack) if wanted(screen)), None)
        if target is None:
            return False
        while self.screen is not target:
            self.pop_screen()
        return True

    # ------------------------------------------------------------------ training
    #
    # Workers never touch the app's state or widgets: they post messages (ui/messages.py),
    # handled below on the UI thread. A worker that fails unexpectedly ends in
    # on_worker_state_changed, the one place such errors are shown.

    @property
    def training_active(self) -> bool:
        return self.session.active

    def start_training(self, spec: TrainSpec) -> None:
        started = time.monotonic()  # a minutes budget counts from the press of Start
        self._launch(
            lambda hooks: assemble(spec, runs_dir=self.runs_dir, hooks=hooks, started=started)
        )

    def start_background(self, spec: TrainSpec) -> None:
        self.notify("Preparing the dataset; the training will run in the background ...")
        self._launch_detached(lambda: detach.launch_spec(spec, self.runs_dir))

    def resume_in_background(self, run: Run) -> None:
        self.notify(f"Resuming {run.id} in the background ...")
        argv = ["--run-dir", str(self.runs_dir), "train", "--resume", str(run.path)]
        self._launch_detached(lambda: detach.launch(argv))

    @work(thread=True, group="detach", exit_on_error=False)
    def _launch_detached(self, start: Callable[[], detach.Detached]) -> None:
        try:
            started = start()
        except TuiGptError as exc:
            self.post_message(Say(str(exc), "Cannot start", "error", 10))
            return
        self.post_message(DetachedStarted(started))

    def on_detached_started(self, message: DetachedStarted) -> None:
        started = message.started
        self.open_dashboard(Run(started.path))
        self.notify(
            f"Training in the background (pid {started.pid}): it goes on after you quit. "
            f"Log: {started.log}",
            title=started.run_id,
            timeout=8,
        )

    def resume_training(self, run: Run, changes: dict[str, Any] | None = None) -> None:
        """Train a run on in this window; `changes` to its resumable settings (more epochs
        or steps extend a finished run). A run training elsewhere is said at once."""
        life = liveness(run)
        if life.state == "live":
            self.notify(f"Cannot start: run {run.id} is training (pid {life.pid})",
                        severity="warning")  # fmt: skip
            return
        self._launch(
            lambda hooks: assemble(
                resume=str(run.path), changes=changes, runs_dir=self.runs_dir, hooks=hooks
            )
        )

    def local_control(self, run: Run) -> TrainerControl | None:
        return self.session.controls(run)

    def _launch(self, build: Build) -> None:
        try:
            self.session.begin()
        except TuiGptError:
            self.notify("A training is already running in this window", severity="warning")
            return
        # Taken down when the dashboard comes up (on_training_ready), not left over it.
        self._preparing = Notification("Preparing the dataset and the model ...", "",
                                       "information", self.NOTIFICATION_TIMEOUT, markup=False)  # fmt: skip
        self.post_message(Notify(self._preparing))
        self._train(build)

    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def _train(self, build: Build) -> None:
        outcome, error = "failed", None
        ready = False

        def on_job(job: TrainingJob) -> None:
            nonlocal ready
            # A resumed run's dashboard shows the whole run: what its file holds so far,
            # read before the trainer adds to it.
            assert job.run is not None  # a single process always has its run folder
            history = EventFollower(job.run.events_path).poll(most_steps=CHART_STEPS)
            self.post_message(TrainingReady(job, history))
            ready = True

        try:
            outcome = self.session.run(
                build,
                [self._forward],
                notice=self._warn,
                on_job=on_job,
            )
        except TuiGptError as exc:
            error = str(exc)
        except Exception as exc:  # shown to the user; the run folder says failed
            error = f"{type(exc).__name__}: {exc}"
        if not ready:  # nothing was started: say why where the user is
            self.post_message(
                Say(error or "the training did not start", "Cannot start", "error", 10)
            )
            return
        self.post_message(TrainingEnded(outcome if error is None else "failed", error))

    def _warn(self, text: str) -> None:
        """Something the training wants the user to know (worker thread)."""
        self.post_message(Say(text, severity="warning"))

    def _forward(self, event: Event) -> None:
        """Trainer sink (training thread): the event goes to the app as a message, in order
        after TrainingReady, and on to the dashboard from there."""
        self.post_message(TrainingEvent(event))

    def on_training_ready(self, message: TrainingReady) -> None:
        process.freeze_heap()  # the model, data and trainer are built: long-lived from now on
        if self._preparing is not None:
            with contextlib.suppress(KeyError):  # it timed out already
                self._unnotify(self._preparing)
            self._preparing = None
        run = message.job.run
        assert run is not None
        self._dashboard = TrainScreen(
            run, live=True, redraw_interval=self.redraw_interval, history=message.history
        )
        self.push_screen(self._dashboard)

    def on_training_event(self, message: TrainingEvent) -> None:
        if self._dashboard is not None:
            self._dashboard.post_message(TrainingEvent(message.event))

    def on_training_ended(self, message: TrainingEnded) -> None:
        if self._dashboard is not None:
            self._dashboard.post_message(TrainingEnded(message.outcome, message.error))

    def on_say(self, message: Say) -> None:
        self.notify(
            message.text,
            title=message.title,
            severity=message.severity,  # type: ignore[arg-type]
            timeout=message.timeout,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one handler of a worker's unexpected failure: said, never a crash."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(
                f"{type(error).__name__}: {error}", title="Error", severity="error", timeout=10
            )

    def _freeze_while_training(self) -> None:
        # What survived the last quarter minute of training is mostly here to stay (log
        # lines, chart points): keep the collector's full passes short. No collect() here,
        # it would be the very pause this avoids.
        if self.training_active:
            process.freeze_heap(collect=False)

    def open_dashboard(self, run: Run) -> None:
        def current(screen: Screen) -> bool:
            """An open dashboard of the run that is up to date: one that follows the run's
            file, or the one of this window's latest training. A dashboard of an earlier
            training here stopped listening when that training ended."""
            return (
                isinstance(screen, TrainScreen)
                and screen.run.path == run.path
                and (not screen.live or screen is self._dashboard)
            )

        if self.return_to(current):
            return
        if (
            self._dashboard is not None
            and self._dashboard.run.path == run.path
            and self._dashboard.is_attached
        ):
            self.push_screen(self._dashboard)
            return
        self.push_screen(TrainScreen(run, live=False, redraw_interval=self.redraw_interval))

    def superseded(self, screen: Screen) -> bool:
        latest = self._dashboard
        return (
            isinstance(screen, TrainScreen)
            and screen.live
            and latest is not None
            and screen is not latest
            and screen.run.path == latest.run.path
        )

    # ------------------------------------------------------------------ generator

    def open_chat(self, run: Run, which: str = "best") -> None:
        """The generator on a run's best weights (the lowest validation loss; `latest` until
        there is a best), or its latest with `which="latest"`: one rule everywhere, the same
        as `tui-gpt generate --run`, said in the generator's title and switched there (w)."""
        self._open_chat(run, which)

    @work(thread=True, exclusive=True, group="load-model", exit_on_error=False)
    def _open_chat(self, run: Run, which: str) -> None:
        try:
            path = run.weights(which)
            loaded = load_for_sampling(
                checkpoint_path=str(path), runs_dir=self.runs_dir, device="cpu"
            )
        except TuiGptError as exc:
            self.post_message(Say(str(exc), severity="error"))
            return
        # Which weights first (step, validation loss): at 80 columns a long run id's end is
        # what the header cuts.
        title = f"{loaded.weights_short} · {short_name(run)}"
        self.post_message(ModelLoaded(loaded, title, run, path.stem))

    def on_model_loaded(self, message: ModelLoaded) -> None:
        run, which = message.run, message.which
        if self.return_to(
            lambda s: isinstance(s, ChatScreen) and s.run is not None and s.run.path == run.path
        ):
            chat = self.screen
            assert isinstance(chat, ChatScreen)
            if chat.weights != which:
                chat.use_weights(
                    message.loaded, message.title, which
                )  # the same run's other weights
        else:
            self.push_screen(ChatScreen(message.loaded, message.title, run, which))

    # ------------------------------------------------------------------ quitting

    async def action_quit(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, DatasetScreen):
                screen.remember_form()
        if not self.training_active:
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.stop_training_and_exit("quit from the app")

        run = self.session.run_folder
        control = self.session.controls(run) if run is not None else None
        state = "paused" if control is not None and control.paused else "running"
        self.push_screen(
            ConfirmScreen(f"Training is {state}. Stop it, save a checkpoint and quit?"), answer
        )

    def stop_training_and_exit(self, reason: str, hangup: bool = False) -> None:
        if self.training_active:
            self.session.stop(reason)
            self.notify("Saving a checkpoint, then quitting ...")
        # A plain daemon thread: it must not hold up the exit it asks for.
        threading.Thread(target=self._exit_when_saved, args=(hangup,), daemon=True).start()

    def _exit_when_saved(self, hangup: bool) -> None:
        self.session.wait()
        with contextlib.suppress(Exception):  # the loop may be closed already
            self._signal_loop.call_soon_threadsafe(self.exit)
        if hangup:
            # The checkpoint is safe. With the terminal gone the UI may be unable to wind
            # down (its writes to the dead terminal can block); never linger as an orphan
            # process: a few seconds for a normal exit, then none.
            time.sleep(3)
            process.exit_now(0)

    def on_unmount(self) -> None:
        # However the app ends, the trainer stops and saves; the thread pool that runs it is
        # joined before the process exits.
        self.session.stop("the app closed")

    def _on_signal(self, sig: int) -> None:
        self.stop_training_and_exit(
            f"{signal.Signals(sig).name} received", hangup=sig == signal.SIGHUP
        )

    def finish_training(self, reason: str) -> None:
        """After the UI has gone (any way at all): stop, save, wait. Called by run_app."""
        self.session.stop(reason)
        self.session.wait()


def run_app(runs_dir: Path | None = None, watch: Run | None = None) -> int:
    """The one entry point into the app, for the CLI (`tui-gpt`, `tui-gpt watch`)."""
    app = TuiGptApp(runs_dir, watch=watch)
    try:
        app.run()
    finally:
        app.finish_training("the app closed")
    return app.return_code or 0  # non-zero after a crash
