"""Train a byte-level BPE on a corpus: GPT-2's pre-tokenization, `<|endoftext|>` as its one
special token, every byte in the alphabet (so any Unicode text round-trips), through Hugging
Face `tokenizers` (its trainer is Rust, on all cores). The same corpus and vocabulary size
give the same file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from tui_gpt import paths
from tui_gpt.core.corpus import TextSource, iter_text
from tui_gpt.core.data import iter_pieces
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import atomic_write_text, disk_reason
from tui_gpt.core.tokenizer import EOT_TEXT, BPETokenizer

MIN_VOCAB, MAX_VOCAB = 257, 1 << 20  # every byte and end-of-text; far above any real use


def tokenizers_dir() -> Path:
    """Where trained tokenizers go unless told otherwise (and where the app lists them)."""
    return paths.data_dir() / "tokenizers"


def default_path(dataset: str, vocab_size: int) -> Path:
    return tokenizers_dir() / f"{dataset}-{vocab_size}.json"


def train_tokenizer(
    source: TextSource,
    vocab_size: int,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
) -> BPETokenizer:
    """Fit a BPE of `vocab_size` tokens to the corpus and write it to `out` (atomically)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise TuiGptError(f"vocabulary size must be between {MIN_VOCAB} and {MAX_VOCAB:,}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def texts() -> Iterator[str]:
        done = 0
        # Pieces cut where the pre-tokenizer would cut anyway; the joiners stay out of the
        # counts (they are the special token, added whole).
        for piece in iter_pieces(iter_text(source)):
            done += len(piece)
            if progress:
                progress(done, source.chars)
            yield from (p for p in piece.split(EOT_TEXT) if p)

    tok.train_from_iterator(texts(), trainer=trainer)
    # Sorted keys: the file's bytes depend on the corpus and the size alone.
    text = json.dumps(json.loads(tok.to_str()), sort_keys=True, ensure_ascii=False)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    except OSError as exc:
        raise TuiGptError(f"cannot write {out}: {disk_reason(exc)}") from None
    return BPETokenizer(out)
