"""Property-based fuzzing of every file tui-gpt reads: damaged and hostile versions of each run
file (run, status, process, settings, scores, events, tokenizer, checkpoint header, lock)
and of data files, against every reading verb. Whatever the damage, a verb ends within a
time limit, without a traceback, with exit status 0 or one line naming the file or run, and
changes no byte of any other file.

The examples run in this process through the real `cli.main` (no interpreter start-up per
example). `HYPOTHESIS_PROFILE=long` tries many more examples, for a run by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import NIGHT_KITCHEN

settings.register_profile(
    "ci", max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TIME_LIMIT_S = 60  # far above any verb here on a tiny run: a hang, not slowness
RUN_FILES = ("run.json", "status.json", "process.json", "settings.json", "scores.json",
             "events.jsonl", "tokenizer.json", "checkpoints/best.safetensors", "lock")  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Two finished runs (A: a fitted BPE, B: bytes), each with every file a run can have,
    including a recorded score."""
    root = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUI_GPT_CACHE_DIR", str(root / "cache"))
        mp.setenv("TUI_GPT_DATA_DIR", str(root / "data"))
        for name, tokenizer in (("a", "fit"), ("b", "byte")):
            status, _, err = cli(
                "--run-dir", str(root / "runs"), "train", str(NIGHT_KITCHEN), "--preset", "nano",
                "--tokenizer", tokenizer, "--max-steps", "3", "--context-length", "32",
                "--batch-size", "2", "--sample-tokens", "0", "--eval-freq", "2", "--epochs", "1",
            )  # fmt: skip
            assert status == 0, err
            made = max((root / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)
            made.rename(root / "runs" / name)
        for name in ("a", "b"):
            status, _, err = cli("--run-dir", str(root / "runs"), "eval", name)
            assert status == 0, err
    assert (root / "runs" / "a" / "tokenizer.json").is_file()
    assert (root / "runs" / "a" / "scores.json").is_file()
    return root


class TimeLimit(Exception):
    pass


def _alarm(_signum, _frame):
    raise TimeLimit


def cli(*args: str) -> tuple[int, str, str]:
    """`tui-gpt ARGS` in this process: exit status, stdout, stderr. The signal handlers a
    verb installs are put back after it."""
    from tui_gpt import cli as entry

    out, err = io.StringIO(), io.StringIO()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = entry.main(list(args))
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    return status, out.getvalue(), err.getvalue()


def fingerprint(root: Path, skip: set[Path]) -> dict[str, str]:
    """Every plain file under `root` but those in `skip`: its hash (links: their target)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        if path in skip or any(parent in skip for parent in path.parents):
            continue
        if path.is_symlink():
            seen[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


# ------------------------------------------------------------------------ the damage done

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def damage(draw) -> tuple[str, str, object]:
    """(file, kind, detail): what to do to which file of run A."""
    name = draw(st.sampled_from(RUN_FILES))
    kind = draw(st.sampled_from((
        "bytes", "truncate", "deep", "json", "json-fields", "fifo", "dir", "link-other",
        "link-zero", "link-loop", "empty", "append-line", "header",
    )))  # fmt: skip
    detail: object = None
    if kind == "bytes":
        detail = draw(st.binary(max_size=200))
    elif kind == "truncate":
        detail = draw(st.floats(0, 1))
    elif kind == "deep":
        detail = draw(st.integers(1000, 200_000))
    elif kind == "json" or kind == "json-fields":
        detail = draw(json_values)
    elif kind == "append-line":
        detail = draw(st.sampled_from(("deep", "json", "long", "binary")))
    elif kind == "header":
        detail = draw(json_values)
    return name, kind, detail


def plant(run: Path, other: Path, name: str, kind: str, detail: object) -> Path:
    target = run / name
    original = target.read_bytes() if target.is_file() else b""
    if kind in ("fifo", "dir", "link-other", "link-zero", "link-loop"):
        if target.exists() or target.is_symlink():
            target.unlink()
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "dir":
            target.mkdir()
        elif kind == "link-other":
            target.symlink_to(other / name if (other / name).exists() else other / "run.json")
        elif kind == "link-zero":
            target.symlink_to("/dev/zero")
        else:
            target.symlink_to(target.name)
        return target
    if kind == "bytes":
        data = bytes(detail)  # type: ignore[arg-type]
    elif kind == "truncate":
        data = original[: int(len(original) * float(detail))]  # type: ignore[arg-type]
    elif kind == "deep":
        depth = int(detail)  # type: ignore[call-overload]
        data = b"[" * depth + b"]" * depth
    elif kind == "json":
        data = json.dumps(detail).encode()
    elif kind == "json-fields":
        try:
            obj = json.loads(original)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj:
            key = sorted(obj)[len(json.dumps(detail)) % len(obj)]
            obj[key] = detail
        data = json.dumps(obj).encode()
    elif kind == "append-line":
        line = {"deep": b"[" * 50_000 + b"]" * 50_000, "json": b'{"event": "step", "step": []}',
                "long": b'{"event": "x", "t": "' + b"y" * (3 << 20) + b'"}',
                "binary": b"\xff\xfe\x00garbage"}[str(detail)]  # fmt: skip
        data = original + line + b"\n"
    elif kind == "header":
        data = _with_header(original, detail)
    else:
        data = b""
    target.write_bytes(data)
    return target


def _with_header(original: bytes, value: object) -> bytes:
    """A safetensors file with one header field (or the metadata itself) replaced."""
    if len(original) < 8:
        return json.dumps(value).encode()
    size = int.from_bytes(original[:8], "little")
    try:
        header = json.loads(original[8 : 8 + size])
    except ValueError:
        return original[:8] + json.dumps(value).encode()
    if not isinstance(header, dict):  # not a safetensors file (the lock, a JSON file)
        return original[:8] + json.dumps(value).encode()
    meta = header.get("__metadata__", {})
    if isinstance(meta, dict) and meta:
        key = sorted(meta)[len(json.dumps(value)) % len(meta)]
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    else:
        header["__metadata__"] = value
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    return len(new).to_bytes(8, "little") + new + original[8 + size :]


# -------------------------------------------------------------------------- the verbs


VERBS = {
    "runs": ("runs",),
    "show": ("runs", "show", "a"),
    "compare": ("compare", "a", "b"),
    "plot": ("plot", "a", "b"),
    "plot-csv": ("plot", "a", "--output", "{out}/curve.csv"),
    "generate": ("generate", "a", "--prompt", "The", "--max-new-tokens", "2"),
    "eval": ("eval", "a"),
    "export": ("export", "a", "--format", "hf", "--out", "{out}/hf"),
    "resume": ("train", "--resume", "a", "--further", "1"),
    "label": ("runs", "label", "a", "checked"),
}
WRITES_RUN_A = {"eval", "resume", "label"}  # may write run A's own files when they succeed


@given(planted=damage(), verb=st.sampled_from(sorted(VERBS)))
# Found by this test: a checkpoint whose train_state is a list broke `eval`'s step count.
@example(planted=("checkpoints/best.safetensors", "header", [{"": None}]), verb="eval")
def test_every_reading_verb_survives_any_damaged_run_file(pristine, tmp_path, planted, verb):
    work = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    root = work / "root"
    shutil.copytree(pristine, root, symlinks=True)
    (work / "out").mkdir()
    runs = root / "runs"
    target = plant(runs / "a", runs / "b", *planted)
    before = fingerprint(root, {target, runs / "a" / "lock"})
    args = [a.replace("{out}", str(work / "out")) for a in VERBS[verb]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUI_GPT_CACHE_DIR", str(root / "cache"))
        mp.setenv("TUI_GPT_DATA_DIR", str(root / "data"))
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIME_LIMIT_S)
        try:
            status, _, err = cli("--run-dir", str(runs), *args)
        except TimeLimit:
            pytest.fail(f"{verb} with {planted[:2]} did not end within {TIME_LIMIT_S} s")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    event(f"{verb}: exit {status}")  # --hypothesis-show-statistics: what the examples reached
    assert "Traceback" not in err
    if status != 0:
        lines = [line for line in err.splitlines() if line.startswith("tui-gpt")]
        assert len(lines) == 1, err
        assert target.name in lines[0] or "run a" in lines[0] or "/a" in lines[0], lines[0]
    skip = {target, runs / "a" / "lock"}
    if verb in WRITES_RUN_A and status == 0:
        skip.add(runs / "a")
    if verb == "resume":  # the token cache and step-time record are the trainer's own
        skip.add(root / "cache")
    assert fingerprint(root, skip) == {k: v for k, v in before.items()
                                       if not any(Path(k).is_relative_to(s) for s in skip)}  # fmt: skip
    shutil.rmtree(work)


# ---------------------------------------------------------------------------- data files


@example(kind="deep-line", suffix=".jsonl", blob=b"", values=[])
@example(kind="fifo", suffix=".txt", blob=b"", values=[])
@example(kind="link-zero", suffix=".txt", blob=b"", values=[])
@given(kind=st.sampled_from(("bytes", "deep-line", "fifo", "dir", "link-zero", "json-lines")),
       suffix=st.sampled_from((".txt", ".jsonl", ".md")), blob=st.binary(max_size=300),
       values=st.lists(json_values, max_size=5))  # fmt: skip
def test_prepare_survives_any_damaged_data_file(tmp_path, kind, suffix, blob, values):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"data{suffix}"  # one per example
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
        (path / "inner.txt").write_bytes(blob)
    elif kind == "link-zero":
        path.symlink_to("/dev/zero")
    elif kind == "deep-line":
        path.write_bytes(b'{"text": "hello"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    elif kind == "json-lines":
        path.write_text("\n".join(json.dumps(v) for v in values) + "\n")
    else:
        path.write_bytes(blob)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        status, _, err = cli("prepare", str(path), "--tokenizer", "byte")
    except TimeLimit:
        pytest.fail(f"prepare of a {kind} did not end within {TIME_LIMIT_S} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tui-gpt")]
    assert status in (0, 2) and len(lines) <= 1, err  # 2: a usage error or a problem found
    if lines and "error" in lines[0]:
        assert status == 2
