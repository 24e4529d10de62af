"""OpenAI's GPT-2 weights (the Hugging Face `openai-community/gpt2*` safetensors) in tui-gpt.

Layout of those files, per block i (C = width):
    h.i.ln_1.{weight,bias}, h.i.ln_2.{weight,bias}         LayerNorms
    h.i.attn.c_attn.{weight (C, 3C), bias (3C)}             query | key | value side by side
    h.i.attn.c_proj.{weight (C, C), bias}
    h.i.mlp.c_fc.{weight (C, 4C), bias}, h.i.mlp.c_proj.{weight (4C, C), bias}
plus wte (V, C), wpe (T, C), ln_f. Attention and MLP matrices are `Conv1D`: stored
(in, out), the transpose of `nn.Linear`'s (out, in). The output head is the token embedding.

The file is memory-mapped and each tensor copied once into a model allocated without
initialisation, so the peak is about one copy of the weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

import torch
from safetensors import SafetensorError, safe_open

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.model import GPT, Block, GPTConfig

# size name: (Hugging Face repository, emb_dim, n_layers, n_heads)
SIZES = {
    "124M": ("openai-community/gpt2", 768, 12, 12),
    "355M": ("openai-community/gpt2-medium", 1024, 24, 16),
    "774M": ("openai-community/gpt2-large", 1280, 36, 20),
    "1558M": ("openai-community/gpt2-xl", 1600, 48, 25),
}
_HEADS_BY_WIDTH = {emb: heads for _, emb, _, heads in SIZES.values()}
_BLOCK_KEYS = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
)  # fmt: skip
# Present in some exports, not weights: the causal-mask buffers, and the tied head.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "lm_head.weight")


def _strip(key: str) -> str:
    return key[len("transformer.") :] if key.startswith("transformer.") else key


def _n_heads(path: Path, emb_dim: int) -> int:
    config = path.parent / "config.json"
    if config.is_file():
        try:
            return int(json.loads(config.read_text())["n_head"])
        except (ValueError, KeyError, TypeError):
            raise TuiGptError(f"{config}: no readable n_head") from None
    if emb_dim in _HEADS_BY_WIDTH:
        return _HEADS_BY_WIDTH[emb_dim]
    raise TuiGptError(
        f"{path}: width {emb_dim} is not one of GPT-2's sizes; put its config.json beside it"
    )


def load_gpt2_safetensors(path: str | os.PathLike, expect: str | None = None) -> GPT:
    """A tied-head GPT (context 1024 for OpenAI's sizes, qkv bias on) with the weights of a
    Hugging Face GPT-2 `model.safetensors`. `expect` (a size name) checks the shape."""
    path = Path(path)
    if not path.is_file():
        raise TuiGptError(f"{path}: no such file")
    try:
        f = safe_open(str(path), framework="pt", device="cpu")
        keys = {_strip(k): k for k in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise TuiGptError(f"{path}: not a readable safetensors file ({exc})") from None
    for needed in (
        "wte.weight",
        "wpe.weight",
        "ln_f.weight",
        "ln_f.bias",
        "h.0.attn.c_attn.weight",
    ):
        if needed not in keys:
            raise TuiGptError(
                f"{path}: not a GPT-2 checkpoint (no {needed!r}; found e.g. {sorted(keys)[:3]})"
            )

    def shape(key: str) -> list[int]:
        return list(f.get_slice(keys[key]).get_shape())

    vocab, emb = shape("wte.weight")
    ctx = shape("wpe.weight")[0]
    layers = 1 + max(int(k.split(".")[1]) for k in keys if k.startswith("h."))
    cfg = GPTConfig(
        vocab_size=vocab,
        context_length=ctx,
        emb_dim=emb,
        n_heads=_n_heads(path, emb),
        n_layers=layers,
        drop_rate=0.0,  # dropout off for sampling; fine-tuning can set its own
        qkv_bias=True,
        tie_weights=True,
    )
    if expect is not None:
        _, e_emb, e_layers, _ = SIZES[expect]
        if (emb, layers) != (e_emb, e_layers):
            raise TuiGptError(
                f"{path}: has width {emb} and {layers} layers; GPT-2 {expect} has {e_emb} and {e_layers}"
            )

    expected = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"}
    expected |= {f"h.{i}.{k}" for i in range(layers) for k in _BLOCK_KEYS}
    present = {k for k in keys if not k.endswith(_IGNORED_SUFFIXES)}
    missing, extra = expected - present, present - expected
    if missing or extra:
        raise TuiGptError(
            f"{path}: keys do not match GPT-2 ({len(missing)} missing, e.g. {sorted(missing)[:2]}; "
            f"{len(extra)} unexpected, e.g. {sorted(extra)[:2]})"
        )

    with torch.device("meta"):
        model = GPT(cfg)  # no memory, no random initialisation
    model.to_empty(device="cpu")
    model.out_head.weight = model.tok_emb.weight  # re-tie: to_empty makes new tensors

    def load(key: str, target: torch.Tensor, transpose: bool = False) -> None:
        try:
            value = f.get_tensor(keys[key])
        except (SafetensorError, OSError) as exc:
            raise TuiGptError(f"{path}: damaged tensor {key} ({exc})") from None
        value = value.t() if transpose else value
        if tuple(value.shape) != tuple(target.shape):
            raise TuiGptError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
            )
        target.copy_(value)

    with torch.no_grad():
        load("wte.weight", model.tok_emb.weight)
        load("wpe.weight", model.pos_emb.weight)
        for i, block in enumerate(cast("list[Block]", list(model.blocks))):
            p = f"h.{i}."
            load(p + "ln_1.weight", block.norm1.weight)
            load(p + "ln_1.bias", block.norm1.bias)
            load(p + "attn.c_attn.weight", block.attn.qkv.weight, transpose=True)
            load(p + "attn.c_attn.bias", block.attn.qkv.bias)
            load(p + "attn.c_proj.weight", block.attn.out_proj.weight, transpose=True)
            load(p + "attn.c_proj.bias", block.attn.out_proj.bias)
            load(p + "ln_2.weight", block.norm2.weight)
            load(p + "ln_2.bias", block.norm2.bias)
            load(p + "mlp.c_fc.weight", block.ff.fc.weight, transpose=True)
            load(p + "mlp.c_fc.bias", block.ff.fc.bias)
            load(p + "mlp.c_proj.weight", block.ff.proj.weight, transpose=True)
            load(p + "mlp.c_proj.bias", block.ff.proj.bias)
        load("ln_f.weight", model.final_norm.weight)
        load("ln_f.bias", model.final_norm.bias)
    return model.eval()


def fetch(size: str) -> Path:
    """The `model.safetensors` of a GPT-2 size from the Hugging Face cache, downloading it
    (with progress) unless `HF_HUB_OFFLINE` is set. Only called when the user asks."""
    repo = SIZES[size][0]
    manual = f"https://huggingface.co/{repo}/resolve/main/model.safetensors"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise TuiGptError(
            f"downloading needs huggingface_hub (pip install 'tui-gpt[hub]'); or download {manual} "
            "yourself and run: tui-gpt import-gpt2 PATH/TO/model.safetensors"
        ) from None
    try:
        path = hf_hub_download(repo, "model.safetensors")
        hf_hub_download(repo, "config.json")
    except Exception as exc:  # offline, no such file in the cache, network errors
        raise TuiGptError(
            f"GPT-2 {size} is not in the Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}). Download {manual} and run: tui-gpt import-gpt2 PATH/TO/model.safetensors"
        ) from None
    return Path(path)
