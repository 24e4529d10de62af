"""`tui-gpt prepare DATA`: what a dataset holds and how it will be batched, or what is wrong."""

from __future__ import annotations

import argparse

from tui_gpt.commands.common import (
    DATA_HELP,
    TextProgress,
    add_recipe,
    add_settings,
    add_vocab_dir,
    note,
    print_json,
    recipe_settings,
    settings_from_args,
)
from tui_gpt.core.config import DEFAULT_RECIPE, RECIPES, ModelChoice, TrainConfig
from tui_gpt.core.events import count


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="inspect and tokenize a dataset (characters, tokens, split, batches)",
        description="Validate a text file or a folder of .txt files, tokenize it once into the "
        "cache, and report characters, tokens, the train/validation split and batches per epoch.",
    )
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    add_recipe(p)
    model, train = RECIPES[DEFAULT_RECIPE].settings()
    add_settings(p, ModelChoice, only=("preset", "context_length", "tokenizer"), defaults=model)
    add_vocab_dir(p)
    add_settings(p, TrainConfig, only=("batch_size", "stride", "train_ratio", "text_field"),
                 defaults=train)  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core.bpe import tokenizer_for
    from tui_gpt.core.data import inspect_source, plan, prepare  # numpy and torch: load late
    from tui_gpt.core.sizing import window

    base_model, base_train = recipe_settings(args)
    model = settings_from_args(args, ModelChoice, base_model)
    cfg = settings_from_args(args, TrainConfig, base_train)
    source = inspect_source(args.data, cfg.text_field)
    bar = TextProgress("tokenizing")
    tokenizer = tokenizer_for(model.tokenizer, source, cfg.train_ratio, args.vocab_dir,
                              lambda d, t: bar(d, t), note)  # fmt: skip
    # The window a `train` with the same flags would use (under `auto`, its shortest).
    ctx = window(model, tokenizer.vocab_size)
    data = prepare(source, tokenizer, cfg.train_ratio, progress=lambda d, t: bar(d, t), notice=note)
    bar.clear()
    facts = plan(data, ctx, cfg.batch_size, cfg.stride, cfg.grad_accum)
    if args.json:
        skipped = [{"file": str(f), "problem": why} for f, why in source.skipped]
        print_json({**facts.to_dict(), "tokenizer": tokenizer.name, "files": len(source.files),
                    "skipped": skipped, "context_length": ctx, "batch_size": cfg.batch_size})  # fmt: skip
        return 2 if facts.problems else 0
    print(f"{args.data}: {count(len(source.files), 'file')}, tokenizer {tokenizer.name}")
    for f, why in source.skipped:
        print(f"  skipped {f}: {why}")
    print(f"  characters  {facts.chars:>12,}   tokens {facts.tokens:>12,}")
    print(
        f"  train       {facts.train_chars:>12,} chars  {facts.train_tokens:>12,} tokens  {facts.train_batches:>8,} batches"
    )
    print(
        f"  validation  {facts.val_chars:>12,} chars  {facts.val_tokens:>12,} tokens  {facts.val_batches:>8,} batches"
    )
    print(f"  batches of {cfg.batch_size} x {ctx}, stride {cfg.stride or ctx}")
    for problem in facts.problems:
        print(f"  problem: {problem}")
    return 2 if facts.problems else 0
