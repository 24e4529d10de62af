"""Steering a training process from anywhere: a control channel and a heartbeat in its run
folder.

The channel is a folder of one-line request files; any process that can write the run
folder (a later SSH session, the app, a script) can steer the trainer:

  <run>/control/<anything>.<command>    command: pause | resume | stop | checkpoint

`send()` writes them atomically (a hidden temporary name, then a rename). The training
process reads the folder a few times a second, applies the requests in name order and
deletes them. `send()` names each request `<time_ns>-<pid>.<command>`, so requests from
several senders keep their order; a hand-made `touch <run>/control/1.stop` works too.

The heartbeat is `<run>/process.json`: pid, host, when the process started and when it was
last seen alive, rewritten every couple of seconds by the same thread. A run whose status
says running but whose heartbeat is old (or whose pid is gone, on the same host) is stale:
its process died without a word, and `--resume` can pick it up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import atomic_write_text, refuse_link
from tui_gpt.core.records import ProcessRecord
from tui_gpt.core.runs import Run, liveness, process_path

if TYPE_CHECKING:
    from tui_gpt.core.trainer import TrainerControl

COMMANDS = ("pause", "resume", "stop", "checkpoint")
HEARTBEAT_SECONDS = 2.0


def control_dir(run: Run) -> Path:
    return run.path / "control"


def send(run: Run, command: str) -> Path:
    """Ask the process training `run` to pause, resume, stop (saving a checkpoint) or save a
    checkpoint now. Returns the request file; the trainer deletes it once applied."""
    if command not in COMMANDS:
        raise TuiGptError(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}")
    folder = control_dir(run)
    refuse_link(folder)
    folder.mkdir(exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}.{command}"
    atomic_write_text(folder / name, command + "\n")
    return folder / name


def pending(run: Run) -> list[Path]:
    """Requests not yet applied, oldest first."""
    folder = control_dir(run)
    if folder.is_symlink():  # not the run's: never read or delete through it
        return []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(
        p for p in entries
        if not p.name.startswith(".") and p.suffix[1:] in COMMANDS and p.is_file()
    )  # fmt: skip


def ensure_not_live(run: Run) -> None:
    """Refuse to start a second process on a run that is still training."""
    life = liveness(run)
    if life.state == "live":
        raise TuiGptError(
            f"run {run.id} is still training (pid {life.pid} on {life.host or 'this host'}); "
            f"stop it first: tui-gpt control {run.id} stop"
        )


class ControlChannel:
    """A daemon thread of the training process: applies control requests to a
    `TrainerControl` and keeps the heartbeat beating. Use as a context manager around the
    training."""

    def __init__(
        self, run: Run, control: TrainerControl, heartbeat_s: float = HEARTBEAT_SECONDS
    ) -> None:
        self.run, self.control, self.heartbeat_s = run, control, heartbeat_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tui-gpt-control", daemon=True)
        self._record = ProcessRecord(
            pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time(), started=time.time()
        )

    def __enter__(self) -> ControlChannel:
        folder = control_dir(self.run)
        if folder.is_symlink():  # planted: the link goes, what it points to stays
            folder.unlink()
        folder.mkdir(exist_ok=True)
        for stale_request in pending(self.run):  # meant for an earlier process of this run
            stale_request.unlink(missing_ok=True)
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self._beat(ended=True)

    def _beat(self, ended: bool = False) -> None:
        now = time.time()
        self._record = replace(self._record, heartbeat=now, ended=now if ended else None)
        # A full disk must not stop training; the heartbeat just ages.
        with contextlib.suppress(OSError):
            atomic_write_text(process_path(self.run), self._record.to_json())

    def apply_pending(self) -> list[str]:
        """Apply and remove every waiting request; the commands applied, in order."""
        applied = []
        for path in pending(self.run):
            command = path.suffix[1:]
            try:
                path.unlink()
            except OSError:
                continue  # another reader took it, or it is no request (a folder, say)
            applied.append(command)
            if command == "pause":
                self.control.pause()
            elif command == "resume":
                self.control.resume()
            elif command == "stop":
                self.control.stop("stop requested through the control channel")
            elif command == "checkpoint":
                self.control.request_checkpoint()
        return applied

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self._done.wait(0.2):
            if not self.run.path.is_dir():  # deleted under a running trainer
                self.control.stop(f"the run folder {self.run.path} was deleted")
                return
            with contextlib.suppress(OSError):  # an unreadable folder must not stop the beat
                self.apply_pending()
            if time.monotonic() - last_beat >= self.heartbeat_s:
                self._beat()
                last_beat = time.monotonic()


class RemoteControl:
    """The steering side of `TrainerControl` for a run trained by another process: each
    call becomes a request in the run's control channel."""

    def __init__(self, run: Run) -> None:
        self.run = run

    @property
    def paused(self) -> bool:
        return self.run.status_of() == "paused"

    def pause(self) -> None:
        send(self.run, "pause")

    def resume(self) -> None:
        send(self.run, "resume")

    def stop(self, reason: str = "") -> None:
        send(self.run, "stop")

    def request_checkpoint(self) -> None:
        send(self.run, "checkpoint")
