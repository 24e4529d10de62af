"""Faults and hostile inputs from a probe of the project's guarantees, each met on real files
and real processes: bit-exact resume with dropout on, no orphaned files, never deleting or
writing what is not tui-gpt's, and one readable line for every bad input."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from tests.conftest import NIGHT_KITCHEN, ROOT, run_cli, wait_until
from tests.trainings import Recorder, config, start
from tui_gpt.core import control, data, flops
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import Sample, Step
from tui_gpt.core.fsutil import atomic_write_text, disk_reason
from tui_gpt.core.generate import pick_next
from tui_gpt.core.jobs import JobHooks, assemble
from tui_gpt.core.runs import list_runs
from tui_gpt.core.tokenizer import ByteTokenizer
from tui_gpt.core.trainer import TrainerControl


def finished_run(runs_dir, **changes):
    job = start(runs_dir, config(**{"max_steps": 4, "sample_tokens": 0, **changes}))
    assert job.run_training() == "finished"
    return job.run


# ----------------------------------------------------------------------------- 1. resume


def test_measuring_the_cpu_peak_leaves_the_training_rng_alone():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    flops.peak_matmul_flops("fp32", n=64, seconds=0.01, bursts=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_resume_is_bit_exact_with_dropout_on_in_a_fresh_process(runs_dir):
    """A resumed run measures the CPU's peak again (a new process): the losses must not
    notice. Dropout is on (0.1, the default), so any draw from the RNG would show."""
    straight = Recorder()
    start(runs_dir, config(max_steps=8), [straight]).run_training()
    ctl = TrainerControl()
    first = Recorder(stop_after_step=3, control=ctl)
    job = start(runs_dir, config(max_steps=8), [first], ctl)
    assert job.trainer.model.cfg.dropout > 0
    assert job.run_training() == "stopped"
    flops._measured.cache_clear()  # as in the new process a --resume is
    second = Recorder()
    assemble(resume=job.run.id, runs_dir=runs_dir, hooks=JobHooks([second])).run_training()
    got = [e.loss for e in first.of(Step)] + [e.loss for e in second.of(Step)]
    assert got == [e.loss for e in straight.of(Step)]


# ----------------------------------------------------------------------------- 2. orphans

_SAVE_FOREVER = """
import sys, torch
from tui_gpt.core import checkpoint
from tui_gpt.core.config import model_config
from tui_gpt.core.model import GPT
model = GPT(model_config("mini", 257, 256))
opt = torch.optim.AdamW(model.parameters())
model(torch.zeros(1, 8, dtype=torch.long)).sum().backward()
opt.step()
print("ready", flush=True)
while True:
    checkpoint.save(sys.argv[1], model, opt, train_state={"steps_done": 1})
