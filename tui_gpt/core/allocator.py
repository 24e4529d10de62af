"""Memory reuse across training steps (Linux, glibc).

A training step allocates and frees the same large tensors every time: logits (B*T, V),
the embedding's dense gradient (V, C), the weights' gradients. glibc serves blocks above its
mmap threshold (at most 32 MiB) from fresh `mmap`s and gives them back on `free`, so every
step faults those pages in again and the kernel zeroes them: on small machines that was a
large share of a CPU step (benchmarks/LEVERS.md). While a training runs, tui-gpt asks glibc
to keep freed memory in the heap for the next step instead; when it ends, the defaults come
back and the free memory is returned to the system.

Nothing here changes what is computed. Other platforms, and C libraries other than glibc,
are left alone. `TUI_GPT_MALLOC=default` switches it off (for comparisons).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator

from tui_gpt import environment

# mallopt(3) parameters and glibc's defaults for them.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536

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
