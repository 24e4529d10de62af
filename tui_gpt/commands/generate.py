"""`tui-gpt generate`: stream a continuation of a prompt from a trained model."""

from __future__ import annotations

import argparse
import sys

from tui_gpt.commands.common import (
    add_run_dir,
    add_settings,
    add_vocab_dir,
    note,
    print_json,
    runs_dir,
    settings_from_args,
)
from tui_gpt.core.config import DEVICES, SAMPLING_PRECISIONS, SamplingConfig
from tui_gpt.core.errors import TuiGptError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a run or a checkpoint",
        description="Continue --prompt with a trained model, streaming tokens to stdout. "
        "Temperature 0 is greedy; --seed makes sampling repeatable.",
    )
    p.add_argument("run_ref", nargs="?", metavar="RUN",
                   help="run id, unique prefix, label or folder")  # fmt: skip
    # One of RUN, --run and --checkpoint: checked in run(), one rule for all three.
    p.add_argument("--run", help="the same as RUN")
    p.add_argument("--checkpoint", help="a .safetensors checkpoint file instead of a run")
    p.add_argument("--weights", choices=("best", "latest"), default="best",
                   help="a run's weights: best (the lowest validation loss; latest until "
                   "there is one) or latest; which, with its step and validation loss, is "
                   "said on stderr")  # fmt: skip
    p.add_argument("--prompt", required=True, help="text to continue")
    add_settings(p.add_argument_group("sampling"), SamplingConfig)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--precision",
        choices=SAMPLING_PRECISIONS,
        default="auto",
        help="auto: bf16 weights where the CPU has bf16 units; int8: int8 weights (half the "
        "bytes of bf16, a little faster on CPU, validation loss within 0.1%%)",
    )
    add_vocab_dir(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every verb's parser loads with `tui-gpt --help`, and
    # torch takes a second or two to import.
    import torch

    from tui_gpt.core.device import resolve_threads
    from tui_gpt.core.generate import seeded_generator, stream
    from tui_gpt.core.sampling import load_for_sampling
    from tui_gpt.core.tokenizer import StreamDecoder

    given = [a for a in (args.run_ref, args.run, args.checkpoint) if a]
    if len(given) != 1:
        raise TuiGptError(
            "give one of RUN, --run RUN or --checkpoint FILE"
            if not given
            else "give RUN, --run or --checkpoint, not more than one"
        )
    if args.checkpoint and args.weights != "best":
        raise TuiGptError("--weights chooses a run's checkpoint; --checkpoint names one itself")
    resolve_threads()
    loaded = load_for_sampling(
        args.run_ref or args.run, args.checkpoint, runs_dir(args), args.device, args.precision,
        args.vocab_dir, args.weights,
    )  # fmt: skip
    tok, s = loaded.tokenizer, settings_from_args(args, SamplingConfig)
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
        s.max_new_tokens,
        temperature=s.temperature,
        top_k=s.top_k or None,
        top_p=s.top_p,
        eos_id=tok.eot_id if s.eos else None,
        generator=seeded_generator(s.seed, loaded.device),
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
                "weights": loaded.weights,
                "seed": s.seed,
            }
        )
        return 0
    note(f"sampling from {loaded.weights} ({loaded.source})")
    out = sys.stdout
    out.write(args.prompt)
    out.flush()
    for t in tokens:
        out.write(decoder.feed(int(t.item())))
        out.flush()
    out.write(decoder.flush() + "\n")
    return 0
