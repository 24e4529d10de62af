"""Shared fixtures: test data (the project's own texts; the chapter's text and the GPT-2
vocabulary from ../shared, the user cache or a download, else a named skip), and a private
data/cache dir per test so nothing touches the user's real folders."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import platformdirs
import pytest

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.tokenizer import get_tokenizer

ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist each worker is a process of its own on a shared machine: one CPU thread
# each (and in every process a test starts), so two workers on two cores do not fight over
# them. Alone, pytest keeps torch's default.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TUI_GPT_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
SAMPLES = ROOT / "sample_texts"
NIGHT_KITCHEN = SAMPLES / "the_night_kitchen.txt"  # the project's own text, for any training

# Test data from outside the clone, each found in this order: TUI_GPT_SHARED (or ../shared
# beside the clone, as in CI), the user cache dir, a download checked by sha256. With none
# of them, the tests that need it skip, saying why.
_shared = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))
SHARED: Path | None = _shared if _shared.is_dir() else None
_CACHE = Path(platformdirs.user_cache_dir("tui-gpt", appauthor=False)) / "test-data"
_TEXTS = {  # the chapter's own text and the classic small corpus, where their authors serve them
    "the-verdict.txt": (
        "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt",
        "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
    ),
    "tinyshakespeare.txt": (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}
MISSING: dict[str, str] = {}  # what could not be had, and why


def _reference_text(name: str) -> Path:
    url, sha = _TEXTS[name]
    for candidate in ([SHARED / "data" / name] if SHARED else []) + [_CACHE / name]:
        if candidate.is_file() and hashlib.sha256(candidate.read_bytes()).hexdigest() == sha:
            return candidate
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            body = response.read()
        if hashlib.sha256(body).hexdigest() != sha:
            raise ValueError("sha256 differs from the expected file")
        _CACHE.mkdir(parents=True, exist_ok=True)
        tmp = _CACHE / f".{name}.{os.getpid()}"
        tmp.write_bytes(body)
        tmp.replace(_CACHE / name)
        return _CACHE / name
    except (OSError, ValueError) as exc:
        MISSING[name] = f"{name}: not in ../shared nor cached, and offline ({type(exc).__name__})"
        return _CACHE / name


VERDICT = _reference_text("the-verdict.txt")
SHAKESPEARE = _reference_text("tinyshakespeare.txt")

# The GPT-2 vocabulary: the shared tiktoken cache, else tiktoken's own download into the
# user cache dir (kept between runs).
if SHARED is not None:
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
else:
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_CACHE.parent / "tiktoken"))
try:
    get_tokenizer("gpt2")
except TuiGptError:
    MISSING["gpt2"] = "GPT-2 vocabulary: not in ../shared/tiktoken nor cached, and offline"

needs_verdict = pytest.mark.skipif(
    "the-verdict.txt" in MISSING, reason=MISSING.get("the-verdict.txt", "")
)
needs_shakespeare = pytest.mark.skipif(
    "tinyshakespeare.txt" in MISSING, reason=MISSING.get("tinyshakespeare.txt", "")
)
needs_gpt2 = pytest.mark.skipif("gpt2" in MISSING, reason=MISSING.get("gpt2", ""))
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="no ../shared (TUI_GPT_SHARED) beside the clone"
)


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory, monkeypatch):
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("TUI_GPT_DATA_DIR", str(data))
    monkeypatch.setenv("TUI_GPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("TUI_GPT_RUN_DIR", raising=False)
    monkeypatch.delenv("TUI_GPT_VOCAB_DIR", raising=False)
    # New runs start from the chapter's recipe, whose behaviour and numbers most tests pin
    # (and which trains fastest at their tiny sizes); tests of the default recipe name it.
    monkeypatch.setenv("TUI_GPT_RECIPE", "reference")
    return data


@pytest.fixture
def runs_dir(private_dirs) -> Path:
    return private_dirs / "runs"


# Verbs run inside the test process (the same `cli.main`, without a new interpreter, torch
# import and torch's optimizer machinery each time: 3+ s of CPU per call). Benchmarks and
# watching keep their own process: memory measurements and long-lived threads are theirs;
# tests that signal a training start it themselves.
IN_PROCESS = {"runs", "export", "plot", "import-gpt2", "prepare", "eval", "compare",
              "tokenizer", "generate", "train", "control"}  # fmt: skip
_VERBS = IN_PROCESS | {"bench", "watch"}
_SIGNALS = [s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)]


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 240, **kw
) -> subprocess.CompletedProcess:
    """Run the real `tui-gpt` entry point: in this process for the verbs above, else in a
    subprocess. Either way: its exit status, stdout and stderr."""
    verb = next((a for a in args if a in _VERBS), None)
    # A call with its own environment gets its own process: what the process caches (the
    # GPT-2 vocabulary, for one) must not answer for the environment under test.
    if verb in IN_PROCESS and not kw and not env:
        return _in_process(args, {})
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


def _in_process(args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess:
    import contextlib
    import io

    from tui_gpt import cli

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    # `train` installs its stop handlers; the test process keeps its own.
    saved_handlers = {name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS}
    os.environ.update(env)
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(list(args))
            except SystemExit as exc:  # argparse's usage errors, --help
                status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        for name, handler in saved_handlers.items():
            signal.signal(getattr(signal, name), handler)
    return subprocess.CompletedProcess(["tui-gpt", *args], status, out.getvalue(), err.getvalue())


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
    if spec.name == "kv_heads":
        return 1  # divides every preset's heads
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
