"""Decoding: greedy, temperature, top-k, top-p, end-of-sequence, streaming with a KV cache.

Each step looks at the logits of the last position of the (cropped) context:
    top-k keeps the k largest logits (the rest become -inf);
    temperature 0 takes the argmax (greedy); otherwise logits / temperature -> softmax;
    top-p keeps the smallest set of likeliest tokens whose probabilities reach p;
    a multinomial draw (from a caller's `torch.Generator`, never the global RNG) picks one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from tui_gpt.core import process
from tui_gpt.core.model import GPT


def filter_logits(
    logits: torch.Tensor,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Logits (..., V) after top-k and top-p masking (masked entries are -inf), scaled by
    the temperature when it is positive."""
    logits = logits.float()
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens strictly likelier than it already reach top_p.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop_sorted[..., 0] = False  # the likeliest always stays (a tiny top_p rounds to 0)
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution the next token is drawn from, (..., V); one-hot at temperature 0."""
    if temperature <= 0:
        masked = filter_logits(logits, top_k, None, 0.0)
        return torch.nn.functional.one_hot(masked.argmax(-1), logits.shape[-1]).float()
    return torch.softmax(filter_logits(logits, top_k, top_p, temperature), dim=-1)


def pick_next(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token ids (B, 1) from last-position logits (B, V)."""
    if temperature <= 0:
        return filter_logits(logits, top_k).argmax(dim=-1, keepdim=True)
    probs = torch.softmax(filter_logits(logits, top_k, top_p, temperature), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def uses_aten_gemv(model: GPT) -> bool:
    """Whether decoding this model should bypass oneDNN: bf16 weights on a CPU."""
    p = next(model.parameters())
    return p.device.type == "cpu" and p.dtype == torch.bfloat16


def decoding_kernels(aten_gemv: bool) -> contextlib.AbstractContextManager:
    """Decoding multiplies one vector by each weight matrix. For bf16 weights on CPU,
    PyTorch's own kernel streams them faster than oneDNN's, at the same accuracy against
    fp32 (measured in benchmarks/LEVERS.md). oneDNN's switch is process-wide, so it is turned off
    only around each decoding step, and only where no training runs alongside (a training in
    the same process would lose oneDNN's fast bf16 GEMMs for those milliseconds)."""
    return process.without_onednn() if aten_gemv else contextlib.nullcontext()


@torch.inference_mode()
def stream(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    context_length: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    aten_gemv: bool | None = None,
) -> Iterator[torch.Tensor]:
    """Yield new token ids (B, 1) one at a time, continuing the ids `idx` (B, T).

    `aten_gemv` (default: for bf16 weights on CPU) picks the faster matrix-vector kernels;
    pass False when a training runs in another thread of this process.

    With the KV cache each step feeds only the newest token. Once the sequence is longer
    than the context, every window shifts all positions by one, so no cache stays valid:
    the window is recomputed each step, exactly as full recomputation would.
    Stops early, without yielding it, when the picked id is `eos_id` (batch size 1).
    The model's train/eval mode is the caller's to set (eval, for deterministic output).
    """
    ctx = min(context_length or model.cfg.context_length, model.cfg.context_length)
    fast = uses_aten_gemv(model) if aten_gemv is None else aten_gemv
    cache = model.new_cache(idx.shape[0]) if use_cache else None
    seq = idx
    fresh: torch.Tensor | None = None  # token(s) the cache has not seen yet
    for _ in range(max_new_tokens):
        with decoding_kernels(fast):
            if cache is not None and fresh is not None and cache.length < ctx:
                logits = model(fresh, cache, last_only=True)
            else:
                if cache is not None:
                    cache.reset()
                logits = model(seq[:, -ctx:], cache, last_only=True)
        nxt = pick_next(logits[:, -1, :], temperature, top_k, top_p, generator)
        if eos_id is not None and nxt.shape[0] == 1 and nxt.item() == eos_id:
            return
        seq = torch.cat([seq, nxt], dim=1)
        fresh = nxt
        yield nxt


def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    context_length: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    aten_gemv: bool | None = None,
) -> torch.Tensor:
    """`idx` (B, T) followed by up to `max_new_tokens` new ids: (B, T + new)."""
    new = list(
        stream(
            model,
            idx,
            max_new_tokens,
            context_length,
            temperature,
            top_k,
            top_p,
            eos_id,
            generator,
            use_cache,
            aten_gemv,
        )
    )
    return torch.cat([idx, *new], dim=1) if new else idx


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator of its own, so sampling never moves the global RNG (and training)."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
