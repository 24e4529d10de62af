"""Reading a file tui-gpt did not just write itself, in one way everywhere.

Run folders are shared with other processes and other people: a file in one may have been
replaced by a FIFO (an `open` that never returns), a link to `/dev/zero` (a read that never
ends), a link to another run's file (the other run's data under this run's name), or JSON
nested a hundred thousand deep (a `RecursionError` in the parser). So every such file is:

- opened without blocking and checked with `fstat` to be a plain file;
- never read through a symbolic link inside a run folder (`follow_links` is for a path the
  user typed, where a link is the user's own choice);
- read up to a size cap;
- parsed with nesting too deep treated as damage.

Anything wrong is one `DamagedFile` naming the file; a missing file stays
`FileNotFoundError`, which callers treat as "not there yet".
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from tui_gpt.core.errors import DamagedFile

# Far larger than any JSON file tui-gpt writes; a bound, so that a planted huge file is
# refused instead of read into memory.
MAX_JSON_BYTES = 16 << 20


def open_plain(path: str | os.PathLike, follow_links: bool = False) -> int:
    """A read-only descriptor of the plain file at `path` (the caller closes it). A FIFO,
    device, socket or folder is refused without waiting on it; so is a symbolic link unless
    `follow_links`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link, refused by O_NOFOLLOW (or a loop)
            raise DamagedFile(f"{path}: is a symbolic link; tui-gpt reads only plain files") from None
        raise DamagedFile(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise DamagedFile(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise DamagedFile(f"{path}: not a plain file")
    return fd


def open_plain_file(path: str | os.PathLike, follow_links: bool = False) -> IO[bytes]:
    """`open_plain` as a buffered binary file object (read-only)."""
    return os.fdopen(open_plain(path, follow_links), "rb")


def read_plain(path: str | os.PathLike, limit: int, follow_links: bool = False) -> bytes:
    """The bytes of a plain file of at most `limit` bytes (DamagedFile if larger)."""
    fd = open_plain(path, follow_links)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise DamagedFile(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise DamagedFile(f"{path}: larger than {_size(limit)}; not a file tui-gpt wrote")
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit:,} bytes"


def parse_json(data: str | bytes, where: str | os.PathLike) -> Any:
    """A JSON value; not JSON, or nested too deeply for the parser, is a DamagedFile
    naming `where`."""
    try:
        return json.loads(data)
    except RecursionError:
        raise DamagedFile(f"{where}: damaged (JSON nested too deeply)") from None
    except ValueError as exc:
        raise DamagedFile(f"{where}: damaged (not JSON: {str(exc)[:80]})") from None


def read_json(path: str | os.PathLike, limit: int = MAX_JSON_BYTES, follow_links: bool = False) -> Any:
    """The JSON value of a plain file of at most `limit` bytes. Missing: FileNotFoundError;
    anything else wrong: DamagedFile."""
    path = Path(path)
    return parse_json(read_plain(path, limit, follow_links), path)
