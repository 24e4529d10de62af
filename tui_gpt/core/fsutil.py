"""Crash-safe file writes: write beside the target, fsync, rename over it.

A reader (or a crash) sees the old file or the new one, never half of either. Every file
tui-gpt writes goes through `atomic_write`: its temporary file is named `.NAME.tmp-PID`
(so a later process can tell a dead writer's leftovers and sweep them), is created new and
never through a symbolic link (a planted link is replaced, not followed), and is removed
on any failure, a full disk included. Threads of one process share that name, so they write
one path one at a time (two of the app's workers may save the same fitted tokenizer).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tui_gpt.core.errors import TuiGptError

TMP_MARK = ".tmp-"  # .NAME.tmp-PID

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _path_lock(path: Path) -> threading.Lock:
    """The lock this process's writers of `path` take (they share its temporary name)."""
    with _locks_guard:
        return _locks.setdefault(os.path.abspath(path), threading.Lock())


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def _create_new(tmp: Path) -> int:
    """A new empty file at `tmp`; whatever was there (a dead writer's file, a planted
    link) is removed first, never followed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(file)` on a new temporary file, then make it appear at `path` at once."""

    def fill(tmp: Path) -> None:
        with os.fdopen(_create_new(tmp), "wb") as f:
            write(f)

    _replace(Path(path), fill)


def atomic_write_path(path: Path, write: Callable[[Path], object]) -> None:
    """As `atomic_write`, for a library that opens the file by name itself: `write(tmp)`
    writes the (already created, empty) temporary file."""

    def fill(tmp: Path) -> None:
        os.close(_create_new(tmp))
        write(tmp)

    _replace(Path(path), fill)


def _replace(path: Path, fill: Callable[[Path], None]) -> None:
    """`fill` the temporary file, flush it to the disk, rename it over `path`; on any
    failure (a full disk, a signal) the temporary file goes."""
    tmp = temporary_for(path)
    with _path_lock(path):
        try:
            fill(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.filename is None and exc.errno is not None:  # a failed write: name the file
                raise OSError(exc.errno, exc.strerror, str(path)) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_copy(source: Path, path: Path) -> None:
    """A copy of `source` at `path`, written as every other file is."""
    with open(source, "rb") as src:
        atomic_write(path, lambda f: _copy(src, f))


def _copy(src: BinaryIO, dst: BinaryIO) -> None:
    while chunk := src.read(1 << 20):
        dst.write(chunk)


def sweep_temporaries(folder: Path) -> None:
    """Remove the half-written files of writers that were killed (`.NAME.tmp-PID` whose
    process is gone), and any other hidden temporary file a library may have left."""
    if folder.is_symlink():  # not tui-gpt's to clean
        return
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for stale in entries:
        name = stale.name
        if not name.startswith("."):
            continue
        if TMP_MARK in name:
            pid = name.rsplit("-", 1)[-1]
            if pid.isdigit() and pid_alive(int(pid)) and int(pid) != os.getpid():
                continue  # another live process is writing it
        elif not name.startswith(".tmp"):  # e.g. .tmpXXXXXX of an older tui-gpt's saves
            continue
        with contextlib.suppress(OSError):
            if stale.is_symlink() or not stale.is_dir():
                stale.unlink()


def refuse_link(path: Path) -> None:
    """Stop before writing or deleting through a symbolic link inside a run folder: what it
    points to is not tui-gpt's."""
    if path.is_symlink():
        raise TuiGptError(f"{path} is a symbolic link; tui-gpt does not write through one")


def append_fd(path: Path, flags: int = os.O_RDWR) -> int:
    """A descriptor appending to `path` (created if missing), never through a symbolic
    link (ELOOP instead)."""
    return os.open(path, flags | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)


def file_identity(st: os.stat_result) -> str:
    """A file's identity for what is recorded about its contents (a checkpoint's score):
    its size and modification time. tui-gpt never rewrites a file in place, every save is a
    new file, so new contents mean a new identity."""
    return f"{st.st_size}:{st.st_mtime_ns}"


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def disk_reason(exc: BaseException) -> str:
    """Why a write failed, in the words a user acts on."""
    number = getattr(exc, "errno", None)
    if number == errno.ENOSPC or "No space left" in str(exc):
        return "the disk is full"
    if number == errno.EFBIG or "File too large" in str(exc):
        return "the file size limit was reached"
    if number == errno.EDQUOT:
        return "the disk quota is exhausted"
    if re.search(r"\d+ requested and \d+ written", str(exc)):  # numpy's short write
        return "the disk is full, or the file size limit was reached"
    text = getattr(exc, "strerror", None) or (str(exc).splitlines() or [""])[0]
    return str(text or type(exc).__name__)
