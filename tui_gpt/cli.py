"""The `tui-gpt` command: no verb opens the app; each verb runs headless.

A bad argument or a user-fixable problem is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from tui_gpt import __version__, environment, paths
from tui_gpt.commands import (
    bench,
    compare,
    control,
    evaluate,
    export,
    generate,
    import_gpt2,
    plot,
    prepare,
    runs,
    tokenizer,
    train,
    watch,
)
from tui_gpt.commands.common import open_app
from tui_gpt.core import process
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import disk_reason

VERBS = (
    prepare,
    tokenizer,
    train,
    control,
    evaluate,
    export,
    generate,
    runs,
    compare,
    plot,
    watch,
    bench,
    import_gpt2,
)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="tui-gpt",
        description="Pretrain a GPT language model on your own text and sample from it. "
        "Without a command, opens the terminal app.",
    )
    parser.add_argument("--version", action="version", version=f"tui-gpt {__version__}")
    parser.add_argument(
        "--run-dir", help="folder of run folders (default: the user data dir; env TUI_GPT_RUN_DIR)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # `train --detach` starts the same command again in the background
    # A polite kill unwinds like Ctrl+C, so that half-written files are removed on the way
    # out (training and the app install their own handlers).
    signal.signal(signal.SIGTERM, _terminated)
    process.keep_a_temporary_folder()
    try:
        if args.command is None:
            return open_app(paths.runs_dir(args.run_dir))
        return int(args.func(args) or 0)
    except (TuiGptError, environment.BadVariable) as exc:
        print(f"tui-gpt: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `tui-gpt runs | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    except OSError as exc:  # (after BrokenPipeError, one of its kinds)
        if disk_reason(exc) == (exc.strerror or ""):  # not a full disk or a size limit: a bug
            raise
        where = f"cannot write {exc.filename}" if exc.filename else "cannot write a file"
        print(f"tui-gpt: error: {where}: {disk_reason(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tui-gpt: interrupted", file=sys.stderr)
        return 130
