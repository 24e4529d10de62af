"""Training under torchrun: shards that add up to the single-process batch, and real gloo
processes on CPU, replicated (DDP) or sharded (FSDP), one machine or two "nodes" meeting
through torchrun's rendezvous, whose losses equal one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES, run_cli
from tui_gpt.core import memory
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import model_config
from tui_gpt.core.data import BatchLoader, TokenWindows
from tui_gpt.core.runs import list_runs


@pytest.mark.parametrize("windows", [24, 25, 3])
def test_rank_shards_make_up_the_global_batch(windows):
    ids = np.arange(windows * 8 + 1, dtype=np.uint16)
    single = BatchLoader(TokenWindows(ids, 8, 8), 4, shuffle=True, drop_last=True, seed=7)
    ranks = [
        BatchLoader(
            TokenWindows(ids, 8, 8), 2, shuffle=True, drop_last=True, seed=7, rank=r, world=2
        )
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1])  # every rank takes the same number of steps
    checked = 0
    for epoch in range(3):
        pairs = zip(*(r.iter_epoch(epoch) for r in ranks), strict=True)
        for ((x0, _), (x1, _)), (xs, _) in zip(pairs, single.iter_epoch(epoch), strict=False):
            together = sorted(map(tuple, np.concatenate([x0.numpy(), x1.numpy()]).tolist()))
            assert together == sorted(map(tuple, xs.numpy().tolist()))
            checked += 1
    assert checked == 3 * len(single)
    # Across an epoch the ranks read disjoint windows (but for the wrap-around padding).
    epoch0 = [set(r.order(0).tolist()) for r in ranks]
    assert len(epoch0[0] & epoch0[1]) <= (-windows) % 2


def step_losses(run_dir) -> list[float]:
    [summary] = list_runs(run_dir)
    events = [json.loads(line) for line in open(os.path.join(summary.path, "events.jsonl"))]
    return [e["loss"] for e in events if e["event"] == "step"]


TRAIN = [
    "train",
    str(SAMPLES / "the_night_kitchen.txt"),
    "--preset",
    "nano",
    "--tokenizer",
    "byte",
    "--dropout",
    "0",
    "--precision",
    "fp32",
    "--eval-freq",
    "2",
    "--sample-tokens",
    "3",
]


TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def torchrun(*args: str, nproc: int = 2):
    """`torchrun --standalone --nproc_per_node=N -m tui_gpt ...` as a user would type it."""
    cmd = [*TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "-m", "tui_gpt", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def events_of(run_dir) -> list[dict]:
    [summary] = list_runs(run_dir)
    return [json.loads(line) for line in open(os.path.join(summary.path, "events.jsonl"))]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    first = torchrun("--run-dir", str(two), *TRAIN, "--batch-size", "2", "--max-steps", "3")
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = torchrun(
        "--run-dir", str(two), "train", "--resume", list_runs(two)[0].id, "--max-steps", "6"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    single = run_cli("--run-dir", str(one), *TRAIN, "--batch-size", "4", "--max-steps", "6")
    assert single.returncode == 0, single.stderr
    # Stopped after 3 updates and resumed by 2 processes: still the single process's losses.
    assert step_losses(two) == pytest.approx(step_losses(one), rel=1e-5)
    assert len(step_losses(one)) == 6
    [run] = list_runs(two)
    assert run.status == "finished" and len(list_runs(two)) == 1  # rank 0 alone wrote a run
    events = [json.loads(line) for line in open(os.path.join(run.path, "events.jsonl"))]
    started = [e for e in events if e["event"] == "run_started"]
    assert [e["world_size"] for e in started] == [2, 2]
    # Tokens seen count the whole global batch: the same as the single process.
    assert events[-1]["tokens_seen"] == 6 * 4 * 64
    # Resuming with another number of processes would read other shards: refused.
    other = run_cli("--run-dir", str(two), "train", "--resume", run.id)
    assert other.returncode == 2 and "same number" in other.stderr


@pytest.mark.slow
def test_gradient_accumulation_under_torchrun_matches_the_larger_batch(tmp_path):
    """With the modern block and Muon (GPT-2's and AdamW are the test above): DDP is the
    same for both; every rank makes the same Muon update from the averaged gradient."""
    accum, whole = tmp_path / "accum", tmp_path / "whole"
    llama = [*TRAIN, "--arch", "llama", "--kv-heads", "1", "--optimizer", "muon"]
    a = torchrun("--run-dir", str(accum), *llama, "--batch-size", "1", "--grad-accum", "2",
                 "--max-steps", "3")  # fmt: skip
    assert a.returncode == 0, a.stderr[-2000:]
    w = torchrun("--run-dir", str(whole), *llama, "--batch-size", "2", "--max-steps", "3")
    assert w.returncode == 0, w.stderr[-2000:]
    assert step_losses(accum) == pytest.approx(step_losses(whole), rel=1e-5)
    assert len(step_losses(accum)) == 3
    record = json.loads((Path(list_runs(accum)[0].path) / "run.json").read_text())
    assert record["model"]["arch"] == "llama" and record["train"]["optimizer"] == "muon"


def test_fsdp_in_one_process_says_it_trains_the_model_whole(runs_dir):
    done = run_cli("--run-dir", str(runs_dir), *TRAIN, "--max-steps", "2", "--strategy", "fsdp")
    assert done.returncode == 0, done.stderr
    assert "--strategy fsdp shards a model across torchrun's processes" in done.stderr
    [started] = [e for e in events_of(runs_dir) if e["event"] == "run_started"]
    assert (started["world_size"], started["strategy"]) == (1, "single")


@pytest.mark.slow
def test_sharded_processes_match_one_process_and_resume_exactly(tmp_path):
    """`--strategy fsdp` with the default recipe (llama block, Muon on sharded matrices):
    20 updates of two sharded processes, stopped after 10 and resumed, give one process's
    losses with the same global batch; the checkpoint is one whole file that one process
    samples from and exports."""
    two, one = tmp_path / "two", tmp_path / "one"
    args = [*TRAIN, "--recipe", "fast", "--epochs", "4", "--eval-freq", "5"]
    first = torchrun("--run-dir", str(two), *args, "--batch-size", "2", "--max-steps", "10",
                     "--strategy", "fsdp")  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    run_id = list_runs(two)[0].id
    resumed = torchrun("--run-dir", str(two), "train", "--resume", run_id, "--max-steps", "20")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    single = run_cli("--run-dir", str(one), *args, "--batch-size", "4", "--max-steps", "20")
    assert single.returncode == 0, single.stderr
    assert len(step_losses(one)) == 20
    assert step_losses(two) == pytest.approx(step_losses(one), rel=1e-5)
    started = [e for e in events_of(two) if e["event"] == "run_started"]
    assert [(e["world_size"], e["strategy"]) for e in started] == [(2, "fsdp")] * 2
    assert "2 processes (fsdp)" in first.stdout
    record = json.loads((Path(list_runs(two)[0].path) / "run.json").read_text())
    assert record["train"]["optimizer"] == "muon" and record["train"]["strategy"] == "fsdp"
    # One whole, checksummed file: every tensor at the model's full shape.
    ckpt = Checkpoint(Path(list_runs(two)[0].path) / "checkpoints" / "latest.safetensors")
    ckpt.verify()
    assert ckpt.tensor("model.tok_emb.weight").shape == (ckpt.model_config.vocab_rows, 64)
    gen = run_cli("--run-dir", str(two), "generate", run_id, "--prompt", "The", "--max-new-tokens", "5")
    assert gen.returncode == 0, gen.stderr
    out = tmp_path / "hf"
    export = run_cli("--run-dir", str(two), "export", run_id, "--format", "hf", "--out", str(out))
    assert export.returncode == 0, export.stderr
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_meet_through_the_rendezvous_and_auto_shards_what_does_not_fit(tmp_path):
    """Two torchrun launches, one process each, as two machines would start them (`--nnodes 2
    --rdzv-backend c10d`), over loopback. Each is given a memory budget where the training
    fits sharded but not whole: `--strategy auto` shards it. GPT-2's block and AdamW with
    gradient accumulation give one process's losses with the same global batch."""
    two, one = tmp_path / "two", tmp_path / "one"
    args = [*TRAIN, "--recipe", "reference", "--epochs", "4", "--max-steps", "8"]
    model = model_config("nano", 256, 64, dropout=0.0)
    s = memory.Shape(batch_size=1, context_length=64, dropout=False, accumulating=True)
    whole, sharded = (memory.estimate(model, replace(s, shards=n)).total for n in (1, 2))
    assert sharded < whole
    budget = {"TUI_GPT_MEMORY_MIB": str((whole + sharded) / 2 / memory.MIB)}
    port = free_port()
    node = [*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes", "-m", "tui_gpt",
            "--run-dir", str(two), *args, "--batch-size", "1", "--grad-accum", "2"]  # fmt: skip
    env = {**os.environ, **budget}
    nodes = [subprocess.Popen(node, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env=env) for _ in range(2)]  # fmt: skip
    outputs = [n.communicate(timeout=300) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], [err[-3000:] for _, err in outputs]
    single = run_cli("--run-dir", str(one), *args, "--batch-size", "4")
    assert single.returncode == 0, single.stderr
    assert len(step_losses(one)) == 8
    assert step_losses(two) == pytest.approx(step_losses(one), rel=1e-5)
    [started] = [e for e in events_of(two) if e["event"] == "run_started"]
    assert (started["world_size"], started["strategy"], started["arch"]) == (2, "fsdp", "gpt2")
    assert sum("--strategy auto: fsdp" in err for _, err in outputs) == 1  # said by rank 0
    assert len(list_runs(two)) == 1  # one run folder, written by rank 0 alone
