"""Argument types and options shared by several verbs."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from tui_gpt import paths
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.runs import Run
from tui_gpt.core.settings import Spec, specs

T = TypeVar("T")
_METAVAR = {int: "N", float: "X", str: "TEXT"}


def _checked(spec: Spec) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_settings(
    p: argparse.ArgumentParser,
    cls: type,
    only: tuple[str, ...] | None = None,
    defaults: Any = None,
) -> None:
    """One `--flag` per setting of the settings class `cls` (core/config.py), typed and
    bounded as declared there. A flag not given stays None: the default (`defaults`, the
    default recipe's settings, where given), a settings file or the resumed run decides."""
    for spec in specs(cls):
        if only is not None and spec.name not in only:
            continue
        default = spec.show(spec.default) or spec.blank or "none"
        if defaults is not None and getattr(defaults, spec.name) != spec.default:
            shown = spec.show(getattr(defaults, spec.name)) or spec.blank or "none"
            default = f"{shown}; the reference recipe's {default}"
        help_text = f"{spec.help} (default {default})".replace("%", "%%")
        if spec.kind is bool:
            p.add_argument(spec.option, dest=spec.name, action=argparse.BooleanOptionalAction,
                           default=None, help=help_text)  # fmt: skip
        else:
            closed = spec.choices if not spec.other else None  # argparse checks these itself
            metavar = "|".join([*(spec.choices or ()), spec.other]) if spec.other else None
            p.add_argument(
                spec.option, dest=spec.name, type=str if closed else _checked(spec), choices=closed,
                default=None, metavar=metavar or (None if closed else _METAVAR[spec.kind]), help=help_text,
            )  # fmt: skip


def add_recipe(p: argparse.ArgumentParser) -> None:
    from tui_gpt.core.config import DEFAULT_RECIPE, RECIPES

    described = "; ".join(f"{name}: {r.description}" for name, r in RECIPES.items())
    p.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                   help=f"the settings a new run starts from, before the flags given: {described} "
                   f"(default {DEFAULT_RECIPE}, or env TUI_GPT_RECIPE)")  # fmt: skip


def recipe_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """The (ModelChoice, TrainConfig) of the recipe `--recipe` names, or the default one."""
    from tui_gpt.core.config import RECIPES, default_recipe

    return RECIPES[getattr(args, "recipe", None) or default_recipe()].settings()


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of `cls` given on the command line."""
    return {
        s.name: getattr(args, s.name) for s in specs(cls) if getattr(args, s.name, None) is not None
    }


def settings_from_args(args: argparse.Namespace, cls: type[T], base: T | None = None) -> T:
    """`base` (or the defaults) with the settings given on the command line."""
    return replace(base if base is not None else cls(), **given(args, cls))  # type: ignore[type-var]


# Plain options that are not settings, checked by the same rules.
positive_int = _checked(Spec("value", int, False, None, "", "", ge=1))
positive_float = _checked(Spec("value", float, False, None, "", "", gt=0))


def add_chart_args(p: argparse.ArgumentParser) -> None:
    """RUN... and the chart's x axis and size, for the verbs that draw runs."""
    from tui_gpt.core.experiments import X_AXES

    p.add_argument("runs", metavar="RUN", nargs="+", help="run ids, unique prefixes or folders")
    p.add_argument("--x", choices=X_AXES, default="tokens", help="x axis (default tokens)")
    p.add_argument("--width", type=positive_int, help="columns (default: the terminal's)")
    p.add_argument("--height", type=positive_int, default=18, help="chart rows (default 18)")


def add_vocab_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vocab-dir",
        help="folder with GPT-2's encoder.json and vocab.bpe, for offline use (env TUI_GPT_VOCAB_DIR)",
    )


def runs_dir(args: argparse.Namespace) -> Path:
    return paths.runs_dir(getattr(args, "run_dir", None))


def note(text: str) -> None:
    """Something the user should know that is not the command's output: on stderr."""
    print(f"tui-gpt: {text}", file=sys.stderr, flush=True)


def print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


# What DATA may be, for every verb that reads a corpus (core/corpus.py reads them).
DATA_HELP = (
    "a text file or a folder of them: .txt, .md, .jsonl (--text-field), .parquet, each also "
    "compressed as .gz or .zst"
)


def add_run_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run-dir",
        default=argparse.SUPPRESS,
        help="folder of run folders (default: the user data dir; env TUI_GPT_RUN_DIR)",
    )


class TextProgress:
    """A one-line progress bar on a terminal; silent when output is piped."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._shown = False

    # Fields of the suffix (" · " between them) given up first as the terminal narrows.
    DROP_FIRST = ("MFU", "epoch", "tok/s", "loss")

    def line(self, done: float, total: float, suffix: str = "", columns: int | None = None) -> str:
        """The bar and as much of the suffix as fits in one line of the terminal: the bar
        narrows first, then whole fields go, never half a field (a carriage return can
        redraw only a line that did not wrap)."""
        columns = columns or shutil.get_terminal_size((80, 24)).columns
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        fields = [f for f in suffix.split(" · ") if f]
        while True:
            rest = f" {frac:6.1%} " + " · ".join(fields)
            width = max(8, min(24, columns - 1 - len(self.label) - 3 - len(rest)))
            filled = int(frac * width)
            text = f"{self.label} [{'#' * filled}{'-' * (width - filled)}]{rest}".rstrip()
            if len(text) < columns or not fields:
                return text[: columns - 1]
            key = next((k for k in self.DROP_FIRST if any(k in f for f in fields)), None)
            fields.remove(next(f for f in fields if key in f) if key else fields[0])

    def __call__(self, done: float, total: float, suffix: str = "") -> None:
        if not self.enabled:
            return
        self.write("\r\x1b[2K" + self.line(done, total, suffix))
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.write("\r\x1b[2K")
            self._shown = False

    def write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away (SIGHUP): keep training
            self.enabled = False


def open_app(runs_dir: Path, watch: Run | None = None) -> int:
    """The app in this terminal (`tui-gpt`, `tui-gpt watch RUN`), its exit status back."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise TuiGptError(
            "the app needs a terminal (stdin and stdout are not one here); "
            "run it in one, or use a command: tui-gpt --help"
        )
    # A sign of life while PyTorch and Textual load (seconds on a busy machine); the app's
    # first frame covers it, and it is wiped from the terminal on the way out.
    sys.stdout.write("tui-gpt: starting ...")
    sys.stdout.flush()
    try:
        from tui_gpt.core import process
        from tui_gpt.core.device import cpu_has_bf16

        # Before a second thread allocates: one malloc arena, so that memory reuse works in
        # the app's training thread as in a main thread; not where `auto` picks bf16, whose
        # kernels' threads would then queue on that arena's lock (core/process.py).
        if not cpu_has_bf16():
            process.single_arena()
        from tui_gpt.ui.app import run_app

        return run_app(runs_dir, watch=watch)
    finally:
        sys.stdout.write("\r\033[K")
        sys.stdout.flush()
