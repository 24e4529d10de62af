import pytest
import torch

from tui_gpt.core.config import ModelChoice, TrainConfig
from tui_gpt.core.device import Runtime
from tui_gpt.core.estimate import cached_step_seconds, make_plan, step_seconds


def test_a_step_is_measured_once_and_leaves_the_random_state_alone():
    shape = ModelChoice("nano", arch="llama").config(257, 32)
    cfg = TrainConfig(batch_size=4, optimizer="muon")
    runtime = Runtime(torch.device("cpu"), "fp32", 1)
    assert cached_step_seconds(shape, cfg, 32, runtime) is None
    before = torch.get_rng_state()
    measured = step_seconds(shape, cfg, 32, runtime)
    assert torch.equal(torch.get_rng_state(), before)  # a run seeded before is unaffected
    assert 0 < measured < 10
    assert cached_step_seconds(shape, cfg, 32, runtime) == measured
    assert step_seconds(shape, cfg, 32, runtime) == measured  # remembered, not measured again
    other = TrainConfig(batch_size=8, optimizer="muon")
    assert cached_step_seconds(shape, other, 32, runtime) is None  # another setup


def test_the_plan_counts_evaluations_and_fits_a_budget():
    cfg = TrainConfig(eval_freq=10, eval_iter=3)  # 6 forward batches every 10 steps: +20%
    plan = make_plan(cfg, 0.1, steps_per_epoch=50, tokens_per_step=256, step_bound=500)
    assert plan.steps == 500 and plan.step_seconds == 0.12 and plan.epochs == 10
    assert plan.line() == "plan: 500 steps (10.00 epochs, 128,000 tokens), about 60 s at 120 ms/step measured"
    budget = TrainConfig(eval_freq=10, eval_iter=3, minutes=1)
    assert make_plan(budget, 0.1, 50, 256, 500, seconds_left=30).steps == 250
    assert make_plan(budget, 0.1, 50, 256, 100, seconds_left=30).steps == 100  # epochs bound
    assert make_plan(budget, 0.1, 50, 256, 0, seconds_left=30).steps == 0  # nothing left
    assert make_plan(budget, 0.1, 50, 256, 500, seconds_left=-1).steps == 0
    assert make_plan(budget, 0.1, 50, 256, 1000).line().startswith("plan: 1 min budget: about 500")
    # The epochs end the run before the budget does: the plan says so, not "budget".
    small = make_plan(budget, 0.1, 2, 256, 8).line()
    assert small.startswith("plan: 8 steps (4.00 epochs") and small.endswith("(within the 1 min budget)")


def test_a_training_keeps_its_real_pace_for_the_next_plan(tmp_path):
    """A measurement taken on a busy machine must not stand for good: the steps a training
    really took replace it for the next plan of the same setup."""
    from tests.conftest import NIGHT_KITCHEN
    from tui_gpt.core import estimate
    from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec
    from tui_gpt.core.jobs import assemble

    cfg = TrainConfig(max_steps=8, batch_size=2, eval_freq=100, eval_iter=1, sample_tokens=0,
                      precision="fp32")  # fmt: skip
    job = assemble(TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 32, "byte"), cfg),
                   runs_dir=tmp_path / "runs")  # fmt: skip
    trainer = job.trainer
    args = (trainer.model.cfg, trainer.cfg, trainer._context_length, trainer.runtime)
    estimate.remember_step_seconds(*args, 1000.0)  # as if measured while the CPU was busy
    assert estimate.cached_step_seconds(*args) == 1000.0
    assert job.run_training() == "finished"
    assert estimate.cached_step_seconds(*args) < 10.0


def _auto_job(tmp_path, monkeypatch):
    """A 2-step nano job under `--precision auto` on a CPU said to have bf16 units."""
    from tests.conftest import NIGHT_KITCHEN
    from tui_gpt.core import device
    from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec
    from tui_gpt.core.jobs import assemble

    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    cfg = TrainConfig(max_steps=2, batch_size=2, eval_freq=100, eval_iter=1, sample_tokens=0,
                      precision="auto")  # fmt: skip
    return assemble(TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 32, "byte"), cfg),
                    runs_dir=tmp_path / "runs")  # fmt: skip


