import threading
import time
from dataclasses import replace

import pytest
import torch

from tests.conftest import NIGHT_KITCHEN
from tests.trainings import Recorder, config, start
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import RECIPES, ModelChoice, TrainConfig, TrainSpec
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import CheckpointSaved, Eval, Event, Notice, Sample, Step
from tui_gpt.core.jobs import JobHooks, assemble
from tui_gpt.core.sampling import load_for_sampling
from tui_gpt.core.trainer import TrainerControl, TrainingDiverged


def test_every_end_is_evaluated_so_best_is_never_older_than_the_last_save(runs_dir):
    """Evaluating every 100 steps, a run stopped at step 7 has evaluated only step 0: its
    stop evaluates the weights it saves, so `best` is those trained weights (not the
    untrained step-0 ones) and every loader says which weights it loaded."""
    control = TrainerControl()
    rec = Recorder(stop_after_step=7, control=control)
    job = start(runs_dir, config(eval_freq=100, lr=3e-3), [rec], control)
    assert job.run_training() == "stopped"
    assert [e.step for e in rec.of(Eval)] == [0, 7]
    best, latest = Checkpoint(job.run.best), Checkpoint(job.run.latest)
    val = rec.of(Eval)[-1].val_loss
    assert val < rec.of(Eval)[0].val_loss
    assert best.train_state["steps_done"] == latest.train_state["steps_done"] == 8
    assert best.describe() == f"best, step 7, val loss {val:.3f}"
    assert latest.describe() == f"latest, step 7, val loss {val:.3f}"
    assert load_for_sampling(job.run.id, runs_dir=runs_dir).weights == best.describe()


def test_a_checkpoint_mid_run_is_evaluated_first(runs_dir):
    control = TrainerControl()
    events: list[Event] = []

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, Step) and event.step == 3:
            control.request_checkpoint()

    job = start(runs_dir, config(max_steps=6, eval_freq=100), [sink], control)
    assert job.run_training() == "finished"
    kinds = [(e.name, e.step) for e in events
             if isinstance(e, Eval) or (isinstance(e, CheckpointSaved) and e.kind == "latest")]
    assert kinds == [("eval", 0), ("checkpoint", 0), ("eval", 3), ("checkpoint", 3),
                     ("eval", 5), ("checkpoint", 5)]  # fmt: skip


def test_latest_is_also_saved_after_an_evaluation_where_saving_is_cheap(runs_dir):
    """Besides every --checkpoint-minutes: after an evaluation, where the last save took at
    most 2% of the time since it (a small model: a kill loses little)."""
    job = start(runs_dir, config(max_steps=2, eval_freq=1, checkpoint_minutes=60))
    assert job.run_training() == "finished"
    t = job.trainer
    assert 0 < t._save_seconds < 5  # the real save's own time
    t._evaluated_at = t.state.steps_done  # as right after an evaluation
    t._last_save, t._save_seconds = time.monotonic() - 10.0, 0.1  # 1% of the time since
    assert t._save_due()
    t._save_seconds = 0.5  # 5%: it waits for --checkpoint-minutes
    assert not t._save_due()
    t._save_seconds, t._evaluated_at = 0.1, t.state.steps_done - 1  # no evaluation since
    assert not t._save_due()


def test_the_automatic_evaluation_cadence_scales_with_the_run():
    auto = TrainConfig(eval_freq=None, eval_iter=5)
    # About 20 evaluations a run; never more often than a tenth of the time allows (an
    # evaluation of 2 x 5 forward batches costs about 3.3 steps: every 34 steps at most).
    assert [auto.eval_interval(n) for n in (10, 52, 680, 2000, 10_000)] == [34, 34, 34, 100, 500]
    assert TrainConfig(eval_freq=None, eval_iter=1).eval_interval(52) == 7
    assert TrainConfig(eval_freq=5).eval_interval(10_000) == 5
    fast = RECIPES["fast"].settings()[1]
    assert fast.eval_freq is None


