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
from tui_gpt.core.corpus import TextSource
from tui_gpt.core.data import Loaders, PreparedData, inspect_source, make_loaders, prepare
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
from tui_gpt.core.events import Notice, RunStarted, count, event_from_dict
from tui_gpt.core.events import size as size_text
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
    builder = _JobBuilder(hooks or JobHooks(), dist, runs_dir or paths.runs_dir(), started)
    try:
        if resume is not None:
            return builder.resumed(builder.resumable(resume, changes or {}), further)
        if spec is None:
            raise ValueError("assemble() needs a spec or a run to resume")
        return builder.new(spec, vocab_dir)
    except BaseException:
        builder.release()
        raise


@dataclass(frozen=True)
class _Resumable:
    """A run to continue, every one of its files read and checked (none written yet)."""

    run: Run
    spec: TrainSpec  # its data and training settings, with the changes asked for
    ckpt: Checkpoint  # its latest
    model: GPTConfig
    context_length: int
    vocab_dir: str | None
    changes: dict[str, Any]


@dataclass(frozen=True)
class _Inputs:
    """What a training reads and runs on, settled before anything is allocated."""

    spec: TrainSpec
    tokenizer: Tokenizer
    runtime: Runtime
    room: int | None  # bytes free where the training allocates (None: unknown)
    data: Callable[[], PreparedData]  # the tokenized text (once, shared by the ranks)


