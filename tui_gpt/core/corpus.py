"""Corpora as they arrive: a text file, or a folder of `.txt`, `.md`, `.jsonl` (one JSON
object per line, its text in a field) and `.parquet` (a text column) files, the first three
also compressed as `.gz` or `.zst`. Documents are joined with `<|endoftext|>`.

One reader per format, used twice: by `inspect_source`, which checks everything, counts the
characters and fingerprints the content before anything trains, and by `iter_text`, which
streams the same text in blocks for tokenizing. Memory stays flat at any corpus size.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from tui_gpt.core.errors import Cancelled, TuiGptError
from tui_gpt.core.events import count
from tui_gpt.core.reading import open_plain_file, parse_json
from tui_gpt.core.tokenizer import EOT_TEXT

TEXT_SUFFIXES = (".txt", ".md")
RECORD_SUFFIXES = (".jsonl", ".parquet")
COMPRESSED = (".gz", ".zst")
_BLOCK = 1 << 20  # bytes read at a time


@dataclass(frozen=True)
class TextSource:
    """Validated corpus file(s): how many characters their joined text holds, and a
    fingerprint of their content (decompressed) and of the field read from records."""

    files: tuple[Path, ...]
    chars: int  # characters of the joined text, `<|endoftext|>` joiners included
    sha256: str
    text_field: str = "text"
    # Files of a folder left out, each with why (empty, not UTF-8, a broken record, ...).
    skipped: tuple[tuple[Path, str], ...] = ()

    @property
    def bytes(self) -> int:
        """Size on disk of the files used (compressed, as stored)."""
        return sum(f.stat().st_size for f in self.files if f.exists())

    def skipped_line(self, most: int = 3) -> str:
        """One line naming the files left out and why; empty when none were."""
        if not self.skipped:
            return ""
        shown = "; ".join(f"{p.name}: {why}" for p, why in self.skipped[:most])
        more = f"; and {len(self.skipped) - most} more" if len(self.skipped) > most else ""
        return f"skipped {count(len(self.skipped), 'unusable file')}: {shown}{more}"

    @property
    def name(self) -> str:
        return _stem(self.files[0]) if len(self.files) == 1 else self.files[0].parent.name


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (*COMPRESSED, *TEXT_SUFFIXES, *RECORD_SUFFIXES):
        name = name.removesuffix(suffix)
    return name or path.stem


def kind(path: Path) -> str:
    """The format of a file, its compression set aside: .txt, .md, .jsonl or .parquet;
    "" when tui-gpt does not read it in a folder."""
    suffixes = path.suffixes
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last == ".parquet" and path.suffix in COMPRESSED:
        return ""  # Parquet compresses itself
    return last if last in TEXT_SUFFIXES + RECORD_SUFFIXES else ""


def find_files(path: str | os.PathLike, stop: Callable[[], bool] | None = None) -> list[Path]:
    """The file itself, or every corpus file under a folder (hidden folders left out), in a
    stable order. A folder entry that cannot be read is an error naming it. `stop()` is
    asked between folders: a scan of a large tree can be given up."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TuiGptError(f"{p}: no such file or folder")
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise TuiGptError(f"{p}: not a regular file")
    found: list[Path] = []

    def failed(exc: OSError) -> None:
        raise TuiGptError(f"{exc.filename}: cannot read this folder ({exc.strerror})")

    for root, dirs, names in os.walk(p, onerror=failed):
        if stop is not None and stop():
            raise Cancelled(f"{p}: scan given up")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / n for n in names if not n.startswith(".") and kind(Path(root) / n)]
    if not found:
        raise TuiGptError(
            f"{p}: folder holds no text files (.txt, .md, .jsonl, .parquet, or .gz / .zst of them)"
        )
    return sorted(found)


# ----------------------------------------------------------------------------- readers


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed."""
    try:  # a plain file only: a FIFO or device named as data would hang or never end
        raw = open_plain_file(path, follow_links=True)
    except OSError as exc:
        raise TuiGptError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    if path.suffix == ".zst":
        return cast(IO[bytes], _ZstdReader(raw))
    return raw


class _ZstdReader(io.RawIOBase):
    """A .zst file's bytes, frame after frame. Unlike zstandard's stream reader, a file
    that ends inside a frame (a cut download, a partial copy) is an error, as gzip's is."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._new = lambda: zstandard.ZstdDecompressor().decompressobj()
        self._raw, self._frame, self._in_frame = raw, self._new(), False
        self._out = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            chunk = self._raw.read(_BLOCK)
            if not chunk:
                if self._in_frame:
                    raise EOFError("the file ends before the end of its last zstd frame")
                return 0
            while chunk:
                self._out += self._frame.decompress(chunk)
                self._in_frame = not self._frame.eof
                if self._in_frame:
                    break
                chunk = self._frame.unused_data  # the next frame's start, if any
                self._frame = self._new()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        del self._out[:n]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _damaged(exc: Exception) -> bool:
    """How gzip and zstd report a damaged or foreign archive."""
    return isinstance(exc, OSError | EOFError | ValueError) or type(exc).__name__ == "ZstdError"


def _read(stream: IO[bytes], path: Path, size: int = _BLOCK) -> bytes:
    try:
        return stream.read(size)
    except Exception as exc:
        if not _damaged(exc):
            raise
        raise TuiGptError(f"{path}: damaged or not a {path.suffix} archive ({exc})") from None


