"""Runs side by side, on real tiny trainings: facts, differing settings, CSV rows, labels."""

import csv

import pytest

from tests.conftest import NIGHT_KITCHEN, needs_gpt2
from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec
from tui_gpt.core.events import Eval, Finished, Notice, Paused, Resumed, RunStarted, Step, Stopped
from tui_gpt.core.experiments import (
    comparison_rows,
    details,
    differing,
    metric_for,
    short_names,
    training_seconds,
    write_csv,
)
from tui_gpt.core.jobs import assemble
from tui_gpt.core.runs import list_runs, matching, set_label


def tiny_run(runs_dir, lr: float):
    cfg = TrainConfig(max_steps=6, batch_size=8, eval_freq=2, eval_iter=1, lr=lr,
                      precision="fp32", sample_tokens=0)  # fmt: skip
    job = assemble(
        TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 32, "byte"), cfg), runs_dir=runs_dir
    )
    assert job.run_training() == "finished"
    return job.run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return tiny_run(root, 1e-3), tiny_run(root, 3e-3)


def test_only_the_differing_setting_is_listed(two_runs):
    a, b = (details(r) for r in two_runs)
    assert differing([a, b]) == {"lr": [1e-3, 3e-3]}
    assert a.steps == 6 and a.tokens_seen == 6 * 8 * 32 and a.tokenizer == "byte"
    assert [p.step for p in a.curve] == [0, 2, 4, 5]  # and the weights it ended with
    assert a.best_val_loss == min(p.val_loss for p in a.curve)
    assert a.tok_per_s and a.tok_per_s > 0 and a.wall_seconds > 0


def test_csv_rows_are_the_eval_events(two_runs, tmp_path):
    runs = [details(r) for r in two_runs]
    out = tmp_path / "curves.csv"
    assert write_csv(runs, out) == 8
    rows = list(csv.DictReader(out.open()))
    expected = [(r.id, e["step"], e["tokens_seen"], e["train_loss"], e["val_loss"])
                for r in two_runs for e in r.events() if e["event"] == "eval"]  # fmt: skip
    got = [(row["run"], int(row["step"]), int(row["tokens_seen"]), float(row["train_loss"]),
            float(row["val_loss"])) for row in rows]  # fmt: skip
    assert got == expected
    # Training time from the run's start (the charts' time axis), beside the Unix time.
    for r in runs:
        mine = [row for row in rows if row["run"] == r.id]
        assert [float(row["training_seconds"]) for row in mine] == pytest.approx(
            [p.seconds for p in r.curve], abs=1e-3
        )
        assert float(mine[0]["time"]) > 1e9 > float(mine[-1]["training_seconds"])


def test_training_time_leaves_out_the_wait_before_a_resume():
    events = [
        RunStarted(time=100.0), Step(step=0, time=110.0), Eval(step=0, time=112.0),
        RunStarted(time=5000.0, step=0), Step(step=1, time=5004.0), Finished(step=1, time=5005.0),
    ]  # fmt: skip
    assert training_seconds(events) == [0, 10, 12, 12, 16, 17]
    # Nor the time it sat paused (15 minutes here).
    paused = [
        RunStarted(time=100.0), Step(step=0, time=110.0), Paused(step=0, time=111.0),
        Resumed(step=0, time=1011.0), Step(step=1, time=1015.0), Finished(step=1, time=1016.0),
    ]  # fmt: skip
    assert training_seconds(paused) == [0, 10, 11, 11, 15, 16]


def test_training_further_leaves_out_the_wait_after_the_finish():
    """A finished run trained further: the hours between the finish and the new start, and
    the "resumed with" notice written before the new start, are not training time."""
    events = [
        RunStarted(time=100.0), Step(step=0, time=110.0), Eval(step=0, time=112.0),
        Finished(step=0, time=113.0), Notice(step=0, time=5000.0, message="resumed with ..."),
        RunStarted(time=5001.0, step=0), Step(step=1, time=5005.0), Stopped(step=1, time=5006.0),
        RunStarted(time=9000.0, step=1), Step(step=2, time=9002.0),
    ]  # fmt: skip
    assert training_seconds(events) == [0, 10, 12, 13, 13, 13, 17, 18, 18, 20]


def test_labels_name_runs_and_filter_them(two_runs):
    a, b = two_runs
    set_label(a, "  low   lr ")
    root = a.path.parent
    assert details(a).label == "low lr"
    assert short_names([details(a), details(b)]) == ["low lr", b.id[9:15]]
    assert [s.id for s in matching(list_runs(root), label="LOW")] == [a.id]
    assert {s.id for s in matching(list_runs(root), dataset="night", state="finished")} == {
        a.id,
        b.id,
    }
    assert matching(list_runs(root), state="live") == []


@needs_gpt2
def test_runs_with_different_tokenizers_compare_in_bits_per_byte(two_runs, tmp_path):
    cfg = TrainConfig(max_steps=4, batch_size=4, eval_freq=2, eval_iter=1, precision="fp32",
                      sample_tokens=0)  # fmt: skip
    spec = TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 32, "gpt2"), cfg)
    bpe = assemble(spec, runs_dir=tmp_path)
    bpe.run_training()
    runs = [details(two_runs[0]), details(bpe.run)]
    assert metric_for(runs) == "bpb" and "tokenizer" in differing(runs)
    assert all(p.val_bpb and 0 < p.val_bpb < 20 for r in runs for p in r.curve)
    assert "best val bits/byte" in [row[0] for row in comparison_rows(runs)]
    assert metric_for([details(r) for r in two_runs]) == "loss"  # one tokenizer: loss


def test_settings_are_shown_as_flags_with_what_unset_means():
    from tui_gpt.core.experiments import setting_lines

    shown = dict(setting_lines({"dropout": None, "stride": None, "grad_clip": None,
                                "compile": False, "lr": 4e-4, "dataset": "abc"}))  # fmt: skip
    assert shown == {"--dropout": "0.1", "--stride": "context length", "--grad-clip": "off",
                     "--compile": "no", "--lr": "0.0004", "dataset": "abc"}  # fmt: skip
    # A llama-only setting is shown for a llama run, and left out for a gpt2 one.
    assert "--kv-heads" in dict(setting_lines({"arch": "llama", "kv_heads": None}))
    assert "--kv-heads" not in dict(setting_lines({"arch": "gpt2", "kv_heads": None}))
