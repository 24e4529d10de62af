"""`tui-gpt control RUN pause|resume|stop|checkpoint`: steer a training from any terminal."""

from __future__ import annotations

import argparse
import time

from tui_gpt.commands.common import add_run_dir, positive_float, print_json, runs_dir
from tui_gpt.core import control
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.runs import find_run


def add_parser(sub) -> None:
    p = sub.add_parser(
        "control",
        help="pause, resume, stop or checkpoint a running training",
        description="Send a request to the process training RUN (in the background, in another "
        "terminal or in the app) through its run folder's control channel. stop saves a "
        "checkpoint first; the run can be continued with `tui-gpt train --resume RUN`.",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    p.add_argument("command", choices=control.COMMANDS, help="what to ask")
    p.add_argument(
        "--no-wait", action="store_true", help="return at once instead of waiting for it"
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        help="seconds to wait for the trainer (default 120)",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_run_dir(p)
    p.set_defaults(func=run)


_DONE_STATUS = {"pause": ("paused",), "resume": ("running",)}


def run(args: argparse.Namespace) -> int:
    run_ = find_run(args.run, runs_dir(args))
    life = control.liveness(run_)
    if life.state != "live":
        raise TuiGptError(f"run {run_.id} is not training: {_what_next(run_)}")
    saved_before = _mtime(run_.latest)
    request = control.send(run_, args.command)
    outcome = "sent"
    if not args.no_wait:
        outcome = _wait(run_, request, args.command, args.timeout, saved_before)
    result = {"run": run_.id, "command": args.command, "outcome": outcome, "pid": life.pid}
    if args.json:
        print_json(result)
    else:
        print(f"{args.command}: {outcome} (run {run_.id}, pid {life.pid})")
    return 1 if outcome == "timed out" or outcome.startswith(NOT_APPLIED) else 0


def _what_next(run_) -> str:
    """What a run that is not training can do next, as a command that works as given."""
    status = run_.status_of()
    if status == "finished":
        return (f"it finished; train it further with: tui-gpt train --resume {run_.id} "
                f"--further 1e (or a number of steps: --further 500)")  # fmt: skip
    if status == "imported":
        return f"it was imported; train from it with: tui-gpt train DATA --init-from {run_.id}"
    return f"it is {status}; continue it with: tui-gpt train --resume {run_.id}"


def _mtime(path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _wait(run_, request, command: str, timeout: float, saved_before: float) -> str:
    """Until the run shows the request done: paused / running / stopped, or a new latest
    checkpoint on disk. A trainer that ends before taking the request never applies it:
    the request is withdrawn (a later resume must not act on it) and said so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = control.liveness(run_).state == "live"
        status = run_.status_of()
        if not alive and request.exists():
            request.unlink(missing_ok=True)
            return f"{NOT_APPLIED}: the trainer ended first (status {status})"
        if command == "stop":
            if not alive:
                return str(status)
        elif not alive:
            return f"the trainer ended (status {status})"
        elif command == "checkpoint":
            if _mtime(run_.latest) != saved_before:
                return f"saved {run_.latest}"
        elif not request.exists() and status in _DONE_STATUS[command]:
            return str(status)
        time.sleep(0.1)
    return "timed out"


NOT_APPLIED = "not applied"
