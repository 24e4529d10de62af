"""Switches that change the whole process: every one tui-gpt throws is here, with its
reason, and nowhere else (tests/test_architecture.py checks).

- **Memory reuse across training steps** (Linux, glibc: `mallopt`). A training step
  allocates and frees the same large tensors every time: logits (B*T, V), the embedding's
  dense gradient (V, C), the weights' gradients. glibc serves blocks above its mmap
  threshold (at most 32 MiB) from fresh `mmap`s and gives them back on `free`, so every step
  faults those pages in again and the kernel zeroes them: on small machines that was a large
  share of a CPU step (benchmarks/LEVERS.md). While a training runs, freed memory stays in
  the heap for the next step; when it ends, the defaults come back and the free memory is
  returned to the system. Nothing computed changes. `TUI_GPT_MALLOC=default` switches it
  off (for comparisons).
- **CPU threads** (`torch.set_num_threads`): the count a training or command asked for.
- **oneDNN off around a decoding step** (`torch._C._set_mkldnn_enabled`): PyTorch's own
  matrix-vector kernel streams bf16 weights faster than oneDNN's.
- **The garbage collector's frozen heap** (`gc.freeze`): the app exempts what is alive
  from full collections, which stop every thread long enough to freeze the UI.
- **Exit at once** (`os._exit`): the app whose terminal is gone, once its checkpoint is safe.
- **The temporary folder** (`tempfile.tempdir`), named outright on a full disk.
- **tiktoken's cache folder** (`TIKTOKEN_CACHE_DIR`), kept with tui-gpt's caches.

Signal handlers are the one kind that lives elsewhere: Python runs them only in the main
thread, which belongs to the entry points (cli.py, commands/train.py, ui/app.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from tui_gpt import environment

# ------------------------------------------------------------------------ memory reuse

# mallopt(3) parameters and glibc's defaults for them.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -3, -4, -8
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
# A sharded training's blocks from this size up are mapped on their own (returning_memory).
_SHARDED_MMAP_THRESHOLD = 4 * 2**20

_lock = threading.Lock()
_holders = 0  # trainings in this process that asked for reuse


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or environment.text("TUI_GPT_MALLOC") == "default":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018  (musl has no mallopt: leave it alone)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def single_arena() -> bool:
    """One malloc arena for every thread, so a training in a worker thread (the app) reuses
    memory as the main thread does: glibc's per-thread arenas map blocks over 64 MiB
    directly whatever the settings. Only works before a second thread first allocates: the
    app asks for it as it opens (headless commands train in their main thread). It costs
    steps under bf16 autocast, whose kernels' threads allocate as they run and then wait on
    the one arena's lock (docs/performance.md, Speed: half speed at micro on a CPU with bf16 units), so
    the app does without it where `auto` picks bf16. True where applied."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_ARENA_MAX, 1))


def keep_freed_memory() -> bool:
    """From now until `release_freed_memory`: freed blocks stay in the heap for reuse.
    Nested calls are counted. True where applied."""
    global _holders
    libc = _libc()
    if libc is None:
        return False
    with _lock:
        _holders += 1
        if _holders == 1:
            libc.mallopt(_M_MMAP_MAX, 0)  # no block on its own mapping: all from the heap
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # (an int) keep up to 2 GiB free at the top
    return True


def release_freed_memory() -> None:
    """The end of one `keep_freed_memory`: at the last one, glibc's defaults again and the
    free memory handed back to the system."""
    global _holders
    libc = _libc()
    if libc is None:
        return
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)


@contextlib.contextmanager
def reusing_memory() -> Iterator[None]:
    """`keep_freed_memory` for the duration of a block: what a training runs under."""
    keep_freed_memory()
    try:
        yield
    finally:
        release_freed_memory()


def returning_memory() -> bool:
    """For a sharded training (FSDP), instead of `keep_freed_memory`: from now on every block
    of 4 MiB or more has a mapping of its own, handed back to the system when freed. Each
    step gathers and frees whole layers' weights and gradients in changing sizes; kept in
    the heap, or under glibc's sliding threshold (which moves up to the largest block freed),
    the holes they leave add up to more than the shards save (benchmarks/sharding.py). Not
    undone: a fixed threshold is as good for whatever the process does next. True where
    applied."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, _SHARDED_MMAP_THRESHOLD))


def training_memory(sharded: bool) -> contextlib.AbstractContextManager:
    """What a training's steps run under: freed memory kept for reuse (one process, DDP),
    or large blocks returned (sharded)."""
    if sharded:
        returning_memory()
        return contextlib.nullcontext()
    return reusing_memory()


# ---------------------------------------------------------------------------- threads


def use_threads(n: int) -> int:
    """Compute on `n` CPU threads (at least one) from now on; the count torch settled on."""
    import torch  # here: the CLI's --help and `runs` never load torch

    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


@contextlib.contextmanager
def without_onednn() -> Iterator[None]:
    """oneDNN off for a block (process-wide: only where no training runs alongside, whose
    bf16 GEMMs would lose it meanwhile). torch.backends.mkldnn.flags() would do the same,
    with a warning about TF32 each time."""
    import torch

    was = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(was)


# --------------------------------------------------------------------- the app's process


def freeze_heap(collect: bool = True) -> None:
    """Exempt every object alive now from the garbage collector's full passes; only objects
    created later are scanned. `collect` first (at start-up); not while training, where the
    collection would be the very pause this avoids."""
    if collect:
        gc.collect()
    gc.freeze()


def exit_now(status: int = 0) -> None:
    """End the process at once, without unwinding threads or the UI."""
    os._exit(status)


# ------------------------------------------------------------------ where files go


def keep_a_temporary_folder() -> None:
    """PyTorch asks for the temporary folder when it first builds a model, and Python finds
    one by writing a file there: on a full disk (or under `ulimit -f 0`) that is a
    FileNotFoundError in a command that writes nothing (generate, eval). Name the folder
    outright when no test file fits; tui-gpt itself writes nothing there."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        tempfile.tempdir = os.environ.get("TMPDIR") or "/tmp"


def keep_tiktoken_cache(folder: Path) -> None:
    """tiktoken's default cache is a temporary directory: keep GPT-2's vocabulary in
    `folder` instead, unless the user named a cache for tiktoken."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
