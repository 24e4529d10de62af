"""Assemble a training job: a new run, a run resumed from its `latest` checkpoint, or a new
run that starts from another model's weights (`init_from`). One function, used by
`tui-gpt train` and the app alike.

Everything that can fail on the user's input (dataset, settings, device, checkpoint) is
checked before the run folder is created, so a bad start leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from tui_gpt import paths
from tui_gpt.core import memory, settings
from tui_gpt.core.bpe import tokenizer_for
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import (
    AUTO,
    FURTHER_HELP,
    PRECISIONS,
    SETTINGS_FILE,
    ModelChoice,
    TrainConfig,
    TrainSpec,
    count_params,
    further,
)
from tui_gpt.core.control import ControlChannel, ensure_not_live
from tui_gpt.core.data import PreparedData, inspect_source, make_loaders, prepare
from tui_gpt.core.device import (
    Runtime,
    cpu_allowance,
    resolve_device,
    resolve_precision,
    resolve_threads,
)
from tui_gpt.core.distributed import SINGLE, Distributed
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.estimate import GLOBAL_RNG
from tui_gpt.core.events import Notice, count
from tui_gpt.core.fsutil import atomic_copy, sweep_temporaries
from tui_gpt.core.model import GPT
from tui_gpt.core.records import DatasetRecord, RunRecord
from tui_gpt.core.runs import (
    TOKENIZER_FILE,
    EventLog,
    Run,
    RunLock,
    create_run,
    find_run,
    read_events,
    run_tokenizer,
)
from tui_gpt.core.sampling import checkpoint_tokenizer, open_weights
from tui_gpt.core.shape import GPTConfig
from tui_gpt.core.sizing import PLAIN_EPOCHS, size
from tui_gpt.core.tokenizer import BPETokenizer, Tokenizer
from tui_gpt.core.trainer import RunOutput, Sink, Trainer, TrainerControl, restore


@dataclass
class JobHooks:
    """How the caller follows and steers the job: event sinks (after the run folder's own
    events.jsonl), a control, and tokenizing progress `(chars_done, chars_total)`."""

    sinks: list[Sink] = field(default_factory=list)
    control: TrainerControl | None = None
    progress: Callable[[int, int], None] | None = None
    notice: Callable[[str], None] | None = None  # something the user should know (a rebuilt cache)


@dataclass
class TrainingJob:
    """A trainer and its run folder. Under torchrun only rank 0 has a run folder and a log;
    the other ranks train alongside with `run` and `log` None."""

    run: Run | None
    trainer: Trainer
    data: PreparedData
    log: EventLog | None
    lock: RunLock | None = None

    def run_training(self) -> str:
        """Run to the end or to a stop; "finished" or "stopped". Raises on divergence.

        Meanwhile the run folder's control channel is served and its heartbeat kept, so any
        other process can see the run is alive and pause, resume, stop or checkpoint it."""
        channel = (
            ControlChannel(self.run, self.trainer.control)
            if self.run is not None
            else contextlib.nullcontext()
        )
        try:
            with channel:
                return self.trainer.run()
        except BaseException as exc:
            error = out_of_memory(exc) or exc
            if self.log is not None:  # a failed save, a divergence, a bug: never "stale"
                with contextlib.suppress(OSError):
                    self.log.run.set_status("failed", error=str(error) or type(exc).__name__)
            raise error from None
        finally:
            if self.log is not None:
                self.log.close()
            if self.lock is not None:
                self.lock.release()


def assemble(
    spec: TrainSpec | None = None,
    *,
    resume: str | None = None,
    changes: dict[str, Any] | None = None,
    runs_dir: Path | None = None,
    hooks: JobHooks | None = None,
    dist: Distributed = SINGLE,
    vocab_dir: str | None = None,
    started: float | None = None,
    further: str | None = None,
) -> TrainingJob:
    """The job for `spec` (a new run), or for the run `resume` names, continued with the
    training settings in `changes` (epochs, max steps, device...: those marked `on_resume`),
    or trained `further` ("500" more steps, "2e" more epochs: config.further).

    The run's lock is taken before anything is written to it and held until the training
    ends: one writer per run. A resumed run must keep its world size under torchrun (each
    rank's shard of the data depends on it) and its dataset unchanged; every rank reads the
    checkpoint, so the run folder must be on a filesystem they share. `started`
    (time.monotonic()): when the user asked for it, where a `minutes` budget counts from."""
    locks: list[RunLock] = []
    try:
        job = _assemble(
            spec, resume, changes, runs_dir, hooks, dist, vocab_dir, locks, started, further
        )
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    job.lock = locks[0] if locks else None
    return job


def _assemble(
    spec: TrainSpec | None,
    resume: str | None,
    changes: dict[str, Any] | None,
    runs_dir: Path | None,
    hooks: JobHooks | None,
    dist: Distributed,
    vocab_dir: str | None,
    locks: list[RunLock],
    started: float | None,
    further_text: str | None = None,
) -> TrainingJob:
    hooks = hooks or JobHooks()
    runs_dir = runs_dir or paths.runs_dir()
    run: Run | None = None
    ckpt: Checkpoint | None = None
    if resume is not None:
        run, spec, ckpt, mcfg, context_length, vocab_dir = _resumable(
            resume, runs_dir, changes or {}, dist, locks
        )
    elif spec is None:
        raise ValueError("assemble() needs a spec or a run to resume")
    settings.check(spec.model)
    spec.train.validate()
    cfg = spec.train
    source = inspect_source(spec.data, cfg.text_field)  # a bad path is the first thing to say
    if source.skipped and hooks.notice is not None:
        hooks.notice(source.skipped_line())
    if run is not None:
        tokenizer = run_tokenizer(run, vocab_dir)
        assert ckpt is not None
        ckpt.check_tokenizer(tokenizer.name)
    elif spec.init_from:  # the model's own tokenizer: its weights were trained with it
        ckpt, tokenizer = _open_init(spec.init_from, runs_dir, vocab_dir)
    else:
        tokenizer = tokenizer_for(
            spec.model.tokenizer, source, cfg.train_ratio, vocab_dir, hooks.progress, hooks.notice
        )
    if run is not None and source.sha256 != run.record().dataset.sha256:
        raise TuiGptError(
            f"the dataset of run {run.id} ({spec.data}) has changed since the run began"
        )
    # A resumed run keeps the runtime `auto` chose when it began (the fastest one then):
    # measured again, a busy moment could switch a run's numerics halfway.
    began = _began_with(run) if run is not None and cfg.precision == "auto" and (
        "precision" not in (changes or {})) else None  # fmt: skip
    pinned = began[0] if began else None
    runtime = runtime_for(replace(cfg, precision=pinned) if pinned else cfg, dist)
    if began:
        runtime = replace(runtime, fp32_attention=began[1])
    room = memory.available(runtime.device.type)
    if room is not None and runtime.device.type == "cpu":
        room //= dist.local_world  # ranks on one machine share it

    def tokenized() -> PreparedData:
        with dist.main_first():  # one tokenization into the shared cache, not one per rank
            return prepare(
                source, tokenizer, cfg.train_ratio, progress=hooks.progress, notice=hooks.notice
            )

    data: PreparedData | None = None
    sized = ""
    if run is None and not spec.init_from and (spec.model.preset == AUTO or cfg.epochs is None):
        data = tokenized()  # what the budget buys depends on the text's length
        sizing = size(spec.model, cfg, tokenizer.vocab_size, data, runtime,
                      _seconds_left(cfg, started), room=room, alone=not dist.enabled)  # fmt: skip
        spec, sized = replace(spec, model=sizing.choice, train=sizing.train), sizing.line()
        cfg = spec.train
    elif run is None and cfg.epochs is None:  # another model's weights: their shape is given
        cfg = replace(cfg, epochs=PLAIN_EPOCHS)
        spec = replace(spec, train=cfg)
    if run is None:
        mcfg, context_length = _model_shape(spec.model, tokenizer.vocab_size, ckpt)
    # Before tokenizing or allocating anything: will it fit?
    problem = memory.check(mcfg, memory.shape(cfg, context_length, runtime, mcfg), room)
    if problem:
        raise TuiGptError(problem)
    if data is None:
        data = tokenized()
    loaders = make_loaders(
        data, context_length, cfg.batch_size, cfg.stride, cfg.seed, dist.rank, dist.world, cfg.grad_accum
    )
    resumed_with: list[str] = []  # settings changed on this resume, as "--lr 0.0004 -> 0.001"
    if run is not None and ckpt is not None:
        cfg = _continued(run, ckpt, cfg, len(loaders.train), further_text, dist, resumed_with)

    with GLOBAL_RNG:  # no step-time measurement in another thread meanwhile
        torch.manual_seed(cfg.seed)  # as the reference: the seed fixes the initial weights too
        try:
            model = GPT(mcfg)
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            raise out_of_memory(exc) or exc from None
    if ckpt is not None and run is None:
        ckpt.load_model(model)  # init_from: its weights are the starting point
    model.to(runtime.device)
    if dist.enabled:
        torch.manual_seed(cfg.seed + dist.rank)  # same weights, different dropout per rank
    if dist.is_main and run is None:
        run = create_run(
            runs_dir, data.source.name, _record(spec, data, mcfg, context_length, vocab_dir, ckpt, dist)
        )
        locks.append(RunLock(run).acquire())
        if isinstance(tokenizer, BPETokenizer):  # the run keeps its own copy
            atomic_copy(tokenizer.path, run.path / TOKENIZER_FILE)
        if ckpt is not None:  # settings.json says what trains: the model it starts from
            copy = run.path / TOKENIZER_FILE if isinstance(tokenizer, BPETokenizer) else None
            model_choice = ModelChoice.describing(
                mcfg, str(copy or tokenizer.name), spec.model.context_length, spec.model.dropout
            )
            spec = replace(spec, model=model_choice)
        # An absolute data path: `--settings RUN/settings.json` from another folder trains
        # on the same file, never on whatever sits at a relative path there.
        spec = replace(spec, data=str(Path(spec.data).expanduser().resolve()))
        spec.write(run.path / SETTINGS_FILE)
    own = run if dist.is_main else None
    control = hooks.control or TrainerControl()

    def cannot_write(exc: OSError) -> None:
        if own is not None and not own.path.is_dir():  # deleted: say so, whichever write saw it
            control.stop(f"the run folder {own.path} was deleted; stopping")
            return
        control.stop(f"cannot write to the run folder ({exc.strerror or exc}); stopping")

    log = EventLog(own, cannot_write) if own is not None else None
    output = RunOutput(
        own.checkpoints if own else None, [log, *hooks.sinks] if log else [], own.id if own else ""
    )
    if pinned:  # recorded as "auto" (above), trained as it began
        cfg = replace(cfg, precision=pinned)
    trainer = Trainer(model, loaders, tokenizer, cfg, runtime, output, control, dist, started)
    if sized:  # in the run's events, so its history says what `auto` chose and why
        trainer.emit(Notice, message=sized)
    if resume is not None and ckpt is not None:
        restore(trainer, ckpt)
        if resumed_with:  # in the run's events, so its history says what changed and when
            trainer.emit(Notice, message="resumed with " + ", ".join(resumed_with))
        if dist.enabled:  # the checkpoint holds rank 0's generator: give each rank its own
            torch.manual_seed(cfg.seed + dist.rank + dist.world * trainer.state.steps_done)
    return TrainingJob(own, trainer, data, log)


def _seconds_left(cfg: TrainConfig, started: float | None) -> float | None:
    """What is left of a time budget that counts from `started` (time.monotonic())."""
    if cfg.minutes is None:
        return None
    return cfg.minutes * 60 - (0.0 if started is None else time.monotonic() - started)


def _began_with(run: Run) -> tuple[str, bool] | None:
    """The precision the run's latest training began with, and whether it kept attention
    in fp32 (its last run_started event), or None where none is recorded."""
    chosen = None
    for event in run.events():
        explicit = event.get("precision") in PRECISIONS and event.get("precision") != "auto"
        if event.get("event") == "run_started" and explicit:
            chosen = (event["precision"], event.get("fp32_attention") is True)
    return chosen


def out_of_memory(exc: BaseException) -> TuiGptError | None:
    """An allocation that failed, as one line saying how much and what to change."""
    text = str(exc)
    if not isinstance(exc, torch.OutOfMemoryError) and not (
        isinstance(exc, RuntimeError) and ("allocate" in text or "out of memory" in text)
    ):
        return None
    size = re.search(r"(\d+) bytes", text)
    asked = f" allocating {int(size.group(1)) / 2**20:,.0f} MiB failed;" if size else ""
    return TuiGptError(f"out of memory:{asked} use a smaller batch size, context length or preset")


def _resumable(
    ref: str, runs_dir: Path, changes: dict[str, Any], dist: Distributed, locks: list[RunLock]
) -> tuple[Run, TrainSpec, Checkpoint, GPTConfig, int, str | None]:
    fixed = [s for s in settings.specs(TrainConfig) if not s.on_resume and s.name in changes]
    if fixed:
        raise TuiGptError(
            f"{', '.join(s.option for s in fixed)} cannot change when resuming ({fixed[0].fixed})"
        )
    run = find_run(ref, runs_dir)
    info = run.record()
    if dist.is_main:
        ensure_not_live(run)  # a heartbeat from another machine, where the lock cannot tell
        locks.append(RunLock(run).acquire())
    if info.world_size != dist.world:
        raise TuiGptError(
            f"run {run.id} was trained by {info.world_size} process(es); resume it with the "
            f"same number (now {dist.world})"
        )
    if not run.latest.is_file():
        raise TuiGptError(f"run {run.id} has no latest checkpoint to resume from")
    ckpt = Checkpoint(run.latest)
    try:
        ckpt.verify()
    except TuiGptError as exc:
        other = ""
        if run.best.is_file():
            with contextlib.suppress(TuiGptError):
                Checkpoint(run.best).verify()
                other = (f". Its best weights are intact: tui-gpt train {info.data_path or 'DATA'} "
                         f"--init-from {run.best} starts a new run from them")  # fmt: skip
        raise TuiGptError(f"{exc}{other}") from None
    # Every run file is read and checked before any is written: a damaged one stops the
    # resume with the run as it was.
    run.status()
    next(read_events(run.events_path), None)  # a link or a FIFO in its place is refused
    if os.path.lexists(run.best):  # saved over as the run improves: it must be a checkpoint
        Checkpoint(run.best)
    mcfg = info.model_config()
    cfg = replace(info.train_config(), **changes)
    cfg.validate()
    TrainSpec.read(run.path / SETTINGS_FILE)
    sweep_temporaries(run.checkpoints)
    # The model's own shape (a preset, or the init_from model's) decides; the preset name is
    # only a label here.
    model = ModelChoice(tokenizer=info.tokenizer, context_length=info.context_length)
    spec = TrainSpec(data=info.data_path, model=model, train=cfg)
    return run, spec, ckpt, mcfg, info.context_length or mcfg.context_length, info.vocab_dir


def _continued(
    run: Run, ckpt: Checkpoint, cfg: TrainConfig, per_epoch: int, further_text: str | None,
    dist: Distributed, resumed_with: list[str],
) -> TrainConfig:  # fmt: skip
    """The settings a resumed run trains on: `cfg`, trained `further` if asked. A resume
    that would train nothing is refused with the command that trains more; otherwise what
    changed is kept in the run's files (a later --resume continues with it) and said in
    `resumed_with`."""
    done = ckpt.steps_done or 0
    if further_text is not None:
        try:
            cfg = replace(cfg, **further(further_text, done, per_epoch)[0])
        except ValueError:
            raise TuiGptError(f"--further {further_text}: {FURTHER_HELP}") from None
    if cfg.step_bound(per_epoch) <= done:
        bound = (f"its max steps ({cfg.max_steps:,})"
                 if cfg.max_steps is not None and cfg.max_steps <= per_epoch * cfg.passes
                 else f"its {count(cfg.passes, 'epoch')}")  # fmt: skip
        raise TuiGptError(
            f"run {run.id} has made the {done:,} steps {bound} allow: nothing to train; "
            f"train it further with: tui-gpt train --resume {run.id} --further 1e"
        )
    info = run.record()
    before = info.train_config()
    resumed_with.extend(
        f"{spec.option} {spec.show(getattr(before, spec.name)) or 'off'} -> "
        f"{spec.show(getattr(cfg, spec.name)) or 'off'}"
        for spec in settings.specs(TrainConfig)
        if getattr(before, spec.name) != getattr(cfg, spec.name)
    )
    if dist.is_main:  # a later --resume continues with these epochs / max steps
        saved = TrainSpec.read(run.path / SETTINGS_FILE)
        run.write_record(replace(info, train=cfg.to_dict()))
        if saved is not None:
            replace(saved, train=cfg).write(run.path / SETTINGS_FILE)
    return cfg


def _model_shape(
    choice: ModelChoice, vocab_size: int, base: Checkpoint | None
) -> tuple[GPTConfig, int]:
    """The model config and window length of a new run: a preset's shape, or the shape of
    the model it starts from."""
    ctx = choice.context_length
    if base is None:
        mcfg = choice.config(vocab_size, ctx)
    else:
        mcfg = base.model_config
        if mcfg.vocab_size != vocab_size:
            raise TuiGptError(
                f"--init-from model has a vocabulary of {mcfg.vocab_size}, the "
                f"{choice.tokenizer} tokenizer {vocab_size}"
            )
        if ctx and ctx > mcfg.context_length:
            raise TuiGptError(f"--context-length {ctx} exceeds the model's {mcfg.context_length}")
    if choice.dropout is not None:
        mcfg = replace(mcfg, dropout=choice.dropout)
    return mcfg, ctx or mcfg.context_length


def _record(
    spec: TrainSpec, data: PreparedData, mcfg: GPTConfig, context_length: int,
    vocab_dir: str | None, base: Checkpoint | None, dist: Distributed,
) -> RunRecord:  # fmt: skip
    """What run.json says of a new run."""
    source = data.source
    dataset = DatasetRecord(
        files=tuple(str(f) for f in source.files), sha256=source.sha256, chars=source.chars,
        tokens=data.tokens, train_ratio=data.train_ratio, text_field=source.text_field,
    )  # fmt: skip
    return RunRecord(
        preset=spec.model.preset if not spec.init_from else "init",
        dataset=dataset,
        data_path=str(Path(spec.data).expanduser().resolve()),
        tokenizer=data.tokenizer,  # a name: gpt2, byte, or bpe-<hash> (the run keeps the file)
        vocab_dir=vocab_dir,
        model=mcfg.to_dict(),
        context_length=context_length,
        train=spec.train.to_dict(),
        params=count_params(mcfg),
        init_from=str(base.path) if base is not None else None,
        world_size=dist.world,
    )


def runtime_for(cfg: TrainConfig, dist: Distributed = SINGLE) -> Runtime:
    """The device, precision and threads a training with these settings runs on."""
    device = dist.device if dist.device is not None else resolve_device(cfg.device)
    threads = cfg.threads
    if dist.enabled and not threads and device.type == "cpu":
        threads = dist.threads(cpu_allowance())
    return Runtime(device, resolve_precision(cfg.precision, device), resolve_threads(threads))


def _open_init(ref: str, runs_dir: Path, vocab_dir: str | None) -> tuple[Checkpoint, Tokenizer]:
    """The weights `--init-from` names (a checkpoint file, or a run's best) with the
    tokenizer they were trained with."""
    if Path(ref).is_file():
        ckpt = Checkpoint(ref, follow_links=True)  # a path the user typed
        ckpt.verify()
        return ckpt, checkpoint_tokenizer(ckpt, vocab_dir)
    return open_weights(find_run(ref, runs_dir), "best", vocab_dir)
