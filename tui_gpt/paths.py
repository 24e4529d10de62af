"""Where tui-gpt keeps its files.

Runs live under the user data dir, token caches and the tokenizer vocabulary under the user
cache dir (never /tmp, which is wiped on reboot). Environment variables override both, so
tests and scripts can point tui-gpt at a folder of their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from tui_gpt import environment

APP_NAME = "tui-gpt"


def data_dir() -> Path:
    """Root for runs and recent-dataset history (`TUI_GPT_DATA_DIR` overrides)."""
    env = environment.text("TUI_GPT_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Root for token caches and the GPT-2 vocabulary (`TUI_GPT_CACHE_DIR` overrides)."""
    env = environment.text("TUI_GPT_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def samples_dir() -> Path:
    """The texts that ship with tui-gpt: the repository's sample_texts/, installed as the
    package `tui_gpt.sample_texts` (editable or not)."""
    from importlib.resources import files

    return Path(str(files("tui_gpt.sample_texts")))


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    """Root of the run folders: `override` (`--run-dir`), else `TUI_GPT_RUN_DIR`, else the
    data dir's `runs`."""
    if override:
        return Path(override).expanduser()
    env = environment.text("TUI_GPT_RUN_DIR")
    return Path(env) if env else data_dir() / "runs"
