"""`tui-gpt train DATA`: headless training that prints the reference's lines.

Ctrl+C, SIGTERM and SIGHUP (the SSH session dropped) finish the current step, save
`latest`, mark the run stopped and exit; a second Ctrl+C exits at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tui_gpt.commands.common import (
    TextProgress,
    add_model_args,
    add_run_dir,
    add_runtime_args,
    add_tokenizer_args,
    add_window_args,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    runs_root,
)
from tui_gpt.core import detach
from tui_gpt.core.config import TrainConfig
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import (
    CheckpointSaved,
    Eval,
    Event,
    Notice,
    RunStarted,
    Sample,
    Step,
    Stopped,
)

if TYPE_CHECKING:  # torch comes with these; the parser must load without it
    from tui_gpt.core.distributed import Distributed
    from tui_gpt.core.session import TrainingJob
    from tui_gpt.core.trainer import TrainerControl


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a text file or folder (headless)",
        description="Train a GPT on DATA, printing the step lines and a sample after each epoch. "
        "Ctrl+C saves a checkpoint and stops; --resume continues. With --detach the training "
        "runs in the background, safe from a dropped SSH session. Under torchrun "
        "(torchrun --nproc_per_node=N -m tui_gpt train ...) it trains with "
        "DistributedDataParallel; --batch-size is per process.",
    )
    p.add_argument(
        "data", metavar="DATA", nargs="?", help="a UTF-8 text file or a folder of .txt files"
    )
    p.add_argument("--resume", metavar="RUN", help="continue a run from its latest checkpoint")
    p.add_argument(
        "--init-from", metavar="RUN|PATH", help="start from a run's or a checkpoint's weights"
    )
    add_model_args(p)
    p.add_argument(
        "--dropout",
        type=non_negative_float,
        help="dropout rate of a new model (default 0.1, as GPT-2)",
    )
    add_tokenizer_args(p)
    add_window_args(p, context_default=None)
    p.add_argument(
        "--epochs", type=positive_int, help="passes over the training split (default 10)"
    )
    p.add_argument("--max-steps", type=positive_int, help="stop after this many updates")
    p.add_argument(
        "--lr", type=positive_float, default=4e-4, help="AdamW learning rate (default 4e-4)"
    )
    p.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=0.1,
        help="AdamW weight decay (default 0.1)",
    )
    p.add_argument(
        "--warmup-steps", type=non_negative_int, default=0, help="linear warmup steps (default 0)"
    )
    p.add_argument("--cosine", action="store_true", help="cosine learning-rate decay after warmup")
    p.add_argument("--grad-clip", type=positive_float, help="clip the gradient norm to this value")
    p.add_argument(
        "--eval-freq", type=positive_int, default=5, help="evaluate every N steps (default 5)"
    )
    p.add_argument(
        "--eval-iter", type=positive_int, default=5, help="batches per evaluation (default 5)"
    )
    p.add_argument("--seed", type=int, default=123, help="random seed (default 123)")
    p.add_argument(
        "--start-context", default="Every effort moves you", help="prompt of the per-epoch sample"
    )
    p.add_argument(
        "--sample-tokens", type=non_negative_int, default=50, help="tokens in the per-epoch sample"
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=positive_float,
        default=10.0,
        help="save latest at least this often (default 10)",
    )
    add_runtime_args(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step: faster steps after a slow first one "
        "(falls back to eager if compiling fails)",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="train in the background (survives logout); prints the run id and returns",
    )
    add_run_dir(p)
    p.set_defaults(func=run)


class ConsolePrinter:
    """Event sink for a terminal or a pipe: the reference's lines, plus a progress bar on a
    terminal. Never raises: after a hang-up the training goes on without output."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.bar = TextProgress("training")
        self.total = 0
        self.started = time.monotonic()
        self.first_step: int | None = None

    def say(self, text: str) -> None:
        self.bar.clear()
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            _silence_output()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.total = event.total_steps
            self.first_step = event.step + 1
            self.started = time.monotonic()
            verb = "resuming" if event.resumed else "training"
            self.say(
                f"{verb} run {event.run_id}: {event.params:,} parameters, {event.total_steps} steps "
                f"({event.train_batches} batches/epoch, {event.val_batches} validation), "
                f"device {event.device}, precision {event.precision}, {event.threads} threads"
            )
        elif isinstance(event, Eval):
            self.say(
                f"Ep {event.epoch} (Step {event.step:06d}): "
                f"Train loss {event.train_loss:.3f}, Val loss {event.val_loss:.3f}"
            )
        elif isinstance(event, Sample):
            self.say(event.text.replace("\n", " "))
        elif isinstance(event, Notice):
            self.say(event.message)
        elif isinstance(event, Stopped):
            self.say(f"stopped: {event.reason}")
        elif isinstance(event, CheckpointSaved) and event.kind == "latest":
            self.bar.clear()
        elif isinstance(event, Step):
            done = event.step + 1
            ran = done - (self.first_step or 0)
            elapsed = time.monotonic() - self.started
            eta = elapsed / ran * (self.total - done) if ran > 0 else 0.0
            self.bar(
                done,
                self.total,
                f"step {done}/{self.total} · epoch {event.epoch} · loss {event.loss:.3f} · "
                f"{event.tok_per_s:,.0f} tok/s · ETA {_duration(eta)}",
            )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _silence_output() -> None:
    """Point stdout/stderr at /dev/null once the terminal is gone, so later writes (and the
    interpreter's final flush) cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)


def install_stop_signals(control: TrainerControl, say) -> None:
    """First Ctrl+C / SIGTERM / SIGHUP: stop after the current step and save. Second Ctrl+C:
    exit at once."""

    def handler(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            _silence_output()
        if control.stopping and signum == signal.SIGINT:
            os._exit(130)
        control.stop(f"{name} received")
        if signum == signal.SIGINT:
            say("stopping after this step and saving a checkpoint (Ctrl+C again to quit at once)")

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)


def check_args(args: argparse.Namespace) -> None:
    if args.resume and args.data:
        raise_usage("give either DATA or --resume RUN, not both")
    if not args.resume and not args.data:
        raise_usage("DATA is required (a text file or folder), or --resume RUN")
    if args.dropout is not None and not args.dropout < 1:
        raise_usage(f"--dropout must be below 1, got {args.dropout}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training settings of a parsed `train` command line."""
    return TrainConfig(
        epochs=args.epochs or 10,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        stride=args.stride,
        train_ratio=args.train_ratio,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        cosine_decay=args.cosine,
        grad_clip=args.grad_clip,
        eval_freq=args.eval_freq,
        eval_iter=args.eval_iter,
        seed=args.seed,
        start_context=args.start_context,
        sample_tokens=args.sample_tokens,
        checkpoint_minutes=args.checkpoint_minutes,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        compile=args.compile,
    )


