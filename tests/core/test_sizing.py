"""`--preset auto`: the shape a time budget buys. The step times the rule weighs are put in
the real step-time cache beforehand (as a measurement on a machine of that speed would), so
which shapes it measures, skips and picks is exact."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from tests.conftest import NIGHT_KITCHEN, SAMPLES
from tui_gpt.core import estimate
from tui_gpt.core.bpe import tokenizer_for
from tui_gpt.core.config import AUTO, ModelChoice, TrainConfig, TrainSpec
from tui_gpt.core.data import inspect_source, prepare
from tui_gpt.core.device import Runtime
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.sizing import (
    LADDER,
    MAX_EPOCHS,
    MIN_STEPS,
    PLAIN_EPOCHS,
    REPEAT_DROPOUT,
    size,
    window,
)

LADDER_PRESETS = {preset for preset, _ in LADDER}
CPU = Runtime(torch.device("cpu"), "fp32", 1)
CHOICE = ModelChoice(AUTO, tokenizer="byte", arch="llama", dropout=0.0)
# Epochs that never bind: the budget alone sets the steps; evaluations cost next to nothing.
CFG = TrainConfig(minutes=1.0, epochs=10**6, batch_size=1, precision="fp32", eval_iter=1,
                  eval_freq=10**6, optimizer="muon")  # fmt: skip


@pytest.fixture(autouse=True)
def _no_step_times_remembered():
    """Each test starts from an empty step-time cache: what it measures is its own."""
    from tui_gpt import paths

    (paths.cache_dir() / "step-times.json").unlink(missing_ok=True)


def _data(path=SAMPLES):
    source = inspect_source(str(path))
    return prepare(source, tokenizer_for("byte", source, 0.9), 0.9)


def _remember(cfg: TrainConfig, seconds: dict[tuple[str, int], float], dropout=0.0) -> None:
    for (preset, context), s in seconds.items():
        shape = ModelChoice(preset, arch="llama", dropout=dropout).config(257, context)
        estimate.remember_step_seconds(shape, cfg, context, CPU, s)


def _measured(preset: str, context: int, cfg: TrainConfig = CFG) -> bool:
    shape = ModelChoice(preset, arch="llama", dropout=0.0).config(257, context)
    return estimate.cached_step_seconds(shape, cfg, context, CPU) is not None


def test_auto_climbs_to_the_largest_shape_that_makes_enough_steps():
    """60 s: nano, micro (2,000 steps), milli at 64 (1,000) and at 128 (600) make 500
    updates before the budget ends; mini at 128, guessed from milli's step and its compute,
    cannot even at the guess's optimism, so it is never measured, nor anything above it."""
    _remember(CFG, {("nano", 64): 0.01, ("micro", 64): 0.03, ("milli", 64): 0.06,
                    ("milli", 128): 0.1})  # fmt: skip
    sizing = size(CHOICE, CFG, 257, _data(), CPU, seconds_left=60)
    assert (sizing.choice.preset, sizing.choice.context_length) == ("milli", 128)
    assert [(r.preset, r.context_length) for r in sizing.tried] == list(LADDER[:4])
    assert not any(_measured(p, c) for p, c in (("mini", 128), ("mini", 256)))
    assert sizing.line() == (
        f"sized: milli (4 x 256, 3.3M), context 128 (the largest that makes {MIN_STEPS} "
        "steps in the budget)"
    )
    assert sizing.chosen is not None and sizing.chosen.plan.steps == 599


def test_a_shape_measured_too_slow_ends_the_climb():
    """A guess that qualifies is checked by measuring: mini at 128 measures 1 s a step (60
    steps in the budget), so milli at 128 trains and mini at 256 is not tried."""
    _remember(CFG, {("nano", 64): 0.001, ("micro", 64): 0.002, ("milli", 64): 0.003,
                    ("milli", 128): 0.004, ("mini", 128): 1.0})  # fmt: skip
    sizing = size(CHOICE, CFG, 257, _data(), CPU, seconds_left=60)
    assert [r.preset for r in sizing.tried] == ["nano", "micro", "milli", "milli", "mini"]
    assert (sizing.choice.preset, sizing.choice.context_length) == ("milli", 128)
    assert not _measured("mini", 256)