"""


@pytest.mark.slow
def test_a_kill_during_a_save_leaves_only_our_own_temporary_and_it_is_swept(tmp_path):
    folder = tmp_path / "checkpoints"
    target = folder / "latest.safetensors"
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_until(lambda: target.is_file(), 120, "a first complete save")
        wait_until(lambda: list(folder.glob(".*.tmp-*")), 60, "a save in progress")
        proc.kill()
        proc.wait()
    finally:
        proc.kill()
    left = {p.name for p in folder.iterdir()}
    assert left == {"latest.safetensors", f".latest.safetensors.tmp-{proc.pid}"}
    (folder / ".tmpab12cd").write_bytes(b"x" * 100)  # what an older tui-gpt's saves left
    Checkpoint(target).verify()
    from tui_gpt.core import checkpoint
    from tui_gpt.core.config import model_config
    from tui_gpt.core.model import GPT

    checkpoint.save(folder / "best.safetensors", GPT(model_config("nano", 257, 32)))
    assert {p.name for p in folder.iterdir()} == {"latest.safetensors", "best.safetensors"}


def test_our_safetensors_files_read_back_exactly(tmp_path):
    from safetensors.torch import load_file

    from tui_gpt.core.tensorfile import write_safetensors

    tensors = {
        "a": torch.randn(3, 5), "b": torch.randn(7).bfloat16(), "c": torch.tensor(3.0),
        "d": torch.zeros(0, 4), "e": torch.arange(10, dtype=torch.uint8), "f": torch.arange(3),
    }  # fmt: skip
    with open(tmp_path / "x.safetensors", "wb") as f:
        write_safetensors(f, tensors, {"k": "v"})
    back = load_file(tmp_path / "x.safetensors")
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name


# ----------------------------------------------------------------------------- 3, 9, 13. export


def test_export_force_replaces_only_an_earlier_export(runs_dir, tmp_path):
    run = finished_run(runs_dir)
    root = ["--run-dir", str(runs_dir)]
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.txt").write_text("three years of work")
    result = run_cli("export", run.id, "--format", "hf", "--out", str(mine), "--force", *root)
    assert (
        result.returncode == 2
        and "thesis.txt" in result.stderr
        and "Traceback" not in result.stderr
    )
    assert (mine / "thesis.txt").read_text() == "three years of work"
    link = tmp_path / "linkdir"
    link.symlink_to(mine)
    result = run_cli("export", run.id, "--format", "hf", "--out", str(link), "--force", *root)
    assert result.returncode == 2 and "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr and sorted(os.listdir(tmp_path)) == [
        "linkdir",
        "thesis",
    ]
    out = tmp_path / "model-hf"
    for _ in range(2):  # the second time over the first export, with --force
        result = run_cli("export", run.id, "--format", "hf", "--out", str(out), "--force", *root)
        assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["linkdir", "model-hf", "thesis"]  # nothing hidden left
    (tmp_path / "notes.gguf").write_text("not a model")
    pytest.importorskip("gguf")
    result = run_cli("export", run.id, "--format", "gguf", "--out", str(tmp_path / "notes.gguf"),
                     "--force", *root)  # fmt: skip
    assert result.returncode == 2 and "not a GGUF file" in result.stderr


_EXPORT_ON_A_FULL_DISK = """
import resource, signal, sys
from tui_gpt import cli
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["hf", "gguf"])
def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(runs_dir, tmp_path, fmt):
    if fmt == "gguf":
        pytest.importorskip("gguf")
    run = _bpe_run(runs_dir)
    out = tmp_path / "out" / ("m.gguf" if fmt == "gguf" else "m-hf")
    args = ["export", run.id, "--format", fmt, "--out", str(out), "--run-dir", str(runs_dir)]
    result = subprocess.run([sys.executable, "-c", _EXPORT_ON_A_FULL_DISK, *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "file size limit" in result.stderr and len(result.stderr.splitlines()) == 1
    assert os.listdir(out.parent) == []


def _bpe_run(runs_dir):
    """A run with a trained tokenizer: GGUF needs BPE merges."""
    from tui_gpt.core.bpe import train_tokenizer
    from tui_gpt.core.config import ModelChoice, TrainSpec
    from tui_gpt.core.corpus import inspect_source

    tok = train_tokenizer(inspect_source(NIGHT_KITCHEN), 300, runs_dir.parent / "tok.json")
    spec = TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 32, str(tok.path)),
                     config(max_steps=2, sample_tokens=0))  # fmt: skip
    job = assemble(spec, runs_dir=runs_dir)
    job.run_training()
    return job.run


_SLOW_WRITE = """
import signal, sys, time
from pathlib import Path
from tui_gpt import cli
from tui_gpt.core.fsutil import atomic_write_path
signal.signal(signal.SIGTERM, cli._terminated)
def write(tmp):
    tmp.write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(60)
atomic_write_path(Path(sys.argv[1]), write)
"""


def test_sigterm_during_a_write_removes_its_temporary(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(tmp_path / "m.gguf")],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert os.listdir(tmp_path)  # its temporary file
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert os.listdir(tmp_path) == []


def test_a_damaged_best_is_not_exported(runs_dir, tmp_path):
    run = finished_run(runs_dir)
    raw = bytearray(run.best.read_bytes())
    raw[-8192:-4096] = b"\xff" * 4096
    run.best.write_bytes(bytes(raw))
    result = run_cli("export", run.id, "--format", "hf", "--out", str(tmp_path / "x"),
                     "--run-dir", str(runs_dir))  # fmt: skip
    assert result.returncode == 2 and "damaged" in result.stderr, result.stderr
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- 4. long samples


