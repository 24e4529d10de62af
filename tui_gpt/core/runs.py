"""Run folders: one per training, self-describing, readable while being written.

<runs dir>/<run-id>/
  run.json            model + train config, dataset fingerprint, tokenizer, versions
  events.jsonl        one JSON object per event, appended and flushed as it happens
  status.json         running | paused | stopped | finished | failed, plus a summary
  process.json        pid, host and heartbeat of the process training it (core/control.py)
  control/            requests to that process: pause, resume, stop, checkpoint
  train.log           console output of a background (--detach) training
  checkpoints/
    latest.safetensors   weights + optimizer + trainer state: what --resume reads
    best.safetensors     weights of the lowest validation loss so far
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import platform
import re
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from tui_gpt import __version__, paths
from tui_gpt.core.errors import DamagedFile, TuiGptError
from tui_gpt.core.events import Eval, Event, Finished, event_from_dict, finished_line
from tui_gpt.core.fsutil import append_fd, atomic_write_text, disk_reason, file_identity
from tui_gpt.core.reading import open_plain, open_plain_file
from tui_gpt.core.records import (
    RUN_FILE,
    ProcessRecord,
    RunRecord,
    SplitScore,
    Status,
    StatusRecord,
    parse_scores,
    read_json,
    read_record,
)
from tui_gpt.core.tokenizer import BPETokenizer, Tokenizer, get_tokenizer

# What is known of the process behind a run folder.
Process = Literal["live", "stale", "ended", "unknown"]
# What a user is told: live (training now), stale (its process died without a word), damaged
# (unreadable), or how it ended.
State = Literal["live", "stale", "damaged", "stopped", "finished", "failed", "imported", "unknown"]
ACTIVE: tuple[Status, ...] = ("running", "paused")
# A heartbeat older than this means the process is gone (or its machine is unreachable).
STALE_AFTER_SECONDS = 30.0


class Run:
    """A run folder on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.safetensors"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.safetensors"

    @property
    def record_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    def record(self) -> RunRecord:
        """run.json, typed; a missing or damaged one is one TuiGptError naming it."""
        try:
            obj = read_json(self.record_path)
        except FileNotFoundError:
            raise TuiGptError(f"{self.path}: not a run folder (no run.json)") from None
        if isinstance(obj, dict) and not obj.get("id"):
            obj = {**obj, "id": self.id}
        return RunRecord.parse(obj, str(self.record_path))

    def write_record(self, record: RunRecord) -> None:
        """Replace run.json (atomically) with `record`."""
        atomic_write_text(self.record_path, record.to_json())

    @property
    def scores_path(self) -> Path:
        return self.path / "scores.json"

    def split_scores(self) -> dict[str, SplitScore]:
        """The whole-validation-split scores `tui-gpt eval` recorded, of the weights still
        in place (a score of a checkpoint since replaced is left out); damaged: DamagedFile."""
        scores = read_record(self.scores_path, parse_scores) or {}
        return {k: v for k, v in scores.items() if v.weights == weights_id(self.checkpoints / f"{k}.safetensors")}

    def record_split_score(self, score: SplitScore) -> None:
        """Keep a whole-split score beside the others (the file written whole, atomically)."""
        try:
            scores = read_record(self.scores_path, parse_scores) or {}
        except DamagedFile:
            scores = {}  # a damaged file is replaced by what is known now
        scores[score.checkpoint] = score
        atomic_write_text(
            self.scores_path, json.dumps({k: asdict(v) for k, v in scores.items()}, indent=1)
        )

    def status(self) -> StatusRecord:
        """status.json, typed (empty before the first write); damaged: DamagedFile."""
        return read_record(self.status_path, StatusRecord.parse) or StatusRecord()

    def status_of(self) -> Status:
        """The status word; "unknown" where status.json is missing or damaged."""
        try:
            return self.status().status
        except DamagedFile:
            return "unknown"

    def set_status(self, status: Status, **summary: Any) -> None:
        """Rewrite status.json: `status` and the `summary` fields (StatusRecord's) changed,
        the rest as it was."""
        try:
            now = self.status()
        except DamagedFile:  # written anew: what the trainer knows now is the truth
            now = StatusRecord()
        new = replace(now, **summary, status=status, updated=time.time(), pid=os.getpid())
        atomic_write_text(self.status_path, new.to_json())

    def events(self) -> list[dict[str, Any]]:
        """The events.jsonl lines as written (JSON objects)."""
        return list(read_events(self.events_path))

    def typed_events(self) -> list[Event]:
        return [e for e in map(event_from_dict, read_events(self.events_path)) if e is not None]

    def weights(self, which: str = "best") -> Path:
        """The checkpoint the generator, `generate`, `eval`, `export` and `--init-from` use:
        `best` (the lowest validation loss of every evaluated checkpoint; the trainer
        evaluates each `latest` it saves and the weights every training ends with), else
        `latest` until there is a best; or `latest` itself. One rule for every consumer."""
        order = [self.best, self.latest] if which == "best" else [self.latest]
        for p in order:
            if p.is_file():
                return p
        nor = " (nor a latest)" if which == "best" else ""
        raise TuiGptError(f"run {self.id} has no {which} checkpoint{nor} yet")