def test_a_short_budget_trains_nano():
    """5 s: nano makes 499 steps, fewer than MIN_STEPS: it trains, and micro is not even
    measured. Nano at 5,000 but micro at 50 (measured, its guess being hopeful): nano."""
    _remember(CFG, {("nano", 64): 0.01})
    sizing = size(CHOICE, CFG, 257, _data(), CPU, seconds_left=5)
    assert [r.preset for r in sizing.tried] == ["nano"] and not _measured("micro", 64)
    assert sizing.choice.preset == "nano" and sizing.chosen.plan.steps == 499
    assert sizing.line().endswith(f"(no shape makes {MIN_STEPS} steps in the budget)")
    _remember(CFG, {("nano", 64): 0.001, ("micro", 64): 0.1})
    sizing = size(CHOICE, CFG, 257, _data(), CPU, seconds_left=5)
    assert [r.preset for r in sizing.tried] == ["nano", "micro"]
    assert sizing.choice.preset == "nano"
    assert sizing.line().endswith(f"(the largest that makes {MIN_STEPS} steps in the budget)")


def test_a_text_whose_epochs_end_before_the_budget_gets_no_larger_shape():
    """The 5 samples (34 KB) at batch 2 and 4 epochs are 830 steps, done long before 5
    minutes: micro trains (the text, not the time, limits it) and nothing larger is
    measured. The 6 KB sample at batch 16 is 20 steps: a small text, trained by nano."""
    cfg = TrainConfig(minutes=5.0, epochs=4, batch_size=2, precision="fp32", optimizer="muon")
    _remember(cfg, {("nano", 64): 0.005, ("micro", 64): 0.01})
    sizing = size(CHOICE, cfg, 257, _data(), CPU, seconds_left=300)
    assert (sizing.choice.preset, sizing.choice.context_length) == ("micro", 64)
    assert [r.preset for r in sizing.tried] == ["nano", "micro"]
    assert sizing.line().endswith("context 64 (the text, not the time, limits it)")
    small = replace(cfg, batch_size=16)
    _remember(small, {("nano", 64): 0.005})
    sizing = size(CHOICE, small, 257, _data(NIGHT_KITCHEN), CPU, seconds_left=300)
    assert [r.preset for r in sizing.tried] == ["nano"]
    assert (sizing.choice.preset, sizing.choice.context_length) == ("nano", 64)
    assert sizing.line().endswith("context 64 (a small text: the smallest shape)")


def test_hand_choices_are_kept():
    """A preset given by hand is trained as given; a context given by hand is the one every
    rung is tried at; without a budget `auto` is micro at 64, with nothing measured."""
    data = _data()
    given = ModelChoice("mini", tokenizer="byte", arch="llama")
    assert size(given, CFG, 257, data, CPU, 60).choice == given
    _remember(CFG, {(p, 32): 0.001 for p in ("nano", "micro", "milli", "mini")})
    at_32 = size(ModelChoice(AUTO, 32, "byte", 0.0, "llama"), CFG, 257, data, CPU, 60)
    assert {r.context_length for r in at_32.tried} == {32}
    assert at_32.choice.preset == "mini" and at_32.choice.context_length == 32
    unbudgeted = TrainConfig(epochs=1, precision="fp32")
    assert size(CHOICE, unbudgeted, 257, data, CPU).choice.preset == "micro"
    assert size(CHOICE, unbudgeted, 257, data, CPU).choice.context_length == 64
    assert not _measured("micro", 64, unbudgeted)
    assert window(CHOICE, 257) == 64 and window(given, 257) == 256


def test_a_new_run_records_the_shape_auto_chose_and_says_why(tmp_path):
    """The run's settings.json (what `--settings` trains again) and run.json hold the
    chosen preset and context; the run's events say what was sized."""
    from tui_gpt.core.jobs import assemble

    cfg = TrainConfig(minutes=0.5, epochs=1, batch_size=2, precision="fp32", eval_iter=1,
                      sample_tokens=0, optimizer="muon")  # fmt: skip
    _remember(cfg, {("nano", 64): 0.001})  # the 6 KB text: small
    job = assemble(TrainSpec(str(NIGHT_KITCHEN), CHOICE, cfg), runs_dir=tmp_path / "runs")
    assert job.trainer.model.cfg.emb_dim == 64 and job.trainer._context_length == 64
    assert job.run_training() == "finished"
    saved = json.loads((job.run.path / "settings.json").read_text())
    assert (saved["model"]["preset"], saved["model"]["context_length"]) == ("nano", 64)
    assert job.run.record().preset == "nano"
    notices = [json.loads(line).get("message", "") for line in job.run.events_path.open()]
    assert any(m.startswith("sized: nano (2 x 64, ") for m in notices)