def test_a_stop_ends_a_long_end_of_epoch_sample(runs_dir):
    """One epoch is 11 batches; the stop comes on the last, so the sample of a million
    tokens starts with the stop already asked for."""
    ctl = TrainerControl()
    rec = Recorder(stop_after_step=10, control=ctl)
    job = start(runs_dir, config(epochs=2, sample_tokens=1_000_000, eval_freq=100), [rec], ctl)
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=job.run_training()))
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the sample ignored the stop"
    assert outcome["result"] == "stopped"
    assert Checkpoint(job.run.latest).train_state["steps_done"] == 11
    [sample] = rec.of(Sample)
    assert len(sample.text) < 100


# ----------------------------------------------------------------------------- 8. tokenizer


def test_a_swapped_tokenizer_file_is_refused_by_generate_and_resume(runs_dir, tmp_path):
    from tui_gpt.core.bpe import train_tokenizer
    from tui_gpt.core.corpus import inspect_source

    run = _bpe_run(runs_dir)
    smaller = train_tokenizer(inspect_source(NIGHT_KITCHEN), 280, tmp_path / "small.json")
    (run.path / "tokenizer.json").write_bytes(smaller.path.read_bytes())
    root = ["--run-dir", str(runs_dir)]
    for args in (["generate", "--run", run.id, "--prompt", "the"],
                 ["train", "--resume", run.id, "--max-steps", "4"]):  # fmt: skip
        result = run_cli(*args, *root)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "not the tokenizer it was trained with" in result.stderr


