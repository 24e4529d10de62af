"""Losses and metrics: cross-entropy of a batch, the mean over a loader, bits per byte,
perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from tui_gpt.core.tokenizer import Tokenizer


def batch_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device | str
) -> torch.Tensor:
    """Cross-entropy of the logits (B, T, V), flattened over batch and position, against the
    targets (B, T)."""
    inputs, targets = inputs.to(device), targets.to(device)
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    num_batches: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    byte_lengths: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Mean batch loss over the first `num_batches` batches (all when None), and the same
    in bits per UTF-8 byte of the text the targets stand for: total nats / (bytes x ln 2),
    where `byte_lengths` (V,) gives each token's bytes (NaN without it). Bits per byte
    compare across tokenizers; loss per token does not.

    An empty loader raises instead of returning NaN. `should_stop()` is polled between
    batches so a long evaluation can be abandoned; it then returns NaN.
    """
    total, count, nats, nbytes = 0.0, 0, 0.0, 0
    for i, (x, y) in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        if should_stop is not None and should_stop():
            return math.nan, math.nan
        loss = batch_loss(model, x, y, device).item()
        total, count = total + loss, count + 1
        if byte_lengths is not None:
            nats += loss * y.numel()
            nbytes += int(byte_lengths[y].sum())
    if count == 0:
        raise ValueError("cannot compute a loss over an empty loader")
    bpb = nats / (nbytes * math.log(2)) if nbytes else math.nan
    return total / count, bpb


def loader_loss(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    num_batches: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> float:
    """The mean batch loss of `evaluate`."""
    return evaluate(model, loader, device, num_batches, should_stop)[0]


def token_byte_lengths(tokenizer: Tokenizer) -> torch.Tensor:
    """(V,) int64: how many UTF-8 bytes of text each token id stands for."""
    return torch.tensor([len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)])


def perplexity(loss: float) -> float:
    """exp(loss); infinity rather than an overflow error for a diverged loss."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf
