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
    DATA_HELP,
    TextProgress,
    add_recipe,
    add_run_dir,
    add_settings,
    add_vocab_dir,
    given,
    note,
    recipe_settings,
    runs_dir,
    settings_from_args,
)
from tui_gpt.core import detach, settings
from tui_gpt.core.config import (
    DEFAULT_RECIPE,
    FURTHER_HELP,
    RECIPES,
    ModelChoice,
    TrainConfig,
    TrainSpec,
)
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import (
    GLOSSARY,
    CheckpointSaved,
    Eval,
    Event,
    Finished,
    Notice,
    Progress,
    RunStarted,
    Sample,
    Step,
    Stopped,
    end_line,
    eval_line,
    sample_text,
    started_line,
)

if TYPE_CHECKING:  # torch comes with these; the parser must load without it
    from tui_gpt.core.distributed import Distributed
    from tui_gpt.core.jobs import JobHooks, TrainingJob
    from tui_gpt.core.session import Build
    from tui_gpt.core.trainer import TrainerControl


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a text file or folder (headless)",
        description="Train a GPT on DATA, printing the step lines and a sample after each epoch. "
        "Ctrl+C saves a checkpoint and stops; --resume continues. With --detach the training "
        "runs in the background, safe from a dropped SSH session. Under torchrun "
        "(torchrun --nproc_per_node=N -m tui_gpt train ...) every process trains on its "
        "share of each batch, holding the whole model (--strategy ddp) or a shard of it "
        "(--strategy fsdp); --batch-size is per process.",
        epilog="Terms in its output: "
        + "; ".join(f"{term}: {meaning}" for term, meaning in GLOSSARY.items()) + ".",
    )
    p.add_argument(
        "data", metavar="DATA", nargs="?", help=DATA_HELP
    )
    p.add_argument(
        "--settings",
        metavar="FILE",
        help="start from a settings JSON (every run folder has one: settings.json); "
        "flags given as well override it",
    )
    p.add_argument("--resume", metavar="RUN", help="continue a run from its latest checkpoint")
    p.add_argument("--further", metavar="N|Ne",
                   help=f"with --resume: train the run further, {FURTHER_HELP}; its time budget "
                   "no longer applies")  # fmt: skip
    p.add_argument(
        "--init-from", metavar="RUN|PATH",
        help="start from a run's or a checkpoint's weights: their model and tokenizer "
        f"(of the model settings only {', '.join(o for o in INIT_OPTIONS)} apply)",
    )
    add_recipe(p)
    default_model, default_train = RECIPES[DEFAULT_RECIPE].settings()
    add_settings(p.add_argument_group("model"), ModelChoice, defaults=default_model)
    add_vocab_dir(p)
    add_settings(p.add_argument_group("training"), TrainConfig, defaults=default_train)
    p.add_argument(
        "--detach",
        action="store_true",
        help="train in the background (survives logout); prints the run id and returns",
    )
    add_run_dir(p)
    p.set_defaults(func=run)


# Into a pipe or a log, where no bar can be drawn, a progress line this often (seconds).
PROGRESS_EVERY = 30.0


class ConsolePrinter:
    """Event sink for a terminal or a pipe: the reference's lines, plus progress: a bar in
    place on a terminal, a line every PROGRESS_EVERY seconds into a pipe or a log. Never
    raises: after a hang-up the training goes on without output."""

    def __init__(self, stream=None, bar: TextProgress | None = None) -> None:
        self.stream = stream or sys.stdout
        self.bar = bar or TextProgress("training")
        self.progress = Progress()
        self._said_progress: float | None = None  # event time of the last progress line

    def say(self, text: str) -> None:
        self.bar.clear()
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            _silence_output()

    def __call__(self, event: Event) -> None:
        self.progress.update(event)
        if isinstance(event, RunStarted):
            self.say(started_line(event))
            self._said_progress = event.time
        elif isinstance(event, Eval):
            self.say(eval_line(event))
        elif isinstance(event, Sample):
            self.say(sample_text(event))
        elif isinstance(event, Notice):
            self.say(event.message)
        elif isinstance(event, Stopped | Finished):
            self.say(end_line(event))
        elif isinstance(event, CheckpointSaved) and event.kind == "latest":
            self.bar.clear()
        elif isinstance(event, Step):
            if self.bar.enabled:
                self.bar(self.progress.done, self.progress.total, self.progress.line())
            elif event.time - (self._said_progress or event.time) >= PROGRESS_EVERY:
                self._said_progress = event.time
                self.say(self.progress.line())