# ----------------------------------------------------------------------------- 10, 11. values


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", str(NIGHT_KITCHEN), "--tokenizer", "byte", "--seed", str(2**70)],
            "--seed: must be at least 0 and at most",
        ),
        (
            ["train", str(NIGHT_KITCHEN), "--tokenizer", "byte", "--threads", "1000000"],
            "at most 1024",
        ),
        (["train", "--settings", "/dev/zero"], "not a plain file"),
        (["generate", "--run", "x", "--prompt", "x", "--seed", str(2**70)], "--seed"),
        (
            ["generate", "--run", "x", "--prompt", "x", "--top-p", "0"],
            "must be greater than 0 and at most 1, got 0",
        ),
    ],
)
def test_odd_values_are_one_line(args, message, tmp_path):
    result = run_cli(*args, "--run-dir", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_vanishing_top_p_keeps_the_likeliest_token():
    logits = torch.randn(3, 100)
    for top_p in (1e-300, 1e-45, 1e-9):
        picked = pick_next(logits, 1.0, 0, top_p, torch.Generator().manual_seed(0))
        assert torch.equal(picked[:, 0], logits.argmax(-1))


# ----------------------------------------------------------------------------- 12, 14. data


def test_a_truncated_zst_is_refused(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    from tui_gpt.core.corpus import inspect_source

    text = NIGHT_KITCHEN.read_bytes() * 20
    packed = zstandard.ZstdCompressor().compress(text)
    whole, frames = tmp_path / "whole.txt.zst", tmp_path / "frames.txt.zst"
    whole.write_bytes(packed)
    frames.write_bytes(packed + zstandard.ZstdCompressor().compress(b"more"))  # two frames
    assert inspect_source(whole).chars == len(text.decode())
    assert inspect_source(frames).chars == len(text.decode()) + 4
    for cut in (len(packed) // 2, 12):
        (tmp_path / "cut.txt.zst").write_bytes(packed[:cut])
        with pytest.raises(TuiGptError, match="ends before the end of its last zstd frame"):
            inspect_source(tmp_path / "cut.txt.zst")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt.zst").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "folder" / "b.txt").write_text("fine")
    assert "a.txt.zst" in inspect_source(tmp_path / "folder").skipped_line()


def test_swapped_token_caches_are_detected(tmp_path):
    tok, cache = ByteTokenizer(), tmp_path / "cache"
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("abcdefghij" * 300)
    two.write_text("klmnopqrst" * 300)  # the same length, other tokens
    a, b = (
        data.prepare(one, tok, 0.9, cache_root=cache),
        data.prepare(two, tok, 0.9, cache_root=cache),
    )
    folders = {p.name.split("-")[0]: p for p in cache.iterdir() if not p.name.startswith(".")}
    fa = next(p for k, p in folders.items() if a.source.sha256.startswith(k))
    fb = next(p for k, p in folders.items() if b.source.sha256.startswith(k))
    for name in ("train.bin", "val.bin"):  # the arrays swapped, each meta.json kept
        da, db = (fa / name).read_bytes(), (fb / name).read_bytes()
        (fa / name).write_bytes(db)
        (fb / name).write_bytes(da)
    notes: list[str] = []
    again = data.prepare(one, tok, 0.9, cache_root=cache, notice=notes.append)
    assert "not the file built with it" in notes[-1]
    assert np.asarray(again.train_ids)[:10].tolist() == tok.encode("abcdefghij")
    tmp = fa.with_name("swap")  # whole folders swapped, meta.json and all
    fa.rename(tmp)
    fb.rename(fa)
    tmp.rename(fb)
    data.prepare(one, tok, 0.9, cache_root=cache, notice=notes.append)
    assert "built from another text or tokenizer" in notes[-1]


# ----------------------------------------------------------------------------- 15. words


_TRAIN_ON_A_FULL_DISK = """
import resource, signal, sys
from tui_gpt import cli
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_a_failed_save_marks_the_run_failed_and_prepare_says_why(runs_dir, tmp_path):
    args = ["train", str(NIGHT_KITCHEN), "--preset", "nano", "--tokenizer", "byte",
            "--max-steps", "3", "--precision", "fp32", "--run-dir", str(runs_dir)]  # fmt: skip
    result = subprocess.run([sys.executable, "-c", _TRAIN_ON_A_FULL_DISK, "300000", *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=240)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "cannot save checkpoint" in result.stderr and "file size limit" in result.stderr
    [run] = list_runs(runs_dir)
    assert run.state == "failed"
    big = tmp_path / "big.txt"
    big.write_text(NIGHT_KITCHEN.read_text() * 20)
    prep = ["prepare", str(big), "--tokenizer", "byte"]
    result = subprocess.run([sys.executable, "-c", _TRAIN_ON_A_FULL_DISK, "20000", *prep],
                            capture_output=True, text=True, cwd=ROOT, timeout=240,
                            env={**os.environ, "TUI_GPT_CACHE_DIR": str(tmp_path / "c")})  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "cannot write the token cache" in result.stderr and "file size limit" in result.stderr
    assert disk_reason(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full"


# ----------------------------------------------------------------------------- 16. symlinks


def test_nothing_outside_a_run_folder_is_written_or_deleted_through_a_link(runs_dir, tmp_path):
    run = finished_run(runs_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.stop").write_text("mine")
    (outside / "precious.txt").write_text("mine")
    ctl_dir = control.control_dir(run)
    if ctl_dir.exists():
        ctl_dir.rmdir()
    ctl_dir.symlink_to(outside)
    with pytest.raises(TuiGptError, match="symbolic link"):
        control.send(run, "stop")
    planted = run.path / f".process.json.tmp-{os.getpid()}"
    planted.symlink_to(outside / "precious.txt")
    with control.ControlChannel(run, TrainerControl(), heartbeat_s=0.05):
        pass
    assert sorted(os.listdir(outside)) == ["keep.stop", "precious.txt"]
    assert (outside / "precious.txt").read_text() == "mine"
    assert (outside / "keep.stop").read_text() == "mine"
    assert not ctl_dir.is_symlink() and json.loads((run.path / "process.json").read_text())["ended"]
    (run.path / "status.json").unlink()
    (run.path / "status.json").symlink_to(outside / "precious.txt")
    atomic_write_text(run.path / "status.json", "{}")  # replaces the link, not its target
    assert (outside / "precious.txt").read_text() == "mine"
    fresh = start(runs_dir, config(max_steps=2, sample_tokens=0))
    fresh.run.checkpoints.mkdir(exist_ok=True)
    fresh.run.checkpoints.rmdir()
    fresh.run.checkpoints.symlink_to(outside)
    with pytest.raises(TuiGptError, match="symbolic link"):
        fresh.run_training()
    assert sorted(os.listdir(outside)) == ["keep.stop", "precious.txt"]


def test_tokenizer_train_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "out" / "tok.json"
    out.parent.mkdir()
    args = ["tokenizer", "train", str(NIGHT_KITCHEN), "--vocab-size", "300", "--out", str(out)]
    result = subprocess.run([sys.executable, "-c", _TRAIN_ON_A_FULL_DISK, "2000", *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=240)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "cannot write" in result.stderr and "file size limit" in result.stderr
    assert os.listdir(out.parent) == []


def test_threads_writing_one_file_at_once_all_succeed(tmp_path):
    """Two of the app's workers may save the same file (a fitted tokenizer) together: they
    share the temporary file's name, and neither may see the other's vanish under it."""
    import threading

    target = tmp_path / "shared.json"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(200):
                atomic_write_text(target, f"{n}-{i}" * 1000)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and target.read_text().endswith("-199")
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]


# ------------------------------------------- third pass: every file read safely (issue #32)

DEEP = "[" * 100_000 + "]" * 100_000


def _cli_ok_or_one_line(*args: str, names: str) -> subprocess.CompletedProcess:
    result = run_cli(*args, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode:
        assert len(result.stderr.splitlines()) == 1 and names in result.stderr, result.stderr
    return result


@pytest.mark.parametrize("name", ["status.json", "run.json", "process.json", "settings.json",
                                  "scores.json", "events.jsonl"])  # fmt: skip
def test_1_json_nested_too_deeply_is_damage_not_a_traceback(runs_dir, name):
    run = finished_run(runs_dir)
    target = run.path / name
    if name == "events.jsonl":
        target.write_text(target.read_text() + DEEP + "\n")
    else:
        target.write_text(DEEP)
    root = ["--run-dir", str(runs_dir)]
    for verb in (["runs"], ["runs", "show", run.id], ["plot", run.id],
                 ["generate", run.id, "--prompt", "a", "--max-new-tokens", "2"]):  # fmt: skip
        _cli_ok_or_one_line(*verb, *root, names=name)
    if name in ("status.json", "run.json", "settings.json"):
        result = run_cli("train", "--resume", run.id, "--further", "1", *root)
        assert result.returncode == 2 and f"{name}: damaged (JSON nested too deeply)" in result.stderr


def test_1_a_jsonl_line_nested_too_deeply_is_one_line(tmp_path):
    data = tmp_path / "deep.jsonl"
    data.write_text('{"text": "hello"}\n' + DEEP + "\n")
    result = run_cli("prepare", str(data), "--tokenizer", "byte")
    assert result.returncode == 2 and "line 2: damaged (JSON nested too deeply)" in result.stderr


@pytest.mark.parametrize(("name", "how"), [("lock", "fifo"), ("lock", "loop"),
                                           ("events.jsonl", "fifo"), ("events.jsonl", "zero")])  # fmt: skip
def test_2_special_files_in_a_run_folder_neither_hang_nor_trace(runs_dir, name, how):
    run = finished_run(runs_dir)
    target = run.path / name
    target.unlink()
    if how == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero" if how == "zero" else target.name)
    root = ["--run-dir", str(runs_dir)]
    for verb in (["runs"], ["runs", "show", run.id], ["plot", run.id]):
        _cli_ok_or_one_line(*verb, *root, names=name)
    result = run_cli("train", "--resume", run.id, "--further", "1", *root, timeout=60)
    assert result.returncode == 2 and name in result.stderr and "Traceback" not in result.stderr


def test_3_an_absurd_budget_or_cached_step_time_is_no_overflow(runs_dir, monkeypatch):
    from tui_gpt.core import estimate
    from tui_gpt.core.config import TrainConfig

    result = run_cli("train", str(NIGHT_KITCHEN), "--minutes", "1e308", "--run-dir", str(runs_dir))
    assert result.returncode == 2 and "--minutes: must be greater than 0 and at most" in result.stderr
    plan = estimate.make_plan(TrainConfig(minutes=1e6), 1e-320, 10, 64, 40)
    assert plan.steps == 40  # a step time of nothing: every step fits, none overflows
    monkeypatch.setattr(estimate, "read_json", lambda _path: {"k": 1e-320})
    monkeypatch.setattr(estimate, "_key", lambda *_: "k")
    assert estimate.cached_step_seconds(None, None, 0, None) is None  # measured again


_UNDER_A_FILE_LIMIT = """
import resource, signal, sys
from tui_gpt import cli
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_4_a_full_disk_leaves_reading_verbs_working_and_a_label_one_line(runs_dir):
    run = finished_run(runs_dir)
    root = ["--run-dir", str(runs_dir)]

    def limited(size: int, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _UNDER_A_FILE_LIMIT, str(size), *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip

    generated = limited(0, "generate", run.id, "--prompt", "a", "--max-new-tokens", "2", *root)
    assert generated.returncode == 0, generated.stderr
    scored = limited(0, "eval", run.id, *root)  # its score cannot be kept: scored all the same
    assert "bits/byte" in scored.stdout and "Traceback" not in scored.stderr, scored.stderr
    labelled = limited(1, "runs", "label", run.id, "x" * 3000, *root)
    assert labelled.returncode == 2 and "Traceback" not in labelled.stderr
    assert "run.json: the file size limit was reached" in labelled.stderr, labelled.stderr


def test_5_a_link_in_a_run_folder_never_lends_another_runs_file(runs_dir, tmp_path):
    run, other = finished_run(runs_dir), finished_run(runs_dir, seed=7)
    root = ["--run-dir", str(runs_dir)]
    run.events_path.unlink()
    run.events_path.symlink_to(other.events_path)
    result = run_cli("plot", run.id, "--output", str(tmp_path / "p.csv"), *root)
    assert result.returncode == 2 and "events.jsonl: is a symbolic link" in result.stderr
    assert not (tmp_path / "p.csv").exists()
    run.best.unlink()
    run.best.symlink_to(other.best)
    for verb in (["generate", run.id, "--prompt", "a"], ["eval", run.id],
                 ["export", run.id, "--format", "hf", "--out", str(tmp_path / "hf")]):  # fmt: skip
        result = run_cli(*verb, *root)
        assert result.returncode == 2 and "best.safetensors: is a symbolic link" in result.stderr


def test_6_init_from_records_the_model_it_trains(runs_dir):
    import json as json_

    from tui_gpt.core.runs import Run

    source = finished_run(runs_dir)  # gpt2 nano, byte tokens
    result = run_cli("train", str(NIGHT_KITCHEN), "--init-from", source.id, "--max-steps", "1",
                     "--recipe", "fast", "--run-dir", str(runs_dir), timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    new = Run(list_runs(runs_dir)[0].path)  # the newest
    model = json_.loads((new.path / "settings.json").read_text())["model"]
    assert (model["preset"], model["arch"], model["tokenizer"]) == ("nano", "gpt2", "byte")
    shown = run_cli("runs", "show", new.id, "--run-dir", str(runs_dir)).stdout
    assert "nano" in shown and "llama" not in shown


def test_7_weights_are_refused_with_another_tokenizer_of_the_same_size(runs_dir, tmp_path):
    import json as json_

    from tui_gpt.core.bpe import train_tokenizer
    from tui_gpt.core.corpus import inspect_source

    run = _bpe_run(runs_dir)
    size = json_.loads(run.record_path.read_text())["model"]["vocab_size"]
    other = train_tokenizer(inspect_source(ROOT / "sample_texts" / "poems_for_small_hours.txt"),
                            size, tmp_path / "other.json")  # fmt: skip
    assert other.vocab_size == size and other.name != run.record().tokenizer
    # The run's tokenizer and its record both say "other": only the weights remember.
    (run.path / "tokenizer.json").write_bytes(other.path.read_bytes())
    info = json_.loads(run.record_path.read_text())
    run.record_path.write_text(json_.dumps({**info, "tokenizer": other.name}))
    root = ["--run-dir", str(runs_dir)]
    for args in (["generate", run.id, "--prompt", "the"], ["eval", run.id],
                 ["train", str(NIGHT_KITCHEN), "--init-from", run.id, "--max-steps", "1"],
                 ["train", "--resume", run.id, "--further", "1"]):  # fmt: skip
        result = run_cli(*args, *root)
        assert result.returncode == 2, (args, result.stderr)
        assert f"not {other.name}" in result.stderr and "Traceback" not in result.stderr


def test_8_a_settings_file_names_its_data_wherever_it_is_read(runs_dir, tmp_path):
    import json as json_

    from tui_gpt.core.config import TrainSpec

    work = tmp_path / "work"
    work.mkdir()
    (work / "story.txt").write_text(NIGHT_KITCHEN.read_text())
    decoy = tmp_path / "elsewhere"
    decoy.mkdir()
    (decoy / "story.txt").write_text("a different file " * 500)
    settings = work / "settings.json"
    settings.write_text(json_.dumps({"data": "story.txt", "model": {"tokenizer": "byte"}}))
    cwd = os.getcwd()
    os.chdir(decoy)
    try:
        assert TrainSpec.load(settings).data == str(work / "story.txt")
        run = finished_run(runs_dir)
        stored = json_.loads((run.path / "settings.json").read_text())["data"]
        assert os.path.isabs(stored) and TrainSpec.load(run.path / "settings.json").data == stored
    finally:
        os.chdir(cwd)


def test_9_a_tokenizer_swapped_into_the_fit_cache_is_fitted_again(tmp_path):
    from tui_gpt.core import bpe
    from tui_gpt.core.corpus import inspect_source

    notices: list[str] = []
    night = inspect_source(NIGHT_KITCHEN)
    poems = inspect_source(ROOT / "sample_texts" / "poems_for_small_hours.txt")
    mine, theirs = bpe.fitted(night, 0.9), bpe.fitted(poems, 0.9)
    assert mine.vocab_size == theirs.vocab_size and mine.name != theirs.name
    mine.path.write_bytes(theirs.path.read_bytes())  # another text's file under this name
    again = bpe.fitted(night, 0.9, notice=notices.append)
    assert again.name == mine.name and "was not fitted to this text" in notices[0]
    assert bpe.fitted(night, 0.9, notice=notices.append).name == mine.name and len(notices) == 1


def test_10_a_tokenizer_that_cannot_encode_the_text_is_a_problem(runs_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")} | {"<|endoftext|>": 26}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens(["<|endoftext|>"])
    path = tmp_path / "letters.json"
    tok.save(str(path))
    prepared = run_cli("prepare", str(NIGHT_KITCHEN), "--tokenizer", str(path), "--json")
    assert prepared.returncode == 2, prepared.stderr
    problems = json.loads(prepared.stdout)["problems"]
    assert any("cannot encode" in p and "bytes of the text" in p for p in problems), problems
    trained = run_cli("train", str(NIGHT_KITCHEN), "--tokenizer", str(path), "--max-steps", "1",
                      "--run-dir", str(runs_dir))  # fmt: skip
    assert trained.returncode == 2 and "cannot encode" in trained.stderr, trained.stderr


def test_11_a_score_is_kept_under_the_identity_of_the_weights_read(runs_dir):
    from tui_gpt.core.runs import weights_id

    run = finished_run(runs_dir)
    ckpt = Checkpoint(run.best)
    opened = ckpt.identity
    data = run.best.read_bytes()
    atomic_write_text(run.best, "")  # a save replaces the file after it was opened...
    run.best.write_bytes(data)
    assert weights_id(run.best) != opened  # ...so the score of what was read is not current
    assert ckpt.identity == opened


@pytest.mark.slow
def test_12_a_stop_the_trainer_never_took_is_withdrawn_and_said(runs_dir):
    run = finished_run(runs_dir)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from tui_gpt.core.runs import Run, RunLock; "
        "RunLock(Run(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)"
    ), str(run.path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        stop = subprocess.Popen([sys.executable, "-m", "tui_gpt", "control", run.id, "stop",
                                 "--run-dir", str(runs_dir)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_until(lambda: control.pending(run), 60, "the stop request")
        holder.kill()
        out, err = stop.communicate(timeout=60)
    finally:
        holder.kill()
    assert stop.returncode == 1 and "not applied: the trainer ended first" in out, (out, err)
    assert control.pending(run) == []


def test_13_a_pid_and_a_heartbeat_are_not_a_live_trainer(runs_dir):
    import time as time_

    run = finished_run(runs_dir)
    run.set_status("running")
    (run.path / "process.json").write_text(json.dumps(
        {"pid": 1, "host": os.uname().nodename, "started": 1, "heartbeat": time_.time() + 3600}
    ))  # fmt: skip
    shown = run_cli("runs", "--run-dir", str(runs_dir)).stdout
    assert "live" not in shown
    control.ensure_not_live(run)  # a resume is not refused
