"""`tui-gpt generate`: stream a continuation of a prompt from a trained model."""

from __future__ import annotations

import argparse
import sys

from tui_gpt.commands.common import (
    add_run_dir,
    non_negative_float,
    non_negative_int,
    print_json,
    probability,
    runs_root,
)
from tui_gpt.core.config import DEVICES, SAMPLING_PRECISIONS
from tui_gpt.core.errors import TuiGptError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a run or a checkpoint",
        description="Continue --prompt with a trained model, streaming tokens to stdout. "
        "Temperature 0 is greedy; --seed makes sampling repeatable.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run id (or unique prefix, or folder): its best checkpoint")
    source.add_argument("--checkpoint", help="a .safetensors checkpoint file")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument(
        "--max-new-tokens", type=non_negative_int, default=50, help="tokens to add (default 50)"
    )
    p.add_argument(
        "--temperature", type=non_negative_float, default=1.0, help="0 is greedy (default 1.0)"
    )
    p.add_argument(
        "--top-k",
        type=non_negative_int,
        default=50,
        help="keep the k likeliest tokens; 0 is off (default 50)",
    )
    p.add_argument(
        "--top-p",
        type=probability,
        help="nucleus sampling: keep tokens up to this total probability",
    )
    p.add_argument("--seed", type=int, help="seed for repeatable sampling")
    p.add_argument("--eos", action="store_true", help="stop at the end-of-text token")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--precision",
        choices=SAMPLING_PRECISIONS,
        default="auto",
        help="auto: bf16 weights where the CPU has bf16 units; int8: int8 weights (half the "
        "bytes of bf16, a little faster on CPU, validation loss within 0.1%%)",
    )
    p.add_argument("--vocab-dir", help="folder with GPT-2's encoder.json and vocab.bpe")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every verb's parser loads with `tui-gpt --help`, and
    # torch takes a second or two to import.
    import torch

    from tui_gpt.core.device import resolve_threads
    from tui_gpt.core.generate import seeded_generator, stream
    from tui_gpt.core.session import load_for_sampling
    from tui_gpt.core.tokenizer import StreamDecoder

    resolve_threads()
    loaded = load_for_sampling(
        args.run, args.checkpoint, runs_root(args), args.device, args.precision, args.vocab_dir
    )
    tok = loaded.tokenizer
    ids = tok.encode(args.prompt)
    if not ids:
        raise TuiGptError("the prompt is empty")
    ctx = loaded.model.cfg.context_length
    if len(ids) > ctx:
        ids = ids[-ctx:]  # keep the end of a long prompt: that is what the model continues
    idx = torch.tensor([ids], device=loaded.device)
    tokens = stream(
        loaded.model,
        idx,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
        top_p=args.top_p,
        eos_id=tok.eot_id if args.eos else None,
        generator=seeded_generator(args.seed, loaded.device),
    )
    decoder = StreamDecoder(tok)
    if args.json:
        new = [int(t.item()) for t in tokens]
        print_json(
            {
                "prompt": args.prompt,
                "text": tok.decode(new),
                "tokens": new,
                "source": loaded.source,
                "seed": args.seed,
            }
        )
        return 0
    out = sys.stdout
    out.write(args.prompt)
    out.flush()
    for t in tokens:
        out.write(decoder.feed(int(t.item())))
        out.flush()
    out.write(decoder.flush() + "\n")
    return 0