def _silence_output() -> None:
    """Point stdout/stderr at /dev/null once the terminal is gone, so later writes (and the
    interpreter's final flush) cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)


def install_stop_signals(
    control: TrainerControl, say, received: list[int] | None = None
) -> list[int]:
    """First Ctrl+C / SIGTERM / SIGHUP: stop after the current step and save. Second Ctrl+C:
    exit at once. Returns the list the signals received are appended to (`received`)."""
    received = [] if received is None else received

    def handler(signum: int, _frame) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            _silence_output()
        control.stop(f"{name} received")
        if signum == signal.SIGINT:
            # The next Ctrl+C ends the process at once, even in the middle of a long step
            # (a Python handler would wait for the step to finish).
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            say("stopping after this step and saving a checkpoint (Ctrl+C again to quit at once)")

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)
    return received


# The model settings that still apply to a model taken from --init-from.
INIT_SETTINGS = ("context_length", "dropout")
INIT_OPTIONS = tuple("--" + name.replace("_", "-") for name in INIT_SETTINGS)


def check_args(args: argparse.Namespace) -> None:
    if args.resume and (args.data or args.settings or args.init_from):
        raise_usage("--resume continues a run with its own data and settings; give no DATA, "
                    "--settings or --init-from with it")  # fmt: skip
    if not args.resume and not args.data and not args.settings:
        raise_usage("DATA is required (a text file or folder), or --settings FILE, or --resume RUN")
    if args.resume and given(args, ModelChoice):
        raise_usage("a run's model settings cannot change when resuming")
    if args.further is not None and not args.resume:
        raise_usage("--further trains a run further: give it with --resume RUN")
    shaped = [s.option for s in settings.specs(ModelChoice)
              if s.name in given(args, ModelChoice) and s.name not in INIT_SETTINGS]  # fmt: skip
    if args.init_from and shaped:
        raise_usage(f"--init-from takes the model and its tokenizer from {args.init_from}; "
                    f"{', '.join(shaped)} cannot be given with it")  # fmt: skip
    if args.recipe and (args.resume or args.settings):
        raise_usage("--recipe starts a new run's settings; a resumed run or a settings file "
                    "has its own")  # fmt: skip


def spec_from_args(args: argparse.Namespace) -> TrainSpec:
    """The training a `train` command line asks for: a settings file or else the recipe,
    then DATA and the flags given."""
    if args.settings:
        base = TrainSpec.load(args.settings)
    else:
        model, train = recipe_settings(args)
        if args.init_from:  # the model is the one it starts from, not the recipe's
            model = ModelChoice()
        base = TrainSpec(data=args.data, model=model, train=train)
    spec = TrainSpec(
        # The folder this command runs in decides a relative DATA, once: a background run
        # or a settings file read elsewhere names the same file.
        data=str(Path(args.data).expanduser().absolute()) if args.data else base.data,
        model=settings_from_args(args, ModelChoice, base.model),
        train=settings_from_args(args, TrainConfig, base.train),
        init_from=args.init_from or base.init_from,
    )
    settings.check(spec.model)
    spec.train.validate()
    return spec


def job_builder(args: argparse.Namespace, dist: Distributed | None = None) -> Build:
    """How to assemble the training this command line asks for (a resume or a new run)."""
    from tui_gpt.core.distributed import SINGLE
    from tui_gpt.core.jobs import assemble

    dist = dist or SINGLE

    def build(hooks: JobHooks) -> TrainingJob:
        if args.resume:
            return assemble(resume=args.resume, changes=given(args, TrainConfig),
                            runs_dir=runs_dir(args), hooks=hooks, dist=dist,
                            started=args.started, further=args.further)  # fmt: skip
        return assemble(spec_from_args(args), runs_dir=runs_dir(args), hooks=hooks, dist=dist,
                        vocab_dir=args.vocab_dir, started=args.started)  # fmt: skip

    return build


def raise_usage(message: str) -> None:
    sys.stderr.write(f"tui-gpt train: error: {message} (see --help)\n")
    raise SystemExit(2)


def process_started() -> float:
    """When this process began, on the time.monotonic() clock: a --minutes budget counts
    the interpreter's and torch's start-up too. Where /proc cannot say: now."""
    now = time.monotonic()
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
    except (OSError, ValueError, IndexError):
        return now
    return now - age if 0 <= age < 3600 else now


def run(args: argparse.Namespace) -> int:
    args.started = process_started()  # a --minutes budget counts from here
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
    print("starting the training in the background (preparing the dataset) ...", flush=True)
    root = runs_dir(args)
    if args.resume:
        argv = [a for a in args.argv if a != "--detach"]  # the user's own overrides, as given
        started = detach.launch(argv)
    else:
        started = detach.launch_spec(spec_from_args(args), root, args.vocab_dir)
    print(f"training in the background: run {started.run_id}, pid {started.pid}")
    print(f"  folder   {started.path}")
    print(f"  log      {started.log}")
    print(f"  watch    tui-gpt watch {started.run_id}")
    print(f"  control  tui-gpt control {started.run_id} pause|resume|stop|checkpoint")
    return 0


def _train(args: argparse.Namespace, dist: Distributed) -> int:
    from tui_gpt.core.session import TrainingSession

    printer = ConsolePrinter()
    session = TrainingSession()
    control = session.begin()
    bar = TextProgress("tokenizing")
    received: list[int] = []

    def on_job(job: TrainingJob) -> None:
        bar.clear()
        if job.run is not None and detach.is_detached_child():
            detach.report_started(job.run.id, job.run.path)
        # From here a Ctrl+C stops after a step and saves; before, it ends the preparation.
        install_stop_signals(control, printer.say, received)

    try:
        outcome = session.run(
            job_builder(args, dist),
            [printer] if dist.is_main else [],
            tokenizing=(lambda d, t: bar(d, t)) if dist.is_main else None,
            notice=note,
            on_job=on_job,
        )
    except TuiGptError as exc:
        if session.job is None:  # the job could not be assembled: tell a waiting parent
            detach.report_failed(str(exc))
        raise
    job = session.job
    assert job is not None
    if job.run is None:
        return 0  # ranks other than 0 say nothing
    printer.say(f"{outcome}: run {job.run.id}")
    printer.say(f"  folder   {job.run.path}")
    printer.say(
        f'  sample   tui-gpt generate {job.run.id} --prompt "{job.trainer.cfg.start_context or "Once upon a time"}"'
    )
    if outcome == "stopped":
        printer.say(f"  continue tui-gpt train --resume {job.run.id}")
    else:
        printer.say(f"  further  tui-gpt train --resume {job.run.id} --further 1e")
    # Stopped by a signal: the status shells expect of it (130 for Ctrl+C, 143 for SIGTERM).
    return 128 + received[0] if received and outcome == "stopped" else 0
