"""Open a trained model for sampling: a run's weights or a checkpoint file, with the
tokenizer it was trained with, on the chosen device and precision."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.device import resolve_device, resolve_precision
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.model import GPT
from tui_gpt.core.quantize import quantize_int8
from tui_gpt.core.runs import TOKENIZER_FILE, Run, find_run, run_tokenizer
from tui_gpt.core.tokenizer import BPETokenizer, Tokenizer, get_tokenizer


@dataclass
class LoadedModel:
    """A model ready to sample from, with its tokenizer and where it came from."""

    model: GPT
    tokenizer: Tokenizer
    source: str
    device: torch.device
    precision: str
    weights: str = ""  # which weights: "best, step 51, val loss 4.321" (Checkpoint.describe)
    weights_short: str = ""  # the same for a title: "best, step 51, val 4.321"


def open_weights(
    run: Run, which: str = "best", vocab_dir: str | None = None
) -> tuple[Checkpoint, Tokenizer]:
    """A run's `which` weights (Run.weights), verified, with the tokenizer they were
    trained with: what the generator, `generate`, `eval`, `export` and `--init-from` use."""
    ckpt = Checkpoint(run.weights(which))
    ckpt.verify()
    tokenizer = run_tokenizer(run, vocab_dir)
    ckpt.check_tokenizer(tokenizer.name)
    return ckpt, tokenizer


def checkpoint_tokenizer(ckpt: Checkpoint, vocab_dir: str | None = None) -> Tokenizer:
    """The tokenizer a checkpoint's weights were trained with: the run's own copy of a
    trained one beside its checkpoints/ folder, else GPT-2's or bytes as its header says."""
    own = ckpt.path.parent.parent / TOKENIZER_FILE
    name = ckpt.json("tokenizer") or ("byte" if ckpt.model_config.vocab_size == 257 else "gpt2")
    trained = isinstance(name, str) and name.startswith("bpe-")
    tokenizer = BPETokenizer(own) if os.path.lexists(own) else None
    if trained and (tokenizer is None or tokenizer.name != name):
        raise TuiGptError(f"{ckpt.path}: trained with the tokenizer {name}, which is not "
                          f"beside it in {own}")  # fmt: skip
    return tokenizer or get_tokenizer(name, vocab_dir)


def load_for_sampling(
    run_ref: str | None = None,
    checkpoint_path: str | None = None,
    runs_dir: Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    vocab_dir: str | None = None,
    which: str = "best",
) -> LoadedModel:
    """Open a run's `which` weights (Run.weights), or a checkpoint file, in eval mode.

    With bf16 precision the weights themselves are cast to bf16: decoding is bound by
    reading the weights, so half the bytes is nearly twice the tokens per second.
    """
    if checkpoint_path:
        ckpt = Checkpoint(checkpoint_path, follow_links=True)  # a path the user typed
        tokenizer = checkpoint_tokenizer(ckpt, vocab_dir)
        ckpt.verify()
    else:
        ckpt, tokenizer = open_weights(find_run(run_ref or "", runs_dir), which, vocab_dir)
    if tokenizer.vocab_size > ckpt.model_config.vocab_size:
        raise TuiGptError(
            f"{ckpt.path}: vocabulary {ckpt.model_config.vocab_size} is smaller than the "
            f"{tokenizer.name} tokenizer's {tokenizer.vocab_size}"
        )
    dev = resolve_device(device)
    prec = "int8" if precision == "int8" else resolve_precision(precision, dev)
    model = ckpt.build_model(dev).eval()
    if prec == "bf16":
        model = model.to(torch.bfloat16)
    elif prec == "int8":
        model = quantize_int8(model)
    return LoadedModel(model, tokenizer, str(ckpt.path), dev, prec, ckpt.describe(),
                       ckpt.describe(short=True))  # fmt: skip
