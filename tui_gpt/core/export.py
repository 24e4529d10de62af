"""Take a model out: a run's weights as a Hugging Face `transformers` folder, or as a GGUF
file for llama.cpp, each with its tokenizer.

A GPT-2 model (`arch="gpt2"`) is GPT-2's architecture, so both formats describe it exactly:
the same tensors under other names (core/gpt2_weights.NAMES, the one table for both
directions), attention and MLP matrices transposed for Hugging Face's Conv1D, a zero
query/key/value bias where the model has none (GPT-2's layout always has one; adding zero
changes nothing), the output head untied or tied as trained. A modern model
(`arch="llama"`) goes out as Llama (Qwen3 with QK-norm): core/llama_weights.py. The
tokenizer goes along as a byte-level BPE: GPT-2's, the run's own trained one, or the byte
tokenizer (a BPE without merges).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch

from tui_gpt.core import llama_weights
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import atomic_write_path, disk_reason, fsync_dir, temporary_for
from tui_gpt.core.gpt2_weights import name_pairs
from tui_gpt.core.model import GPT
from tui_gpt.core.runs import Run
from tui_gpt.core.sampling import open_weights
from tui_gpt.core.tensorfile import write_safetensors
from tui_gpt.core.tokenizer import EOT_TEXT, BPETokenizer, GPT2Tokenizer, Tokenizer, byte_alphabet

Format = Literal["hf", "gguf"]  # config.EXPORT_FORMATS
_TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
Q8_BLOCK = 32  # q8_0 quantizes rows in blocks of 32 values


@dataclass
class Exported:
    path: Path
    format: Format
    dtype: str
    params: int
    checkpoint: Path


def default_out(run_path: Path, fmt: str, dtype: str) -> Path:
    """Where an export goes unless told: the run folder's exports/."""
    name = f"{run_path.name}-{dtype}" + (".gguf" if fmt == "gguf" else "-hf")
    return run_path / "exports" / name


def load(run: Run, which: str = "best") -> tuple[GPT, Tokenizer, Path]:
    """The model of a run's `best` (else `latest`) or `latest` checkpoint, in fp32, eval."""
    ckpt, tokenizer = open_weights(run, which)  # verified: never exported as NaNs
    model = ckpt.build_model("cpu").float().eval()
    return model, tokenizer, ckpt.path


def _gpt2_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """The model's tensors under GPT-2's names, in GPT-2's (Conv1D) layout."""
    cfg, state = model.cfg, model.state_dict()
    out = {}
    for hf, ours, transposed in name_pairs(cfg.n_layers):
        t = state.get(ours)
        if t is None:  # no query/key/value bias: GPT-2's layout has one, zero is the same
            t = torch.zeros(3 * cfg.emb_dim)
        if hf.startswith(("wte", "lm_head")):
            t = t[: cfg.vocab_size]  # rows padded for speed are never predicted
        out[hf] = (t.t() if transposed else t).contiguous()
    if not cfg.tie_weights:
        out["lm_head.weight"] = state["out_head.weight"][: cfg.vocab_size].contiguous()
    return out


# ----------------------------------------------------------------------------- tokenizer


def bpe_tables(tok: Tokenizer) -> tuple[list[str], list[tuple[str, str]]]:
    """The tokenizer as a byte-level BPE: each id's token in the byte-level alphabet (the
    special token as itself) and the merges in order."""
    to_char = {b: c for c, b in byte_alphabet().items()}

    def spell(raw: bytes) -> str:
        return "".join(to_char[b] for b in raw)

    if isinstance(tok, BPETokenizer):
        model = json.loads(tok.path.read_text(encoding="utf-8"))["model"]
        tokens = [""] * tok.vocab_size
        for text, i in model["vocab"].items():
            tokens[i] = text
        pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"]]
        return tokens, [(a, b) for a, b in pairs]
    tokens = [
        EOT_TEXT if i == tok.eot_id else spell(tok.token_bytes(i)) for i in range(tok.vocab_size)
    ]
    if not isinstance(tok, GPT2Tokenizer):
        return tokens, []  # bytes: the alphabet itself, nothing merged
    # GPT-2's ids are its merge ranks: each token is the merge of the two parts that BPE
    # with only the lower ranks leaves of it.
    rank = {tok.token_bytes(i): i for i in range(tok.vocab_size) if i != tok.eot_id}
    merges: list[tuple[str, str]] = []
    for raw, r in sorted(rank.items(), key=lambda kv: kv[1]):
        if len(raw) < 2:
            continue
        parts = [bytes([b]) for b in raw]
        while len(parts) > 2:
            ranked = [
                (rank.get(left + right, r), at)
                for at, (left, right) in enumerate(zip(parts, parts[1:], strict=False))
            ]
            best, at = min(ranked)
            if best >= r:
                break
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        merges.append((spell(parts[0]), spell(b"".join(parts[1:]))))
    return tokens, merges