def test_training_further_is_one_run_evaluated_at_its_end(runs_dir):
    job = start(runs_dir, config(epochs=1, eval_freq=100))
    assert job.run_training() == "finished"
    run, done = job.run, 11
    info = run.record_path.read_bytes()
    with pytest.raises(TuiGptError, match=f"made the {done} steps its 1 epoch allow: nothing"):
        assemble(resume=run.id, runs_dir=runs_dir)
    assert run.record_path.read_bytes() == info  # refused before anything was written
    rec = Recorder()
    further = assemble(resume=run.id, runs_dir=runs_dir, further="5",
                       hooks=JobHooks([rec]))  # fmt: skip
    assert further.run_training() == "finished"
    assert [e.step for e in rec.of(Step)] == list(range(done, done + 5))
    assert [e.step for e in rec.of(Eval)] == [done + 4]
    assert run.record().train_config().max_steps == done + 5


def test_end_to_end_loss_falls_with_events_and_checkpoints(runs_dir):
    rec = Recorder()
    job = start(runs_dir, config(epochs=3), [rec])
    assert job.run_training() == "finished"
    steps = rec.of(Step)
    assert len(job.trainer.train_loader) == 11
    assert [e.step for e in steps] == list(range(33))
    assert steps[-1].tokens_seen == 33 * 8 * 64
    evals = rec.of(Eval)
    # Every fifth step, and the last weights when the training ends.
    assert [e.step for e in evals] == [0, 5, 10, 15, 20, 25, 30, 32]
    assert evals[-1].train_loss < evals[0].train_loss - 1.0
    samples = rec.of(Sample)
    assert len(samples) == 3 and all(s.text.startswith("Every effort moves you") for s in samples)
    run = job.run
    names = [line["event"] for line in run.events()]
    assert names[0] == "run_started" and names[-1] == "finished"
    for line in run.events():
        assert {"event", "time", "step", "epoch", "tokens_seen"} <= set(line)
    assert run.status().status == "finished"
    latest = Checkpoint(run.latest)
    assert latest.has_optimizer and latest.train_state["steps_done"] == 33
    best = Checkpoint(run.best)
    assert not best.has_optimizer
    assert best.train_state["best_val_loss"] == pytest.approx(min(e.val_loss for e in evals))


def test_stop_and_resume_gives_exactly_the_same_losses(runs_dir):
    straight = Recorder()
    start(runs_dir, config(max_steps=20), [straight]).run_training()

    control = TrainerControl()
    first = Recorder(stop_after_step=12, control=control)  # stops in epoch 2, batch 2
    job = start(runs_dir, config(max_steps=20), [first], control)
    assert job.run_training() == "stopped"
    assert job.run.status().status == "stopped"
    assert Checkpoint(job.run.latest).train_state == {
        "epoch": 1,
        "batch": 2,
        "steps_done": 13,
        "tokens_seen": 13 * 8 * 64,
        "best_val_loss": pytest.approx(first.of(Eval)[-1].val_loss),
    }
    second = Recorder()
    resumed = assemble(resume=job.run.id, runs_dir=runs_dir, hooks=JobHooks([second]))
    assert resumed.run_training() == "finished"

    expected = [e.loss for e in straight.of(Step)]
    got = [e.loss for e in first.of(Step)] + [e.loss for e in second.of(Step)]
    assert got == expected  # bit-for-bit on CPU in fp32
    assert [(e.step, e.val_loss) for e in second.of(Eval)] == [
        (e.step, e.val_loss) for e in straight.of(Eval) if e.step >= 13
    ]


def test_samples_do_not_change_the_training_trajectory(runs_dir):
    with_samples, without = Recorder(), Recorder()
    start(runs_dir, config(epochs=2, sample_tokens=20), [with_samples]).run_training()
    start(runs_dir, config(epochs=2, sample_tokens=0), [without]).run_training()
    assert [e.loss for e in with_samples.of(Step)] == [e.loss for e in without.of(Step)]
    assert len(with_samples.of(Sample)) == 2 and not without.of(Sample)


def test_pause_resume_and_stop_from_another_thread(runs_dir):
    control = TrainerControl()
    seen = threading.Event()
    rec = Recorder()

    def sink(event):
        rec(event)
        if isinstance(event, Step) and event.step == 2:
            control.pause()
            seen.set()

    job = start(runs_dir, config(epochs=50), [sink], control)
    result = {}
    worker = threading.Thread(target=lambda: result.update(outcome=job.run_training()))
    worker.start()
    assert seen.wait(60)
    # The trainer blocks after step 2 until resumed.
    paused_at = len(rec.of(Step))
    worker.join(0.5)
    assert worker.is_alive() and len(rec.of(Step)) == paused_at
    assert job.run.status().status == "paused"
    control.resume()
    control.stop("enough")
    worker.join(60)
    assert not worker.is_alive()
    assert result["outcome"] == "stopped"
    names = [e.name for e in rec.events]
    assert "paused" in names and names[-1] == "stopped"
    assert job.run.status().status == "stopped"
    assert job.run.latest.is_file()