TOKENIZER_FILE = "tokenizer.json"  # a run's own copy of a trained tokenizer


def run_tokenizer(run: Run, vocab_dir: str | None = None) -> Tokenizer:
    """The tokenizer a run was trained with: its own copy of a trained one, or GPT-2's or
    bytes by name; never the file it was first given, which may have moved since. A copy
    that is not the one the run was trained with (its name carries the file's hash) is an
    error: decoding or training with it would silently use other token ids."""
    info = run.record()
    if os.path.lexists(run.path / TOKENIZER_FILE):  # whatever is there: read, or named
        tok: Tokenizer = BPETokenizer(run.path / TOKENIZER_FILE)
    else:
        tok = get_tokenizer(info.tokenizer, vocab_dir or info.vocab_dir)
    if info.tokenizer.startswith("bpe-") and tok.name != info.tokenizer:
        raise TuiGptError(
            f"run {run.id}: its {TOKENIZER_FILE} is not the tokenizer it was trained with "
            f"({tok.name}, run.json says {info.tokenizer}); put the original back"
        )
    vocab = info.model_config().vocab_size if info.model is not None else None
    if vocab is not None and tok.vocab_size != vocab:
        raise TuiGptError(
            f"run {run.id}: its tokenizer has {tok.vocab_size:,} tokens, its model {vocab:,}"
        )
    return tok


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:32] or "data"


