"""The modern model (`arch="llama"`) in the layouts the ecosystem reads: Hugging Face's
`LlamaForCausalLM` (or `Qwen3ForCausalLM` when queries and keys are normed) and llama.cpp's
GGUF `llama` / `qwen3` architectures; and such Hugging Face folders read back.

tui-gpt fuses query/key/value into one matrix and gate/up into another; both layouts keep
them apart. Per block i (C width, H heads, KV key/value heads, D head width, F SwiGLU width):

    tui-gpt                        Hugging Face                         GGUF
    blocks.i.norm1.weight          model.layers.i.input_layernorm       blk.i.attn_norm
    blocks.i.attn.qkv  rows 0:HD   ...self_attn.q_proj                  blk.i.attn_q (permuted)
                       next KV D   ...self_attn.k_proj                  blk.i.attn_k (permuted)
                       last KV D   ...self_attn.v_proj                  blk.i.attn_v
    blocks.i.attn.q_norm/k_norm    ...self_attn.q_norm/k_norm (Qwen3)   blk.i.attn_q_norm/k_norm
    blocks.i.attn.out_proj         ...self_attn.o_proj                  blk.i.attn_output
    blocks.i.norm2.weight          ...post_attention_layernorm          blk.i.ffn_norm
    blocks.i.ff.gate_up rows 0:F   ...mlp.gate_proj                     blk.i.ffn_gate
                        rows F:2F  ...mlp.up_proj                       blk.i.ffn_up
    blocks.i.ff.down               ...mlp.down_proj                     blk.i.ffn_down
    tok_emb / final_norm / out_head  model.embed_tokens / model.norm / lm_head
                                                  token_embd / output_norm / output

"permuted": tui-gpt and Hugging Face rotate the dimension pairs (i, i + D/2) of a head;
llama.cpp's `llama` rotates neighbours (2i, 2i + 1), so each head's query and key rows are
reordered for it. Its `qwen3` rotates as Hugging Face does: no reordering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.model import GPT
from tui_gpt.core.shape import GPTConfig


def hf_architecture(cfg: GPTConfig) -> tuple[str, str]:
    """(class name, model_type) a transformers user loads this model with."""
    return ("Qwen3ForCausalLM", "qwen3") if cfg.qk_norm else ("LlamaForCausalLM", "llama")


def hf_config(cfg: GPTConfig) -> dict[str, Any]:
    """config.json of the Hugging Face folder (the architecture's own keys)."""
    cls, kind = hf_architecture(cfg)
    out: dict[str, Any] = {
        "architectures": [cls], "model_type": kind, "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.emb_dim, "intermediate_size": cfg.ff_width,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.context_length, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta, "hidden_act": "silu", "attention_bias": False,
        "attention_dropout": 0.0, "mlp_bias": False, "tie_word_embeddings": cfg.tie_weights,
    }  # fmt: skip
    if kind == "qwen3":
        out |= {"use_sliding_window": False, "sliding_window": None,
                "max_window_layers": cfg.n_layers}  # fmt: skip
    return out


def hf_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """The model's tensors under Hugging Face's names (each matrix (out, in), as stored)."""
    cfg, state = model.cfg, model.state_dict()
    q, kv, f = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.ff_width
    out = {"model.embed_tokens.weight": state["tok_emb.weight"][: cfg.vocab_size]}
    for i in range(cfg.n_layers):
        ours, hf = f"blocks.{i}.", f"model.layers.{i}."
        qkv = state[ours + "attn.qkv.weight"]
        gate_up = state[ours + "ff.gate_up.weight"]
        out |= {
            hf + "input_layernorm.weight": state[ours + "norm1.weight"],
            hf + "self_attn.q_proj.weight": qkv[:q],
            hf + "self_attn.k_proj.weight": qkv[q : q + kv],
            hf + "self_attn.v_proj.weight": qkv[q + kv :],
            hf + "self_attn.o_proj.weight": state[ours + "attn.out_proj.weight"],
            hf + "post_attention_layernorm.weight": state[ours + "norm2.weight"],
            hf + "mlp.gate_proj.weight": gate_up[:f],
            hf + "mlp.up_proj.weight": gate_up[f:],
            hf + "mlp.down_proj.weight": state[ours + "ff.down.weight"],
        }
        if cfg.qk_norm:
            out[hf + "self_attn.q_norm.weight"] = state[ours + "attn.q_norm.weight"]
            out[hf + "self_attn.k_norm.weight"] = state[ours + "attn.k_norm.weight"]
    out["model.norm.weight"] = state["final_norm.weight"]
    if not cfg.tie_weights:
        out["lm_head.weight"] = state["out_head.weight"][: cfg.vocab_size]
    return {k: v.contiguous() for k, v in out.items()}


# ----------------------------------------------------------------------------- GGUF


def gguf_architecture(cfg: GPTConfig) -> str:
    return "qwen3" if cfg.qk_norm else "llama"


def _interleave(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of each head reordered from half-split pairs (i, i + D/2) to neighbouring
    pairs (2i, 2i + 1), as llama.cpp's `llama` rotary expects: (heads*D, C) -> same shape."""
    return (
        w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def gguf_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """The model's tensors under llama.cpp's names, matrices (out, in) like nn.Linear."""
    cfg = model.cfg
    hf = hf_tensors(model)
    permute = gguf_architecture(cfg) == "llama"
    names = {
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
        "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }  # fmt: skip
    out = {"token_embd.weight": hf["model.embed_tokens.weight"]}
    for i in range(cfg.n_layers):
        prefix = f"model.layers.{i}."
        for key, t in hf.items():
            if not key.startswith(prefix):
                continue
            part = key[len(prefix) : -len(".weight")]
            if permute and part == "self_attn.q_proj":
                t = _interleave(t, cfg.n_heads)
            elif permute and part == "self_attn.k_proj":
                t = _interleave(t, cfg.kv_heads)
            out[f"blk.{i}.{names[part]}.weight"] = t.contiguous()
    out["output_norm.weight"] = hf["model.norm.weight"]
    if not cfg.tie_weights:
        out["output.weight"] = hf["lm_head.weight"]
    return out


def add_gguf_keys(writer: Any, cfg: GPTConfig) -> None:
    """The architecture's hyperparameters, as llama.cpp reads them."""
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(cfg.emb_dim)
    writer.add_feed_forward_length(cfg.ff_width)
    writer.add_block_count(cfg.n_layers)
    writer.add_head_count(cfg.n_heads)
    writer.add_head_count_kv(cfg.kv_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_layer_norm_rms_eps(cfg.norm_eps)
    writer.add_rope_freq_base(cfg.rope_theta)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_vocab_size(cfg.vocab_size)


# ----------------------------------------------------------------------------- import


def is_llama_folder(config: dict[str, Any]) -> bool:
    return config.get("model_type") in ("llama", "qwen3")


def load_llama_safetensors(path: Path, config: dict[str, Any]) -> GPT:
    """A tui-gpt model from a Hugging Face Llama / Qwen3 `model.safetensors` and its
    config.json (as `export --format hf` writes them): the same weights."""
    try:
        c, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        cfg = GPTConfig(
            arch="llama", vocab_size=int(config["vocab_size"]),
            context_length=int(config["max_position_embeddings"]), emb_dim=c, n_heads=heads,
            n_layers=int(config["num_hidden_layers"]),
            n_kv_heads=int(config.get("num_key_value_heads") or heads),
            rope_theta=float(config.get("rope_theta", 10000.0)),
            norm_eps=float(config.get("rms_norm_eps", 1e-5)),
            mlp_width=int(config["intermediate_size"]),
            qk_norm=config.get("model_type") == "qwen3",
            tie_weights=bool(config.get("tie_word_embeddings", False)), dropout=0.0,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise TuiGptError(f"{path.parent / 'config.json'}: not a readable config ({exc})") from None
    if cfg.head_dim != int(config.get("head_dim") or cfg.head_dim):
        raise TuiGptError(f"{path}: head_dim {config['head_dim']} is not hidden_size / heads")
    try:
        f = safe_open(str(path), framework="pt", device="cpu")
        keys = set(f.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise TuiGptError(f"{path}: not a readable safetensors file ({exc})") from None
    model = GPT(cfg)
    expected = hf_tensors(model)
    if set(expected) != keys:
        missing, extra = set(expected) - keys, keys - set(expected)
        raise TuiGptError(
            f"{path}: keys do not match the config ({len(missing)} missing, e.g. "
            f"{sorted(missing)[:2]}; {len(extra)} unexpected, e.g. {sorted(extra)[:2]})"
        )
    got = {}
    for key, target in expected.items():
        value = f.get_tensor(key)
        if value.shape != target.shape:
            raise TuiGptError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
            )
        got[key] = value.float()
    q, kv, ff = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.ff_width
    state = model.state_dict()
    with torch.no_grad():
        state["tok_emb.weight"].copy_(got["model.embed_tokens.weight"])
        state["final_norm.weight"].copy_(got["model.norm.weight"])
        if not cfg.tie_weights:
            state["out_head.weight"].copy_(got["lm_head.weight"])
        for i in range(cfg.n_layers):
            ours, hf = f"blocks.{i}.", f"model.layers.{i}."
            qkv = state[ours + "attn.qkv.weight"]
            qkv[:q].copy_(got[hf + "self_attn.q_proj.weight"])
            qkv[q : q + kv].copy_(got[hf + "self_attn.k_proj.weight"])
            qkv[q + kv :].copy_(got[hf + "self_attn.v_proj.weight"])
            gate_up = state[ours + "ff.gate_up.weight"]
            gate_up[:ff].copy_(got[hf + "mlp.gate_proj.weight"])
            gate_up[ff:].copy_(got[hf + "mlp.up_proj.weight"])
            for theirs, mine in (("input_layernorm", "norm1"), ("post_attention_layernorm", "norm2"),
                                 ("self_attn.o_proj", "attn.out_proj"), ("mlp.down_proj", "ff.down"),
                                 *((("self_attn.q_norm", "attn.q_norm"), ("self_attn.k_norm", "attn.k_norm"))
                                   if cfg.qk_norm else ())):  # fmt: skip
                state[f"{ours}{mine}.weight"].copy_(got[f"{hf}{theirs}.weight"])
    return model.eval()
