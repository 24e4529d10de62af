"""The training loop: the reference chapter's semantics, made stoppable, resumable and quiet.

For each epoch, for each training batch: zero the gradients, loss, backward, AdamW step;
`tokens_seen += batch.numel()`. Every `eval_freq` steps (auto: an interval that scales with
the planned run), the training and validation losses over `eval_iter` batches each, in eval
mode and without gradients. After each epoch, a greedy sample from the start context.

However a training ends (its epochs, max steps or time budget, a stop, a signal) its last
weights are evaluated before they are saved, and so is every `latest` checkpoint of a
single process: `best` is then the best of every checkpoint, never an older one by default.

The trainer prints nothing and knows no UI: it emits events (core/events.py) to its sinks.
Another thread steers it through a `TrainerControl` (pause, resume, stop, checkpoint now),
checked between steps and between evaluation batches.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tui_gpt.core import checkpoint, estimate, flops, memory, process
from tui_gpt.core.budget import TimeBudget
from tui_gpt.core.config import TrainConfig
from tui_gpt.core.data import Loaders
from tui_gpt.core.device import Runtime, autocast
from tui_gpt.core.distributed import SINGLE, Distributed
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import (
    CheckpointSaved,
    EpochEnd,
    Error,
    Eval,
    Event,
    Finished,
    Notice,
    Paused,
    PlanChanged,
    Resumed,
    RunStarted,
    Sample,
    Step,
    Stopped,
)
from tui_gpt.core.fsutil import refuse_link
from tui_gpt.core.generate import stream
from tui_gpt.core.loss import batch_loss, evaluate, token_byte_lengths
from tui_gpt.core.model import GPT
from tui_gpt.core.optim import follow_runtime, lr_scale, make_optimizer, set_lr
from tui_gpt.core.records import RUN_FILE
from tui_gpt.core.tokenizer import Tokenizer

Sink = Callable[[Event], None]
FIRST_SAVE_SECONDS = 60.0
# After an evaluation `latest` is also saved where the last save took at most this share of
# the time since it: a small model's save takes milliseconds, a kill then loses little.
SAVE_SHARE = 0.02


class TrainingDiverged(TuiGptError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainerControl:
    """Thread-safe steering of a running trainer."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._checkpoint = threading.Event()
        self.stop_reason = ""

    def stop(self, reason: str = "stopped by user") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()
        self._running.set()  # a paused trainer must wake up to stop

    def pause(self) -> None:
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def request_checkpoint(self) -> None:
        self._checkpoint.set()

    def take_checkpoint_request(self) -> bool:
        """True once per request_checkpoint() call."""
        if self._checkpoint.is_set():
            self._checkpoint.clear()
            return True
        return False

    def wait_until_resumed(self, timeout: float | None = None) -> bool:
        """Block while paused (a stop also wakes it); False if `timeout` ran out first."""
        return self._running.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()


@dataclass
class TrainState:
    """Where training stands; with the seed it rebuilds the data order of any epoch."""

    epoch: int = 0  # epoch in progress, from 0
    batch: int = 0  # next batch index within that epoch
    steps_done: int = 0  # optimizer updates so far
    tokens_seen: int = 0
    best_val_loss: float | None = None

    @property
    def step(self) -> int:
        """The reference's global_step: 0 after the first update."""
        return self.steps_done - 1


@dataclass
class RunOutput:
    """Where a trainer's results go: checkpoints to a folder (None: nowhere, as on ranks
    other than 0), events to the sinks."""

    checkpoint_dir: Path | None = None
    sinks: list[Sink] = field(default_factory=list)
    run_id: str = ""


