"""From text files to batches of next-token training pairs.

text file(s) -> validate -> tokenize once (streaming, multi-threaded) -> token cache on disk
(uint16, keyed by content hash + tokenizer + split) -> memory-mapped train / val ids ->
sliding windows computed on access -> batch loaders.

Memory stays flat: the text is read in blocks, tokens go straight to disk, and a window is
an index range into the memory-mapped ids, never a tensor of its own. A batch is the only copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tui_gpt import paths
from tui_gpt.core.corpus import TextSource, inspect_source, iter_text
from tui_gpt.core.device import cpu_count
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import disk_reason, pid_alive
from tui_gpt.core.loss import token_byte_lengths
from tui_gpt.core.tokenizer import Tokenizer

CACHE_FORMAT = 3  # 2: the source's and the arrays' hashes in meta.json; 3: lost bytes
_READ_BLOCK = 1 << 22  # characters read per block (4 Mi)
_PIECE = 1 << 16  # characters per tokenizer work item (64 Ki)


# --------------------------------------------------------------------------- tokenizing


def _safe_cut(text: str, lo: int, hi: int) -> int:
    """A position in (lo, hi) where tokenizing the two sides separately gives the same ids
    as tokenizing the whole, or `hi` if none is found.

    GPT-2's pre-tokenizer never joins a lone newline between two non-space characters with
    either neighbour (cut after it), nor a lone space with what precedes it (cut before it).
    """
    p = text.rfind("\n", lo, hi - 1)
    while p > lo:
        if not text[p - 1].isspace() and not text[p + 1].isspace():
            return p + 1
        p = text.rfind("\n", lo, p)
    p = text.rfind(" ", lo, hi - 1)
    while p > lo:
        if not text[p - 1].isspace() and not text[p + 1].isspace():
            return p
        p = text.rfind(" ", lo, p)
    return hi


def iter_pieces(blocks: Iterator[str], piece: int = _PIECE) -> Iterator[str]:
    """Re-cut a stream of text blocks into pieces of about `piece` characters at safe cuts."""
    buf = ""
    for block in blocks:
        buf += block
        start = 0
        while len(buf) - start > 2 * piece:
            cut = _safe_cut(buf, start + piece // 2, start + piece)
            yield buf[start:cut]
            start = cut
        buf = buf[start:]
    if buf:
        yield buf


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclass(frozen=True)
class PreparedData:
    """A tokenized, split dataset: memory-mapped ids and the facts about them."""

    source: TextSource
    tokenizer: str
    train_ratio: float
    train_chars: int
    val_chars: int
    tokens: int  # tokens of the whole joined text
    train_ids: np.ndarray
    val_ids: np.ndarray
    lost_bytes: int = 0  # bytes of the text the tokenizer could not encode (LostText)
    lost_chars: str = ""


def _cache_key(source: TextSource, tokenizer: Tokenizer, train_ratio: float) -> str:
    return f"{source.sha256[:24]}-{tokenizer.name}-r{train_ratio:g}-v{CACHE_FORMAT}"


def prepare(
    path: str | os.PathLike | TextSource,
    tokenizer: Tokenizer,
    train_ratio: float = 0.9,
    cache_root: Path | None = None,
    num_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> PreparedData:
    """Validate, split by characters, tokenize each part once and memory-map the result.

    A second call on the same bytes with the same tokenizer and ratio reopens the cache,
    after checking it against its metadata; a damaged cache is rebuilt (and `notice` told
    why), never trained on. `progress(chars_done, chars_total)` follows tokenizing.
    """
    if not 0.0 < train_ratio < 1.0:
        raise TuiGptError(f"train ratio must be between 0 and 1 (exclusive), got {train_ratio}")
    source = path if isinstance(path, TextSource) else inspect_source(path)
    split = int(train_ratio * source.chars)  # first `split` characters train, as the reference
    root = cache_root or paths.cache_dir() / "tokens"
    folder = root / _cache_key(source, tokenizer, train_ratio)
    _sweep_builds(root)
    problem = _cache_problem(folder, tokenizer, split, source.sha256) if folder.exists() else "missing"
    if problem is not None:
        if problem != "missing" and notice is not None:
            notice(f"the token cache {folder} is damaged ({problem}); rebuilding it")
        shutil.rmtree(folder, ignore_errors=True)
        _build_cache(source, tokenizer, split, folder, num_threads or cpu_count(), progress)
    meta = json.loads((folder / "meta.json").read_text())
    dtype = np.dtype(meta["dtype"])
    return PreparedData(
        source=source,
        tokenizer=tokenizer.name,
        train_ratio=train_ratio,
        train_chars=split,
        val_chars=source.chars - split,
        tokens=meta["tokens"],
        train_ids=_open_ids(folder / "train.bin", dtype),
        val_ids=_open_ids(folder / "val.bin", dtype),
        lost_bytes=int(meta.get("lost_bytes", 0)),
        lost_chars=str(meta.get("lost_chars", "")),
    )


def _file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_problem(
    folder: Path, tokenizer: Tokenizer, split: int, source_sha256: str
) -> str | None:
    """What is wrong with a token cache, or None: its metadata (the text and tokenizer it
    was built from), the arrays' sizes and hashes against it, and every id within the
    vocabulary."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
            return "unknown format"
        if meta.get("source_sha256") != source_sha256 or meta.get("tokenizer") != tokenizer.name:
            return "built from another text or tokenizer"
        for name in ("train", "val"):
            if _file_hash(folder / f"{name}.bin") != meta.get(f"{name}_sha256"):
                return f"{name}.bin is not the file built with it"
        dtype = np.dtype(meta["dtype"])
        if dtype != token_dtype(tokenizer.vocab_size) or meta.get("split_char") != split:
            return "built for another vocabulary or split"
        sizes = [(folder / name).stat().st_size for name in ("train.bin", "val.bin")]
        on_disk = [s // dtype.itemsize for s in sizes]
        expected = [meta.get("train_tokens"), meta.get("val_tokens")]
        if None in expected:  # a cache from before the split's counts were kept
            fits = meta["tokens"] <= sum(on_disk) <= meta["tokens"] + 1
        else:
            fits = on_disk == expected
        if any(s % dtype.itemsize for s in sizes) or not fits:
            return f"{sum(on_disk):,} tokens on disk, {meta['tokens']:,} expected"
        for name, size in zip(("train.bin", "val.bin"), sizes, strict=True):
            if size and int(np.max(_open_ids(folder / name, dtype))) >= tokenizer.vocab_size:
                return f"{name} holds ids outside the vocabulary"
        if not isinstance(meta.get("lost_bytes"), int) or not isinstance(meta.get("lost_chars"), str):
            return "no count of the bytes its tokenizer could not encode"
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _sweep_builds(root: Path) -> None:
    """Remove the half-built caches of processes that were killed while tokenizing."""
    for stale in root.glob(".building-*") if root.is_dir() else []:
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _open_ids(path: Path, dtype: np.dtype) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class LostText:
    """What a tokenizer drops of the text it encodes: the bytes its tokens stand for fall
    short of the text's. A tokenizer file without every byte in its alphabet silently skips
    what it cannot encode (spaces, capitals, accents...), and a model trained on that learns
    another text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.lengths = token_byte_lengths(tokenizer).numpy()  # (V,) bytes each id stands for
        self.bytes = 0
        self.chars = ""  # a few of the characters it drops, for the message

    def count(self, text: str, ids: list[int]) -> None:
        covered = int(self.lengths[np.asarray(ids, dtype=np.int64)].sum()) if ids else 0
        short = len(text.encode("utf-8", "surrogatepass")) - covered
        if short <= 0:
            return
        self.bytes += short
        if len(self.chars) < 8:
            for c in sorted(set(text)):
                if c not in self.chars and self.tokenizer.decode(self.tokenizer.encode(c)) != c:
                    self.chars += c
                    if len(self.chars) >= 8:
                        break


def _build_cache(
    source: TextSource,
    tokenizer: Tokenizer,
    split: int,
    folder: Path,
    threads: int,
    progress,
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".building-{os.getpid()}-", dir=folder.parent))
    dtype = token_dtype(tokenizer.vocab_size)
    lost = LostText(tokenizer)
    try:
        total = 0
        with open(tmp / "train.bin", "wb") as train, open(tmp / "val.bin", "wb") as val:
            pos = 0  # character offset of the next piece
            batch: list[str] = []

            def flush() -> None:
                nonlocal pos, total
                for text, ids in zip(batch, tokenizer.encode_batch(batch, threads), strict=True):
                    total += len(ids)
                    lost.count(text, ids)
                    end = pos + len(text)
                    if end <= split:
                        train.write(np.asarray(ids, dtype=dtype).tobytes())
                    elif pos >= split:
                        val.write(np.asarray(ids, dtype=dtype).tobytes())
                    else:  # the one piece that straddles the split: tokenize its two sides
                        head, tail = text[: split - pos], text[split - pos :]
                        train.write(np.asarray(tokenizer.encode(head), dtype=dtype).tobytes())
                        val.write(np.asarray(tokenizer.encode(tail), dtype=dtype).tobytes())
                    pos = end
                batch.clear()
                if progress:
                    progress(pos, source.chars)

            for piece in iter_pieces(iter_text(source)):
                batch.append(piece)
                if len(batch) >= 8 * threads:
                    flush()
            flush()
            for handle in (train, val):
                handle.flush()
                os.fsync(handle.fileno())
            # `tokens` counts the joined text's tokens; the split's two sides, tokenized
            # apart, may hold one more: their own counts are what the arrays are checked by.
            counts = {"train_tokens": train.tell() // dtype.itemsize,
                      "val_tokens": val.tell() // dtype.itemsize}  # fmt: skip
        meta = {
            "format": CACHE_FORMAT,
            "dtype": dtype.name,
            "tokens": total,
            "split_char": split,
            **counts,
            "lost_bytes": lost.bytes,
            "lost_chars": lost.chars,
        }
        meta |= {"source_sha256": source.sha256, "tokenizer": tokenizer.name,
                 **{f"{n}_sha256": _file_hash(tmp / f"{n}.bin") for n in ("train", "val")}}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not a concurrent twin: a real failure
                raise
    except OSError as exc:
        raise TuiGptError(
            f"cannot write the token cache in {folder.parent}: {disk_reason(exc)}"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- windows, loaders


class TokenWindows:
    """Sliding next-token windows over a 1-D id array, computed on access.

    Window `i` starts at `i * stride`; its input is ids[s : s+context_length] and its target the
    same range shifted by one. Starts are `range(0, n - context_length, stride)`, as the reference.
    """

    def __init__(self, ids: np.ndarray, context_length: int, stride: int) -> None:
        if context_length < 1 or stride < 1:
            raise TuiGptError("context length and stride must be at least 1")
        self.ids, self.context_length, self.stride = ids, context_length, stride
        self._offsets = np.arange(context_length + 1)

    def __len__(self) -> int:
        return len(range(0, len(self.ids) - self.context_length, self.stride))

    def batch(self, indices: np.ndarray | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of the given windows, each of shape (B, context_length), int64."""
        starts = np.asarray(indices, dtype=np.int64) * self.stride
        rows = np.asarray(self.ids[starts[:, None] + self._offsets], dtype=np.int64)  # (B, T+1)
        both = torch.from_numpy(rows)
        return both[:, :-1], both[:, 1:]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        x, y = self.batch([i % len(self)])
        return x[0], y[0]


class BatchLoader:
    """Batches of windows. Shuffling is a permutation seeded by (seed, epoch), so the order of
    any epoch can be rebuilt from two integers: that is what makes resuming exact.

    With `world` > 1 (one loader per rank) each rank takes every world-th window of that
    order, starting at its `rank`, after padding the order by wrapping around to a multiple
    of `world` (the semantics of torch's DistributedSampler): every rank has the same number
    of batches, and batch b of all ranks together is batch b of a single loader with a batch
    `world` times larger.
    """

    def __init__(
        self,
        windows: TokenWindows,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size < 1:
            raise TuiGptError("batch size must be at least 1")
        if not 0 <= rank < world:
            raise TuiGptError(f"rank {rank} is outside a world of {world}")
        self.windows, self.batch_size = windows, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world = rank, world

    def _windows_per_rank(self) -> int:
        return -(-len(self.windows) // self.world)

    def __len__(self) -> int:
        n = self._windows_per_rank()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Window indices of `epoch` that this rank reads, in reading order."""
        n = len(self.windows)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g).numpy()
        else:
            order = np.arange(n)
        if self.world > 1 and n:
            order = np.resize(order, self._windows_per_rank() * self.world)  # wraps around
            order = order[self.rank :: self.world]
        return order

    def iter_epoch(
        self, epoch: int = 0, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of `epoch` from batch index `start` on."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            yield self.windows.batch(order[b * self.batch_size : (b + 1) * self.batch_size])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iter_epoch(0)


class Loaders(NamedTuple):
    train: BatchLoader
    val: BatchLoader


@dataclass(frozen=True)
class SplitPlan:
    """How a prepared dataset turns into batches, and what stops it from training: the
    facts `tui-gpt prepare`, the app's preview and the loaders all go by."""

    chars: int
    tokens: int
    train_chars: int
    val_chars: int
    train_tokens: int
    val_tokens: int
    train_batches: int
    val_batches: int
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "problems": list(self.problems)}


def _loaders(
    data: PreparedData, context_length: int, batch_size: int, stride: int | None,
    seed: int = 123, rank: int = 0, world: int = 1, grad_accum: int = 1,
) -> Loaders:  # fmt: skip
    """A training batch holds the windows of one update: `grad_accum` micro-batches of
    `batch_size`, which the trainer splits (so the data order is that of one batch that many
    times larger). Validation batches are micro-batch sized."""
    stride = stride or context_length
    train = TokenWindows(data.train_ids, context_length, stride)
    val = TokenWindows(data.val_ids, context_length, stride)
    update = batch_size * grad_accum
    return Loaders(
        BatchLoader(train, update, shuffle=True, drop_last=True, seed=seed, rank=rank, world=world),
        BatchLoader(val, batch_size, rank=rank, world=world),
    )  # fmt: skip


def plan(
    data: PreparedData, context_length: int, batch_size: int, stride: int | None = None,
    grad_accum: int = 1,
) -> SplitPlan:  # fmt: skip
    """The split's facts; a split too short for a single batch is a problem naming the split,
    its token count and the count it needs (the reference would train on nothing, loss NaN)."""
    train, val = _loaders(data, context_length, batch_size, stride, grad_accum=grad_accum)
    step = stride or context_length
    update = batch_size * grad_accum
    problems = []
    if len(train) == 0:
        what = f"{update}" if grad_accum == 1 else f"{update} ({grad_accum} x {batch_size})"
        problems.append(
            f"the training split has {len(data.train_ids)} tokens, too few for one batch of "
            f"{what} x {context_length}: it needs at least "
            f"{context_length + (update - 1) * step + 1}. "
            "Use more text, a smaller context length, batch size"
            + (", gradient accumulation" if grad_accum > 1 else "")
            + " or stride"
        )
    if data.lost_bytes:
        problems.append(
            f"the tokenizer {data.tokenizer} cannot encode {data.lost_bytes:,} bytes of the "
            f"text (such as {data.lost_chars!r}); a model trained on it would never see them. "
            "Use a tokenizer with every byte in its alphabet: fit, gpt2, byte, or one made "
            "by tui-gpt tokenizer train"
        )
    if len(val) == 0:
        problems.append(
            f"the validation split has {len(data.val_ids)} tokens, too few for one window of "
            f"{context_length}: it needs at least {context_length + 1}. "
            "Use more text, a smaller context length or a lower train ratio"
        )
    return SplitPlan(
        chars=data.source.chars, tokens=data.tokens, train_chars=data.train_chars,
        val_chars=data.val_chars, train_tokens=len(data.train_ids), val_tokens=len(data.val_ids),
        train_batches=len(train), val_batches=len(val), problems=tuple(problems),
    )  # fmt: skip


def make_loaders(
    data: PreparedData,
    context_length: int,
    batch_size: int,
    stride: int | None = None,
    seed: int = 123,
    rank: int = 0,
    world: int = 1,
    grad_accum: int = 1,
) -> Loaders:
    """Training loader (shuffled, drops the last partial batch) and validation loader (in
    order, keeps its partial batch so a small validation split is never silently empty).
    Raises `TuiGptError` with the plan's first problem."""
    problems = plan(data, context_length, batch_size, stride, grad_accum).problems
    if problems:
        raise TuiGptError(problems[0])
    return _loaders(data, context_length, batch_size, stride, seed, rank, world, grad_accum)