@pytest.mark.parametrize("recipe", ["fast"])
def test_the_default_recipe_sizes_its_model(recipe):
    from tui_gpt.core.config import RECIPES

    model, train = RECIPES[recipe].settings()
    assert model.preset == AUTO and model.context_length is None and train.minutes is not None


def test_blank_epochs_are_plain_unless_a_small_text_leaves_time_for_more_passes():
    """Epochs left blank (the default recipe's): PLAIN_EPOCHS without dropout; where those
    are fewer than MIN_STEPS steps and the budget fits more passes, all that fit up to
    MAX_EPOCHS, with REPEAT_DROPOUT unless a dropout is given."""
    data = _data()
    micro = ModelChoice("micro", 64, "byte", None, "llama")
    cfg = TrainConfig(minutes=1.0, epochs=None, batch_size=16, precision="fp32", eval_iter=1,
                      eval_freq=10**6, optimizer="muon")  # fmt: skip
    batches = len(data.train_ids) // (64 * 16)  # windows of 64 at stride 64, batch 16
    assert batches * PLAIN_EPOCHS < MIN_STEPS
    step = 60 / (batches * 2.5)  # 2.5 passes in 60 s
    for dropout in (0.0, 0.05):  # blank with blank epochs: measured at 0
        _remember(replace(cfg, epochs=PLAIN_EPOCHS), {("micro", 64): step}, dropout=dropout)
    short = size(micro, cfg, 257, data, CPU, seconds_left=60)
    assert short.train.epochs == PLAIN_EPOCHS and short.choice.dropout == 0.0
    assert short.choice.preset == "micro" and short.sized == ("epochs", "dropout")
    assert short.line() == f"sized: {PLAIN_EPOCHS} epochs at most, dropout 0"
    longer = size(micro, cfg, 257, data, CPU, seconds_left=60 * 2.5)  # 6.25 passes
    assert longer.train.epochs == min(7, MAX_EPOCHS) and longer.choice.dropout == REPEAT_DROPOUT
    ages = size(micro, cfg, 257, data, CPU, seconds_left=60 * 1000)
    assert ages.train.epochs == MAX_EPOCHS
    given = size(replace(micro, dropout=0.05), cfg, 257, data, CPU, seconds_left=150)
    assert given.choice.dropout == 0.05 and given.sized == ("epochs",)
    assert size(micro, replace(cfg, epochs=3), 257, data, CPU, 150).train.epochs == 3
    with pytest.raises(TuiGptError, match=r"Epochs \(--epochs\): give a number, or a time budget"):
        replace(cfg, minutes=None).validate()


def test_the_default_recipe_sizes_what_it_leaves_blank(tmp_path):
    """`tui-gpt train DATA` with nothing else: the shape, epochs and dropout the budget
    buys are chosen, said, and kept in the run's settings as numbers."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TUI_GPT_RECIPE": "fast", "TUI_GPT_DATA_DIR": str(tmp_path / "d"),
           "TUI_GPT_CACHE_DIR": str(tmp_path / "c")}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "tui_gpt", "--run-dir", str(tmp_path / "runs"), "train",
         str(NIGHT_KITCHEN), "--minutes", "0.15", "--sample-tokens", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sized = next(line for line in out.stdout.splitlines() if line.startswith("sized: "))
    [run] = list((tmp_path / "runs").iterdir())
    saved = json.loads((run / "settings.json").read_text())
    assert saved["model"]["preset"] in LADDER_PRESETS and saved["model"]["context_length"] == 64
    assert isinstance(saved["train"]["epochs"], int) and isinstance(saved["model"]["dropout"], float)
    assert sized.startswith(f"sized: {saved['model']['preset']} (")
    assert f"{saved['train']['epochs']} epochs at most" in sized
