"""`tui-gpt import-gpt2 SIZE|PATH`: OpenAI's GPT-2 weights as a run usable everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_gpt.commands.common import add_run_dir, print_json, runs_dir


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
        help="a size (124M, 355M, 774M or 1558M), or a model.safetensors (or its folder): "
        "GPT-2's, or a tui-gpt export (GPT-2, Llama or Qwen3 layout)",
    )
    p.add_argument("--json", action="store_true", help="print the new run as JSON")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core import checkpoint
    from tui_gpt.core.errors import TuiGptError
    from tui_gpt.core.fsutil import atomic_copy
    from tui_gpt.core.gpt2_weights import SIZES, fetch, load_gpt2_safetensors
    from tui_gpt.core.llama_weights import is_llama_folder, load_llama_safetensors
    from tui_gpt.core.records import DatasetRecord, RunRecord
    from tui_gpt.core.runs import TOKENIZER_FILE, create_run
    from tui_gpt.core.tokenizer import BPETokenizer

    size = args.source if args.source in SIZES else None
    path = fetch(size) if size else Path(args.source).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    config = _config_beside(path)
    if config is not None and is_llama_folder(config):  # an export of a modern tui-gpt model
        model = load_llama_safetensors(path, config)
    else:
        model = load_gpt2_safetensors(path, expect=size)
    params = model.num_params()
    label = size or path.parent.name or path.stem
    # Another vocabulary than GPT-2's (an exported tui-gpt model): its tokenizer.json.
    own: BPETokenizer | None = None
    if model.cfg.vocab_size != 50257:
        beside = path.parent / "tokenizer.json"
        if not beside.is_file():
            raise TuiGptError(
                f"{path}: a vocabulary of {model.cfg.vocab_size} is not GPT-2's, and there is "
                "no tokenizer.json beside it"
            )
        own = BPETokenizer(beside, follow_links=True)  # beside a path the user typed
        if own.vocab_size != model.cfg.vocab_size:
            raise TuiGptError(
                f"{beside}: {own.vocab_size} tokens, the model {model.cfg.vocab_size}"
            )
    tok_name = own.name if own else "gpt2"
    record = RunRecord(
        preset=label, tokenizer=tok_name, model=model.cfg.to_dict(), params=params,
        imported_from=str(path.resolve()), dataset=DatasetRecord(files=(str(path.resolve()),)),
    )  # fmt: skip
    new = create_run(runs_dir(args), "gpt2", record)  # id: <date>-<time>-gpt2-<size>
    if own is not None:
        atomic_copy(own.path, new.path / TOKENIZER_FILE)
    checkpoint.save(new.best, model, extra={"tokenizer": tok_name})
    new.set_status("imported", step=-1, epoch=0, tokens_seen=0, best_val_loss=None)
    if args.json:
        print_json({"run": new.id, "path": str(new.path), "params": params, "source": str(path)})
        return 0
    print(f"imported {path} as run {new.id} ({params:,} parameters)")
    print(f'  generate  tui-gpt generate {new.id} --prompt "Every effort moves you"')
    # The chapter trains GPT-2 on from windows of 256 tokens: far quicker than its 1,024.
    shorter = " --context-length 256" if model.cfg.context_length > 256 else ""
    print(f"  train     tui-gpt train DATA --init-from {new.id}{shorter}")
    return 0


def _config_beside(path: Path) -> dict | None:
    """The config.json beside a model.safetensors, if there is a readable one."""
    from tui_gpt.core.errors import TuiGptError
    from tui_gpt.core.reading import read_json

    try:
        config = read_json(path.parent / "config.json", follow_links=True)
    except (FileNotFoundError, TuiGptError):
        return None
    return config if isinstance(config, dict) else None
