"""Argument types and options shared by several verbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tui_gpt import paths
from tui_gpt.core.config import DEFAULT_PRESET, DEVICES, PRECISIONS, PRESETS
from tui_gpt.core.tokenizer import TOKENIZERS


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(
            f"must be at least 1, got {value}"
            if minimum == 1
            else f"must not be negative, got {value}"
        )
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    return _whole(text, 0)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def ratio(text: str) -> float:
    value = non_negative_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def probability(text: str) -> float:
    value = non_negative_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def add_tokenizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokenizer", choices=TOKENIZERS, default="gpt2", help="gpt2 BPE (default) or raw bytes"
    )
    p.add_argument(
        "--vocab-dir",
        help="folder with GPT-2's encoder.json and vocab.bpe, for offline use (env TUI_GPT_VOCAB_DIR)",
    )


def add_window_args(p: argparse.ArgumentParser, context_default: int | None) -> None:
    p.add_argument(
        "--context-length",
        type=positive_int,
        default=context_default,
        help="tokens per training window (default: the preset's)"
        if context_default is None
        else "tokens per window",
    )
    p.add_argument(
        "--stride", type=positive_int, help="step between windows (default: the context length)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=2, help="windows per batch (default 2)"
    )
    p.add_argument(
        "--train-ratio",
        type=ratio,
        default=0.9,
        help="share of characters for training (default 0.9)",
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default=DEFAULT_PRESET,
        help=f"model shape (default {DEFAULT_PRESET})",
    )


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", choices=DEVICES, default="auto", help="auto picks CUDA, then MPS, then CPU"
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 where the hardware has bf16 units",
    )
    p.add_argument(
        "--threads", type=positive_int, help="CPU threads (default: the CPUs this process may use)"
    )


def runs_root(args: argparse.Namespace) -> Path:
    return Path(args.run_dir).expanduser() if getattr(args, "run_dir", None) else paths.runs_dir()


def print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


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

    def line(self, done: float, total: float, suffix: str = "") -> str:
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        width = 24
        filled = int(frac * width)
        return f"{self.label} [{'#' * filled}{'-' * (width - filled)}] {frac:6.1%} {suffix}"

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