def test_diverging_loss_stops_and_keeps_last_good_checkpoint(runs_dir):
    good = start(runs_dir, config(max_steps=3))
    good.run_training()
    before = good.run.latest.read_bytes()
    # Continue the same run with an absurd learning rate: the loss becomes NaN.
    job = assemble(resume=good.run.id, changes={"max_steps": 10}, runs_dir=runs_dir)
    for group in job.trainer.optimizer.param_groups:
        group["lr"] = 1e30
    job.trainer.cfg.lr = 1e30
    with pytest.raises(TrainingDiverged, match="became nan"):
        job.run_training()
    assert job.run.status().status == "failed"
    assert good.run.latest.read_bytes() == before
    assert job.run.events()[-1]["event"] == "error"


def test_clipping_and_determinism(runs_dir):
    a, b = Recorder(), Recorder()
    start(runs_dir, config(max_steps=6, grad_clip=0.5), [a]).run_training()
    start(runs_dir, config(max_steps=6, grad_clip=0.5), [b]).run_training()
    assert [e.loss for e in a.of(Step)] == [e.loss for e in b.of(Step)]
    assert torch.isfinite(torch.tensor([e.loss for e in a.of(Step)])).all()


def test_compile_failure_falls_back_to_eager_with_the_same_losses(runs_dir, monkeypatch):
    def broken_compile(module, *args, **kwargs):
        def compiled(*a, **kw):
            raise RuntimeError("no C++ compiler here\nlong details")

        return compiled

    eager = Recorder()
    start(runs_dir, config(max_steps=4, sample_tokens=0), [eager]).run_training()
    monkeypatch.setattr(torch, "compile", broken_compile)
    fallback = Recorder()
    job = start(runs_dir, config(max_steps=4, sample_tokens=0, compile=True), [fallback])
    assert job.run_training() == "finished"
    notices = [e.message for e in fallback.of(Notice)]
    assert notices[0].startswith("plan: 4 steps") and notices[1].startswith("compiling the model")
    assert "torch.compile failed (RuntimeError: no C++ compiler here); training eager" in notices
    assert [e.loss for e in fallback.of(Step)] == [e.loss for e in eager.of(Step)]


# ------------------------------------------------------------------ gradient accumulation


def _model_after(cfg, runs_dir, steps=3):
    """Losses of `steps` updates and the weights after them, without dropout."""
    rec = Recorder()
    spec = TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 64, "byte", dropout=0.0), cfg)
    job = assemble(spec, runs_dir=runs_dir, hooks=JobHooks([rec]))
    assert job.run_training() == "finished"
    return [e.loss for e in rec.of(Step)], job.trainer.model.state_dict(), rec


def test_accumulated_micro_batches_equal_one_batch_that_many_times_larger(runs_dir):
    whole, w_whole, _ = _model_after(config(batch_size=8, max_steps=3), runs_dir)
    for micro, accum in ((4, 2), (1, 8)):
        losses, weights, rec = _model_after(
            config(batch_size=micro, grad_accum=accum, max_steps=3), runs_dir
        )
        assert losses == pytest.approx(whole, rel=1e-5)
        for name, value in w_whole.items():
            torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-6)
        # An update is one step of the log; tokens count every micro-batch.
        assert [e.step for e in rec.of(Step)] == [0, 1, 2]
        assert rec.of(Step)[-1].tokens_seen == 3 * 8 * 64


def test_resume_with_gradient_accumulation_is_exact(runs_dir):
    straight = Recorder()
    start(runs_dir, config(batch_size=4, grad_accum=2, max_steps=8), [straight]).run_training()
    control = TrainerControl()
    first = Recorder(stop_after_step=3, control=control)
    job = start(runs_dir, config(batch_size=4, grad_accum=2, max_steps=8), [first], control)
    assert job.run_training() == "stopped"
    second = Recorder()
    assemble(resume=job.run.id, runs_dir=runs_dir, hooks=JobHooks([second])).run_training()
    got = [e.loss for e in first.of(Step)] + [e.loss for e in second.of(Step)]
    assert got == [e.loss for e in straight.of(Step)]


