"""Assemble a training job from a dataset and settings, or from a run to resume.

Shared by `tui-gpt train` and the app. Everything that can fail on the user's input
(dataset, settings, device, checkpoint) is checked before the run folder is created, so a
bad start leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tui_gpt import paths
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import TrainConfig, count_params, model_config
from tui_gpt.core.control import ControlChannel, ensure_not_live
from tui_gpt.core.data import PreparedData, inspect_source, make_loaders, prepare
from tui_gpt.core.device import cpu_allowance, resolve_device, resolve_precision, resolve_threads
from tui_gpt.core.distributed import SINGLE, Distributed
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import atomic_write_text
from tui_gpt.core.model import GPT, GPTConfig
from tui_gpt.core.quantize import quantize_int8
from tui_gpt.core.runs import EventLog, Run, create_run, find_run
from tui_gpt.core.tokenizer import get_tokenizer
from tui_gpt.core.trainer import Sink, Trainer, TrainerControl, make_optimizer, restore


@dataclass
class TrainingJob:
    """A trainer and its run folder. Under torchrun only rank 0 has a run folder and a log;
    the other ranks train alongside with `run` and `log` None."""

    run: Run | None
    trainer: Trainer
    data: PreparedData
    log: EventLog | None

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
            if self.log is not None and not isinstance(exc, TuiGptError):
                # a diverged run already said why
                self.log.run.set_status("failed", error=str(exc) or type(exc).__name__)
            raise
        finally:
            if self.log is not None:
                self.log.close()


def _runtime(cfg: TrainConfig, dist: Distributed) -> tuple[torch.device, str, int]:
    device = dist.device if dist.device is not None else resolve_device(cfg.device)
    threads = cfg.threads
    if dist.enabled and not threads and device.type == "cpu":
        threads = dist.threads(cpu_allowance())
    return device, resolve_precision(cfg.precision, device), resolve_threads(threads)


def new_training(
    data_path: str | Path,
    cfg: TrainConfig,
    preset: str,
    context_length: int | None = None,
    tokenizer_name: str = "gpt2",
    vocab_dir: str | None = None,
    runs_root: Path | None = None,
    sinks: list[Sink] | None = None,
    control: TrainerControl | None = None,
    progress: Callable[[int, int], None] | None = None,
    init_from: str | None = None,
    dropout: float | None = None,
    dist: Distributed = SINGLE,
) -> TrainingJob:
    """A fresh run on `data_path`; with `init_from` (a run or checkpoint), its weights and
    shape are the starting point instead of a random model. `dropout` overrides the
    model's dropout rate."""
    cfg.validate()
    tokenizer = get_tokenizer(tokenizer_name, vocab_dir)
    base: Checkpoint | None = _open_init(init_from, runs_root) if init_from else None
    if base is not None:
        mcfg = base.model_config
        if mcfg.vocab_size != tokenizer.vocab_size:
            raise TuiGptError(
                f"--init-from model has a vocabulary of {mcfg.vocab_size}, the {tokenizer.name} "
                f"tokenizer {tokenizer.vocab_size}"
            )
        if context_length and context_length > mcfg.context_length:
            raise TuiGptError(
                f"--context-length {context_length} exceeds the model's {mcfg.context_length}"
            )
    else:
        mcfg = model_config(preset, tokenizer.vocab_size, context_length)
    if dropout is not None:
        mcfg = GPTConfig(**{**mcfg.to_dict(), "drop_rate": dropout})
    seq_len = context_length or mcfg.context_length
    source = inspect_source(data_path)
    with dist.main_first():  # one tokenization into the shared cache, not one per rank
        data = prepare(source, tokenizer, cfg.train_ratio, progress=progress)
    train_loader, val_loader = make_loaders(
        data, seq_len, cfg.batch_size, cfg.stride, cfg.seed, rank=dist.rank, world=dist.world
    )
    device, precision, threads = _runtime(cfg, dist)

    torch.manual_seed(cfg.seed)  # as the reference: the seed fixes the initial weights too
    model = GPT(mcfg)
    if base is not None:
        base.load_model(model)
    model.to(device)
    if dist.enabled:
        torch.manual_seed(cfg.seed + dist.rank)  # same weights, different dropout per rank
    optimizer = make_optimizer(model, cfg, device)

    info = {
        "dataset": data.fingerprint,
        "data_path": str(Path(data_path).expanduser().resolve()),
        "tokenizer": tokenizer.name,
        "vocab_dir": vocab_dir,
        "model": mcfg.to_dict(),
        "seq_len": seq_len,
        "train": cfg.to_dict(),
        "params": count_params(mcfg),
        "init_from": str(base.path) if base is not None else None,
        "world_size": dist.world,
    }
    run = None
    if dist.is_main:
        run = create_run(
            runs_root or paths.runs_dir(),
            data.source.name,
            preset if base is None else "init",
            info,
        )
    return _job(
        run,
        model,
        (train_loader, val_loader),
        tokenizer,
        cfg,
        (device, precision, threads),
        data,
        sinks,
        control,
        optimizer,
        dist,
    )


