"""The modern block's parts one at a time: `--arch llama` with one component put back to
GPT-2's (learned positions for rotary, LayerNorm for RMSNorm, a GELU MLP for SwiGLU,
biases), with its options on (QK-norm, half the key/value heads), with a tied head and
with other initialisations (the block's own is PyTorch's defaults), beside both whole
blocks. Each variant is built in this process (the benchmark swaps the one module; the
project's model has no switch for hybrids, they do not export) and trained by tui-gpt's own
Trainer for the same steps on the same batches, then scored on every token of the
validation split in bits per byte. Equal steps: quality per token seen, whatever the load on
the machine; wall times are listed but were not taken on a quiet machine. Several `--seeds`
(initial weights and batch order) show how far one variant's score moves by chance.

    python benchmarks/ablations.py [--data PATH] [--sizes micro mini] [--variants ...]
        [--seeds 123 1 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TUI_GPT_SHARED", ROOT.parent / "shared"))

from tui_gpt.core import process  # noqa: E402
from tui_gpt.core.config import ModelChoice, TrainConfig  # noqa: E402
from tui_gpt.core.corpus import inspect_source  # noqa: E402
from tui_gpt.core.data import make_loaders, prepare  # noqa: E402
from tui_gpt.core.device import Runtime, resolve_threads  # noqa: E402
from tui_gpt.core.evaluation import score  # noqa: E402
from tui_gpt.core.loss import token_byte_lengths  # noqa: E402
from tui_gpt.core.model import GPT, FeedForward  # noqa: E402
from tui_gpt.core.tokenizer import ByteTokenizer  # noqa: E402
from tui_gpt.core.trainer import Trainer  # noqa: E402

# Per size: (preset, context, batch, steps, peak lr); warmup 10%, cosine to lr / 10: the same
# as benchmarks/architecture.py.
SIZES = {"micro": ("micro", 128, 16, 600, 2e-3), "mini": ("mini", 256, 4, 300, 1e-3)}


def learned_positions(model: GPT) -> None:
    """Rotary out; a learned table of positions added to the embeddings in (as gpt2)."""
    for block in model.blocks:
        block.attn.rotary = None
    model.pos_emb = nn.Embedding(model.cfg.context_length, model.cfg.emb_dim)


def layer_norm(model: GPT) -> None:
    """RMSNorm out; LayerNorm (weight and bias, mean subtracted) in, everywhere."""
    C = model.cfg.emb_dim
    for block in model.blocks:
        block.norm1, block.norm2 = nn.LayerNorm(C), nn.LayerNorm(C)
    model.final_norm = nn.LayerNorm(C)


def gelu_mlp(model: GPT) -> None:
    """SwiGLU out; GPT-2's C -> 4C -> GELU -> C in (PyTorch's default initialisation)."""
    for block in model.blocks:
        block.ff = FeedForward(replace(model.cfg, arch="gpt2"))


def biases(model: GPT) -> None:
    """A zero-initialised bias on every matrix of the blocks (the head keeps none)."""
    for block in model.blocks:
        for owner, name in ((block.attn, "qkv"), (block.attn, "out_proj"),
                            (block.ff, "gate_up"), (block.ff, "down")):  # fmt: skip
            old = getattr(owner, name)
            new = nn.Linear(old.in_features, old.out_features, bias=True)
            with torch.no_grad():
                new.weight.copy_(old.weight)
                new.bias.zero_()
            setattr(owner, name, new)


def tied_head(model: GPT) -> None:
    """The head shares the embedding matrix (as GPT-2's released weights), which starts
    N(0, 1/C) so that the first logits have about unit variance."""
    nn.init.normal_(model.tok_emb.weight, std=model.cfg.emb_dim**-0.5)
    model.out_head.weight = model.tok_emb.weight


def small_embedding(model: GPT) -> None:
    """The tied head's embedding scale, N(0, 1/C), with the head still its own matrix:
    separates the effect of sharing from the effect of the scale."""
    nn.init.normal_(model.tok_emb.weight, std=model.cfg.emb_dim**-0.5)


def zero_writers(model: GPT) -> None:
    """The matrices writing into the residual stream (attention output, MLP down) zero:
    each block starts as the identity."""
    for block in model.blocks:
        nn.init.zeros_(block.attn.out_proj.weight)
        nn.init.zeros_(block.ff.down.weight)


def zero_head(model: GPT) -> None:
    """The head zero: the untrained model predicts the uniform distribution, ln(V)."""
    nn.init.zeros_(model.out_head.weight)


def former_init(model: GPT) -> None:
    """The modern block's initialisation until session 8: embedding N(0, 1), the readers
    (query/key/value, gate/up) uniform with std 1/sqrt(fan-in), writers and head zero.
    The ablation rows of docs/recipes.md's tables were measured with it."""
    nn.init.normal_(model.tok_emb.weight, std=1.0)
    for block in model.blocks:
        for reader in (block.attn.qkv, block.ff.gate_up):
            bound = math.sqrt(3.0 / reader.in_features)  # uniform: std = bound / sqrt(3)
            nn.init.uniform_(reader.weight, -bound, bound)
    zero_writers(model)
    zero_head(model)


def small_normal_init(model: GPT) -> None:
    """GPT-2's paper and nanoGPT's scheme: every matrix and the embedding N(0, 0.02), the
    matrices writing into the residual stream N(0, 0.02 / sqrt(2 x layers))."""
    writer_std = 0.02 / math.sqrt(2 * model.cfg.n_layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                writes = name.endswith(("out_proj.weight", "down.weight"))
                nn.init.normal_(p, std=writer_std if writes else 0.02)


# name: (arch, model options, surgery)
VARIANTS = {
    "gpt2": ("gpt2", {}, None),
    "llama": ("llama", {}, None),
    "llama, learned positions (no rotary)": ("llama", {}, learned_positions),
    "llama, LayerNorm (no RMSNorm)": ("llama", {}, layer_norm),
    "llama, GELU MLP (no SwiGLU)": ("llama", {}, gelu_mlp),
    "llama + biases": ("llama", {}, biases),
    "llama + QK-norm": ("llama", {"qk_norm": True}, None),
    "llama, KV heads / 2": ("llama", {"kv_heads": "HALF"}, None),
    "llama, tied head": ("llama", {}, tied_head),
    "llama, embedding N(0, 1/C)": ("llama", {}, small_embedding),
    "llama, zero writers": ("llama", {}, zero_writers),
    "llama, zero head": ("llama", {}, zero_head),
    "llama, N(0, 0.02) init": ("llama", {}, small_normal_init),
    "llama, former init": ("llama", {}, former_init),
}


def measure(text: Path, size: str, variant: str, seed: int = 123) -> dict:
    preset, ctx, batch, steps, lr = SIZES[size]
    arch, options, surgery = VARIANTS[variant]
    tokenizer = ByteTokenizer()
    data = prepare(inspect_source(text), tokenizer, 0.9)
    cfg = TrainConfig(max_steps=steps, epochs=100, batch_size=batch, lr=lr, min_lr=lr / 10,
                      warmup_steps=steps // 10, schedule="cosine", eval_freq=steps,
                      eval_iter=1, sample_tokens=0, precision="fp32", seed=seed)  # fmt: skip
    choice = ModelChoice(preset, ctx, "byte", dropout=0.0, arch=arch)
    if options.get("kv_heads") == "HALF":
        options = {**options, "kv_heads": choice.config(tokenizer.vocab_size).n_heads // 2}
    choice = replace(choice, **options)
    torch.manual_seed(cfg.seed)
    model = GPT(choice.config(tokenizer.vocab_size))
    if surgery is not None:
        surgery(model)
    params = sum(p.numel() for p in model.parameters())
    runtime = Runtime(torch.device("cpu"), "fp32", resolve_threads(None))
    loaders = make_loaders(data, ctx, batch, seed=cfg.seed)
    trainer = Trainer(model, loaders, tokenizer, cfg, runtime)
    started = time.perf_counter()
    with process.reusing_memory():
        trainer.run()
    seconds = time.perf_counter() - started
    result = score(model.eval(), data.val_ids, token_byte_lengths(tokenizer), ctx)
    return {"size": size, "variant": variant, "seed": seed, "params": params, "steps": steps,
            "train_seconds": round(seconds, 1), "val_bpb": round(result.bpb, 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "tinyshakespeare.txt")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[123],
                        help="a run per seed (weights and batch order): the spread sizes the noise")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            for variant in args.variants:
                rows.append(measure(args.data, size, variant, seed))
                print(json.dumps(rows[-1]), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=2))
    print("\n| size | seed | variant | parameters | val bits/byte | vs llama |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    base = {(r["size"], r["seed"]): r["val_bpb"] for r in rows if r["variant"] == "llama"}
    for r in rows:
        key = (r["size"], r["seed"])
        diff = r["val_bpb"] - base[key] if key in base else math.nan
        print(f"| {r['size']} | {r['seed']} | {r['variant']} | {r['params']:,} | "
              f"{r['val_bpb']:.4f} | {diff:+.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
