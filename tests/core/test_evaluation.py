"""Whole-split scoring: every token once, bits per byte over the bytes they stand for."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import SAMPLES, run_cli
from tests.trainings import config, start
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.evaluation import score
from tui_gpt.core.loss import token_byte_lengths
from tui_gpt.core.model import GPT
from tui_gpt.core.shape import GPTConfig
from tui_gpt.core.tokenizer import ByteTokenizer


def test_score_predicts_every_token_once_from_its_window():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=8, emb_dim=32, n_heads=2, n_layers=1,
                          dropout=0.0)).eval()  # fmt: skip
    ids = np.random.default_rng(0).integers(0, 257, 30)  # 29 targets: 3 windows of 8, one of 5
    lengths = token_byte_lengths(ByteTokenizer())
    got = score(model, ids, lengths, batch_size=2)
    nats = 0.0
    for at in range(0, 29, 8):
        x = torch.tensor(ids[at : min(at + 8, 29)])[None]
        y = torch.tensor(ids[at + 1 : min(at + 9, 30)])[None]
        nats += F.cross_entropy(model(x)[0], y[0], reduction="sum").item()
    assert got.tokens == 29 and got.bytes == int(lengths[torch.tensor(ids[1:])].sum())
    assert got.loss == pytest.approx(nats / 29, rel=1e-6)
    assert got.bpb == pytest.approx(nats / (got.bytes * math.log(2)), rel=1e-6)
    with pytest.raises(TuiGptError, match="too short"):
        score(model, ids[:1], lengths)


def test_eval_scores_the_whole_validation_split_or_any_text(runs_dir):
    job = start(runs_dir, config(max_steps=4, sample_tokens=0))
    job.run_training()
    root = ["--run-dir", str(runs_dir)]
    own = run_cli("eval", job.run.id, "--json", *root)
    assert own.returncode == 0, own.stderr
    mine = json.loads(own.stdout)
    assert mine["split"] == "validation" and mine["tokens"] == len(job.data.val_ids) - 1
    assert mine["bpb"] == pytest.approx(mine["loss"] / math.log(2))  # one byte per token
    other = json.loads(run_cli("eval", job.run.id, str(SAMPLES), "--json", *root).stdout)
    assert other["split"] == "all" and other["tokens"] > 10 * mine["tokens"]
    text = run_cli("eval", job.run.id, *root)
    assert "bits/byte" in text.stdout and "validation" in text.stdout


def test_a_whole_split_score_is_kept_shown_and_compared_until_its_weights_change(runs_dir):
    from tui_gpt.core.experiments import comparison_rows, describe, details
    from tui_gpt.core.jobs import assemble

    root = ["--run-dir", str(runs_dir)]
    jobs = [start(runs_dir, config(max_steps=4, sample_tokens=0, seed=s)) for s in (1, 2)]
    for job in jobs:
        job.run_training()
    first, second = (job.run for job in jobs)
    assert details(first).split_score is None  # nothing scored yet
    mine = json.loads(run_cli("eval", first.id, "--json", *root).stdout)
    json.loads(run_cli("eval", second.id, "--json", "--checkpoint", "latest", *root).stdout)
    run_cli("eval", first.id, str(SAMPLES), *root)  # other text: not the run's own score
    d = details(first)
    assert set(d.split_scores) == {"best"} and d.split_score.bpb == pytest.approx(mine["bpb"])
    assert d.split_score.tokens == mine["tokens"] and d.split_score.step == d.best_step
    assert any(line.startswith(f"whole val  best (step {d.best_step}): ") for line in describe(d))
    rows = {row[0]: row[1:] for row in comparison_rows([d, details(second)])}
    assert rows["whole val bits/byte"][0] == f"{mine['bpb']:.4f}"
    assert rows["whole val bits/byte"][1] != "-"  # the latest weights' score stands in
    assert json.loads(run_cli("runs", "show", first.id, "--json", *root).stdout)["split_scores"]

    # Trained further: its checkpoints are new, the recorded score is of older weights.
    assemble(resume=first.id, changes={"max_steps": 8}, runs_dir=runs_dir).run_training()
    assert details(first).split_scores == {}
    # A damaged scores file costs the scores, not the run's details.
    first.scores_path.write_text("{not json")
    assert details(first).split_scores == {} and details(first).steps == 8