class Trainer:
    def __init__(
        self,
        model: GPT,
        loaders: Loaders,
        tokenizer: Tokenizer,
        config: TrainConfig,
        runtime: Runtime,
        output: RunOutput | None = None,
        control: TrainerControl | None = None,
        dist: Distributed = SINGLE,
        started: float | None = None,
    ) -> None:
        """`started`: when the command began (time.monotonic()); a `minutes` budget counts
        from there, so start-up and data preparation are part of it. Default: now."""
        self.model, self.cfg, self.tokenizer, self.dist = model, config, tokenizer, dist
        self.train_loader, self.val_loader = loaders
        self.device, self.precision, self.threads = (
            runtime.device,
            runtime.precision,
            runtime.threads,
        )
        # What the update steps run through: DDP (gradients averaged across ranks) or the
        # model sharded in place (FSDP) under torchrun, the model itself otherwise.
        # Evaluation, samples and checkpoints use `model`. Before the optimizer: under FSDP
        # it must hold the shards.
        self.train_module: Any = dist.wrap(model, bf16=runtime.precision == "bf16")
        self.optimizer = make_optimizer(model, config, runtime)
        model.checkpointing = config.activation_checkpointing
        model.fp32_attention = runtime.fp32_attention
        self.runtime = runtime
        self.peak_flops: float | None = None  # measured or looked up when the run starts
        self._context_length = loaders.train.windows.context_length  # tokens per training window
        self._flops_per_token = model.flops_per_token(self._context_length)
        self.state = TrainState()
        out = output or RunOutput()
        self.checkpoint_dir, self.sinks, self.run_id = (
            out.checkpoint_dir,
            list(out.sinks),
            out.run_id,
        )
        self.control = control or TrainerControl()
        self.total_steps = config.step_bound(len(self.train_loader))
        # A time budget cuts the steps the epochs and max_steps allow to those that fit.
        self.budget = TimeBudget(self.total_steps, config.minutes, started)
        self._announced = self.total_steps  # the total the last PlanChanged told
        self._sampled_at: int | None = None  # steps_done at the last sample
        self._eval_every = config.eval_interval(self.total_steps)  # set again by the plan
        self._evaluated_at: int | None = None  # steps_done at the last evaluation
        self._last_val: float | None = None  # its validation loss
        self._last_save = time.monotonic()
        self._save_seconds = math.inf  # how long the last save of `latest` took
        self._saved_latest = False
        self._evaluated = False  # in this process: the first save follows the first evaluation
        self._byte_lengths: torch.Tensor | None = None  # (V,) bytes per token, for bits per byte
        # torch.compile (opt-in): the eager module to fall back to, whether the next step is
        # the compiling one, and whether the speed estimate restarts after it.
        self._eager = self.train_module  # (compiled later, maybe)
        self._compiling = self._rate_reset = False
        self._first_step, self._step_times = 0, list[float]()  # this session's update times

    # ------------------------------------------------------------------ events

    def emit(self, event_type: type[Event], **fields) -> Event:
        s = self.state
        # Counted from 1; at an epoch's end, before a step of the next, events (a closing
        # evaluation, Finished, a stop) still belong to the epoch that ended.
        current = s.epoch - 1 if s.batch == 0 and s.epoch > 0 else s.epoch
        epoch = min(current, max(self.cfg.passes - 1, 0)) + 1
        event = event_type(step=s.step, epoch=epoch, tokens_seen=s.tokens_seen, **fields)
        for sink in self.sinks:
            sink(event)
        return event

    # ------------------------------------------------------------------ control

    def _should_stop(self) -> bool:
        """Block while paused; True once a stop was asked for."""
        if self.dist.enabled:
            return self._should_stop_agreed()
        if self.control.paused and not self.control.stopping:
            self.emit(Paused)
            while not self.control.wait_until_resumed(timeout=0.2):
                self._checkpoint_if_asked()  # "checkpoint now" works while paused too
            if not self.control.stopping:
                self.emit(Resumed)
            self.budget.restart_pace()
        return self.control.stopping

    def _checkpoint_if_asked(self, due: bool = False) -> None:
        """Save `latest` if asked to (`tui-gpt control RUN checkpoint`) or `due`. A sharded
        model's save gathers it from every rank: there every rank saves when rank 0, which
        has the run folder, the control channel and its clock, wants to."""
        wanted = self.control.take_checkpoint_request() or due
        if self.dist.sharded:
            (wanted,) = self.dist.agree(wanted and self.dist.is_main)
        if wanted:
            self.budget.timed(self._checkpoint)

    def _checkpoint(self) -> None:
        """Save `latest` mid-run, evaluated first so that `best` weighs it too. Under
        torchrun it is saved as it is (every rank evaluates together only at the end: a
        save is rank 0's to ask for, and unsharded rank 0 saves alone)."""
        if not self.dist.enabled:
            self._close_evaluation()
        self.save_latest()

    def _should_stop_agreed(self) -> bool:
        """The same across ranks: a stop on any rank stops all; a pause (asked of rank 0)
        holds all of them, re-agreed every half second."""
        c = self.control
        stop, paused = self.dist.agree(c.stopping, c.paused)
        if paused and not stop:
            self.emit(Paused)
            while paused and not stop:
                time.sleep(0.5)
                self._checkpoint_if_asked()
                stop, paused = self.dist.agree(c.stopping, c.paused)
            if not stop:
                self.emit(Resumed)
            self.budget.restart_pace()
        if stop and not c.stopping:
            c.stop("stopped on another rank")
        return stop

    def _done(self) -> bool:
        return self.state.steps_done >= self.total_steps

    # ------------------------------------------------------------------ the loop

    def run(self) -> str:
        """Train until the epochs or `max_steps` are done ("finished") or a stop is asked
        for ("stopped"); either way `latest` is saved. Raises `TrainingDiverged`."""
        self._first_step, self._step_times = self.state.steps_done, []
        with process.training_memory(self.dist.sharded):
            try:
                return self._run()
            finally:
                self._remember_pace()

    def _remember_pace(self) -> None:
        """The median of this training's update steps, for the next plan of the same setup
        (one process only: the plan's measurement is of one process)."""
        if len(self._step_times) >= 5 and not self.dist.enabled:
            estimate.remember_step_seconds(
                self.model.cfg, self.cfg, self._context_length, self.runtime,
                statistics.median(self._step_times),
            )  # fmt: skip

    def _run(self) -> str:
        s = self.state
        plan = self._plan()  # first: under `--precision auto` it may choose the precision
        self.peak_flops, peak_source = flops.device_peak(
            self.device, self.precision, self.cfg.peak_tflops
        )
        self._eval_every = self.cfg.eval_interval(self.total_steps)
        planned = self.total_steps
        # The weights this training starts from were evaluated when they were saved.
        self._evaluated_at = s.steps_done
        self.emit(
            RunStarted,
            run_id=self.run_id,
            params=self.model.num_params(),
            arch=self.model.cfg.arch,
            ends_by=self.budget.ends_by(),
            device=str(self.device),
            precision=self.precision,
            fp32_attention=self.runtime.fp32_attention,
            threads=self.threads,
            world_size=self.dist.world,
            strategy=self.dist.strategy,
            train_batches=len(self.train_loader),
            val_batches=len(self.val_loader),
            total_steps=self.total_steps,
            resumed=s.steps_done > 0,
            grad_accum=self.cfg.grad_accum,
            peak_flops=self.peak_flops,
            peak_source=peak_source,
            memory_estimate=memory.estimate(
                self.model.cfg,
                memory.shape(
                    self.cfg, self._context_length, self.runtime, self.model.cfg, self.dist.shards
                ),
            ).total,
        )
        if plan is not None:
            self.emit(Notice, message=plan.line())
        self.model.train()
        self._compile_if_asked()
        tok_per_s = 0.0
        while s.epoch < self.cfg.passes and not self._done():
            for x, y in self.train_loader.iter_epoch(s.epoch, s.batch):
                if self._should_stop():
                    return self._stop()
                t0 = time.perf_counter()
                loss = self.update(x, y)
                dt = time.perf_counter() - t0
                if not self._rate_reset and s.steps_done > self._first_step:
                    self._step_times.append(dt)  # not the first (warm-up, compile) step
                s.batch += 1
                s.steps_done += 1
                # Under torchrun every rank trained on a batch like this one.
                s.tokens_seen += x.numel() * self.dist.world
                rate = x.numel() * self.dist.world / max(dt, 1e-9)
                if s.steps_done == 1 or self._rate_reset:
                    tok_per_s, self._rate_reset = rate, False
                else:
                    tok_per_s = 0.8 * tok_per_s + 0.2 * rate
                lr = self.optimizer.param_groups[0]["lr"]
                per_device = tok_per_s / self.dist.world
                use = flops.mfu(self._flops_per_token, per_device, self.peak_flops)
                self.emit(Step, loss=loss, lr=lr, tok_per_s=tok_per_s, mfu=use)
                if s.step % self._eval_every == 0 and not self.budget.timed(self._evaluate):
                    return self._stop()
                self._checkpoint_if_asked(due=self._save_due())
                self._fit_budget()
                if self._done():
                    break
            if s.batch >= len(self.train_loader):  # the epoch ran to its end
                self.budget.timed(lambda: self._sample(at_end=self._done()))
                self.emit(EpochEnd)
                s.epoch += 1
                s.batch = 0
            elif self._done():
                self.budget.timed(lambda: self._sample(at_end=True))  # a last look, mid-epoch
        self.budget.timed(self._close_evaluation)
        self.save_latest()
        self.emit(Finished, reason=self._end_reason(), planned_steps=planned,
                  minutes=self.cfg.minutes)  # fmt: skip
        return "finished"

    def _end_reason(self) -> str:
        """What ended a training that ran to its end (events.FINISH_REASONS)."""
        if self.budget.cut_short(self.total_steps):
            return "budget"
        max_steps = self.cfg.max_steps
        return "max_steps" if max_steps is not None and self._done() and (
            self.state.steps_done >= max_steps) else "epochs"  # fmt: skip

    def _plan(self) -> estimate.Plan | None:
        """Steps, epochs, tokens and time, from a measured (or remembered) step. Under a
        time budget this also sets the first estimate of the steps that fit. None where the
        measurement's throwaway model did not fit beside this one, or the model is sharded
        (the measurement trains a whole one: what sharding avoids): the pace of the real
        steps alone then sets a budget's steps. Under torchrun, None on any rank is None on
        all (the steps planned are agreed below)."""
        s, cfg = self.state, self.cfg
        step_s: float | None = None
        note = ""
        try:
            if not self.dist.enabled:
                runtime, measured, note = estimate.fastest(
                    self.model.cfg, cfg, self._context_length, self.runtime
                )
                assert measured is not None  # measured where not remembered
                self.runtime, self.precision, step_s = runtime, runtime.precision, measured
                self.model.fp32_attention = runtime.fp32_attention
                follow_runtime(self.optimizer, runtime)
            elif not self.dist.sharded:  # every rank keeps the precision `auto` resolved to
                step_s = estimate.step_seconds(self.model.cfg, cfg, self._context_length, self.runtime)
        except (RuntimeError, torch.OutOfMemoryError):
            step_s = None
        (unplanned,) = self.dist.agree(step_s is None)
        if unplanned or step_s is None:
            return None
        plan = estimate.make_plan(
            cfg,
            step_s,
            len(self.train_loader),
            cfg.tokens_per_step(self._context_length) * self.dist.world,
            self.budget.bound - s.steps_done,
            self.budget.seconds_left(),
            note,
        )
        if self.budget.limited:
            total = s.steps_done + plan.steps
            if self.dist.enabled:  # every rank must plan the same steps
                total = int(self.dist.mean(float(total))[0])
            self.total_steps = self._announced = total
        return plan

    def _fit_budget(self) -> None:
        """Under a `minutes` budget: the total steps re-judged from the pace so far
        (core/budget.py), the same on every rank; a PlanChanged when it moved."""
        if not self.budget.limited:
            return
        total = self.budget.fit(self.state.steps_done, self.total_steps)
        if self.dist.enabled:  # every rank must stop after the same step
            total = int(self.dist.mean(float(total))[0])
        self.total_steps = total
        if abs(self.total_steps - self._announced) > max(1, self._announced // 50) or self._done():
            self._announced = self.total_steps
            self.emit(PlanChanged, total_steps=self.total_steps)

    def _compile_if_asked(self) -> None:
        """`torch.compile` the module the steps run through (opt-in). Compiling happens
        during the first step, which then takes much longer: say so, and say how long."""
        if not self.cfg.compile:
            return
        try:
            self.train_module = torch.compile(self.train_module)
        except Exception as exc:  # no compiler support in this build: stay eager
            self.emit(Notice, message=f"torch.compile is not available ({exc}); training eager")
            return
        self._compiling = True
        self.emit(Notice, message="compiling the model (torch.compile): the first step is slow")

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            if not self._compiling:
                return batch_loss(self.train_module, x, y, self.device)
            started = time.perf_counter()
            try:
                loss = batch_loss(self.train_module, x, y, self.device)
            except Exception as exc:  # e.g. no C++ compiler: fall back, keep training
                self.train_module = self._eager
                self.emit(
                    Notice,
                    message=f"torch.compile failed ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); training eager",
                )
                loss = batch_loss(self.train_module, x, y, self.device)
            else:
                took = time.perf_counter() - started
                self.emit(Notice, message=f"compiled in {took:.0f} s")
            self._compiling = False
            self._rate_reset = True  # the compile step says nothing of the speed
            return loss

    def update(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimizer update on inputs / targets (B, T); the loss before it. `tui-gpt
        bench` and benchmarks/ time exactly this.

        With gradient accumulation the batch is cut into micro-batches of `batch_size`
        rows, each backpropagated on its own with its share of the mean: the gradient adds
        up to that of the whole batch at a micro-batch's activation memory."""
        set_lr(self.optimizer, self.cfg, lr_scale(self.state.steps_done, self.cfg, self.total_steps))
        self.optimizer.zero_grad(set_to_none=True)
        micro = list(zip(x.split(self.cfg.batch_size), y.split(self.cfg.batch_size), strict=True))
        total = 0.0
        for i, (xm, ym) in enumerate(micro):
            # Under torchrun, gradients are averaged across ranks once, after the last one.
            with self.dist.no_sync(self.train_module, last=i == len(micro) - 1):
                loss = self._forward_loss(xm, ym) * (len(xm) / len(x))
                total += loss.item()
                loss.backward()
        (value,) = self.dist.mean(total)  # every rank logs the loss of the global batch
        if not math.isfinite(value):  # checked on the mean, so every rank stops together
            self._diverged(f"the loss became {value} at step {self.state.steps_done}")
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return value

    def _diverged(self, what: str) -> None:
        kept = (
            "the last good checkpoint is kept" if self._saved_latest else "no checkpoint was saved"
        )
        message = f"{what}; training stopped ({kept}). Try a lower learning rate or a gradient clip"
        self.emit(Error, message=message)
        raise TrainingDiverged(message)

    def _close_evaluation(self) -> None:
        """Evaluate the weights as they are unless this step already was: the end of a
        training, however it ends, and a checkpoint. Not interrupted by a stop (it is part
        of stopping), a few batches long."""
        if self._evaluated_at != self.state.steps_done:
            self._evaluate(interruptible=False)

    def _evaluate(self, interruptible: bool = True) -> bool:
        """Emit an Eval event; False if a stop arrived in the middle (`interruptible`)."""
        if self._byte_lengths is None:
            self._byte_lengths = token_byte_lengths(self.tokenizer)
        self.model.eval()
        stop = self._should_stop if interruptible else (lambda: False)
        try:
            with autocast(self.device, self.precision):
                n, lengths = self.cfg.eval_iter, self._byte_lengths
                train_batches = self.train_loader.iter_epoch(self.state.epoch)
                train, train_bpb = evaluate(
                    self.model, train_batches, self.device, n, stop, lengths
                )
                val, val_bpb = evaluate(self.model, self.val_loader, self.device, n, stop, lengths)
        finally:
            self.model.train()
        if interruptible:
            stopping = self.control.stopping
            if self.dist.enabled:  # every rank returns here, or none: the mean below waits
                (stopping,) = self.dist.agree(stopping)
            if stopping:
                return False
        train, val, train_bpb, val_bpb = self.dist.mean(train, val, train_bpb, val_bpb)
        if not (math.isfinite(train) and math.isfinite(val)):
            self._diverged(
                f"the evaluation loss became {train if not math.isfinite(train) else val}"
            )
        self.emit(Eval, train_loss=train, val_loss=val, train_bpb=train_bpb, val_bpb=val_bpb)
        self._evaluated = True
        self._evaluated_at, self._last_val = self.state.steps_done, val
        best = self.state.best_val_loss
        if math.isfinite(val) and (best is None or val < best):
            self.state.best_val_loss = val
            self._save("best", with_optimizer=False)
        return True

    def sample_text(self, max_new_tokens: int | None = None) -> str:
        """A greedy continuation of the start context; leaves the RNG and train mode as found.
        A stop asked for meanwhile ends it at the token it has reached."""
        was_training = self.model.training
        self.model.eval()
        try:
            ids = self.tokenizer.encode(self.cfg.start_context) or [self.tokenizer.eot_id]
            idx = torch.tensor([ids], device=self.device)
            new: list[int] = []
            with autocast(self.device, self.precision):
                tokens = stream(
                    self.model, idx, max_new_tokens or self.cfg.sample_tokens,
                    self.model.cfg.context_length,
                )  # fmt: skip
                for token in tokens:
                    new.append(int(token.item()))
                    # A sharded model decodes on every rank together: none stops alone.
                    if self.control.stopping and not self.dist.sharded:
                        break
            return self.tokenizer.decode(ids + new)
        finally:
            self.model.train(was_training)

    def _sample(self, at_end: bool) -> None:
        """A sample after each epoch, as the reference; but epochs of a few steps (a small
        text) get one per evaluation interval at most, and the last step always one."""
        since = self._sampled_at
        if not at_end and since is not None and self.state.steps_done - since < self._eval_every:
            return
        self._sampled_at = self.state.steps_done
        if self.cfg.sample_tokens > 0 and (self.dist.is_main or self.dist.sharded):
            text = self.sample_text()  # a sharded model's forward needs every rank
            if self.dist.is_main:
                self.emit(Sample, text=text)

    def _stop(self) -> str:
        self._close_evaluation()
        self.save_latest()
        self.emit(Stopped, reason=self.control.stop_reason or "stopped")
        return "stopped"

    # ------------------------------------------------------------------ checkpoints

    def _save_due(self) -> bool:
        """Every `checkpoint_minutes`; the first time early (after the first evaluation, or
        a minute), so that a crash never loses a whole run; and after each evaluation
        where saving is cheap beside the time since the last save (SAVE_SHARE)."""
        since = time.monotonic() - self._last_save
        if not self._saved_latest and (self._evaluated or since >= FIRST_SAVE_SECONDS):
            return True
        just_evaluated = self._evaluated_at == self.state.steps_done
        if just_evaluated and self._save_seconds <= SAVE_SHARE * since:
            return True
        return since >= self.cfg.checkpoint_minutes * 60

    def _save(self, kind: str, with_optimizer: bool) -> None:
        if self.checkpoint_dir is None and not self.dist.sharded:
            return  # (rank 1 and up hold nothing rank 0 needs)
        tensors, meta = checkpoint.contents(
            self.model,
            self.optimizer if with_optimizer else None,
            train_state=asdict(self.state),
            extra={"train_config": self.cfg.to_dict(), "tokenizer": self.tokenizer.name,
                   **self._weights_score()},  # fmt: skip
        )
        tensors = self.dist.gathered(tensors)  # a sharded model's, whole, on rank 0
        if self.checkpoint_dir is None:
            return
        deleted = TuiGptError(
            f"the run folder {self.checkpoint_dir.parent} was deleted; nothing saved"
        )
        if not self.checkpoint_dir.parent.is_dir():  # never recreate a deleted run
            raise deleted
        refuse_link(self.checkpoint_dir)
        try:
            path = checkpoint.write(self.checkpoint_dir / f"{kind}.safetensors", tensors, meta)
        except TuiGptError:
            # Deleted while it was saving (a folder being removed loses its files first).
            if not (self.checkpoint_dir.parent / RUN_FILE).is_file():
                raise deleted from None
            raise
        self.emit(CheckpointSaved, kind=kind, path=str(path))

    def _weights_score(self) -> dict[str, float]:
        """The validation loss of the weights being saved, where they were evaluated: said
        wherever a checkpoint is loaded (core/sampling.py)."""
        if self._evaluated_at == self.state.steps_done and self._last_val is not None:
            return {"val_loss": self._last_val}
        return {}

    def save_latest(self) -> None:
        """Weights, optimizer, RNG and position: everything `--resume` needs."""
        started = time.monotonic()
        self._save("latest", with_optimizer=True)
        self._last_save = time.monotonic()
        self._save_seconds = self._last_save - started
        self._saved_latest = self.checkpoint_dir is not None


def restore(trainer: Trainer, ckpt: checkpoint.Checkpoint) -> None:
    """Put a trainer back exactly where a `latest` checkpoint left it."""
    ckpt.load_model(trainer.model)
    ckpt.load_optimizer(trainer.optimizer)
    ckpt.restore_rng()
    try:
        trainer.state = TrainState(**(ckpt.train_state or {}))
        for name, value in asdict(trainer.state).items():
            if name != "best_val_loss" and (not isinstance(value, int) or value < 0):
                raise TypeError(f"{name} = {value!r}")
    except TypeError as exc:
        raise TuiGptError(f"{ckpt.path}: damaged training state ({exc})") from None