def _remember_faster(trainer, faster: str) -> None:
    """Step times remembered for each runtime `auto` weighs: the one labelled `faster` the
    shortest."""
    from tui_gpt.core import estimate

    for runtime in estimate.candidates(trainer.cfg, trainer.runtime):
        seconds = 0.001 if runtime.label == faster else 1.0
        estimate.remember_step_seconds(trainer.model.cfg, trainer.cfg, trainer._context_length, runtime, seconds)


@pytest.mark.parametrize("faster", ["fp32", "bf16", "bf16 (fp32 attention)"])
def test_auto_precision_is_the_faster_step_where_the_cpu_has_a_choice(tmp_path, monkeypatch, faster):
    """On a CPU with bf16 units, which precision trains faster, and whether attention is
    faster in fp32 under bf16, depend on the model's size and the CPU: `auto` takes the
    runtime whose measured (here: remembered) step is shortest, trains in it, and the plan
    says so with the others' times."""
    import json

    job = _auto_job(tmp_path, monkeypatch)
    _remember_faster(job.trainer, faster)
    assert job.run_training() == "finished"
    events = [json.loads(line) for line in job.run.events_path.read_text().splitlines()]
    started = next(e for e in events if e["event"] == "run_started")
    assert started["precision"] == faster.split()[0]
    assert job.trainer.model.fp32_attention is (faster == "bf16 (fp32 attention)")
    slower = [r for r in ("bf16 (fp32 attention)", "bf16", "fp32") if r != faster]
    plan = next(e["message"] for e in events if e["event"] == "notice" and e["message"].startswith("plan:"))
    assert f"auto: {faster} 1 ms a step; {slower[0]} 1,000; {slower[1]} 1,000" in plan


def test_a_resumed_run_keeps_the_precision_auto_chose_when_it_began(tmp_path, monkeypatch):
    """Resumed, `auto` is not measured again: the run trains on in the precision it began
    with (a busy moment must not switch a run's numerics halfway), and still says auto."""
    import json

    from tui_gpt.core.jobs import assemble

    job = _auto_job(tmp_path, monkeypatch)
    _remember_faster(job.trainer, "bf16")  # bf16 the faster when it began
    assert job.run_training() == "finished"
    _remember_faster(job.trainer, "fp32")  # fp32 the faster later
    resumed = assemble(resume=job.run.id, runs_dir=tmp_path / "runs", further="1")
    assert resumed.trainer.runtime.precision == "bf16"
    assert resumed.run_training() == "finished"
    events = [json.loads(line) for line in job.run.events_path.read_text().splitlines()]
    assert [e["precision"] for e in events if e["event"] == "run_started"] == ["bf16", "bf16"]
    assert json.loads(job.run.record_path.read_text())["train"]["precision"] == "auto"


def test_a_resumed_run_keeps_attention_where_auto_put_it_when_it_began(tmp_path, monkeypatch):
    """bf16 with attention in fp32 computes slightly other numbers than bf16 attention: a
    resumed run trains on in the runtime it began with, attention included, whatever is
    faster by then; run_started records it."""
    import json

    from tui_gpt.core.jobs import assemble

    job = _auto_job(tmp_path, monkeypatch)
    _remember_faster(job.trainer, "bf16 (fp32 attention)")
    assert job.run_training() == "finished"
    _remember_faster(job.trainer, "bf16")  # plain bf16 the faster later
    resumed = assemble(resume=job.run.id, runs_dir=tmp_path / "runs", further="1")
    assert resumed.run_training() == "finished"
    assert resumed.trainer.runtime.label == "bf16 (fp32 attention)"
    assert resumed.trainer.model.fp32_attention is True
    events = [json.loads(line) for line in job.run.events_path.read_text().splitlines()]
    assert [e["fp32_attention"] for e in events if e["event"] == "run_started"] == [True, True]
