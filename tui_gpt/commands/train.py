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
from tui_gpt.core.config import TrainConfig
from tui_gpt.core.events import CheckpointSaved, Eval, Event, RunStarted, Sample, Step, Stopped
from tui_gpt.core.session import TrainingJob, new_training, resume_training
from tui_gpt.core.trainer import TrainerControl


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a text file or folder (headless)",
        description="Train a GPT on DATA, printing the step lines and a sample after each epoch. "
        "Works under torchrun. Ctrl+C saves a checkpoint and stops; --resume continues.",
    )
    p.add_argument(
        "data", metavar="DATA", nargs="?", help="a UTF-8 text file or a folder of .txt files"
    )
    p.add_argument("--resume", metavar="RUN", help="continue a run from its latest checkpoint")
    p.add_argument(
        "--init-from", metavar="RUN|PATH", help="start from a run's or a checkpoint's weights"
    )
    add_model_args(p)
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


def build_job(args: argparse.Namespace, sinks, control: TrainerControl) -> TrainingJob:
    bar = TextProgress("tokenizing")
    progress = lambda done, total: bar(done, total)  # noqa: E731
    root = runs_root(args)
    if args.resume:
        if args.data:
            raise_usage("give either DATA or --resume RUN, not both")
        job = resume_training(
            args.resume,
            root,
            epochs=args.epochs,
            max_steps=args.max_steps,
            sinks=sinks,
            control=control,
            device=None if args.device == "auto" else args.device,
            progress=progress,
        )
    else:
        if not args.data:
            raise_usage("DATA is required (a text file or folder), or --resume RUN")
        cfg = TrainConfig(
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
        )
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
        )
    bar.clear()
    return job


def raise_usage(message: str) -> None:
    sys.stderr.write(f"tui-gpt train: error: {message} (see --help)\n")
    raise SystemExit(2)


def run(args: argparse.Namespace) -> int:
    printer = ConsolePrinter()
    control = TrainerControl()
    job = build_job(args, [printer], control)
    install_stop_signals(control, printer.say)
    outcome = job.run_training()
    printer.say(f"{outcome}: run {job.run.id}")
    printer.say(f"  folder   {job.run.path}")
    printer.say(
        f'  sample   tui-gpt generate --run {job.run.id} --prompt "{job.trainer.cfg.start_context}"'
    )
    if outcome == "stopped":
        printer.say(f"  continue tui-gpt train --resume {job.run.id}")
    return 0