def _job(
    run, model, loaders, tokenizer, cfg, runtime, data, sinks, control, optimizer=None, dist=SINGLE
) -> TrainingJob:
    """The trainer of a run folder: its events go to events.jsonl first, then to `sinks`.
    Without a run folder (a rank other than 0) the trainer writes nothing."""
    device, precision, threads = runtime
    log = EventLog(run) if run is not None else None
    trainer = Trainer(
        model,
        *loaders,
        tokenizer,
        cfg,
        device,
        precision,
        optimizer=optimizer,
        checkpoint_dir=run.checkpoints if run is not None else None,
        sinks=[log, *(sinks or [])] if log is not None else [],
        control=control,
        run_id=run.id if run is not None else "",
        threads=threads,
        dist=dist,
    )
    return TrainingJob(run, trainer, data, log)


def _open_init(ref: str, runs_root: Path | None) -> Checkpoint:
    if Path(ref).is_file():
        return Checkpoint(ref)
    return Checkpoint(find_run(ref, runs_root).weights())


def resume_training(
    run_ref: str,
    runs_root: Path | None = None,
    epochs: int | None = None,
    max_steps: int | None = None,
    sinks: list[Sink] | None = None,
    control: TrainerControl | None = None,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    dist: Distributed = SINGLE,
) -> TrainingJob:
    """Continue a run from its `latest` checkpoint, on the same data, in the same folder.
    A run still training in another process is refused. Under torchrun every rank reads the
    checkpoint (the run folder must be on a filesystem they share) and the world size must
    be the one the run began with, so each rank's shard of the data is the same."""
    run = find_run(run_ref, runs_root)
    info = run.info()
    if dist.is_main:
        ensure_not_live(run)
    began_with = int(info.get("world_size", 1))
    if began_with != dist.world:
        raise TuiGptError(
            f"run {run.id} was trained by {began_with} process(es); resume it with the same "
            f"number (now {dist.world})"
        )
    if not run.latest.is_file():
        raise TuiGptError(f"run {run.id} has no latest checkpoint to resume from")
    ckpt = Checkpoint(run.latest)
    cfg = TrainConfig.from_dict(info.get("train", {})).updated(epochs=epochs, device=device)
    if max_steps is not None:
        cfg.max_steps = max_steps
    cfg.validate()
    tokenizer = get_tokenizer(info.get("tokenizer", "gpt2"), info.get("vocab_dir"))
    dataset = info.get("dataset", {})
    source = inspect_source(info.get("data_path", ""))
    if source.sha256 != dataset.get("sha256"):
        raise TuiGptError(
            f"the dataset of run {run.id} ({info.get('data_path')}) has changed since the run began"
        )
    with dist.main_first():
        data = prepare(source, tokenizer, cfg.train_ratio, progress=progress)
    seq_len = int(info.get("seq_len") or ckpt.model_config.context_length)
    train_loader, val_loader = make_loaders(
        data, seq_len, cfg.batch_size, cfg.stride, cfg.seed, rank=dist.rank, world=dist.world
    )
    dev, precision, threads = _runtime(cfg, dist)
    model = GPT(GPTConfig(**info["model"])).to(dev)
    if dist.is_main:
        info["train"] = cfg.to_dict()  # a later --resume continues with these epochs / max steps
        atomic_write_text(run.path / "run.json", json.dumps(info, indent=2))
    job = _job(
        run if dist.is_main else None,
        model,
        (train_loader, val_loader),
        tokenizer,
        cfg,
        (dev, precision, threads),
        data,
        sinks,
        control,
        dist=dist,
    )
    restore(job.trainer, ckpt)
    if dist.enabled:  # the checkpoint holds rank 0's generator: give each rank its own
        torch.manual_seed(cfg.seed + dist.rank + dist.world * job.trainer.state.steps_done)
    return job


@dataclass
class LoadedModel:
    """A model ready to sample from, with its tokenizer and where it came from."""

    model: GPT
    tokenizer: object
    source: str
    device: torch.device
    precision: str


def load_for_sampling(
    run_ref: str | None = None,
    checkpoint_path: str | None = None,
    runs_root: Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    vocab_dir: str | None = None,
) -> LoadedModel:
    """Open a run's best (else latest) weights, or a checkpoint file, in eval mode.

    With bf16 precision the weights themselves are cast to bf16: decoding is bound by
    reading the weights, so half the bytes is nearly twice the tokens per second.
    """
    if checkpoint_path:
        ckpt = Checkpoint(checkpoint_path)
        tok_name = ckpt.json("tokenizer")
    else:
        run = find_run(run_ref or "", runs_root)
        ckpt = Checkpoint(run.weights())
        info = run.info()
        tok_name = ckpt.json("tokenizer") or info.get("tokenizer")
        vocab_dir = vocab_dir or info.get("vocab_dir")
    if tok_name is None:
        tok_name = "byte" if ckpt.model_config.vocab_size == 257 else "gpt2"
    tokenizer = get_tokenizer(tok_name, vocab_dir)
    if tokenizer.vocab_size > ckpt.model_config.vocab_size:
        raise TuiGptError(
            f"{ckpt.path}: vocabulary {ckpt.model_config.vocab_size} is smaller than the {tok_name} tokenizer's"
        )
    dev = resolve_device(device)
    prec = "int8" if precision == "int8" else resolve_precision(precision, dev)
    model = ckpt.build_model(dev).eval()
    if prec == "bf16":
        model = model.to(torch.bfloat16)
    elif prec == "int8":
        model = quantize_int8(model)
    return LoadedModel(model, tokenizer, str(ckpt.path), dev, prec)
