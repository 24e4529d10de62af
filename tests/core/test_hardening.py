"""Nothing lost, nothing crashes: kills, a full disk, damaged and crafted files, odd entries,
each met on real files and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from tests.conftest import NIGHT_KITCHEN, ROOT, run_cli, wait_until
from tests.trainings import config, start
from tui_gpt.core import checkpoint, control, data
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import model_config
from tui_gpt.core.data import prepare
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.jobs import JobHooks, assemble
from tui_gpt.core.model import GPT
from tui_gpt.core.records import DatasetRecord, RunRecord
from tui_gpt.core.runs import create_run, delete_run, find_run, list_runs
from tui_gpt.core.tokenizer import ByteTokenizer
from tui_gpt.core.trainer import TrainerControl


def finished_run(runs_dir, steps: int = 4):
    job = start(runs_dir, config(max_steps=steps, sample_tokens=0))
    assert job.run_training() == "finished"
    return job.run


def test_a_full_disk_stops_the_training_cleanly_and_keeps_the_checkpoint(runs_dir):
    run = finished_run(runs_dir)
    job = assemble(resume=run.id, changes={"max_steps": 50}, runs_dir=runs_dir)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: "No space left on device"
    os.dup2(full, job.log._file.fileno())  # the event log's descriptor now writes there
    os.close(full)
    assert job.run_training() == "stopped"
    assert "No space left on device" in job.trainer.control.stop_reason
    assert Checkpoint(run.latest).train_state["steps_done"] >= 4


def test_a_damaged_latest_is_refused_naming_the_intact_best(runs_dir):
    run = finished_run(runs_dir)
    data = bytearray(run.latest.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\xff" * 4096
    run.latest.write_bytes(bytes(data))
    with pytest.raises(TuiGptError, match=r"damaged .*best weights are intact"):
        assemble(resume=run.id, runs_dir=runs_dir)


def test_nan_weights_are_refused(tmp_path):
    model = GPT(model_config("nano", 257, 32))
    with torch.no_grad():
        model.tok_emb.weight[3, :4] = float("nan")
    checkpoint.save(tmp_path / "x.safetensors", model)  # a true checksum of NaN weights
    with pytest.raises(TuiGptError, match="tok_emb.weight holds NaN"):
        Checkpoint(tmp_path / "x.safetensors").verify()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"emb_dim": 20000, "n_heads": 20}, "has shape"),  # would allocate gigabytes
        ({"emb_dim": 10**9}, "emb_dim = 1000000000"),
        ({"n_heads": 0}, "damaged model configuration"),
        ({"n_layers": "many"}, "damaged model configuration"),
    ],
)
def test_a_crafted_header_fails_before_anything_is_allocated(tmp_path, change, message):
    model = GPT(model_config("nano", 257, 32))
    path = checkpoint.save(tmp_path / "x.safetensors", model)
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header["__metadata__"]["model_config"] = json.dumps({**model.cfg.to_dict(), **change})
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])
    started = time.perf_counter()
    with pytest.raises(TuiGptError, match=message):
        Checkpoint(path).build_model()
    assert time.perf_counter() - started < 5


def test_a_damaged_training_state_is_one_error(runs_dir):
    run = finished_run(runs_dir)
    model = Checkpoint(run.latest).build_model()
    opt = torch.optim.AdamW(model.parameters())
    checkpoint.save(run.latest, model, opt, train_state={"epoch": "x", "steps_done": 2})
    with pytest.raises(TuiGptError, match="damaged training state"):
        assemble(resume=run.id, runs_dir=runs_dir)


def test_the_token_cache_is_verified_and_rebuilt(tmp_path):
    tok, cache = ByteTokenizer(), tmp_path / "cache"
    first = prepare(NIGHT_KITCHEN, tok, 0.9, cache_root=cache)
    [folder] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    notes: list[str] = []
    with open(folder / "train.bin", "r+b") as f:
        f.truncate(1000)  # truncated: 500 of the training tokens
    again = prepare(NIGHT_KITCHEN, tok, 0.9, cache_root=cache, notice=notes.append)
    assert "damaged" in notes[-1] and len(again.train_ids) == len(first.train_ids)
    np.full(100, 60000, dtype=np.uint16).tofile(folder / "val.bin")  # ids outside the vocabulary
    (folder / "train.bin").write_bytes((folder / "train.bin").read_bytes())
    meta = json.loads((folder / "meta.json").read_text())
    meta["tokens"], meta["val_tokens"] = len(first.train_ids) + 100, 100
    (folder / "meta.json").write_text(json.dumps(meta))
    prepare(NIGHT_KITCHEN, tok, 0.9, cache_root=cache, notice=notes.append)
    assert "val.bin is not the file built with it" in notes[-1]
    np.full(100, 60000, dtype=np.uint16).tofile(folder / "val.bin")
    meta["val_sha256"] = data._file_hash(folder / "val.bin")  # consistent, yet out of range
    (folder / "meta.json").write_text(json.dumps(meta))
    prepare(NIGHT_KITCHEN, tok, 0.9, cache_root=cache, notice=notes.append)
    assert "outside the vocabulary" in notes[-1]
    (folder / "meta.json").unlink()
    healed = prepare(NIGHT_KITCHEN, tok, 0.9, cache_root=cache, notice=notes.append)
    assert (folder / "meta.json").is_file() and list(healed.val_ids) == list(first.val_ids)
    stale = cache / ".building-999999-abc"  # a killed tokenizer's leftovers (pid gone)
    stale.mkdir()
    prepare(NIGHT_KITCHEN, tok, 0.9, cache_root=cache)
    assert not stale.exists()


def test_damaged_run_files_never_break_the_list(tmp_path):
    good = create_run(tmp_path, "good", RunRecord(preset="nano", dataset=DatasetRecord(files=("/d/a.txt",))))
    bad_info = create_run(tmp_path, "a", RunRecord(preset="nano"))
    (bad_info.path / "run.json").write_text("[1, 2]")
    bad_status = create_run(tmp_path, "b", RunRecord(preset="nano"))
    (bad_status.path / "status.json").write_text('{"status": "running", "step": "abc"}')
    bad_process = create_run(tmp_path, "c", RunRecord(preset="nano"))
    (bad_process.path / "status.json").write_text('{"status": "running"}')
    (bad_process.path / "process.json").write_text('{"pid": "x", "heartbeat": "abc"}')
    summaries = {s.id: s for s in list_runs(tmp_path)}
    assert summaries[good.id].state == "unknown" and summaries[good.id].problem is None
    assert summaries[bad_info.id].state == "damaged"
    assert summaries[bad_status.id].state == "damaged"
    assert summaries[bad_process.id].state == "stale"
    listed = run_cli("runs", "--run-dir", str(tmp_path))
    assert (
        listed.returncode == 0 and "Traceback" not in listed.stderr and "damaged" in listed.stdout
    )


def test_odd_entries_in_the_control_folder_do_not_stop_the_channel(tmp_path):
    run = create_run(tmp_path, "d", RunRecord(preset="nano"))
    ctl = TrainerControl()
    channel = control.ControlChannel(run, ctl, heartbeat_s=0.1)
    with channel:
        (control.control_dir(run) / "x.stop").mkdir()
        (control.control_dir(run) / "notes.txt").write_text("hello")
        time.sleep(0.5)
        assert channel._thread.is_alive() and not ctl.stopping
        control.send(run, "pause")
        wait_until(lambda: ctl.paused, 10, "the pause after the odd entries")


def test_a_run_folder_deleted_under_the_trainer_stops_it(runs_dir):
    ctl = TrainerControl()
    job = start(runs_dir, config(epochs=500, sample_tokens=0), control=ctl)
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["result"] = job.run_training()
        except TuiGptError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=train)
    worker.start()
    try:
        wait_until(lambda: job.run.status().step >= 2, 120, "training")
        delete_run(job.run)
        worker.join(60)
    finally:
        ctl.stop("test over")
        worker.join(60)
    assert "was deleted" in outcome.get("error", "") + ctl.stop_reason
    assert not job.run.path.exists()  # never recreated


def test_a_torn_last_line_is_not_glued_to_the_next(runs_dir):
    run = finished_run(runs_dir)
    with open(run.events_path, "a") as f:
        f.write('{"event": "step", "ste')  # a kill in the middle of a write
    assemble(resume=run.id, changes={"max_steps": 6}, runs_dir=runs_dir).run_training()
    names = [e["event"] for e in run.events()]
    assert names.count("run_started") == 2


def test_a_symlinked_run_is_unlinked_not_emptied(tmp_path):
    real = create_run(tmp_path / "elsewhere", "d", RunRecord(preset="nano"))
    (tmp_path / "runs").mkdir()
    link = tmp_path / "runs" / real.id
    link.symlink_to(real.path)
    delete_run(find_run(real.id, tmp_path / "runs"))
    assert not link.exists() and (real.path / "run.json").is_file()


@pytest.mark.parametrize("ref", ["../outside/x", "*", "..", ""])
def test_a_run_is_never_found_outside_the_runs_root(tmp_path, ref):
    (tmp_path / "outside" / "x").mkdir(parents=True)
    (tmp_path / "outside" / "x" / "run.json").write_text("{}")
    (tmp_path / "runs").mkdir()
    with pytest.raises(TuiGptError, match="no run"):
        find_run(ref, tmp_path / "runs")


def test_a_closed_pipe_is_a_quiet_exit(tmp_path):
    for i in range(30):
        create_run(tmp_path, f"data{i}", RunRecord(preset="nano"))
    proc = subprocess.Popen([sys.executable, "-m", "tui_gpt", "runs", "--run-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    proc.stdout.read(10)
    proc.stdout.close()  # `| head -c 10`
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
    # Closed before the first line is written (the interpreter takes a second to start):
    # every write fails, whatever the machine's timing.
    proc = subprocess.Popen([sys.executable, "-m", "tui_gpt", "runs", "--run-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and err == b"" and proc.returncode == 1


@pytest.mark.slow
def test_a_kill_before_the_first_periodic_save_loses_little(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui_gpt", "--run-dir", str(runs), "train", str(NIGHT_KITCHEN),
         "--preset", "nano", "--tokenizer", "byte", "--eval-freq", "3", "--epochs", "100",
         "--checkpoint-minutes", "60"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(
            lambda: any(runs.glob("*/checkpoints/latest.safetensors")), 120, "the first save"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    [run] = list_runs(runs)
    again = run_cli("train", "--resume", run.id, "--max-steps", "8", "--run-dir", str(runs))
    assert again.returncode == 0, again.stderr  # the first evaluation's save was there


@pytest.mark.slow
def test_one_writer_per_run(runs_dir):
    """While a run trains, a second trainer is refused naming the first one's pid; the lock
    goes with the trainer, so liveness reads it even without a heartbeat."""
    from tui_gpt.core.runs import liveness, locked_by

    run = finished_run(runs_dir)
    ctl = TrainerControl()
    changes = {"epochs": 500, "max_steps": 10_000}
    job = assemble(resume=run.id, changes=changes, runs_dir=runs_dir, hooks=JobHooks(control=ctl))
    assert locked_by(run) == os.getpid() and liveness(run).state == "live"
    second = run_cli("train", "--resume", run.id, "--run-dir", str(runs_dir))
    assert second.returncode == 2 and f"pid {os.getpid()}" in second.stderr, second.stderr
    worker = threading.Thread(target=job.run_training)
    worker.start()
    try:
        wait_until(lambda: run.status().step >= 6, 120, "training")
    finally:
        ctl.stop("test over")
        worker.join(60)
    assert locked_by(run) is None and liveness(run).state == "ended"
    third = run_cli("train", "--resume", run.id, "--further", "2", "--run-dir", str(runs_dir))
    assert third.returncode == 0, third.stderr


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="address-space limits are a Linux test")
def test_out_of_memory_is_one_line_with_what_to_change(tmp_path):
    import resource

    def small_memory() -> None:  # in the child: 4 GiB of address space, a 1.5B model needs 6
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    # A stated budget above what there is gets past the check before start (core/memory.py,
    # tested on its own); the allocation itself failing is one line too.
    result = subprocess.run(
        [sys.executable, "-m", "tui_gpt", "--run-dir", str(tmp_path), "train", str(NIGHT_KITCHEN),
         "--preset", "gpt2-xl", "--tokenizer", "byte", "--context-length", "64"],
        capture_output=True, text=True, cwd=ROOT, preexec_fn=small_memory, timeout=300,
        env={**os.environ, "TUI_GPT_MEMORY_MIB": str(1 << 20)},
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "out of memory: allocating" in result.stderr and "smaller batch size" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing half-made


_SAVE_ON_A_FULL_DISK = """
import resource, signal, sys, torch
from tui_gpt.core import checkpoint
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.config import model_config
from tui_gpt.core.model import GPT
model = GPT(model_config("nano", 257, 32))
opt = torch.optim.AdamW(model.parameters())
model(torch.zeros(1, 8, dtype=torch.long)).sum().backward()
opt.step()
checkpoint.save(sys.argv[1], model, opt)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    checkpoint.save(sys.argv[1], model, opt)
except TuiGptError as exc:
    print(exc)