def _text_blocks(path: Path, digest: Any) -> Iterator[str]:
    """A plain-text document: UTF-8 checked (offset and line of the first bad byte), no
    NUL, newlines read as Python's text mode does ("\\r\\n" and "\\r" become "\\n")."""
    decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")(), True)
    offset = lines = 0
    with _open(path) as stream:
        while block := _read(stream, path):
            digest.update(block)
            nul = block.find(b"\0")
            if nul >= 0:
                raise TuiGptError(
                    f"{path}: binary content (NUL byte at byte {offset + nul}); "
                    "tui-gpt trains on UTF-8 text"
                )
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                line = 1 + lines + block[: exc.start].count(b"\n")
                raise TuiGptError(
                    f"{path}: not valid UTF-8 at byte {offset + exc.start} (line {line}); "
                    "re-save the file as UTF-8"
                ) from None
            offset, lines = offset + len(block), lines + block.count(b"\n")
            if text:
                yield text
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise TuiGptError(f"{path}: not valid UTF-8 (truncated character at the end)") from None
    if tail:
        yield tail
    if offset == 0:
        raise TuiGptError(f"{path}: file is empty")


def _jsonl_texts(path: Path, field: str, digest: Any) -> Iterator[str]:
    with _open(path) as stream:
        reader = io.BufferedReader(cast(Any, stream))  # lines from any decompressor
        for number, line in enumerate(_lines(reader, path), 1):
            digest.update(line)
            if not line.strip():
                continue
            record = parse_json(line, f"{path}: line {number}")
            if not isinstance(record, dict) or field not in record:
                raise TuiGptError(
                    f'{path}: line {number} has no "{field}" field (choose one with --text-field)'
                )
            if not isinstance(record[field], str):
                raise TuiGptError(f'{path}: line {number}: "{field}" is not a string')
            if "\0" in record[field]:
                raise TuiGptError(f"{path}: line {number}: NUL character in the text")
            yield record[field]


def _lines(reader: Iterable[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from reader
    except Exception as exc:
        if not _damaged(exc):
            raise
        raise TuiGptError(f"{path}: damaged or not a {path.suffix} archive ({exc})") from None


def _parquet_texts(path: Path, field: str, digest: Any) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TuiGptError(
            f"{path}: reading Parquet needs pyarrow: pip install 'tui-gpt[parquet]'"
        ) from None
    try:
        table = pq.ParquetFile(path)
        names = table.schema_arrow.names
        if field not in names:
            raise TuiGptError(
                f'{path}: no column "{field}" (columns: {", ".join(names[:8])}); '
                "choose one with --text-field"
            )
        digest.update(field.encode())
        for batch in table.iter_batches(columns=[field], batch_size=1024):
            for value in batch.column(0).to_pylist():
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise TuiGptError(f'{path}: column "{field}" does not hold text')
                digest.update(value.encode("utf-8"))
                yield value
    except TuiGptError:
        raise
    except Exception as exc:  # pyarrow's own errors: a damaged or foreign file
        raise TuiGptError(f"{path}: not a readable Parquet file ({exc})") from None


def documents(path: Path, text_field: str, digest: Any) -> Iterator[Iterable[str]]:
    """The documents of one file, each as text blocks. A text file is one document; every
    record of a .jsonl or .parquet file is one."""
    fmt = kind(path) or ".txt"  # a single file of any other name is read as text
    if fmt in TEXT_SUFFIXES:
        yield _text_blocks(path, digest)
    elif fmt == ".jsonl":
        yield from ([t] for t in _jsonl_texts(path, text_field, digest) if t)
    else:
        yield from ([t] for t in _parquet_texts(path, text_field, digest) if t)


def _joined(files: Iterable[Path], text_field: str, digest: Any) -> Iterator[str]:
    first = True
    for path in files:
        for doc in documents(path, text_field, digest):
            if not first:
                digest.update(b"\0" + EOT_TEXT.encode())  # NUL cannot occur in a text: refused
                yield EOT_TEXT
            first = False
            yield from doc


class _Discard:
    def update(self, _: bytes) -> None:
        pass


def inspect_source(
    path: str | os.PathLike, text_field: str = "text", stop: Callable[[], bool] | None = None
) -> TextSource:
    """Check a corpus before anything trains (every file, every record) and fingerprint it;
    raise `TuiGptError` naming the first problem. `stop()` is asked as it goes (`Cancelled`)."""
    files = find_files(path, stop)
    skipped: list[tuple[Path, str]] = []
    if Path(path).expanduser().is_dir():
        # In a folder a file that cannot be used is left out and named, not fatal: each
        # file is read once on its own first.
        usable = []
        for f in files:
            if stop is not None and stop():
                raise Cancelled(f"{path}: check given up")
            try:
                for doc in documents(f, text_field, _Discard()):
                    for _ in doc:
                        pass
                usable.append(f)
            except TuiGptError as exc:
                skipped.append((f, str(exc).removeprefix(f"{f}: ")))
        if not usable:
            first = f"{skipped[0][0].name}: {skipped[0][1]}"
            raise TuiGptError(f"{path}: no usable text file in it ({first})")
        files = usable
    digest = hashlib.sha256()
    if text_field != "text":
        digest.update(f"field={text_field}\0".encode())
    chars, visible = 0, False
    for block in _joined(files, text_field, digest):
        if stop is not None and stop():
            raise Cancelled(f"{path}: check given up")
        chars += len(block)
        visible = visible or (block != EOT_TEXT and not block.isspace())
    if not visible:
        where = files[0] if len(files) == 1 else Path(path)
        raise TuiGptError(f"{where}: holds only whitespace" if chars else f"{where}: no text in it")
    return TextSource(
        tuple(f.resolve() for f in files), chars, digest.hexdigest(), text_field, tuple(skipped)
    )


def iter_text(source: TextSource) -> Iterator[str]:
    """The joined text of a checked source, in blocks."""
    return _joined(source.files, source.text_field, _Discard())
