"""`tui-gpt prepare DATA`: what a dataset holds and how it will be batched, or what is wrong."""

from __future__ import annotations

import argparse

from tui_gpt.commands.common import TextProgress, add_tokenizer_args, add_window_args, print_json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="inspect and tokenize a dataset (characters, tokens, split, batches)",
        description="Validate a text file or a folder of .txt files, tokenize it once into the "
        "cache, and report characters, tokens, the train/validation split and batches per epoch.",
    )
    p.add_argument("data", metavar="DATA", help="a UTF-8 text file or a folder of .txt files")
    add_tokenizer_args(p)
    add_window_args(p, context_default=256)
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core.data import inspect_source, plan, prepare  # numpy and torch: load late
    from tui_gpt.core.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(args.tokenizer, args.vocab_dir)
    source = inspect_source(args.data)
    bar = TextProgress("tokenizing")
    data = prepare(source, tokenizer, args.train_ratio, progress=lambda d, t: bar(d, t))
    bar.clear()
    facts = plan(data, args.context_length, args.batch_size, args.stride)
    problems = []
    if facts.train_batches == 0:
        problems.append(
            f"the training split ({facts.train_tokens} tokens) is too short for one batch of "
            f"{args.batch_size} x {args.context_length}"
        )
    if facts.val_batches == 0:
        problems.append(
            f"the validation split ({facts.val_tokens} tokens) is too short for one window of "
            f"{args.context_length} (needs {args.context_length + 1})"
        )
    if args.json:
        print_json(
            {
                **facts.to_dict(),
                "tokenizer": tokenizer.name,
                "files": len(source.files),
                "problems": problems,
            }
        )
    else:
        print(f"{args.data}: {len(source.files)} file(s), tokenizer {tokenizer.name}")
        print(f"  characters  {facts.chars:>12,}   tokens {facts.tokens:>12,}")
        print(
            f"  train       {facts.train_chars:>12,} chars  {facts.train_tokens:>12,} tokens  {facts.train_batches:>8,} batches"
        )
        print(
            f"  validation  {facts.val_chars:>12,} chars  {facts.val_tokens:>12,} tokens  {facts.val_batches:>8,} batches"
        )
        print(
            f"  batches of {args.batch_size} x {args.context_length}, stride {args.stride or args.context_length}"
        )
        for problem in problems:
            print(f"  problem: {problem}")
    return 2 if problems else 0