def hf_tokenizer_json(tok: Tokenizer) -> str:
    """A Hugging Face `tokenizer.json` that encodes and decodes exactly as `tok` does."""
    if isinstance(tok, BPETokenizer):
        return tok.path.read_text(encoding="utf-8")
    from tokenizers import AddedToken, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    tokens, merges = bpe_tables(tok)
    hf = HFTokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(EOT_TEXT, special=True, normalized=False)])
    return hf.to_str()


# ----------------------------------------------------------------------------- writers


# What an export writes: --force replaces only what looks like one of these.
HF_FILES = frozenset(
    {"config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
     "model.safetensors"}
)  # fmt: skip
GGUF_MAGIC = b"GGUF"


def _ready(out: Path, force: bool, fmt: Format) -> None:
    """Refuse to write over anything but an earlier export, and that only with --force:
    never delete a file tui-gpt did not write, never follow a symbolic link."""
    if out.is_symlink():
        raise TuiGptError(f"{out} is a symbolic link; give the real path as --out")
    if out.exists():
        if not force:
            raise TuiGptError(f"{out} exists; choose another --out or pass --force to replace it")
        foreign = _not_an_export(out, fmt)
        if foreign:
            raise TuiGptError(f"{out} {foreign}; --force replaces only an earlier export")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TuiGptError(f"cannot write {out}: {disk_reason(exc)}") from None


def _not_an_export(out: Path, fmt: Format) -> str | None:
    """Why `out` is not an export of this format, or None."""
    if fmt == "gguf":
        if not out.is_file():
            return "is not a file"
        with open(out, "rb") as f:
            return None if f.read(4) == GGUF_MAGIC else "is not a GGUF file"
    if not out.is_dir():
        return "is not a folder"
    other = sorted(p.name for p in out.iterdir() if p.name not in HF_FILES or not p.is_file())
    return f"holds files an export does not write ({', '.join(other[:3])})" if other else None


