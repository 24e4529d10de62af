"""`tui-gpt eval RUN [DATA]`: a run's loss, perplexity and bits per byte on all of its
validation split, or on any text."""

from __future__ import annotations

import argparse

from tui_gpt.commands.common import TextProgress, add_run_dir, print_json, runs_dir


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score a run on all of its validation split (or on DATA): loss, bits per byte",
        description="Score a run's weights on every token of its own validation split, or of "
        "DATA (a text file, folder or corpus), each token predicted from the tokens before it "
        "in windows of the run's context. Bits per byte compare runs whatever their tokenizer.",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    p.add_argument("data", metavar="DATA", nargs="?", help="text to score on (default: the "
                   "run's own validation split)")  # fmt: skip
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                   help="which weights (default best, else latest)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core.evaluation import score_run
    from tui_gpt.core.runs import find_run

    target = find_run(args.run, runs_dir(args))
    bar = TextProgress("scoring")
    result = score_run(target, args.data, args.checkpoint, progress=lambda d, t: bar(d, t))
    bar.clear()
    if args.json:
        print_json(result.to_dict())
        return 0
    s = result.score
    print(f"run {result.run_id} ({result.weights}) on {result.split} of {result.data}: "
          f"{s.tokens:,} tokens, {s.bytes:,} bytes")  # fmt: skip
    print(f"  loss {s.loss:.4f}   perplexity {s.perplexity:,.2f}   bits/byte {s.bpb:.4f}")
    return 0
