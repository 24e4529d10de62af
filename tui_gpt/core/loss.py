"""Losses and metrics: cross-entropy of a batch, the mean over a loader, perplexity."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def batch_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device | str
) -> torch.Tensor:
    """Cross-entropy of the logits (B, T, V), flattened over batch and position, against the
    targets (B, T)."""
    inputs, targets = inputs.to(device), targets.to(device)
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


@torch.no_grad()
def loader_loss(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    num_batches: int | None = None,
    should_stop=None,
) -> float:
    """Mean batch loss over the first `num_batches` batches (all when None).

    An empty loader raises instead of returning NaN. `should_stop()` is polled between
    batches so a long evaluation can be abandoned; it then returns NaN.
    """
    total, count = 0.0, 0
    for i, (x, y) in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        if should_stop is not None and should_stop():
            return math.nan
        total += batch_loss(model, x, y, device).item()
        count += 1
    if count == 0:
        raise ValueError("cannot compute a loss over an empty loader")
    return total / count


def perplexity(loss: float) -> float:
    """exp(loss); infinity rather than an overflow error for a diverged loss."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf
