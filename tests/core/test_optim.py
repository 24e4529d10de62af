import json
import time

import pytest
import torch

from tests.conftest import NIGHT_KITCHEN
from tests.trainings import Recorder, config
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import RECIPES, ModelChoice, TrainConfig, TrainSpec
from tui_gpt.core.events import (
    Eval,
    Finished,
    PlanChanged,
    Progress,
    RunStarted,
    Step,
    finished_line,
)
from tui_gpt.core.jobs import JobHooks, assemble
from tui_gpt.core.model import GPT
from tui_gpt.core.optim import Muon, Paired, hidden_matrix, lr_scale, orthogonalized
from tui_gpt.core.runs import summarize
from tui_gpt.core.trainer import TrainerControl

LLAMA = ModelChoice("nano", 64, "byte", arch="llama")


def start(runs_dir, cfg, sinks=(), control=None, model=LLAMA, started=None):
    spec = TrainSpec(str(NIGHT_KITCHEN), model, cfg)
    hooks = JobHooks(list(sinks), control)
    return assemble(spec, runs_dir=runs_dir, hooks=hooks, started=started)


def test_schedules_warm_up_then_hold_follow_a_cosine_or_decay_at_the_end():
    cosine = TrainConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr=0.1)
    assert [round(lr_scale(s, cosine, 14), 3) for s in (0, 1, 3)] == [0.25, 0.5, 1.0]
    assert lr_scale(4, cosine, 14) == pytest.approx(1.0)
    assert lr_scale(9, cosine, 15) == pytest.approx(0.55)
    assert lr_scale(14, cosine, 15) == pytest.approx(0.1)  # the last update, at min_lr
    assert lr_scale(100, TrainConfig(lr=0.5), 10) == 1.0  # constant: the reference's
    # wsd over 100 steps: flat for 80, then 20 updates linearly down to min_lr (here 0).
    wsd = TrainConfig(lr=2.0, schedule="wsd", decay_fraction=0.2)
    assert [lr_scale(s, wsd, 100) for s in (0, 50, 79)] == [1.0, 1.0, 1.0]
    assert [lr_scale(s, wsd, 100) for s in (80, 90, 99)] == [0.95, 0.45, 0.0]


def test_old_run_settings_with_cosine_decay_read_as_the_cosine_schedule():
    assert TrainConfig.from_dict({"cosine_decay": True}).schedule == "cosine"
    assert TrainConfig.from_dict({"cosine_decay": False}).schedule == "constant"


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = GPT(LLAMA.config(256))
    opt = Paired(model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.05), fused=True, bf16=False)
    named = dict(model.named_parameters())
    muon = {id(p) for p in opt.muon.param_groups[0]["params"]}
    assert {n for n, p in named.items() if id(p) in muon} == {
        n for n, p in named.items() if hidden_matrix(n, p)
    }
    assert "blocks.0.attn.qkv.weight" in {n for n, p in named.items() if id(p) in muon}
    assert id(named["tok_emb.weight"]) not in muon and id(named["final_norm.weight"]) not in muon
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 0.05]


def test_a_muon_run_resumes_exactly_with_its_state_and_schedule(runs_dir):
    cfg = config(optimizer="muon", muon_lr=0.02, lr=3e-3, warmup_steps=3, schedule="wsd",
                 decay_fraction=0.5, min_lr=3e-4, max_steps=14)  # fmt: skip
    straight = Recorder()
    assert start(runs_dir, cfg, [straight]).run_training() == "finished"
    control = TrainerControl()
    first = Recorder(stop_after_step=6, control=control)
    job = start(runs_dir, cfg, [first], control)
    assert job.run_training() == "stopped"
    ckpt = Checkpoint(job.run.latest)
    # Muon's momentum is saved under the model's own parameter numbering.
    order = [n for n, _ in job.trainer.model.named_parameters()]
    momentum = {order[int(k.split(".")[1])] for k in ckpt.keys if k.endswith("momentum_buffer")}
    assert momentum == {n for n, p in job.trainer.model.named_parameters() if hidden_matrix(n, p)}
    second = Recorder()
    resumed = assemble(resume=job.run.id, runs_dir=runs_dir, hooks=JobHooks([second]))
    assert resumed.run_training() == "finished"
    got = [e.loss for e in first.of(Step)] + [e.loss for e in second.of(Step)]
    assert got == [e.loss for e in straight.of(Step)]
    lrs = [e.lr for e in straight.of(Step)]
    assert lrs[:3] == pytest.approx([1e-3, 2e-3, 3e-3]) and lrs[3:7] == pytest.approx([3e-3] * 4)
    assert lrs[-1] == pytest.approx(3e-4)  # the last of 7 decaying steps, at min_lr
    assert lrs[-2] == pytest.approx(3e-4 + 2.7e-3 / 7)
    assert straight.of(Eval)[-1].val_loss < straight.of(Eval)[0].val_loss - 0.5


