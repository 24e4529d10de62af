"""A model's shape: the `GPTConfig` every part of tui-gpt builds, saves and checks a model by.

Torch-free, at the bottom of the core: the settings, the run records, `--help` and `runs`
read shapes without loading PyTorch; `core/model.py` builds the network from one. A shape
read from a file (a checkpoint's header, run.json) goes through `parse_model_config`, which
bounds every size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tui_gpt.core.errors import TuiGptError

ARCHS = ("gpt2", "llama")  # the blocks core/model.py builds (its docstring's table)


def swiglu_width(emb_dim: int) -> int:
    """The SwiGLU hidden width: 8/3 C (the same parameters as GPT-2's 4C MLP with two
    matrices instead of three), rounded up to a multiple of 64 for whole kernel blocks."""
    return -(-(8 * emb_dim // 3) // 64) * 64


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # tokens the model reads and predicts (GPT-2 BPE: 50,257)
    context_length: int = 1024  # longest sequence (gpt2: the size of the position table)
    emb_dim: int = 768  # C: width of every token's vector
    n_heads: int = 12  # H: attention heads per layer; must divide emb_dim
    n_layers: int = 12  # transformer blocks
    dropout: float = 0.1  # dropout after embeddings, attention weights and each residual branch
    qkv_bias: bool = False  # bias on the query/key/value projection (True in OpenAI's GPT-2)
    tie_weights: bool = False  # output head shares the token embedding matrix (OpenAI's GPT-2)
    # Rows of the embedding and the head, when more than vocab_size: a multiple of 64 lets
    # the head's matmul (the largest one) run on full blocks. Logits stay vocab_size wide.
    padded_vocab_size: int | None = None
    arch: str = "gpt2"  # gpt2 | llama (core/model.py)
    n_kv_heads: int | None = None  # llama: key/value heads (grouped-query); None = n_heads
    rope_theta: float = 10000.0  # llama: base of the rotary frequencies
    qk_norm: bool = False  # llama: RMSNorm of each head's queries and keys (as Qwen3)
    mlp_width: int | None = None  # llama: F, the SwiGLU width; None = swiglu_width(C)
    norm_eps: float = 1e-5  # llama: RMSNorm's epsilon (gpt2's LayerNorm uses 1e-5 too)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(ARCHS)}")
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim {self.emb_dim} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.kv_heads}"
            )
        if self.arch == "llama" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head width, not {self.head_dim}")
        if self.padded_vocab_size is not None and self.padded_vocab_size < self.vocab_size:
            raise ValueError("padded_vocab_size must be at least vocab_size")

    @property
    def vocab_rows(self) -> int:
        return self.padded_vocab_size or self.vocab_size

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ff_width(self) -> int:
        """The MLP's hidden width: 4C for gpt2, F for llama."""
        if self.arch == "gpt2":
            return 4 * self.emb_dim
        return self.mlp_width or swiglu_width(self.emb_dim)

    def to_dict(self) -> dict:
        return asdict(self)


# Far above any model tui-gpt trains, far below what would exhaust memory by itself.
_BOUNDS = {"vocab_size": 1 << 22, "context_length": 1 << 20, "emb_dim": 1 << 15, "n_layers": 1024}


def parse_model_config(raw: Any, where: str | Path) -> GPTConfig:
    """A GPTConfig from its JSON form (a checkpoint's header, run.json), every size in
    bounds; anything else is one error naming `where`."""
    if isinstance(raw, dict) and "drop_rate" in raw:  # its name in files written before 2026-12-07
        raw = {("dropout" if k == "drop_rate" else k): v for k, v in raw.items()}
    try:
        cfg = GPTConfig(**raw)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise TuiGptError(f"{where}: damaged model configuration ({exc})") from None
    for name, top in _BOUNDS.items():
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise TuiGptError(f"{where}: damaged model configuration ({name} = {value!r})")
    if not isinstance(cfg.n_heads, int) or not 1 <= cfg.n_heads <= cfg.emb_dim:
        raise TuiGptError(f"{where}: damaged model configuration (n_heads = {cfg.n_heads!r})")
    return cfg