class _JobBuilder:
    """Builds one TrainingJob, new (`new`) or resumed (`resumed`), step by step. It holds
    the run lock it takes until the job owns it, so a failure anywhere can let it go
    (`release`)."""

    def __init__(
        self, hooks: JobHooks, dist: Distributed, runs_dir: Path, started: float | None
    ) -> None:
        self.hooks, self.dist, self.runs_dir, self.started = hooks, dist, runs_dir, started
        self.lock: RunLock | None = None  # the run's, once taken
        self._log: EventLog | None = None  # the run's events.jsonl (rank 0)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def _take(self, run: Run) -> None:
        self.lock = RunLock(run).acquire()

    # ----------------------------------------------------------------------- a new run

    def new(self, spec: TrainSpec, vocab_dir: str | None) -> TrainingJob:
        source = self._checked(spec)
        base: Checkpoint | None = None
        if spec.init_from:  # the model's own tokenizer: its weights were trained with it
            base, tokenizer = _open_init(spec.init_from, self.runs_dir, vocab_dir)
        else:
            tokenizer = tokenizer_for(spec.model.tokenizer, source, spec.train.train_ratio,
                                      vocab_dir, self.hooks.progress, self.hooks.notice)  # fmt: skip
        inputs = self._inputs(spec, source, tokenizer, self._runtime(spec.train))
        prepared: PreparedData | None = None
        sized = ""
        cfg = spec.train
        if not spec.init_from and (spec.model.preset == AUTO or cfg.epochs is None):
            prepared = inputs.data()  # what the budget buys depends on the text's length
            sizing = size(spec.model, cfg, tokenizer.vocab_size, prepared, inputs.runtime,
                          _seconds_left(cfg, self.started), room=inputs.room,
                          alone=not self.dist.enabled)  # fmt: skip
            spec, sized = replace(spec, model=sizing.choice, train=sizing.train), sizing.line()
        elif cfg.epochs is None:  # another model's weights: their shape is given
            spec = replace(spec, train=replace(cfg, epochs=PLAIN_EPOCHS))
        inputs = replace(inputs, spec=spec)
        mcfg, context_length = _model_shape(spec.model, tokenizer.vocab_size, base)
        self._check_memory(inputs, mcfg, context_length)
        data = prepared if prepared is not None else inputs.data()
        loaders = self._loaders(data, context_length, spec.train)
        model = self._model(mcfg, spec.train, inputs.runtime, base)
        run = None
        if self.dist.is_main:
            run = self._create_run(spec, data, tokenizer, mcfg, context_length, base, vocab_dir)
        trainer = self._trainer(run, model, inputs, loaders, spec.train)
        if sized:  # in the run's events, so its history says what `auto` chose and why
            trainer.emit(Notice, message=sized)
        return self._job(run, trainer, data)

    def _create_run(
        self, spec: TrainSpec, data: PreparedData, tokenizer: Tokenizer, mcfg: GPTConfig,
        context_length: int, base: Checkpoint | None, vocab_dir: str | None,
    ) -> Run:  # fmt: skip
        """The run folder: run.json, its lock, its copy of a trained tokenizer, settings.json."""
        record = _record(spec, data, mcfg, context_length, vocab_dir, base, self.dist)
        run = create_run(self.runs_dir, data.source.name, record)
        self._take(run)
        if isinstance(tokenizer, BPETokenizer):  # the run keeps its own copy
            atomic_copy(tokenizer.path, run.path / TOKENIZER_FILE)
        if base is not None:  # settings.json says what trains: the model it starts from
            copy = run.path / TOKENIZER_FILE if isinstance(tokenizer, BPETokenizer) else None
            model_choice = ModelChoice.describing(
                mcfg, str(copy or tokenizer.name), spec.model.context_length, spec.model.dropout
            )
            spec = replace(spec, model=model_choice)
        # An absolute data path: `--settings RUN/settings.json` from another folder trains
        # on the same file, never on whatever sits at a relative path there.
        spec = replace(spec, data=str(Path(spec.data).expanduser().resolve()))
        spec.write(run.path / SETTINGS_FILE)
        return run

    # ------------------------------------------------------------------- a resumed run

    def resumable(self, ref: str, changes: dict[str, Any]) -> _Resumable:
        """The run `ref` names, locked and checked, to continue with `changes`."""
        fixed = [s for s in settings.specs(TrainConfig) if not s.on_resume and s.name in changes]
        if fixed:
            raise TuiGptError(
                f"{', '.join(s.option for s in fixed)} cannot change when resuming "
                f"({fixed[0].fixed})"
            )
        run = find_run(ref, self.runs_dir)
        info = run.record()
        if self.dist.is_main:
            ensure_not_live(run)  # a heartbeat from another machine, where the lock cannot tell
            self._take(run)
        if info.world_size != self.dist.world:
            raise TuiGptError(
                f"run {run.id} was trained by {info.world_size} process(es); resume it with "
                f"the same number (now {self.dist.world})"
            )
        ckpt = _latest_checkpoint(run, info)
        # Every run file is read and checked before any is written: a damaged one stops the
        # resume with the run as it was.
        run.status()
        next(read_events(run.events_path), None)  # a link or a FIFO in its place is refused
        if os.path.lexists(run.best):  # saved over as the run improves: a checkpoint
            Checkpoint(run.best)
        mcfg = info.model_config()
        cfg = replace(info.train_config(), **changes)
        cfg.validate()
        TrainSpec.read(run.path / SETTINGS_FILE)
        sweep_temporaries(run.checkpoints)
        # The model's own shape (a preset, or the init_from model's) decides; the preset
        # name is only a label here.
        model = ModelChoice(tokenizer=info.tokenizer, context_length=info.context_length)
        spec = TrainSpec(data=info.data_path, model=model, train=cfg)
        window = info.context_length or mcfg.context_length
        return _Resumable(run, spec, ckpt, mcfg, window, info.vocab_dir, changes)

    def resumed(self, r: _Resumable, further_text: str | None) -> TrainingJob:
        source = self._checked(r.spec)
        tokenizer = run_tokenizer(r.run, r.vocab_dir)
        r.ckpt.check_tokenizer(tokenizer.name)
        if source.sha256 != r.run.record().dataset.sha256:
            raise TuiGptError(
                f"the dataset of run {r.run.id} ({r.spec.data}) has changed since the run began"
            )
        # A resumed run keeps the runtime `auto` chose when it began (the fastest one then):
        # measured again, a busy moment could switch a run's numerics halfway.
        cfg = r.spec.train
        began = _began_with(r.run) if cfg.precision == "auto" and (
            "precision" not in r.changes) else None  # fmt: skip
        runtime = self._runtime(replace(cfg, precision=began[0]) if began else cfg)
        if began:
            runtime = replace(runtime, fp32_attention=began[1])
        inputs = self._inputs(r.spec, source, tokenizer, runtime)
        self._check_memory(inputs, r.model, r.context_length)
        data = inputs.data()
        loaders = self._loaders(data, r.context_length, cfg)
        cfg, resumed_with = _continued(r.run, r.ckpt, cfg, len(loaders.train), further_text,
                                       self.dist)  # fmt: skip
        if began:  # recorded as "auto" (above), trained as it began
            cfg = replace(cfg, precision=began[0])
        model = self._model(r.model, cfg, runtime)
        trainer = self._trainer(r.run if self.dist.is_main else None, model, inputs, loaders, cfg)
        restore(trainer, r.ckpt)
        if resumed_with:  # in the run's events, so its history says what changed and when
            trainer.emit(Notice, message="resumed with " + ", ".join(resumed_with))
        if self.dist.enabled:  # the checkpoint holds rank 0's generator: one per rank
            torch.manual_seed(cfg.seed + self.dist.rank + self.dist.world * trainer.state.steps_done)
        return self._job(r.run if self.dist.is_main else None, trainer, data)

    # ------------------------------------------------------------------- either kind

    def _checked(self, spec: TrainSpec) -> TextSource:
        """The spec's settings checked and its data inspected: the first things to say."""
        settings.check(spec.model)
        spec.train.validate()
        source = inspect_source(spec.data, spec.train.text_field)
        if source.skipped and self.hooks.notice is not None:
            self.hooks.notice(source.skipped_line())
        return source

    def _runtime(self, cfg: TrainConfig) -> Runtime:
        return runtime_for(cfg, self.dist)

    def _inputs(
        self, spec: TrainSpec, source: TextSource, tokenizer: Tokenizer, runtime: Runtime
    ) -> _Inputs:
        room = memory.available(runtime.device.type)
        if room is not None and runtime.device.type == "cpu":
            room //= self.dist.local_world  # ranks on one machine share it
        hooks, ratio = self.hooks, spec.train.train_ratio

        def tokenized() -> PreparedData:
            with self.dist.main_first():  # one tokenization into the shared cache
                return prepare(source, tokenizer, ratio, progress=hooks.progress,
                               notice=hooks.notice)  # fmt: skip

        return _Inputs(spec, tokenizer, runtime, room, tokenized)

    def _check_memory(self, inputs: _Inputs, mcfg: GPTConfig, context_length: int) -> None:
        """Before tokenizing or allocating anything: the strategy, and will it fit?"""
        cfg, d = inputs.spec.train, self.dist
        s = memory.shape(cfg, context_length, inputs.runtime, mcfg)
        sharded = replace(s, shards=d.world)
        if not d.enabled:
            if cfg.strategy == "fsdp" and self.hooks.notice is not None:
                self.hooks.notice("--strategy fsdp shards a model across torchrun's processes; "
                                  "one process trains it whole")  # fmt: skip
        elif cfg.strategy == "auto":  # ddp, unless only the shards fit: agreed by every rank
            (shard,) = d.agree(memory.check(mcfg, s, inputs.room) is not None
                               and memory.check(mcfg, sharded, inputs.room) is None)  # fmt: skip
            if shard and self.hooks.notice is not None and d.is_main:
                self.hooks.notice(f"--strategy auto: fsdp (whole on each of {d.world} processes "
                                  f"the training would not fit in {size_text(inputs.room or 0)})")  # fmt: skip
            self.dist = replace(d, sharded=shard)
        else:
            self.dist = replace(d, sharded=cfg.strategy == "fsdp")
        problem = memory.check(mcfg, sharded if self.dist.sharded else s, inputs.room)
        if problem:
            raise TuiGptError(problem)

    def _loaders(self, data: PreparedData, context_length: int, cfg: TrainConfig) -> Loaders:
        d = self.dist
        return make_loaders(data, context_length, cfg.batch_size, cfg.stride, cfg.seed,
                            d.rank, d.world, cfg.grad_accum)  # fmt: skip

    def _model(
        self, mcfg: GPTConfig, cfg: TrainConfig, runtime: Runtime, base: Checkpoint | None = None
    ) -> GPT:
        with GLOBAL_RNG:  # no step-time measurement in another thread meanwhile
            torch.manual_seed(cfg.seed)  # as the reference: the seed fixes the initial weights
            try:
                model = GPT(mcfg)
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                raise out_of_memory(exc) or exc from None
        if base is not None:
            base.load_model(model)  # init_from: its weights are the starting point
        model.to(runtime.device)
        if self.dist.enabled:
            torch.manual_seed(cfg.seed + self.dist.rank)  # same weights, own dropout per rank
        return model

    def _trainer(
        self, run: Run | None, model: GPT, inputs: _Inputs, loaders: Loaders, cfg: TrainConfig
    ) -> Trainer:
        control = self.hooks.control or TrainerControl()

        def cannot_write(exc: OSError) -> None:
            if run is not None and not run.path.is_dir():  # deleted: whichever write saw it
                control.stop(f"the run folder {run.path} was deleted; stopping")
                return
            control.stop(f"cannot write to the run folder ({exc.strerror or exc}); stopping")

        self._log = EventLog(run, cannot_write) if run is not None else None
        sinks: list[Sink] = [self._log, *self.hooks.sinks] if self._log else []
        output = RunOutput(run.checkpoints if run else None, sinks, run.id if run else "")
        return Trainer(model, loaders, inputs.tokenizer, cfg, inputs.runtime, output, control,
                       self.dist, self.started)  # fmt: skip

    def _job(self, run: Run | None, trainer: Trainer, data: PreparedData) -> TrainingJob:
        return TrainingJob(run, trainer, data, self._log, self.lock)