@pytest.mark.slow
def test_a_time_budget_sets_the_steps_and_ends_decayed_and_measured(runs_dir):
    rec = Recorder()
    began = time.monotonic()
    cfg = config(epochs=1000, minutes=0.1, schedule="wsd", lr=2e-3, eval_freq=20, sample_tokens=0)
    job = start(runs_dir, cfg, [rec], started=began - 1.0)  # a second of start-up already gone
    assert job.run_training() == "finished"
    took = time.monotonic() - began
    assert 3.0 < took < 5.0 + 2.0  # 6 s budget, 1 s of it already spent before
    steps = rec.of(Step)
    plans = rec.of(PlanChanged)
    assert plans and plans[-1].total_steps == len(steps) < 1000 * 11
    assert steps[-1].lr < 0.5 * 2e-3  # the schedule decayed before time was up
    # The run ends with an evaluation of its last weights, then a checkpoint.
    assert rec.events[-1].__class__ is Finished
    assert rec.of(Eval)[-1].step == steps[-1].step
    # It says that the budget ended it, and where the plan had it end.
    finished = rec.events[-1]
    assert finished.reason == "budget" and finished.planned_steps > 0
    said = f"time budget (0.1 min) reached at step {len(steps):,}"
    if finished.planned_steps > len(steps):  # slower than the plan measured
        said += f" of {finished.planned_steps:,} planned"
    assert finished_line(finished) == said
    assert summarize(job.run).describe() == f"finished: {said}"
    # The start says when the budget runs out (what the progress line's ETA is capped by).
    [started] = [e for e in job.run.typed_events() if isinstance(e, RunStarted)]
    assert started.ends_by is not None and abs(started.ends_by - (time.time() - took + 5.0)) < 1.0
    # Ended by its epochs instead: the closing evaluation is said to be of the last epoch.
    short = Recorder()
    small = config(epochs=2, minutes=5.0, eval_freq=100, sample_tokens=0)
    assert start(runs_dir, small, [short]).run_training() == "finished"
    assert [e.epoch for e in short.of(Eval)] == [1, 2] and short.events[-1].epoch == 2
    assert finished_line(short.events[-1]) == "2 epochs done (22 steps)"
    progress = Progress()
    for event in rec.events:
        progress.update(event)
    assert progress.total == progress.done == len(steps)
    assert Checkpoint(job.run.latest).train_state["steps_done"] == len(steps)


def test_muon_needs_no_change_of_the_reference_model(runs_dir):
    """GPT-2's block trains with Muon as well (its matrices; biases and norms on AdamW)."""
    rec = Recorder()
    cfg = config(optimizer="muon", max_steps=12, eval_freq=11)
    job = start(runs_dir, cfg, [rec], model=ModelChoice("nano", 64, "byte"))
    assert job.run_training() == "finished"
    evals = rec.of(Eval)
    assert evals[-1].train_loss < evals[0].train_loss - 0.5
    assert all(torch.isfinite(p).all() for p in job.trainer.model.parameters())


