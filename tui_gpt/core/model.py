"""The GPT model: GPT-2's architecture, in one file that reads top to bottom.

    token ids (B, T)
      -> token embedding + learned position embedding -> dropout        (B, T, C)
      -> n_layers x Block:
             x = x + dropout(attention(layer_norm(x)))    causal, n_heads heads
             x = x + dropout(mlp(layer_norm(x)))          C -> 4C -> GELU(tanh) -> C
      -> final layer norm -> linear head to the vocabulary                (B, T, V)

B is the batch size, T the sequence length, C the embedding width (`emb_dim`), H the number
of heads, D = C / H the width of one head, V the vocabulary size.

Beyond the textbook version:
- attention goes through `scaled_dot_product_attention`, which picks a fused kernel;
- decoding can keep each layer's keys and values in a `KVCache`, so a new token costs one
  position of compute instead of the whole context;
- training can recompute each block in the backward pass instead of keeping its
  activations (`checkpointing`): less memory for about one more forward pass;
- on a CPU, training with dropout writes attention out (PyTorch's fallback there would run
  it in fp32 under bf16 autocast) and draws dropout masks with `torch.rand` (faster than
  the Bernoulli sampler). Same mathematics, other random draws.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # tokens the model reads and predicts (GPT-2 BPE: 50,257)
    context_length: int = 1024  # longest sequence; sets the size of the position table
    emb_dim: int = 768  # C: width of every token's vector
    n_heads: int = 12  # H: attention heads per layer; must divide emb_dim
    n_layers: int = 12  # transformer blocks
    drop_rate: float = 0.1  # dropout after embeddings, attention weights and each residual branch
    qkv_bias: bool = False  # bias on the query/key/value projection (True in OpenAI's GPT-2)
    tie_weights: bool = False  # output head shares the token embedding matrix (OpenAI's GPT-2)
    # Rows of the embedding and the head, when more than vocab_size: a multiple of 64 lets
    # the head's matmul (the largest one) run on full blocks. Logits stay vocab_size wide.
    padded_vocab_size: int | None = None

    def __post_init__(self) -> None:
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim {self.emb_dim} is not divisible by n_heads {self.n_heads}")
        if self.padded_vocab_size is not None and self.padded_vocab_size < self.vocab_size:
            raise ValueError("padded_vocab_size must be at least vocab_size")

    @property
    def vocab_rows(self) -> int:
        return self.padded_vocab_size or self.vocab_size

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t only."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.emb_dim // cfg.n_heads
        # Query, key and value in one matmul: (B, T, C) -> (B, T, 3C). Same parameters as
        # three separate projections, one kernel launch instead of three.
        self.qkv = nn.Linear(cfg.emb_dim, 3 * cfg.emb_dim, bias=cfg.qkv_bias)
        self.out_proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.drop_rate = cfg.drop_rate

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, H, T, D): each head attends independently.
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        mask, causal = None, True
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (B, H, past + T, D)
            if past and T == 1:
                causal = False  # one new query may see every cached key
            elif past:
                # Several new queries after a cached prefix: query i sees keys <= past + i.
                causal = False
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
        drop = self.drop_rate if self.training else 0.0
        if drop and cache is None and x.device.type == "cpu":
            y = self._attention_with_dropout(q, k, v, drop)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal
            )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.out_proj(y)

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


class Block(nn.Module):
    """Pre-norm transformer block: the norms sit inside the residual branches."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.emb_dim, eps=1e-5)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.emb_dim, eps=1e-5)
        self.ff = FeedForward(cfg)
        self.drop = Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cache))
        x = x + self.drop(self.ff(self.norm2(x)))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_rows, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop = Dropout(cfg.drop_rate)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.emb_dim, eps=1e-5)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_rows, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        # Activation checkpointing (a training setting, not part of the shape): keep only
        # each block's input in the forward pass and recompute the block in backward.
        self.checkpointing = False
        # Parameters keep PyTorch's default initialisation, as the reference model does: an
        # untrained model then scores a loss near ln(vocab_size), as the chapter shows.

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
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
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

    def num_params(self, include_head: bool = True) -> int:
        """Parameter count; a tied head is counted once (it is the embedding)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields shared ones once
        if not include_head and not self.cfg.tie_weights:
            n -= self.out_head.weight.numel()
        return n

    def new_cache(self, batch_size: int = 1) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, batch_size, p.device, p.dtype)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward = 3 x forward): 6N for the matmuls
        plus the attention scores, as in the PaLM paper's MFU accounting."""
        n = self.num_params() - self.pos_emb.weight.numel()
        attn = 12 * self.cfg.n_layers * self.cfg.emb_dim * seq_len
        return 6 * n + attn


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
        shape = (batch_size, cfg.n_heads, cfg.context_length, cfg.emb_dim // cfg.n_heads)
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