def create_run(runs_dir: Path, dataset: str, record: RunRecord) -> Run:
    """A new run folder named `<date>-<time>-<dataset>-<preset>` with its run.json: `record`
    with the folder's id, the time and the versions of what made it."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(dataset)}-{_slug(record.preset)}"
    for n in range(1000):
        path = runs_dir / (base if n == 0 else f"{base}-{n}")
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise TuiGptError(f"cannot create a run folder in {runs_dir}")
    run = Run(path)
    versions = {"tui_gpt": __version__, "python": platform.python_version(),
                "torch": _torch_version()}  # fmt: skip
    run.write_record(replace(record, id=run.id, created=time.time(), versions=versions))
    return run


def _torch_version() -> str:
    import torch

    return torch.__version__


def read_events(path: Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """Events of an events.jsonl from byte `offset`, skipping malformed lines (too long,
    not JSON, nested too deeply) and a last line still being written. Missing: none; a
    link, FIFO or device in its place: DamagedFile."""
    try:
        f = open_plain_file(path)
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        while line := f.readline(MAX_EVENT_BYTES):
            if not line.endswith(b"\n"):
                if len(line) < MAX_EVENT_BYTES:
                    return  # still being written
                f.readline()  # the rest of an overlong line: skipped with it
                continue
            obj = _event_object(line)
            if obj is not None:
                yield obj


# Far longer than any event tui-gpt writes (a sample of a few hundred tokens).
MAX_EVENT_BYTES = 1 << 20


def _event_object(line: bytes) -> dict[str, Any] | None:
    """One line of events.jsonl as a JSON object, or None where it is not one."""
    if len(line) > MAX_EVENT_BYTES:
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


_STATUS_AFTER: dict[str, Status] = {
    "run_started": "running",
    "resumed": "running",
    "paused": "paused",
    "stopped": "stopped",
    "finished": "finished",
    "error": "failed",
}


class EventLog:
    """Sink that appends each event to a run's events.jsonl (flushed per event) and keeps
    status.json current: the status, and a summary for `tui-gpt runs`."""

    def __init__(self, run: Run, on_write_error: Callable[[OSError], None] | None = None) -> None:
        self.run = run
        # A full disk (or a deleted folder) must not kill the trainer mid-step: the owner is
        # told, and stops it cleanly.
        self.on_write_error = on_write_error
        try:
            fd = append_fd(run.events_path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            reason = "a symbolic link" if exc.errno == errno.ELOOP else disk_reason(exc)
            raise TuiGptError(f"cannot write {run.events_path}: {reason}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block its reader, or us
            os.close(fd)
            raise TuiGptError(f"cannot write {run.events_path}: not a plain file")
        size = st.st_size
        # A torn last line (a kill mid-write, maybe mid-character): start a new one.
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        if torn:
            self._file.write("\n")
        status = run.status()  # checked before anything was written (jobs._resumable)
        self._best = status.best_val_loss
        self._best_bpb = status.best_val_bpb
        self._status: Status = status.status if status.raw else "running"

    def __call__(self, event: Event) -> None:
        try:
            self._record(event)
        except OSError as exc:
            if self.on_write_error is None:
                raise
            self.on_write_error(exc)

    def _record(self, event: Event) -> None:
        self._file.write(json.dumps(event.to_dict()) + "\n")
        self._file.flush()
        if (
            isinstance(event, Eval)
            and math.isfinite(event.val_loss)
            and (self._best is None or event.val_loss < self._best)
        ):
            self._best = event.val_loss
        bpb = event.val_bpb if isinstance(event, Eval) else None
        if (
            bpb is not None
            and math.isfinite(bpb)
            and (self._best_bpb is None or bpb < self._best_bpb)
        ):
            self._best_bpb = bpb
        if event.name in _STATUS_AFTER or event.name in ("eval", "checkpoint", "epoch_end"):
            self._status = _STATUS_AFTER.get(event.name, self._status)
            self.run.set_status(
                self._status,
                step=event.step,
                epoch=event.epoch,
                tokens_seen=event.tokens_seen,
                best_val_loss=self._best,
                best_val_bpb=self._best_bpb,
                ended=finished_line(event) if isinstance(event, Finished) else "",
            )

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the last flush may meet a full disk too
            self._file.close()


@dataclass
class RunSummary:
    """One line of `tui-gpt runs`; `problem` is set for a folder that cannot be read."""

    id: str
    path: str
    label: str = ""
    created: float | None = None
    dataset: str = ""
    preset: str = ""
    params: int | None = None
    steps: int = 0
    best_val_loss: float | None = None
    best_val_bpb: float | None = None  # bits per byte, where the run records them
    status: Status = "unknown"
    process: Process = "unknown"
    pid: int | None = None
    heartbeat_age: float | None = None
    problem: str | None = None
    ended: str = ""  # why a finished run ended (events.finished_line)

    @property
    def state(self) -> State:
        """What a user asks first: live (training now), stale (its process died without
        a word: resume it), or how the run ended (finished, stopped, failed, imported)."""
        if self.problem is not None:
            return "damaged"
        if self.status in ACTIVE:
            return "live" if self.process == "live" else "stale"
        return cast(State, self.status)  # how it ended: the same words

    def describe(self) -> str:
        """The state in words, for `tui-gpt runs` and the runs browser."""
        state = self.state
        if state == "live":
            return f"live, {self.status} (pid {self.pid})"
        if state == "stale":
            if self.heartbeat_age is not None and self.heartbeat_age > STALE_AFTER_SECONDS:
                return f"stale: no heartbeat for {_ago(self.heartbeat_age)}"
            return "stale: its process is gone"
        if state == "damaged":
            return f"damaged: {self.problem}"
        if state == "finished" and self.ended:
            return f"finished: {self.ended}"
        return state

    def brief(self) -> str:
        """The state in a word, for a table column: a live run's status (running, paused,
        ...); describe() says the rest (pid, heartbeat, the damage)."""
        state = self.state
        if state == "live":
            return self.status or "live"
        return state.split(":")[0]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "state": self.state}


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def summarize(run: Run) -> RunSummary:
    summary = RunSummary(id=run.id, path=str(run.path))
    try:
        info = run.record()
        summary.created, summary.label = info.created, info.label
        summary.dataset, summary.preset, summary.params = info.dataset.name, info.preset, info.params
        status = run.status()
    except TuiGptError as exc:  # one line, the same for every command and the app
        summary.problem = str(exc)
        return summary
    summary.steps = status.step + 1
    summary.best_val_loss, summary.best_val_bpb = status.best_val_loss, status.best_val_bpb
    summary.status, summary.ended = status.status, status.ended
    life = liveness(run)
    summary.process, summary.pid, summary.heartbeat_age = life.state, life.pid, life.age
    return summary


def list_runs(runs_dir: Path | None = None) -> list[RunSummary]:
    """Every folder under `runs_dir` that looks like a run, newest first. Folders that are not
    runs (no run.json) are skipped; damaged ones are listed with their problem."""
    runs_dir = runs_dir or paths.runs_dir()
    if not runs_dir.is_dir():
        return []
    found = [summarize(Run(p)) for p in runs_dir.iterdir() if p.is_dir() and _looks_like_run(p)]
    return sorted(found, key=lambda s: (s.created or 0, s.id), reverse=True)


def find_run(ref: str, runs_dir: Path | None = None) -> Run:
    """A run by folder path, id, unique id prefix, or label (`tui-gpt runs label`)."""
    candidate = Path(ref).expanduser()
    if _looks_like_run(candidate):
        return Run(candidate)
    runs_dir = runs_dir or paths.runs_dir()
    if not ref or any(c in ref for c in "/\\*?[]") or ref in (".", ".."):
        raise TuiGptError(f"no run {ref!r} (a run id, a unique prefix of one, or a run folder)")
    if _looks_like_run(runs_dir / ref):
        return Run(runs_dir / ref)
    matches = (
        [p for p in runs_dir.iterdir() if p.name.startswith(ref) and _looks_like_run(p)]
        if runs_dir.is_dir() else []
    )  # fmt: skip
    if not matches and runs_dir.is_dir():
        matches = [p for p in runs_dir.iterdir() if _label_of(p) == ref]
    if len(matches) == 1:
        return Run(matches[0])
    if len(matches) > 1:
        raise TuiGptError(
            f"run {ref!r} is ambiguous: {', '.join(sorted(p.name for p in matches)[:5])}"
        )
    raise TuiGptError(f"no run {ref!r} in {runs_dir} (see `tui-gpt runs`)")


def _looks_like_run(folder: Path) -> bool:
    """A run folder holds a run.json; whether it can be read is for its readers to say (a
    damaged one is listed, and named, as damaged rather than passed over as no run)."""
    return os.path.lexists(folder / RUN_FILE)


def _label_of(path: Path) -> str:
    """A run folder's label; empty where it has none or its record cannot be read."""
    if not _looks_like_run(path):
        return ""
    try:
        return Run(path).record().label
    except TuiGptError:
        return ""