def build_job(
    args: argparse.Namespace, sinks, control: TrainerControl, dist: Distributed | None = None
) -> TrainingJob:
    from tui_gpt.core.distributed import SINGLE
    from tui_gpt.core.session import new_training, resume_training

    dist = dist or SINGLE
    bar = TextProgress("tokenizing")
    progress = (lambda done, total: bar(done, total)) if dist.is_main else None
    root = runs_root(args)
    if args.resume:
        job = resume_training(
            args.resume,
            root,
            epochs=args.epochs,
            max_steps=args.max_steps,
            sinks=sinks,
            control=control,
            device=None if args.device == "auto" else args.device,
            progress=progress,
            dist=dist,
        )
    else:
        cfg = config_from_args(args)
        job = new_training(
            args.data,
            cfg,
            args.preset,
            args.context_length,
            args.tokenizer,
            args.vocab_dir,
            root,
            sinks=sinks,
            control=control,
            progress=progress,
            init_from=args.init_from,
            dropout=args.dropout,
            dist=dist,
        )
    bar.clear()
    return job


def train_argv(
    data: str,
    cfg: TrainConfig,
    preset: str,
    context_length: int | None,
    tokenizer: str,
    run_dir: Path,
) -> list[str]:
    """The `tui-gpt` command line that trains `data` with these settings (what the app runs
    in the background)."""
    argv = ["--run-dir", str(run_dir), "train", str(data), "--preset", preset]
    argv += ["--tokenizer", tokenizer, "--epochs", str(cfg.epochs)]
    argv += ["--batch-size", str(cfg.batch_size), "--train-ratio", repr(cfg.train_ratio)]
    argv += ["--lr", repr(cfg.lr), "--weight-decay", repr(cfg.weight_decay)]
    argv += ["--eval-freq", str(cfg.eval_freq), "--eval-iter", str(cfg.eval_iter)]
    argv += ["--seed", str(cfg.seed), "--start-context", cfg.start_context]
    argv += ["--sample-tokens", str(cfg.sample_tokens)]
    argv += ["--checkpoint-minutes", repr(cfg.checkpoint_minutes)]
    argv += ["--device", cfg.device, "--precision", cfg.precision]
    optional = {
        "--context-length": context_length,
        "--max-steps": cfg.max_steps,
        "--stride": cfg.stride,
        "--warmup-steps": cfg.warmup_steps or None,
        "--grad-clip": cfg.grad_clip,
        "--threads": cfg.threads,
    }
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, repr(value)]
    if cfg.cosine_decay:
        argv.append("--cosine")
    if cfg.compile:
        argv.append("--compile")
    return argv


def raise_usage(message: str) -> None:
    sys.stderr.write(f"tui-gpt train: error: {message} (see --help)\n")
    raise SystemExit(2)


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if args.detach:
        return run_detached(args)
    from tui_gpt.core.distributed import from_environment

    dist = from_environment(args.device)
    try:
        return _train(args, dist)
    finally:
        dist.close()


def run_detached(args: argparse.Namespace) -> int:
    argv = [a for a in args.argv if a != "--detach"]
    print("starting the training in the background (preparing the dataset) ...", flush=True)
    started = detach.launch(argv)
    print(f"training in the background: run {started.run_id}, pid {started.pid}")
    print(f"  folder   {started.path}")
    print(f"  log      {started.log}")
    print(f"  watch    tui-gpt watch {started.run_id}")
    print(f"  control  tui-gpt control {started.run_id} pause|resume|stop|checkpoint")
    return 0


def _train(args: argparse.Namespace, dist: Distributed) -> int:
    from tui_gpt.core.trainer import TrainerControl

    printer = ConsolePrinter()
    control = TrainerControl()
    try:
        job = build_job(args, [printer] if dist.is_main else [], control, dist)
    except TuiGptError as exc:
        detach.report_failed(str(exc))
        raise
    if job.run is not None and detach.is_detached_child():
        detach.report_started(job.run.id, job.run.path)
    install_stop_signals(control, printer.say)
    outcome = job.run_training()
    if job.run is None:
        return 0  # ranks other than 0 say nothing
    printer.say(f"{outcome}: run {job.run.id}")
    printer.say(f"  folder   {job.run.path}")
    printer.say(
        f'  sample   tui-gpt generate --run {job.run.id} --prompt "{job.trainer.cfg.start_context}"'
    )
    if outcome == "stopped":
        printer.say(f"  continue tui-gpt train --resume {job.run.id}")
    return 0
