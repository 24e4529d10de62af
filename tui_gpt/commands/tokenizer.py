"""`tui-gpt tokenizer train DATA --vocab-size N`: a byte-level BPE fitted to your corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tui_gpt.commands.common import TextProgress, add_settings, positive_int, print_json
from tui_gpt.core.config import TrainConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tokenizer",
        help="train a BPE tokenizer on your data (tokenizer train DATA --vocab-size N)",
        description="Tokenizers fitted to your own text: a smaller vocabulary that suits it "
        "makes a smaller, faster model. Use the file with --tokenizer FILE.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = actions.add_parser(
        "train",
        help="train a byte-level BPE (GPT-2's pre-tokenization, <|endoftext|>) on DATA",
        description="Train a byte-level BPE on a corpus; the same data and size give the same file.",
    )
    t.add_argument("data", metavar="DATA", help="a corpus file or folder")
    t.add_argument("--vocab-size", type=positive_int, required=True, help="tokens, e.g. 4096")
    t.add_argument("--out", metavar="FILE", help="where to write it (default: the user data dir)")
    t.add_argument("--force", action="store_true", help="replace the file at --out")
    add_settings(t, TrainConfig, only=("text_field",))
    t.add_argument("--json", action="store_true", help="print path, vocabulary size and seconds")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core.bpe import default_path, train_tokenizer
    from tui_gpt.core.corpus import inspect_source
    from tui_gpt.core.errors import TuiGptError

    source = inspect_source(args.data, args.text_field or "text")
    out = Path(args.out).expanduser() if args.out else default_path(source.name, args.vocab_size)
    if args.out and out.exists() and not args.force:
        raise TuiGptError(f"{out} exists; choose another --out or pass --force to replace it")
    bar = TextProgress("training the tokenizer")
    started = time.perf_counter()
    tok = train_tokenizer(source, args.vocab_size, out, progress=lambda d, t: bar(d, t))
    seconds = time.perf_counter() - started
    bar.clear()
    if args.json:
        print_json({"path": str(out), "vocab_size": tok.vocab_size, "seconds": round(seconds, 3),
                    "name": tok.name})  # fmt: skip
    else:
        print(out)
    return 0