"""


@pytest.mark.slow
def test_a_save_on_a_full_disk_is_one_line_and_keeps_the_previous(tmp_path):
    target = tmp_path / "latest.safetensors"
    result = subprocess.run([sys.executable, "-c", _SAVE_ON_A_FULL_DISK, str(target)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "cannot save checkpoint" in result.stdout and "previous one is intact" in result.stdout
    Checkpoint(target).verify()
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_damaged_optimizer_groups_and_rng_are_one_error_each(runs_dir):
    run = finished_run(runs_dir)
    raw = run.latest.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    for key, value in (("param_groups", "not json"), ("param_groups", '[{"lr": 1}]')):
        header = json.loads(raw[8 : 8 + size])
        header["__metadata__"][key] = value
        text = json.dumps(header).encode()
        run.latest.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])
        with pytest.raises(TuiGptError, match=r"damaged param_groups|optimizer state does not fit"):
            assemble(resume=run.id, runs_dir=runs_dir, further="2")  # it had finished


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder whatever its permissions")
def test_an_unreadable_folder_inside_a_dataset_is_named(tmp_path):
    (tmp_path / "data" / "locked").mkdir(parents=True)
    (tmp_path / "data" / "a.txt").write_text("readable text")
    (tmp_path / "data" / "locked").chmod(0)
    try:
        with pytest.raises(TuiGptError, match="locked: cannot read this folder"):
            from tui_gpt.core.corpus import find_files

            find_files(tmp_path / "data")
    finally:
        (tmp_path / "data" / "locked").chmod(0o755)
