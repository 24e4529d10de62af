"""Shared fixtures: the ../shared test data, an offline GPT-2 vocabulary, and a private
data/cache dir per test so nothing touches the user's real folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))
VERDICT = SHARED / "data" / "the-verdict.txt"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare.txt"
SAMPLES = ROOT / "sample_texts"

# CI has no network: the GPT-2 vocabulary comes from the shared tiktoken cache.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory, monkeypatch):
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("TUI_GPT_DATA_DIR", str(data))
    monkeypatch.setenv("TUI_GPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("TUI_GPT_RUN_DIR", raising=False)
    monkeypatch.delenv("TUI_GPT_VOCAB_DIR", raising=False)
    return data


@pytest.fixture
def runs_root(private_dirs) -> Path:
    return private_dirs / "runs"


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 240, **kw
) -> subprocess.CompletedProcess:
    """Run the real `tui-gpt` entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tui_gpt", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
        **kw,
    )


def wait_until(condition, timeout: float = 120.0, what: str = "the condition") -> None:
    """Poll `condition()` (something another thread or process brings about) until it
    holds; fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never happened within {timeout:.0f} s")
        time.sleep(0.05)


def other_value(spec):
    """A valid value of a setting that differs from its default, to prove it travels."""
    if spec.choices:
        return next(c for c in spec.choices if c != spec.default)
    if spec.kind is bool:
        return not spec.default
    if spec.kind is str:
        return f"{spec.default} then"
    if spec.kind is int:
        return (spec.default if spec.default is not None else spec.ge or 1) + 2
    value = spec.default / 2 if spec.default else 0.25
    assert spec.problem(value) is None, spec
    return value


def as_flags(spec, value) -> list[str]:
    """The command-line form of one setting's value."""
    if spec.kind is bool:
        return [spec.option if value else "--no-" + spec.option[2:]]
    return [spec.option, repr(value) if isinstance(value, float) else str(value)]
