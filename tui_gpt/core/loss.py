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
    return cross_entropy(logits.flatten(0, 1), targets.flatten())


# Rows of logits handled at once: about 2M values (8 MB in fp32) stay in the caches.
_CHUNK_VALUES = 2**21


class _CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of logits (N, V) in any float type against targets (N,), computed
    in fp32 a few rows at a time. The same value and gradient as `F.cross_entropy` on the
    logits cast to fp32, without materialising the (N, V) fp32 copy, log-probabilities and
    their gradients: the gradient, softmax minus one-hot, is written once, in the logits'
    type."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n, v = logits.shape
        rows = max(1, _CHUNK_VALUES // v)
        lse = torch.empty(n, dtype=torch.float32, device=logits.device)  # (N,) log-sum-exp
        for s in range(0, n, rows):
            lse[s : s + rows] = torch.logsumexp(logits[s : s + rows].float(), dim=1)
        picked = logits.gather(1, targets[:, None]).squeeze(1).float()  # (N,) target logits
        ctx.save_for_backward(logits, targets, lse)
        return (lse - picked).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, targets, lse = ctx.saved_tensors
        n, v = logits.shape
        rows = max(1, _CHUNK_VALUES // v)
        scale = grad.float() / n
        out = torch.empty_like(logits, memory_format=torch.contiguous_format)
        for s in range(0, n, rows):
            p = torch.exp(logits[s : s + rows].float() - lse[s : s + rows, None])  # softmax
            p[torch.arange(p.shape[0], device=p.device), targets[s : s + rows]] -= 1.0
            out[s : s + rows] = p.mul_(scale)
        return out, None


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits (N, V) against integer targets (N,), in fp32."""
    if logits.device.type != "cpu":  # fused kernels already avoid the copies there
        return F.cross_entropy(logits.float(), targets)
    return _CrossEntropy.apply(logits, targets.long())


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