def weights_id(path: Path) -> str:
    """The identity (fsutil.file_identity) of the checkpoint file at `path` now; empty when
    there is none, or a link in its place."""
    try:
        st = path.lstat()
    except OSError:
        return ""
    return file_identity(st) if stat.S_ISREG(st.st_mode) else ""


def short_name(run: Run) -> str:
    """A run's name where room is short (a title at 80 columns): its label, else its id
    without the date and time it starts with. The full id is shown beside it elsewhere."""
    try:
        label = run.record().label
    except (DamagedFile, OSError):
        label = ""
    return label or re.sub(r"^\d{8}-\d{6}-", "", run.id) or run.id


def set_label(run: Run, label: str) -> None:
    """Name a run (or tag it: any short text); shown and filtered on by `runs` and the app."""
    run.write_record(replace(run.record(), label=" ".join(label.split())[:60]))


def matching(
    runs: list[RunSummary], label: str = "", dataset: str = "", state: str = ""
) -> list[RunSummary]:
    """The runs whose label and dataset contain the given texts (any case) and whose state
    is the one given."""
    return [
        r for r in runs
        if label.lower() in r.label.lower() and dataset.lower() in r.dataset.lower()
        and (not state or r.state == state)
    ]  # fmt: skip


def delete_run(run: Run) -> None:
    """Delete a run folder; a link to one loses the link, never what it points to."""
    if run.path.is_symlink():
        run.path.unlink()
        return
    # A file may vanish while the tree is removed (a writer renaming its temporary file):
    # what is gone need not be deleted; go again until the folder itself is gone.
    for _ in range(5):
        try:
            shutil.rmtree(run.path)
            return
        except OSError as exc:  # a file went before its turn, or a new one came
            if not run.path.exists():
                return
            if not isinstance(exc, FileNotFoundError) and exc.errno != errno.ENOTEMPTY:
                raise
    shutil.rmtree(run.path)


@dataclass
class Liveness:
    """What is known of the process behind a run folder."""

    state: Process
    pid: int | None = None
    host: str = ""
    age: float | None = None  # seconds since the last heartbeat

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def process_path(run: Run) -> Path:
    return run.path / "process.json"


def read_process(run: Run) -> ProcessRecord | None:
    """process.json, typed; None when there is none or it is damaged (it tells nothing)."""
    try:
        return read_record(process_path(run), ProcessRecord.parse)
    except TuiGptError:
        return None


LOCK_FILE = "lock"


class RunLock:
    """The one writer of a run: an exclusive `flock` on its lock file, held by the process
    training it for as long as it trains (the kernel lets go when that process dies, however
    it dies). A second trainer is refused, naming the holder."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        path = self.run.path / LOCK_FILE
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            what = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})"
            raise TuiGptError(f"{path} {what}; remove it to train this run") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise TuiGptError(f"{path} is not a plain file; remove it to train this run")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = locked_by(self.run)
            raise TuiGptError(
                f"run {self.run.id} is being trained by another process (pid {holder or '?'}); "
                f"stop it first: tui-gpt control {self.run.id} stop"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {time.time()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the lock
            self._fd = None


def _lock_holder(run: Run) -> tuple[int, float] | None:
    """(pid, since when) of the process holding a run's lock on this machine, or None."""
    try:  # a FIFO or link in its place is no lock a trainer holds (RunLock refuses them)
        fd = open_plain(run.path / LOCK_FILE)
    except (OSError, DamagedFile):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, _, since = os.pread(fd, 64, 0).decode(errors="replace").strip().partition(" ")
        try:
            return (int(pid) if pid.isdigit() else -1), float(since or 0)
        except ValueError:
            return -1, 0.0
    finally:
        os.close(fd)  # also lets go of the shared lock taken to look
    return None


def locked_by(run: Run) -> int | None:
    """The pid of the process holding a run's lock (training it on this machine), or None."""
    holder = _lock_holder(run)
    return holder[0] if holder else None


def liveness(run: Run, now: float | None = None) -> Liveness:
    """live: its lock is held (on this machine the lock alone tells: a pid in a file may be
    anyone's), or, for a process on another machine, a heartbeat within
    STALE_AFTER_SECONDS; stale: the process stopped without ending the run; ended: it ended
    cleanly."""
    proc = read_process(run)
    lock = _lock_holder(run)
    ended = proc.ended if proc is not None else None
    if lock is not None and ended is not None and ended >= lock[1]:
        lock = None  # it said "ended" since taking the lock: letting go this very moment
    if lock is not None:
        return Liveness("live", lock[0] if lock[0] > 0 else None, socket.gethostname(), 0.0)
    if proc is None:
        if process_path(run).exists():
            return Liveness("unknown")  # a damaged process.json tells nothing
        try:
            status = run.status()
        except DamagedFile:
            return Liveness("unknown")
        if status.status in ACTIVE:  # said it was training, holds no lock: gone
            return Liveness("stale", status.pid)
        return Liveness("unknown", status.pid)
    pid, host = proc.pid, proc.host
    age = (now or time.time()) - proc.heartbeat
    if proc.ended:
        return Liveness("ended", pid, host, age)
    if host == socket.gethostname() or age > STALE_AFTER_SECONDS or age < -STALE_AFTER_SECONDS:
        return Liveness("stale", pid, host, age)
    return Liveness("live", pid, host, age)


class EventFollower:
    """Reads a growing events.jsonl incrementally: each `poll()` returns only the complete
    lines appended since the last one, so following a long run never re-reads the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def poll(self, limit_bytes: int = 64 << 20, most_steps: int | None = None) -> list[Event]:
        """New complete events. With `most_steps`, of the step events in this batch at
        most that many are decoded, evenly spaced and the newest always among them: a long
        run's file is mostly step lines, and a dashboard catching up on it needs only
        enough of them to draw the training loss (followed live, a poll's batch is small
        and every step is kept)."""
        try:
            with open_plain_file(self.path) as f:
                f.seek(self.offset)
                chunk = f.read(limit_bytes)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DamagedFile(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = chunk[: end + 1].splitlines()
        keep: set[int] | None = None
        if most_steps is not None:
            steps = [i for i, line in enumerate(lines) if line.startswith(_STEP_PREFIX)]
            if len(steps) > most_steps:
                stride = len(steps) / max(most_steps - 1, 1)
                keep = {steps[min(round(k * stride), len(steps) - 1)] for k in range(most_steps)}
                keep.add(steps[-1])
        events = []
        for i, line in enumerate(lines):
            if keep is not None and i not in keep and line.startswith(_STEP_PREFIX):
                continue
            obj = _event_object(line)
            event = event_from_dict(obj) if obj is not None else None
            if event is not None:
                events.append(event)
        return events


# How EventLog writes a step event: json.dumps of {"event": "step", ...}.
_STEP_PREFIX = b'{"event": "step"'
