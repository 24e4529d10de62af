"""The memory estimate, the check before a training starts, and what it says would fit."""

import json
import os
from dataclasses import replace

import pytest

from tests.conftest import NIGHT_KITCHEN, run_cli
from tui_gpt.core import process
from tui_gpt.core.config import count_params, model_config
from tui_gpt.core.memory import MIB, Shape, check, estimate, largest


def test_the_estimate_adds_up_its_parts_and_grows_with_each_setting():
    cfg = model_config("gpt2-small", 50257, 256)
    base = estimate(cfg, Shape(2, 256, "bf16"))
    p = count_params(cfg)
    assert (base.weights, base.grads, base.optimizer, base.weight_copies) == (4 * p, 4 * p, 8 * p, 2 * p)
    assert base.total == sum(v for k, v in base.to_dict().items() if k != "total")
    assert estimate(cfg, Shape(4, 256, "bf16")).activations > base.activations
    assert estimate(cfg, Shape(2, 512, "bf16")).logits == 2 * base.logits
    fp32 = estimate(cfg, Shape(2, 256, "fp32"))
    assert fp32.activations > base.activations and fp32.weight_copies == 0
    saved = estimate(cfg, Shape(2, 256, "bf16", checkpointing=True))
    assert saved.activations < base.activations / 3 and saved.weights == base.weights


def test_sharded_processes_each_hold_a_share_of_the_state_and_a_layer_whole():
    cfg = model_config("gpt2-xl", 50257, 1024)
    s = Shape(1, 1024, "bf16")
    whole, four = estimate(cfg, s), estimate(cfg, replace(s, shards=4))
    p = count_params(cfg)
    assert four.optimizer == 8 * -(-p // 4)
    state = [e.weights + e.grads + e.optimizer for e in (whole, four)]
    assert 0.25 * state[0] < state[1] < 0.35 * state[0]  # a quarter, and what is gathered
    assert (four.activations, four.logits) == (whole.activations, whole.logits)
    # The check before a training starts knows it: room between the two fits only shards.
    room = (whole.total + four.total) // 2
    assert check(cfg, s, room) is not None and check(cfg, replace(s, shards=4), room) is None


def test_largest_finds_the_edge():
    assert largest(lambda n: n <= 37, 4) == 37
    assert largest(lambda n: n <= 3, 64) == 3
    assert largest(lambda n: False, 4) == 0


def test_a_training_that_fits_passes_and_one_that_does_not_says_what_would():
    cfg = model_config("gpt2-small", 50257, 1024)
    s = Shape(8, 1024, "bf16")
    need = estimate(cfg, s).total
    assert check(cfg, s, need) is None and check(cfg, s, None) is None
    line = check(cfg, s, need - 1)
    assert line is not None and "\n" not in line
    assert "would fit: batch size 7 at context 1024" in line
    # What it proposes does fit.
    b = int(line.split("batch size ")[1].split()[0])
    t = int(line.split("context ")[2].split()[0])
    assert estimate(cfg, Shape(b, 1024, "bf16")).total <= need - 1
    assert estimate(cfg, Shape(8, t, "bf16")).total <= need - 1 < estimate(cfg, Shape(8, t + 1, "bf16")).total
    tiny = check(cfg, s, 100 * MIB)
    assert tiny is not None and "model alone does not fit" in tiny


def test_train_refuses_before_starting_with_one_line_and_leaves_nothing(tmp_path):
    result = run_cli(
        "--run-dir", str(tmp_path), "train", str(NIGHT_KITCHEN), "--tokenizer", "byte",
        "--preset", "micro", "--context-length", "100000",
        env={**os.environ, "TUI_GPT_MEMORY_MIB": "2000"},
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "training needs about" in line and "2,000 MiB is free" in line
    assert "would fit: batch size" in line or "would fit: context" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape",
    [
        ("--preset", "mini", "--context-length", "128", "--batch-size", "4"),
        ("--preset", "mini", "--context-length", "128", "--batch-size", "4", "--arch", "llama"),
        ("--preset", "nano"),  # small: torch's own start-up memory must not count
    ],
    ids=["mini", "mini-llama", "nano"],
)
def test_bench_reports_the_estimate_beside_the_measured_peak(shape):
    import torch

    from tui_gpt.core.device import resolve_precision

    # The precision `auto` resolves to on this CPU, named: the estimate is checked in the type
    # the training computes in, without timing the runtimes auto would choose among.
    precision = resolve_precision("auto", torch.device("cpu"))
    result = run_cli("bench", "train", *shape, "--steps", "1", "--precision", precision, "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    # The bar: the estimate within 25% of the memory the training really took.
    measured, expected = facts["training_peak_mib"], facts["memory_estimate_mib"]
    assert abs(expected - measured) <= 0.25 * measured, (expected, measured)


@pytest.mark.skipif(process._libc() is None, reason="memory reuse is for glibc only")
def test_memory_reuse_is_counted_and_can_be_switched_off(monkeypatch):
    assert process._holders == 0
    with process.reusing_memory():
        with process.reusing_memory():
            assert process._holders == 2
        assert process._holders == 1
    assert process._holders == 0
    monkeypatch.setenv("TUI_GPT_MALLOC", "default")
    assert process.keep_freed_memory() is False


@pytest.mark.slow
def test_a_process_started_by_a_big_one_reports_its_own_peak():
    """getrusage's ru_maxrss survives exec: a bench started by a test runner of 600 MiB
    would say it peaked at 600 MiB. The peak is the process's own."""
    import subprocess
    import sys

    held = b"\x01" * (600 * 2**20)  # pages touched: resident in this process
    child = subprocess.run(
        [sys.executable, "-c", "from tui_gpt.core.bench import peak_rss_mib; print(peak_rss_mib())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert len(held) and float(child.stdout) < 500, child.stdout


def test_headless_commands_keep_glibcs_arenas(monkeypatch, runs_dir):
    """One malloc arena is for the app's training thread only: a headless training runs in
    its main thread, and under bf16 autocast one arena halved a small model's steps."""
    from tests.conftest import run_cli

    calls = []
    monkeypatch.setattr(process, "single_arena", lambda: calls.append(1) or True)
    assert run_cli("runs").returncode == 0
    assert calls == []
