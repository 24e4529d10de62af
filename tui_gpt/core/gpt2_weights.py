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

import torch
from safetensors import SafetensorError, safe_open

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.model import GPT
from tui_gpt.core.shape import GPTConfig

# size name: (Hugging Face repository, emb_dim, n_layers, n_heads)
SIZES = {
    "124M": ("openai-community/gpt2", 768, 12, 12),
    "355M": ("openai-community/gpt2-medium", 1024, 24, 16),
    "774M": ("openai-community/gpt2-large", 1280, 36, 20),
    "1558M": ("openai-community/gpt2-xl", 1600, 48, 25),
}
_HEADS_BY_WIDTH = {emb: heads for _, emb, _, heads in SIZES.values()}
# GPT-2's tensor names (Hugging Face layout, without "transformer.") and tui-gpt's, and
# whether the matrix is stored transposed (Conv1D: (in, out)). Block names take the block
# index for {i}. The one table both directions (import, export) go by.
NAMES: tuple[tuple[str, str, bool], ...] = (
    ("wte.weight", "tok_emb.weight", False), ("wpe.weight", "pos_emb.weight", False),
    ("h.{i}.ln_1.weight", "blocks.{i}.norm1.weight", False), ("h.{i}.ln_1.bias", "blocks.{i}.norm1.bias", False),
    ("h.{i}.attn.c_attn.weight", "blocks.{i}.attn.qkv.weight", True), ("h.{i}.attn.c_attn.bias", "blocks.{i}.attn.qkv.bias", False),
    ("h.{i}.attn.c_proj.weight", "blocks.{i}.attn.out_proj.weight", True), ("h.{i}.attn.c_proj.bias", "blocks.{i}.attn.out_proj.bias", False),
    ("h.{i}.ln_2.weight", "blocks.{i}.norm2.weight", False), ("h.{i}.ln_2.bias", "blocks.{i}.norm2.bias", False),
    ("h.{i}.mlp.c_fc.weight", "blocks.{i}.ff.fc.weight", True), ("h.{i}.mlp.c_fc.bias", "blocks.{i}.ff.fc.bias", False),
    ("h.{i}.mlp.c_proj.weight", "blocks.{i}.ff.proj.weight", True), ("h.{i}.mlp.c_proj.bias", "blocks.{i}.ff.proj.bias", False),
    ("ln_f.weight", "final_norm.weight", False), ("ln_f.bias", "final_norm.bias", False),
)  # fmt: skip


def name_pairs(n_layers: int) -> list[tuple[str, str, bool]]:
    """(GPT-2 name, tui-gpt name, transposed) for every tensor of a model this deep."""
    out = []
    for hf, ours, t in NAMES:
        layers = range(n_layers) if "{i}" in hf else [0]
        out += [(hf.format(i=i), ours.format(i=i), t) for i in layers]
    return out


# Present in some exports, not weights: the causal-mask buffers, and the tied head.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "lm_head.weight")


def _strip(key: str) -> str:
    return key[len("transformer.") :] if key.startswith("transformer.") else key


def _tied(path: Path) -> bool:
    """Whether the output head is the token embedding: GPT-2's own are; an export of a
    tui-gpt model with its own head says `tie_word_embeddings: false` in config.json."""
    config = path.parent / "config.json"
    try:
        return bool(json.loads(config.read_text()).get("tie_word_embeddings", True))
    except (OSError, ValueError, AttributeError):
        return True


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
    tied = _tied(path)
    cfg = GPTConfig(
        vocab_size=vocab,
        context_length=ctx,
        emb_dim=emb,
        n_heads=_n_heads(path, emb),
        n_layers=layers,
        dropout=0.0,  # dropout off for sampling; fine-tuning can set its own
        qkv_bias=True,
        tie_weights=tied,
    )
    if expect is not None:
        _, e_emb, e_layers, _ = SIZES[expect]
        if (emb, layers) != (e_emb, e_layers):
            raise TuiGptError(
                f"{path}: has width {emb} and {layers} layers; GPT-2 {expect} has {e_emb} and {e_layers}"
            )

    pairs = name_pairs(layers)
    expected = {hf for hf, _, _ in pairs}
    if not tied:
        pairs.append(("lm_head.weight", "out_head.weight", False))
        expected.add("lm_head.weight")
    ignored = _IGNORED_SUFFIXES if tied else _IGNORED_SUFFIXES[:2]
    present = {k for k in keys if not k.endswith(ignored)}
    missing, extra = expected - present, present - expected
    if missing or extra:
        raise TuiGptError(
            f"{path}: keys do not match GPT-2 ({len(missing)} missing, e.g. {sorted(missing)[:2]}; "
            f"{len(extra)} unexpected, e.g. {sorted(extra)[:2]})"
        )

    with torch.device("meta"):
        model = GPT(cfg)  # no memory, no random initialisation
    model.to_empty(device="cpu")
    if tied:
        model.out_head.weight = model.tok_emb.weight  # re-tie: to_empty makes new tensors

    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, ours, transpose in pairs:
            try:
                value = f.get_tensor(keys[key])
            except (SafetensorError, OSError) as exc:
                raise TuiGptError(f"{path}: damaged tensor {key} ({exc})") from None
            value, target = value.t() if transpose else value, params[ours]
            if tuple(value.shape) != tuple(target.shape):
                raise TuiGptError(
                    f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
                )
            target.copy_(value)
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
