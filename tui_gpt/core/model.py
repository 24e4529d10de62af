"""The GPT model, in one file that reads top to bottom: GPT-2's architecture (the chapter's)
and a modern one beside it (`arch="llama"`, Llama's layout).

    token ids (B, T)
      -> token embedding [+ learned position embedding: gpt2] -> dropout  (B, T, C)
      -> n_layers x Block:
             x = x + dropout(attention(norm(x)))     causal, n_heads heads
             x = x + dropout(mlp(norm(x)))
      -> final norm -> linear head to the vocabulary                      (B, T, V)

               gpt2                                 llama
  positions    a learned table added to the input   rotary, applied to queries and keys
  norm         LayerNorm (weight and bias)          RMSNorm (weight only)
  mlp          C -> 4C -> GELU(tanh) -> C           SwiGLU: C -> 2 x F, silu(gate) * up -> C
  biases       on every Linear but the head         none
  attention    n_heads query, key and value heads   n_kv_heads key/value heads shared by
                                                    groups of query heads; optional
                                                    per-head RMSNorm of queries and keys
  init         PyTorch's defaults (the chapter's)   PyTorch's defaults (measured: see GPT)

B is the batch size, T the sequence length, C the embedding width (`emb_dim`), H the number
of heads, D = C / H the width of one head, KV the key/value heads, F the SwiGLU width
(`mlp_width`), V the vocabulary size.

Beyond the textbook version:
- attention goes through `scaled_dot_product_attention`, which picks a fused kernel;
- decoding can keep each layer's keys and values in a `KVCache`, so a new token costs one
  position of compute instead of the whole context (rotary keys are cached rotated: a new
  token is rotated at its own position, nothing is recomputed);
- training can recompute each block in the backward pass instead of keeping its
  activations (`checkpointing`): less memory for about one more forward pass;
- on a CPU, training with dropout writes attention out (PyTorch's fallback there would run
  it in fp32 under bf16 autocast) and draws dropout masks with `torch.rand` (faster than
  the Bernoulli sampler). Same mathematics, other random draws;
- under bf16 autocast, attention itself can run in fp32 (`fp32_attention`, a speed setting
  like `checkpointing`): on CPUs whose bf16 attention kernels are slower than their fp32
  ones, which the step measurement that plans a run finds out (core/estimate.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tui_gpt.core.shape import GPTConfig


class Rotary(nn.Module):
    """Rotary position embeddings: each pair of a head's dimensions (i, i + D/2) is rotated by
    the angle position x theta^(-2i/D), so a query-key product depends on their distance.
    Half-split pairs, as Hugging Face's Llama (llama.cpp's own order differs: core/export.py
    permutes the rows). Tables in fp32 for the whole context, not saved in checkpoints."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        half = cfg.head_dim // 2
        inv_freq = cfg.rope_theta ** (-torch.arange(half, dtype=torch.float64) / half)
        angles = torch.outer(torch.arange(cfg.context_length, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)  # (ctx, D/2)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x (B, H, T, D) at positions start .. start + T - 1, rotated."""
        T = x.shape[2]
        cos = self.cos[start : start + T].to(x.dtype)  # (T, D/2)
        sin = self.sin[start : start + T].to(x.dtype)
        a, b = x.chunk(2, dim=-1)  # (B, H, T, D/2) each
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t only."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        modern = cfg.arch == "llama"
        # Query, key and value in one matmul: (B, T, C) -> (B, T, (H + 2 KV) D). Same
        # parameters as three separate projections, one kernel launch instead of three.
        width = (self.n_heads + 2 * self.kv_heads) * self.head_dim
        self.qkv = nn.Linear(cfg.emb_dim, width, bias=cfg.qkv_bias and not modern)
        self.out_proj = nn.Linear(cfg.emb_dim, cfg.emb_dim, bias=not modern)
        self.rotary = Rotary(cfg) if modern else None
        self.q_norm = nn.RMSNorm(self.head_dim, eps=cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=cfg.norm_eps) if cfg.qk_norm else None
        self.dropout = cfg.dropout
        self.fp32_attention = False  # set through GPT.fp32_attention

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        D = self.head_dim
        q, k, v = self.qkv(x).split([self.n_heads * D, self.kv_heads * D, self.kv_heads * D], 2)
        # (B, T, H*D) -> (B, H, T, D): each head attends independently.
        q = q.view(B, T, self.n_heads, D).transpose(1, 2)
        k, v = (t.view(B, T, self.kv_heads, D).transpose(1, 2) for t in (k, v))
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        past = cache.length if cache is not None else 0
        if self.rotary is not None:  # at their own positions: cached keys are already rotated
            q, k = self.rotary(q, past), self.rotary(k, past)
        mask, causal = None, True
        if cache is not None:
            k, v = cache.append(k, v)  # (B, KV, past + T, D)
            if past and T == 1:
                causal = False  # one new query may see every cached key
            elif past:
                # Several new queries after a cached prefix: query i sees keys <= past + i.
                causal = False
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
        if self.kv_heads != self.n_heads:  # each key/value head serves a group of queries
            k, v = (t.repeat_interleave(self.n_heads // self.kv_heads, dim=1) for t in (k, v))
        drop = self.dropout if self.training else 0.0
        if self.fp32_attention and torch.is_autocast_enabled(x.device.type):
            # Out of autocast, in fp32; the output projection casts the result back.
            with torch.autocast(x.device.type, enabled=False):
                y = self._attend(q.float(), k.float(), v.float(), mask, causal, drop, cache)
        else:
            y = self._attend(q, k, v, mask, causal, drop, cache)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.out_proj(y)

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
        drop: float,
        cache: LayerCache | None,
    ) -> torch.Tensor:
        """Queries (B, H, T, D) against keys and values (B, H, S, D) -> (B, H, T, D)."""
        if drop and cache is None and q.device.type == "cpu":
            return self._attention_with_dropout(q, k, v, drop)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal
        )

    def _attention_with_dropout(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float
    ) -> torch.Tensor:
        """Causal attention written out, (B, H, T, D) each -> (B, H, T, D). For training on a
        CPU with dropout: PyTorch has no fused kernel for it there, and its fallback computes
        in fp32 whatever autocast asks. Written out, the matmuls follow autocast (bf16 where
        it is on) like every other layer, and the dropout mask is drawn the faster way."""
        T = q.shape[2]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # (B, H, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        return dropout(weights, p, True) @ v


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, as `F.dropout`: each value zeroed with probability p, the rest
    scaled by 1 / (1 - p). The mask comes from uniform draws (`torch.rand`), which on a CPU
    takes about half the time of the Bernoulli sampler `F.dropout` uses."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = torch.rand(x.shape, device=x.device) >= p
    return x * keep * (1.0 / (1.0 - p))


class Dropout(nn.Module):
    """`nn.Dropout` through `dropout` above."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class FeedForward(nn.Module):
    """Position-wise MLP: widen to 4C, GELU (tanh approximation, as GPT-2), back to C."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim)
        self.act = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(4 * cfg.emb_dim, cfg.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class SwiGLU(nn.Module):
    """Gated MLP: (B, T, C) -> gate and up (B, T, F) each in one matmul, silu(gate) * up,
    -> (B, T, C). No biases."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.width = cfg.ff_width
        self.gate_up = nn.Linear(cfg.emb_dim, 2 * self.width, bias=False)
        self.down = nn.Linear(self.width, cfg.emb_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).split(self.width, dim=-1)
        return self.down(F.silu(gate) * up)


def norm(cfg: GPTConfig) -> nn.Module:
    """The block's normalisation: LayerNorm for gpt2, RMSNorm (a weight, no bias) for llama."""
    if cfg.arch == "gpt2":
        return nn.LayerNorm(cfg.emb_dim, eps=1e-5)
    return nn.RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)


class Block(nn.Module):
    """Pre-norm transformer block: the norms sit inside the residual branches."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = norm(cfg)
        self.ff = FeedForward(cfg) if cfg.arch == "gpt2" else SwiGLU(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cache))
        x = x + self.drop(self.ff(self.norm2(x)))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_rows, cfg.emb_dim)
        # gpt2 learns a vector per position; llama rotates queries and keys instead.
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim) if cfg.arch == "gpt2" else None
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = norm(cfg)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_rows, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        # Activation checkpointing (a training setting, not part of the shape): keep only
        # each block's input in the forward pass and recompute the block in backward.
        self.checkpointing = False
        # Initialisation: PyTorch's defaults for both blocks (embedding N(0, 1); every
        # Linear, head included, uniform with std 1/sqrt(3 x fan-in); norm weights one).
        # gpt2 keeps them because the reference model does. For llama they were measured
        # against the schemes small-model trainers use (benchmarks/ablations.py, docs/recipes.md:
        # "Its parts, one at a time"): zero-initialised residual writers (attention output,
        # MLP down: each block starts as the identity) and a zero head (an exact ln(V) at
        # step 0) cost 0.10 and 0.14 bits/byte trained with AdamW at micro, the former scheme
        # with both 0.35 at mini; GPT-2's N(0, 0.02) scheme and a smaller embedding also lost.
        # Trained with Muon (the fast recipe) the schemes came out within 0.01 of each other.

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T); (B, 1, V) with `last_only`.

        With a `cache`, `idx` holds only the new tokens; their positions continue from the
        cached ones, and the cache grows by T.
        """
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds the context length {self.cfg.context_length}"
            )
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))
        x = self.drop(x)
        recompute = self.checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute:  # same dropout masks and autocast in the recomputation
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x, cache.layers[i] if cache is not None else None)
        if last_only:
            x = x[:, -1:, :]  # the head is the biggest matmul; skip positions nobody reads
        logits = self.out_head(self.final_norm(x))  # (B, T, vocab_rows)
        if self.cfg.vocab_rows != self.cfg.vocab_size:
            logits = logits[..., : self.cfg.vocab_size]  # padding rows are never predicted
        return logits

    @property
    def fp32_attention(self) -> bool:
        """Whether attention computes in fp32 under bf16 autocast (a speed setting like
        `checkpointing`, not part of the shape; fp32 is the more exact of the two)."""
        return all(a.fp32_attention for a in self.modules() if isinstance(a, CausalSelfAttention))

    @fp32_attention.setter
    def fp32_attention(self, on: bool) -> None:
        for a in self.modules():
            if isinstance(a, CausalSelfAttention):
                a.fp32_attention = on

    def num_params(self, include_head: bool = True) -> int:
        """Parameter count; a tied head is counted once (it is the embedding)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields shared ones once
        if not include_head and not self.cfg.tie_weights:
            n -= self.out_head.weight.numel()
        return n

    def new_cache(self, batch_size: int = 1) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, batch_size, p.device, p.dtype)

    def flops_per_token(self, context_length: int) -> float:
        """Training FLOPs per token (forward + backward = 3 x forward): 6N for the matmuls
        (a position table is a lookup, not a matmul) plus the attention scores, as in the
        PaLM paper's MFU accounting; rotary adds ~6 per query/key value, counted too."""
        n = self.num_params() - (self.pos_emb.weight.numel() if self.pos_emb is not None else 0)
        attn = 12 * self.cfg.n_layers * self.cfg.emb_dim * context_length
        rotary = 0
        if self.cfg.arch != "gpt2":
            rotary = (
                3
                * 6
                * self.cfg.n_layers
                * (self.cfg.n_heads + self.cfg.kv_heads)
                * self.cfg.head_dim
            )
        return 6 * n + attn + rotary


class LayerCache:
    """One layer's keys and values for the positions seen so far, preallocated to the
    context length so appending never reallocates."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k, self.v = k, v  # (B, H, context_length, D) each
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """Keys and values of every layer, so decoding computes only the newest position."""

    def __init__(self, cfg: GPTConfig, batch_size: int, device, dtype) -> None:
        shape = (batch_size, cfg.kv_heads, cfg.context_length, cfg.head_dim)
        self.layers = [
            LayerCache(
                torch.empty(shape, device=device, dtype=dtype),
                torch.empty(shape, device=device, dtype=dtype),
            )
            for _ in range(cfg.n_layers)
        ]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reset(self) -> None:
        for layer in self.layers:
            layer.length = 0
