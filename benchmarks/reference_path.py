"""The reference chapter's code path, re-implemented from its description, as the baseline.

fp32; attention as explicit matmuls with a registered causal mask and separate query / key /
value projections; hand-written LayerNorm and tanh-GELU; AdamW with PyTorch's default
(foreach) implementation; generation that recomputes the whole context for every token.
Two switches turn single levers on for the levers table: `sdpa` (fused attention) and
`torch_norms` (nn.LayerNorm / nn.GELU).
"""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return (
            0.5
            * x
            * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * x**3)))
        )


class MultiHeadAttention(nn.Module):
    def __init__(
        self, d: int, ctx: int, drop: float, heads: int, qkv_bias: bool, sdpa: bool
    ) -> None:
        super().__init__()
        self.heads, self.hd, self.sdpa, self.drop_p = heads, d // heads, sdpa, drop
        self.W_query = nn.Linear(d, d, bias=qkv_bias)
        self.W_key = nn.Linear(d, d, bias=qkv_bias)
        self.W_value = nn.Linear(d, d, bias=qkv_bias)
        self.out_proj = nn.Linear(d, d)
        self.dropout = nn.Dropout(drop)
        self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx), diagonal=1))

    def forward(self, x):
        b, t, d = x.shape
        q = self.W_query(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.W_key(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        v = self.W_value(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        if self.sdpa:
            y = nn.functional.scaled_dot_product_attention(
                q, k, v, dropout_p=self.drop_p if self.training else 0.0, is_causal=True
            )
        else:
            scores = q @ k.transpose(2, 3)
            scores.masked_fill_(self.mask.bool()[:t, :t], -torch.inf)
            weights = self.dropout(torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1))
            y = weights @ v
        return self.out_proj(y.transpose(1, 2).contiguous().view(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: dict, sdpa: bool, torch_norms: bool) -> None:
        super().__init__()
        d = cfg["emb_dim"]
        self.att = MultiHeadAttention(
            d, cfg["context_length"], cfg["drop_rate"], cfg["n_heads"], cfg["qkv_bias"], sdpa
        )
        act = nn.GELU(approximate="tanh") if torch_norms else GELU()
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), act, nn.Linear(4 * d, d))
        self.norm1 = nn.LayerNorm(d) if torch_norms else LayerNorm(d)
        self.norm2 = nn.LayerNorm(d) if torch_norms else LayerNorm(d)
        self.drop = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop(self.att(self.norm1(x)))
        return x + self.drop(self.ff(self.norm2(x)))


class ReferenceGPT(nn.Module):
    def __init__(self, cfg: dict, sdpa: bool = False, torch_norms: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[Block(cfg, sdpa, torch_norms) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = nn.LayerNorm(cfg["emb_dim"]) if torch_norms else LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.drop_emb(self.tok_emb(idx) + self.pos_emb(torch.arange(t, device=idx.device)))
        return self.out_head(self.final_norm(self.trf_blocks(x)))


def config_124m(context_length: int = 256) -> dict:
    return {
        "vocab_size": 50257,
        "context_length": context_length,
        "emb_dim": 768,
        "n_heads": 12,
        "n_layers": 12,
        "drop_rate": 0.1,
        "qkv_bias": False,
    }


def train_step(model, optimizer, x, y) -> float:
    optimizer.zero_grad()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    loss.backward()
    optimizer.step()
    return loss.item()


def generate_text_simple(model, idx, max_new_tokens: int, context_size: int):
    """Greedy decoding that recomputes the whole (cropped) context for every new token."""
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])
        idx = torch.cat([idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


def copy_into_tui_gpt(ref: ReferenceGPT, model) -> None:
    """Give a tui-gpt GPT the reference model's exact weights (fused q|k|v)."""
    with torch.no_grad():
        model.tok_emb.weight.copy_(ref.tok_emb.weight)
        model.pos_emb.weight.copy_(ref.pos_emb.weight)
        for rb, b in zip(ref.trf_blocks, model.blocks, strict=True):
            a = rb.att
            b.attn.qkv.weight.copy_(torch.cat([a.W_query.weight, a.W_key.weight, a.W_value.weight]))
            if a.W_query.bias is not None:
                b.attn.qkv.bias.copy_(torch.cat([a.W_query.bias, a.W_key.bias, a.W_value.bias]))
            b.attn.out_proj.load_state_dict(a.out_proj.state_dict())
            b.ff.fc.load_state_dict(rb.ff[0].state_dict())
            b.ff.proj.load_state_dict(rb.ff[2].state_dict())
            for ours, theirs in ((b.norm1, rb.norm1), (b.norm2, rb.norm2)):
                ours.weight.copy_(getattr(theirs, "scale", getattr(theirs, "weight", None)))
                ours.bias.copy_(getattr(theirs, "shift", getattr(theirs, "bias", None)))
        fn = ref.final_norm
        model.final_norm.weight.copy_(getattr(fn, "scale", getattr(fn, "weight", None)))
        model.final_norm.bias.copy_(getattr(fn, "shift", getattr(fn, "bias", None)))
        model.out_head.weight.copy_(ref.out_head.weight)
