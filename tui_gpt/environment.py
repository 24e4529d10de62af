"""The environment variables tui-gpt reads: each is named, explained and read here, and
nowhere else (README, "Environment variables", lists the same table).

An empty value is the same as none. A number that is not one is a `BadVariable` naming the
variable; the CLI prints it as one line.
"""

from __future__ import annotations

import os

VARIABLES = {
    "TUI_GPT_RUN_DIR": "the folder of run folders (as --run-dir)",
    "TUI_GPT_DATA_DIR": "the root of tui-gpt's data: runs, trained tokenizers, the app's history",
    "TUI_GPT_CACHE_DIR": "the root of its caches: token caches, the GPT-2 vocabulary, step times",
    "TUI_GPT_VOCAB_DIR": "a folder with GPT-2's encoder.json and vocab.bpe (as --vocab-dir)",
    "TUI_GPT_RECIPE": "the recipe a new run starts from: fast (default) or reference",
    "TUI_GPT_THREADS": "CPU threads where --threads is not given",
    "TUI_GPT_MEMORY_MIB": "a memory budget smaller than the machine's, for the fit check",
    "TUI_GPT_MALLOC": "default: leave glibc's allocator as it is (for comparisons)",
    "TUI_GPT_READY_FD": "set by tui-gpt itself: the pipe a background run reports its start on",
}


class BadVariable(ValueError):
    """A variable whose value cannot mean anything: one line naming it."""


def text(name: str) -> str | None:
    """The variable's value, or None where it is unset or empty."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not one of tui-gpt's environment variables")
    return os.environ.get(name) or None


def number(name: str) -> float | None:
    """The variable as a non-negative number, or None where it is unset or empty."""
    raw = text(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadVariable(f"{name}={raw!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise BadVariable(f"{name}={raw!r} must be a number of at least 0")
    return value