def _seconds_left(cfg: TrainConfig, started: float | None) -> float | None:
    """What is left of a time budget that counts from `started` (time.monotonic())."""
    if cfg.minutes is None:
        return None
    return cfg.minutes * 60 - (0.0 if started is None else time.monotonic() - started)


def _began_with(run: Run) -> tuple[str, bool] | None:
    """The precision the run's latest training began with, and whether it kept attention
    in fp32 (its last run_started event), or None where none is recorded."""
    chosen = None
    for line in run.events():
        event = event_from_dict(line)
        if isinstance(event, RunStarted) and event.precision in PRECISIONS and (
            event.precision != "auto"
        ):
            chosen = (event.precision, event.fp32_attention is True)
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


def _continued(
    run: Run, ckpt: Checkpoint, cfg: TrainConfig, per_epoch: int, further_text: str | None,
    dist: Distributed,
) -> tuple[TrainConfig, list[str]]:  # fmt: skip
    """The settings a resumed run trains on: `cfg`, trained `further` if asked, and what
    changed ("--lr 0.0004 -> 0.001"). A resume that would train nothing is refused with the
    command that trains more; otherwise what changed is kept in the run's files (a later
    --resume continues with it)."""
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
    resumed_with = [
        f"{spec.option} {spec.show(getattr(before, spec.name)) or 'off'} -> "
        f"{spec.show(getattr(cfg, spec.name)) or 'off'}"
        for spec in settings.specs(TrainConfig)
        if getattr(before, spec.name) != getattr(cfg, spec.name)
    ]
    if dist.is_main:  # a later --resume continues with these epochs / max steps
        saved = TrainSpec.read(run.path / SETTINGS_FILE)
        run.write_record(replace(info, train=cfg.to_dict()))
        if saved is not None:
            replace(saved, train=cfg).write(run.path / SETTINGS_FILE)
    return cfg, resumed_with


def _latest_checkpoint(run: Run, info: RunRecord) -> Checkpoint:
    """The run's latest checkpoint, verified; a damaged one says whether its best is intact."""
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
    return ckpt


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
