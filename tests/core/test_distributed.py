"""Training under torchrun: shards that add up to the single-process batch, and two real
gloo processes on CPU whose losses equal one process with the same global batch."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES, run_cli
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


def torchrun(*args: str, nproc: int = 2):
    """`torchrun --standalone --nproc_per_node=N -m tui_gpt ...` as a user would type it."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "tui_gpt", *args]
    import subprocess

    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


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
