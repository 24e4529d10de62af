"""Training as a background process that outlives the terminal that started it.

`launch()` starts `python -m tui_gpt <argv>` in a new session (no controlling terminal,
so a dropped SSH connection sends it no SIGHUP), with stdin, stdout and stderr away from
the terminal, and waits on a pipe until the child says which run folder it created, or
why it could not start. From then on the run folder is the only link: events.jsonl,
status.json, process.json (heartbeat), train.log (its console output) and control/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tui_gpt import environment
from tui_gpt.core.config import TrainSpec
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import append_fd, atomic_write_text

READY_FD_ENV = "TUI_GPT_READY_FD"
LOG_NAME = "train.log"


@dataclass
class Detached:
    run_id: str
    path: Path
    pid: int

    @property
    def log(self) -> Path:
        return self.path / LOG_NAME


def launch(argv: list[str], env: dict[str, str] | None = None) -> Detached:
    """Start the tui-gpt command `argv` in the background; return once its run folder
    exists. Raises `TuiGptError` with the child's own message if it cannot start."""
    read_fd, write_fd = os.pipe()
    child_env = {**(env if env is not None else os.environ), READY_FD_ENV: str(write_fd)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui_gpt", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(write_fd,),
            env=child_env,
        )
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        line = pipe.readline()  # EOF when the child exits without a word
    try:
        message = json.loads(line) if line else {}
    except ValueError:
        message = {}
    if "run" in message:
        return Detached(message["run"], Path(message["path"]), proc.pid)
    code = proc.wait()
    raise TuiGptError(
        message.get("error")
        or f"the background training exited (status {code}) before creating its run"
    )


def write_spec(spec: TrainSpec, runs_dir: Path) -> Path:
    """The spec as a JSON file beside the run folders, for a background run to read."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f".launch-{time.time_ns()}-{os.getpid()}.json"
    atomic_write_text(path, json.dumps(spec.to_dict(), indent=2))
    return path


def launch_spec(spec: TrainSpec, runs_dir: Path, vocab_dir: str | None = None) -> Detached:
    """Start a new training in the background. Its settings travel as a JSON file (the same
    form as a run folder's settings.json), not as a command line rebuilt from them; the file
    is removed once the child has started (or failed to)."""
    path = write_spec(spec, runs_dir)
    argv = ["--run-dir", str(runs_dir), "train", "--settings", str(path)]
    try:
        return launch(argv + (["--vocab-dir", vocab_dir] if vocab_dir else []))
    finally:
        path.unlink(missing_ok=True)


def is_detached_child() -> bool:
    return environment.text(READY_FD_ENV) is not None


def _tell_launcher(message: dict) -> None:
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    try:
        with os.fdopen(int(fd), "w") as pipe:
            pipe.write(json.dumps(message) + "\n")
    except (OSError, ValueError):
        pass  # the launcher is gone; the run goes on regardless


def report_started(run_id: str, path: Path) -> None:
    """Child side: the run folder exists; send console output to its train.log from now
    on and let the launcher return."""
    log_fd = append_fd(path / LOG_NAME, os.O_WRONLY)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    _tell_launcher({"run": run_id, "path": str(path)})


def report_failed(message: str) -> None:
    """Child side: why the training could not start, for the launcher to print."""
    _tell_launcher({"error": message})