def export_hf(
    model: GPT, tok: Tokenizer, out: Path, dtype: str = "f32", force: bool = False
) -> None:
    """A folder `GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained` load.
    Written in a hidden folder beside `out`, renamed into place when complete."""
    if dtype not in _TORCH_DTYPES:
        raise TuiGptError(
            f"--dtype {dtype} is for GGUF; a Hugging Face export takes f32, f16 or bf16"
        )
    _ready(out, force, "hf")
    cfg = model.cfg
    if cfg.arch == "gpt2":
        named = {
            (k if k == "lm_head.weight" else f"transformer.{k}"): v
            for k, v in _gpt2_tensors(model).items()
        }
        config = {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": cfg.vocab_size, "n_positions": cfg.context_length, "n_ctx": cfg.context_length,
            "n_embd": cfg.emb_dim, "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None,
            "activation_function": "gelu_new",  # GELU's tanh approximation, as tui-gpt
            "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
            "layer_norm_epsilon": 1e-5, "tie_word_embeddings": cfg.tie_weights,
        }  # fmt: skip
    else:
        named, config = llama_weights.hf_tensors(model), llama_weights.hf_config(cfg)
    tensors = {k: v.to(_TORCH_DTYPES[dtype]) for k, v in named.items()}
    config |= {
        "bos_token_id": tok.eot_id, "eos_token_id": tok.eot_id,
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype],
    }  # fmt: skip
    generation = {"bos_token_id": tok.eot_id, "eos_token_id": tok.eot_id}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.context_length,
        "bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT,
        "add_prefix_space": False, "clean_up_tokenization_spaces": False,
    }  # fmt: skip
    files: dict[str, Callable[[BinaryIO], object]] = {
        "model.safetensors": lambda f: write_safetensors(f, tensors, {"format": "pt"}),
        "tokenizer.json": lambda f: f.write(hf_tokenizer_json(tok).encode("utf-8")),
    }
    for name, obj in (("config.json", config), ("generation_config.json", generation),
                      ("tokenizer_config.json", tokenizer_config)):  # fmt: skip
        files[name] = _json_writer(obj)
    tmp = temporary_for(out)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, write in files.items():
            with open(tmp / name, "xb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
        fsync_dir(out.parent)
    except OSError as exc:
        raise TuiGptError(f"cannot write {out}: {disk_reason(exc)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _json_writer(obj: object) -> Callable[[BinaryIO], object]:
    return lambda f: f.write(json.dumps(obj, indent=2).encode("utf-8"))


def export_gguf(
    model: GPT, tok: Tokenizer, out: Path, dtype: str = "f16", force: bool = False
) -> None:
    """A GGUF file of llama.cpp's `gpt2` architecture, its tokenizer inside."""
    try:
        import gguf
    except ImportError:
        raise TuiGptError(
            "a GGUF export needs the gguf package: pip install 'tui-gpt[gguf]'"
        ) from None

    _ready(out, force, "gguf")
    cfg = model.cfg
    if dtype == "bf16":
        raise TuiGptError("--dtype bf16 is for a Hugging Face export; GGUF takes f32, f16 or q8_0")
    if dtype == "q8_0" and cfg.emb_dim % Q8_BLOCK:
        raise TuiGptError(
            f"q8_0 quantizes rows in blocks of {Q8_BLOCK}; this model's width {cfg.emb_dim} is "
            "not a multiple of it: export f16 or f32"
        )
    tokens, merges = bpe_tables(tok)
    if not merges:
        raise TuiGptError(
            "llama.cpp's GPT-2 tokenizer needs BPE merges and the byte tokenizer has none: "
            "export --format hf, or train with GPT-2's or a trained tokenizer"
        )
    modern = cfg.arch != "gpt2"
    arch = llama_weights.gguf_architecture(cfg) if modern else "gpt2"
    tensors = llama_weights.gguf_tensors(model) if modern else _gguf_tensors(model)

    def write(tmp: Path) -> None:
        w = gguf.GGUFWriter(str(tmp), arch)
        w.add_name("tui-gpt model")
        if modern:
            llama_weights.add_gguf_keys(w, cfg)
        else:
            w.add_context_length(cfg.context_length)
            w.add_embedding_length(cfg.emb_dim)
            w.add_feed_forward_length(4 * cfg.emb_dim)
            w.add_block_count(cfg.n_layers)
            w.add_head_count(cfg.n_heads)
            w.add_layer_norm_eps(1e-5)
        w.add_file_type({"f32": 0, "f16": 1, "q8_0": 7}[dtype])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens)
        w.add_token_types([3 if i == tok.eot_id else 1 for i in range(len(tokens))])
        w.add_token_merges([f"{a} {b}" for a, b in merges])
        w.add_bos_token_id(tok.eot_id)
        w.add_eos_token_id(tok.eot_id)
        for name, t in tensors.items():
            data = t.float().numpy()
            if data.ndim == 1 or dtype == "f32":
                w.add_tensor(name, data.astype(np.float32))
            elif dtype == "f16":
                w.add_tensor(name, data.astype(np.float16))
            else:
                q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    try:
        atomic_write_path(out, write)
    except OSError as exc:
        raise TuiGptError(f"cannot write {out}: {disk_reason(exc)}") from None


def _gguf_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """GPT-2's tensors under llama.cpp's names, matrices as (out, in) like nn.Linear."""
    names = {
        "wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
        "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias",
        "lm_head.weight": "output.weight",
    }  # fmt: skip
    block = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
             "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}  # fmt: skip
    out = {}
    transposed = {hf for hf, _, t in name_pairs(model.cfg.n_layers) if t}
    for hf, t in _gpt2_tensors(model).items():
        if hf.startswith("h."):
            _, i, rest = hf.split(".", 2)
            part, kind = rest.rsplit(".", 1)
            name = f"blk.{i}.{block[part]}.{kind}"
        else:
            name = names[hf]
        out[name] = t.t().contiguous() if hf in transposed else t
    return out


def export(
    run: Run, fmt: Format, out: Path, dtype: str, which: str = "best", force: bool = False
) -> Exported:
    model, tok, path = load(run, which)
    if fmt == "hf":
        export_hf(model, tok, out, dtype, force)
    else:
        export_gguf(model, tok, out, dtype, force)
    return Exported(out, fmt, dtype, model.num_params(), path)
