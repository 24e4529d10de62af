"""`tui-gpt import-gpt2 SIZE|PATH`: OpenAI's GPT-2 weights as a run usable everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_gpt.commands.common import add_run_dir, print_json, runs_root


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import-gpt2",
        help="import OpenAI's GPT-2 weights as a run",
        description="Import GPT-2 (124M, 355M, 774M, 1558M) from a local Hugging Face "
        "model.safetensors, or by size from the Hugging Face cache (downloading it when online "
        "and HF_HUB_OFFLINE is not set). The result is a run for `generate --run`, the app's "
        "generator, and `train --init-from`.",
    )
    p.add_argument(
        "source",
        metavar="SIZE|PATH",
        help="a size (124M, 355M, 774M or 1558M), or a model.safetensors (or its folder)",
    )
    p.add_argument("--json", action="store_true", help="print the new run as JSON")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core import checkpoint
    from tui_gpt.core.gpt2_weights import SIZES, fetch, load_gpt2_safetensors
    from tui_gpt.core.runs import create_run

    size = args.source if args.source in SIZES else None
    path = fetch(size) if size else Path(args.source).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    model = load_gpt2_safetensors(path, expect=size)
    params = model.num_params()
    label = size or path.parent.name or path.stem
    info = {
        "tokenizer": "gpt2",
        "model": model.cfg.to_dict(),
        "params": params,
        "imported_from": str(path.resolve()),
        "dataset": {"files": [str(path.resolve())]},
    }
    new = create_run(runs_root(args), "gpt2", label, info)  # id: <date>-<time>-gpt2-<size>
    checkpoint.save(new.best, model, extra={"tokenizer": "gpt2"})
    new.set_status("imported", step=-1, epoch=0, tokens_seen=0, best_val_loss=None)
    if args.json:
        print_json({"run": new.id, "path": str(new.path), "params": params, "source": str(path)})
        return 0
    print(f"imported {path} as run {new.id} ({params:,} parameters)")
    print(f'  generate  tui-gpt generate --run {new.id} --prompt "Every effort moves you"')
    print(f"  train     tui-gpt train DATA --init-from {new.id} --context-length 256")
    return 0