def test_activation_checkpointing_computes_the_same_training(runs_dir):
    # With dropout on: the recomputed blocks must draw the same masks.
    base = dict(max_steps=3, eval_freq=100)
    plain = Recorder()
    start(runs_dir, config(**base), [plain]).run_training()
    ckpt = Recorder()
    start(runs_dir, config(**base, activation_checkpointing=True), [ckpt]).run_training()
    assert [e.loss for e in ckpt.of(Step)] == pytest.approx(
        [e.loss for e in plain.of(Step)], rel=1e-5
    )


def test_steps_report_mfu_against_the_measured_peak(runs_dir):
    from tui_gpt.core.events import RunStarted

    rec = Recorder()
    start(runs_dir, config(max_steps=2), [rec]).run_training()
    [started] = rec.of(RunStarted)
    assert started.peak_source == "measured" and started.peak_flops > 1e9
    assert started.memory_estimate > 0
    assert all(0 < e.mfu < 1 for e in rec.of(Step))
    given = Recorder()
    start(runs_dir, config(max_steps=1, peak_tflops=1000.0), [given]).run_training()
    assert (
        given.of(RunStarted)[0].peak_flops == 1e15
        and given.of(RunStarted)[0].peak_source == "given"
    )


def test_a_llama_run_trains_resumes_exactly_and_decodes(runs_dir):
    """The modern block through the whole loop: loss falls, a stop and resume in a new
    process (the peak measured again) gives the same losses with dropout on, and the
    checkpoint decodes with the cache, in bf16 and int8."""
    from tui_gpt.core import flops
    from tui_gpt.core.generate import generate
    from tui_gpt.core.quantize import quantize_int8

    def spec(**changes):
        choice = ModelChoice("nano", 64, "byte", arch="llama", kv_heads=1, qk_norm=True)
        return TrainSpec(str(NIGHT_KITCHEN), choice, config(max_steps=16, **changes))

    straight = Recorder()
    job = assemble(spec(), runs_dir=runs_dir, hooks=JobHooks([straight]))
    assert job.trainer.model.cfg.arch == "llama" and job.trainer.model.cfg.dropout > 0
    job.run_training()
    losses = [e.loss for e in straight.of(Step)]
    assert losses[-1] < losses[0] - 0.5
    control = TrainerControl()
    first = Recorder(stop_after_step=6, control=control)
    stopped = assemble(spec(), runs_dir=runs_dir, hooks=JobHooks([first], control))
    assert stopped.run_training() == "stopped"
    flops._measured.cache_clear()
    second = Recorder()
    assemble(resume=stopped.run.id, runs_dir=runs_dir, hooks=JobHooks([second])).run_training()
    assert [e.loss for e in first.of(Step) + second.of(Step)] == losses
    model = Checkpoint(job.run.weights()).build_model().eval()
    ids = torch.tensor([[70, 71, 72]])
    want = generate(model, ids, 40, use_cache=False)
    assert torch.equal(generate(model, ids, 40), want)  # 40 new tokens: past the context too
    assert generate(model.to(torch.bfloat16), ids, 5).shape == (1, 8)
    int8 = quantize_int8(Checkpoint(job.run.weights()).build_model().eval())
    assert generate(int8, ids, 5).shape == (1, 8)
    started = assemble(replace(spec(), init_from=job.run.id), runs_dir=runs_dir)
    assert started.trainer.model.cfg.arch == "llama"  # the shape of the model it starts from
    best = Checkpoint(job.run.weights()).build_model()
    assert torch.equal(started.trainer.model.out_head.weight, best.out_head.weight)
    started.lock.release()


def test_llama_accumulation_and_recomputation_compute_the_same_training(runs_dir):
    def losses(**changes):
        rec = Recorder()
        choice = ModelChoice("nano", 64, "byte", arch="llama", dropout=0.0)
        cfg = config(max_steps=4, sample_tokens=0, **changes)
        assemble(TrainSpec(str(NIGHT_KITCHEN), choice, cfg), runs_dir=runs_dir,
                 hooks=JobHooks([rec])).run_training()  # fmt: skip
        return [e.loss for e in rec.of(Step)]

    base = losses()
    assert losses(activation_checkpointing=True) == pytest.approx(base, abs=1e-6)
    assert losses(batch_size=4, grad_accum=2) == pytest.approx(base, abs=1e-5)