def test_muon_steps_as_torch_muon_does_within_bf16_rounding():
    """The same method as torch.optim.Muon (momentum, Nesterov, Newton-Schulz, shape
    scaling); tui-gpt's runs the iteration in fp32 on a CPU, torch's in bf16."""
    torch.manual_seed(0)
    ours, theirs = torch.randn(96, 32, requires_grad=True), None
    theirs = ours.detach().clone().requires_grad_(True)
    a = Muon([ours], lr=0.02)
    b = torch.optim.Muon([theirs], lr=0.02, weight_decay=0.0)
    start = ours.detach().clone()
    for _ in range(3):
        grad = torch.randn(96, 32)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    assert (ours.detach() - start).abs().max() > 0.02  # a real move...
    assert torch.allclose(ours.detach(), theirs.detach(), atol=2e-3)  # ...to the same place
    for bf16 in (False, True):
        update = orthogonalized(torch.randn(64, 16), bf16)
        assert update.dtype == torch.float32
        singular = torch.linalg.svdvals(update)
        assert singular.min() > 0.5 and singular.max() < 1.5  # flattened, as the method promises


def test_muons_iteration_follows_the_runtime_it_is_given_and_then_chosen():
    """bf16 where the run computes in bf16 on hardware with bf16 units, fp32 otherwise; a
    runtime `auto` chooses after the optimizer exists is followed too."""
    from dataclasses import replace

    from tui_gpt.core import device
    from tui_gpt.core.device import Runtime
    from tui_gpt.core.optim import follow_runtime, make_optimizer

    model = GPT(LLAMA.config(256))
    cfg = TrainConfig(optimizer="muon")
    fp32 = Runtime(torch.device("cpu"), "fp32")
    opt = make_optimizer(model, cfg, fp32)
    assert isinstance(opt, Paired) and opt.muon.bf16 is False
    bf16 = replace(fp32, precision="bf16")
    follow_runtime(opt, bf16)
    assert opt.muon.bf16 is device.cpu_has_bf16()
    follow_runtime(opt, fp32)
    assert opt.muon.bf16 is False


@pytest.mark.slow
def test_the_fast_recipe_is_what_train_starts_from_and_reference_is_the_chapter(tmp_path, monkeypatch):
    from tests.conftest import run_cli

    monkeypatch.delenv("TUI_GPT_RECIPE")
    runs = str(tmp_path / "runs")
    fast = run_cli("--run-dir", runs, "train", str(NIGHT_KITCHEN), "--minutes", "0.1",
                   "--preset", "nano", "--context-length", "32")  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    assert "fitting a 512-token tokenizer" in fast.stderr
    assert "plan: 0.1 min budget: about" in fast.stdout or "(within the 0.1 min budget)" in fast.stdout
    saved = json.loads(next((tmp_path / "runs").glob("*/settings.json")).read_text())
    given = {"preset": "nano", "minutes": 0.1}  # the flags above
    recipe = {**RECIPES["fast"].model, **RECIPES["fast"].train}
    chosen = {k: saved["model"].get(k, saved["train"].get(k)) for k in recipe}
    # Blank in the recipe, the epochs are sized to the budget and recorded as a number.
    assert recipe["epochs"] is None and isinstance(saved["train"]["epochs"], int)
    assert chosen == {**recipe, **given, "epochs": saved["train"]["epochs"]}
    assert saved["model"]["context_length"] == 32
    reference = run_cli("--run-dir", runs, "train", str(NIGHT_KITCHEN), "--recipe", "reference",
                        "--tokenizer", "byte", "--max-steps", "1", "--preset", "nano")  # fmt: skip
    assert reference.returncode == 0, reference.stderr
    assert "(gpt2)" in reference.stdout
    newest = max((tmp_path / "runs").glob("*/settings.json"), key=lambda p: p.stat().st_mtime)
    saved = json.loads(newest.read_text())
    assert saved["train"] == {**TrainConfig().to_dict(), "max_steps": 1}
    mixed = run_cli("--run-dir", runs, "train", "--resume", "x", "--recipe", "fast")
    assert mixed.returncode == 2 and "--recipe starts a new run" in mixed.stderr
