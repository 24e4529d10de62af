"""`tui-gpt export RUN --format hf|gguf`: the model out, to transformers or llama.cpp."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from tui_gpt.commands.common import add_run_dir, print_json, runs_dir
from tui_gpt.core.config import EXPORT_DTYPES, EXPORT_FORMATS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a run to Hugging Face transformers (hf) or llama.cpp (gguf)",
        description="Write a run's model with its tokenizer as a Hugging Face folder (its "
        "config.json names the class: LlamaForCausalLM for --arch llama, the default; "
        "Qwen3ForCausalLM with --qk-norm; GPT2LMHeadModel for --arch gpt2; "
        "AutoModelForCausalLM loads any) or a GGUF file (llama.cpp's llama, qwen3 or gpt2 "
        "architecture).",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="hf or gguf")
    p.add_argument("--out", metavar="PATH", help="where (default: beside the run, in exports/)")
    p.add_argument("--dtype", choices=EXPORT_DTYPES, help="hf: f32 (default), f16 or bf16; "
                   "gguf: f16 (default), f32 or q8_0")  # fmt: skip
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                   help="which weights (default best, else latest)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace what is at --out")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core.export import default_out, export
    from tui_gpt.core.runs import find_run

    target = find_run(args.run, runs_dir(args))
    dtype = args.dtype or ("f32" if args.format == "hf" else "f16")
    out = Path(args.out).expanduser() if args.out else default_out(target.path, args.format, dtype)
    done = export(target, args.format, out, dtype, args.checkpoint, args.force)
    if args.json:
        print_json({"path": str(done.path), "format": done.format, "dtype": done.dtype,
                    "params": done.params, "checkpoint": str(done.checkpoint)})  # fmt: skip
    else:
        what = "a Hugging Face folder" if done.format == "hf" else "a GGUF file"
        use = (
            f"AutoModelForCausalLM.from_pretrained({str(done.path)!r}) in transformers"
            if done.format == "hf"
            else f"llama-cli -m {shlex.quote(str(done.path))} (llama.cpp)"
        )
        print(f"exported run {target.id} as {what}: {done.path}")
        print(f"  {done.params:,} parameters in {done.dtype}, from {done.checkpoint.name}")
        print(f"  load it with {use}")
    return 0
