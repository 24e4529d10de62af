"""Train a byte-level BPE on a corpus: GPT-2's pre-tokenization, `<|endoftext|>` as its one
special token, every byte in the alphabet (so any Unicode text round-trips), through Hugging
Face `tokenizers` (its trainer is Rust, on all cores). The same corpus and vocabulary size
give the same file."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from tui_gpt import paths
from tui_gpt.core.config import FIT
from tui_gpt.core.corpus import TextSource, iter_text
from tui_gpt.core.data import iter_pieces
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import atomic_write_text, disk_reason
from tui_gpt.core.reading import read_json
from tui_gpt.core.records import Fields
from tui_gpt.core.tokenizer import EOT_TEXT, BPETokenizer, Tokenizer, get_tokenizer

MIN_VOCAB, MAX_VOCAB = 257, 1 << 20  # every byte and end-of-text; far above any real use
# A fitted tokenizer learns from at most this many characters of the training split: its
# merges settle long before, and fitting stays a small part of a short run.
FIT_MAX_CHARS = 20_000_000


def tokenizers_dir() -> Path:
    """Where trained tokenizers go unless told otherwise (and where the app lists them)."""
    return paths.data_dir() / "tokenizers"


def default_path(dataset: str, vocab_size: int) -> Path:
    return tokenizers_dir() / f"{dataset}-{vocab_size}.json"


def fit_vocab_size(chars: int) -> int:
    """The vocabulary a tokenizer fitted to a text of `chars` characters gets: a power of two
    near 4 x sqrt(chars), from 512 to 16,384 (512 for 20 KB, 4,096 for 1 MB, 16,384 from
    about 10 MB). On a megabyte, 4,096 learned most per minute of 1,024 to 16,384 in the
    measurements behind the default recipe (docs/recipes.md)."""
    target = 4 * chars**0.5
    size = 512
    while size < 16384 and size * 1.5 < target:
        size *= 2
    return size


def fitted(
    source: TextSource,
    train_ratio: float,
    progress: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> BPETokenizer:
    """The tokenizer `--tokenizer fit` means: a BPE sized to the text, learned from its
    training split only (the validation text stays unseen), kept by the text's hash so a
    second run on the same data reuses it."""
    size = fit_vocab_size(source.chars)
    path = tokenizers_dir() / "fitted" / f"{source.sha256[:24]}-r{train_ratio:g}-{size}.json"
    # Beside it, what it was fitted to and the name (hash) of the file that came out: a
    # file swapped in (another text's, under this text's name) is never used for this one.
    record = path.with_suffix(".source")
    again = ""
    if path.exists():
        try:
            tokenizer = BPETokenizer(path)
            fitted_to = Fields(read_json(record), str(record))
            if (fitted_to.text("text_sha256"), fitted_to.text("tokenizer")) == (
                source.sha256, tokenizer.name
            ):
                return tokenizer
            again = f"the cached tokenizer {path} was not fitted to this text; "
        except (TuiGptError, FileNotFoundError) as exc:
            again = f"the cached tokenizer {path} cannot be used ({exc}); "
    limit = min(int(source.chars * train_ratio), FIT_MAX_CHARS)
    if notice is not None:
        notice(f"{again}fitting a {size:,}-token tokenizer to {source.name}"
               + ("" if again else " (once: later runs reuse it)"))  # fmt: skip
    tokenizer = train_tokenizer(source, size, path, progress, limit)
    facts = {"text_sha256": source.sha256, "tokenizer": tokenizer.name}
    with contextlib.suppress(OSError):  # without it the next run fits again: slower, not wrong
        atomic_write_text(record, json.dumps(facts))
    return tokenizer


def tokenizer_for(
    name: str,
    source: TextSource,
    train_ratio: float,
    vocab_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> Tokenizer:
    """The tokenizer a new run on `source` uses: `fit` is fitted to it, others are named."""
    if name == FIT:
        return fitted(source, train_ratio, progress, notice)
    return get_tokenizer(name, vocab_dir)


def train_tokenizer(
    source: TextSource,
    vocab_size: int,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
    limit_chars: int | None = None,
) -> BPETokenizer:
    """Fit a BPE of `vocab_size` tokens to the corpus (its first `limit_chars` characters,
    if given) and write it to `out` (atomically)."""
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

    total = source.chars if limit_chars is None else min(limit_chars, source.chars)

    def texts() -> Iterator[str]:
        done = 0
        # Pieces cut where the pre-tokenizer would cut anyway; the joiners stay out of the
        # counts (they are the special token, added whole).
        for piece in iter_pieces(iter_text(source)):
            if done + len(piece) > total:
                piece = piece[: total - done]
            done += len(piece)
            if progress:
                progress(done, total)
            yield from (p for p in piece.split(EOT_TEXT) if p)
            if done >= total:
                return

    tok.train_from_iterator(texts(), trainer=trainer)
    # Sorted keys: the file's bytes depend on the corpus and the size alone.
    text = json.dumps(json.loads(tok.to_str()), sort_keys=True, ensure_ascii=False)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    except OSError as exc:
        raise TuiGptError(f"cannot write {out}: {disk_reason(exc)}") from None
    return BPETokenizer(out)
