"""The text charts: even ticks, the metric that compares runs, titles that say what is drawn."""

import re

import pytest

from tests.conftest import NIGHT_KITCHEN
from tui_gpt.charts import LossHistory, compare_chart, loss_chart, nice_ticks
from tui_gpt.core.bpe import train_tokenizer
from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec
from tui_gpt.core.corpus import inspect_source
from tui_gpt.core.events import Eval
from tui_gpt.core.experiments import details
from tui_gpt.core.jobs import assemble


def test_ticks_are_round_and_evenly_spaced():
    ticks = nice_ticks([3.15, 3.46, 3.61, 3.76])
    assert ticks == [3.2, 3.4, 3.6]  # the 3.76, 3.61, 3.46, 3.15 skipped 3.30
    gaps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(gaps) == 1
    assert nice_ticks([0, 1234], whole=True) == [0, 250, 500, 750, 1000, 1250][:5]
    assert nice_ticks([0, 3], whole=True) == [0, 1, 2, 3]
    assert nice_ticks([2.0, 2.0]) == [2.0] and nice_ticks([float("nan")]) == []


def test_the_loss_chart_labels_its_y_axis_with_even_steps():
    history = LossHistory()
    for step, (train, val) in enumerate([(3.76, 3.8), (3.61, 3.7), (3.46, 3.5), (3.15, 3.3)]):
        history.add_event(Eval(step=step * 10, tokens_seen=step * 640, train_loss=train, val_loss=val))
    text = loss_chart(history, 60, 16, color=False)
    labels = [float(m) for m in re.findall(r"^\s*(\d\.\d+)\s*[┤│]", text, re.M)]
    assert len(labels) >= 3
    gaps = {round(a - b, 6) for a, b in zip(labels, labels[1:], strict=False)}
    assert len(gaps) == 1, labels  # no missing tick between them


def test_the_dashboard_chart_moves_with_every_step_between_evaluations():
    from tui_gpt.charts import StepLosses
    from tui_gpt.core.events import RunStarted, Step

    history = LossHistory(per_step=True)
    history.add_event(RunStarted(train_batches=50))
    history.add_event(Eval(step=0, tokens_seen=64, train_loss=5.0, val_loss=5.1))
    empty = loss_chart(history, 60, 16, color=False)
    for step in range(40):  # no evaluation after step 0: the training line still grows
        history.add_event(Step(step=step, tokens_seen=64 * (step + 1), loss=5.0 - step / 20))
    drawn = loss_chart(history, 60, 16, color=False)
    assert drawn != empty and "train loss" in drawn
    # The legend is a line of its own above the plot, never drawn over the curves.
    first, *plot = drawn.splitlines()
    assert "train loss" in first and "val loss" in first
    assert not any("loss" in line for line in plot if "│" in line or "┤" in line)
    # The lowest y tick is near the last steps' loss (3.05), which no evaluation saw.
    ticks = [float(m) for m in re.findall(r"^\s*(\d+(?:\.\d+)?)\s*┤", drawn, re.M)]
    assert ticks and min(ticks) <= 3.5
    # The chapter's figure (`tui-gpt plot`) keeps to the evaluations.
    history_evals = LossHistory()
    history_evals.add_event(Step(step=3, loss=1.0))
    assert history_evals.step_losses.steps == []
    # Thinned by averaging runs of steps: the means, the last step kept.
    losses = StepLosses(list(range(10)), list(range(10)), [float(v) for v in range(10)])
    half = losses.averaged(5)
    assert half.loss == [0.5, 2.5, 4.5, 6.5, 8.5] and half.steps[-1] == 9
    assert losses.averaged(20) is losses


@pytest.fixture(scope="module")
def runs_of_two_tokenizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    bpe = train_tokenizer(inspect_source(str(NIGHT_KITCHEN)), 300, root / "bpe.json")
    out = []
    for tokenizer in ("byte", str(bpe.path)):
        cfg = TrainConfig(max_steps=4, batch_size=4, eval_freq=1, eval_iter=1, sample_tokens=0,
                          precision="fp32")  # fmt: skip
        spec = TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 32, tokenizer), cfg)
        job = assemble(spec, runs_dir=root / "runs")
        assert job.run_training() == "finished"
        out.append(details(job.run))
    return out


def test_runs_of_different_tokenizers_compare_in_bits_per_byte(runs_of_two_tokenizers):
    a, b = runs_of_two_tokenizers
    text = compare_chart([a, b], "steps", 70, 18, color=False)
    assert "validation bits per byte" in text
    both = compare_chart([a, b], "steps", 70, 18, train=True, color=False)
    assert "training and validation bits per byte" in both
    # The curves are the bits per byte (the byte-level run's reach 8, above any loss here).
    ticks = [float(m) for m in re.findall(r"^\s*(\d+(?:\.\d+)?)\s*[┤│]", text, re.M)]
    assert max(p.val_bpb for p in a.curve) > max(p.val_loss for r in (a, b) for p in r.curve)
    assert max(ticks) > max(p.val_loss for r in (a, b) for p in r.curve)
    # Steps as the logs number them, from 0, in whole numbers.
    x_labels = text.strip().splitlines()[-2]
    assert re.search(r"\b0\b", x_labels) and "." not in x_labels
    same = compare_chart([a, a], "steps", 70, 18, color=False)
    assert "validation loss" in same
