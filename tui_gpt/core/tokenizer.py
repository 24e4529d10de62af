"""Tokenizers: GPT-2 byte-pair encoding (through tiktoken), a file-free byte tokenizer, and
byte-level BPEs trained on the user's own data (through Hugging Face `tokenizers`).

All expose the same small surface: `encode`, `decode`, `token_bytes` (for streaming),
`encode_batch` (multi-threaded, for large corpora), `vocab_size` and `eot_id`.

The GPT-2 vocabulary is looked up, in order: local `encoder.json` + `vocab.bpe` files
(`vocab_dir` argument or `TUI_GPT_VOCAB_DIR`), tiktoken's cache (`TIKTOKEN_CACHE_DIR` when set,
else tui-gpt's own cache dir), and finally a download. Offline with none of these is one
`TuiGptError` that names the remedies.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
from pathlib import Path
from typing import Protocol

from tui_gpt import environment, paths
from tui_gpt.core import process
from tui_gpt.core.config import FIT
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.reading import read_plain

EOT_TEXT = "<|endoftext|>"

# GPT-2's pre-tokenizer pattern (the same regex tiktoken uses for its `gpt2` encoding).
_GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eot_id: int

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_bytes(self, token_id: int) -> bytes: ...


class GPT2Tokenizer:
    """GPT-2's BPE: vocabulary 50,257, `<|endoftext|>` = 50256 and allowed in text."""

    name = "gpt2"

    def __init__(self, encoding) -> None:  # encoding: tiktoken.Encoding
        self._enc = encoding
        self.vocab_size: int = encoding.n_vocab
        self.eot_id: int = encoding.eot_token
        self._allowed = {EOT_TEXT}

    def encode(self, text: str) -> list[int]:
        return self._enc.encode(text, allowed_special=self._allowed)

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        # tiktoken's Rust core releases the GIL, so threads scale across cores.
        return self._enc.encode_batch(
            texts, num_threads=max(1, num_threads), allowed_special=self._allowed
        )

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(list(ids), errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id)


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255 plus an end-of-text id 256; needs no files."""

    name = "byte"
    vocab_size = 257
    eot_id = 256

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, part in enumerate(text.split(EOT_TEXT)):
            if i:
                ids.append(self.eot_id)
            ids.extend(part.encode("utf-8"))
        return ids

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return EOT_TEXT.encode() if token_id == self.eot_id else bytes((token_id,))


def byte_alphabet() -> dict[str, int]:
    """Byte-level BPE writes each byte as one printable character: bytes that print stand
    for themselves, the others (controls, space, a few Latin-1) for 256, 257, ... in order.
    The inverse: character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


# Far larger than the file of the largest vocabulary tui-gpt fits (a few MiB).
MAX_TOKENIZER_BYTES = 64 << 20


class BPETokenizer:
    """A byte-level BPE trained on the user's data (`tui-gpt tokenizer train`), kept as a
    Hugging Face `tokenizers` JSON file. Its name carries a hash of the file, so caches
    and runs tell two vocabularies apart."""

    def __init__(self, path: str | os.PathLike, follow_links: bool = False) -> None:
        """Read the file at `path`: a plain file, not through a symbolic link unless
        `follow_links` (a path the user typed; a run folder's copy is never a link)."""
        from tokenizers import Tokenizer as HFTokenizer

        self.path = Path(path).expanduser()
        try:
            data = read_plain(self.path, MAX_TOKENIZER_BYTES, follow_links)
            self._tok = HFTokenizer.from_str(data.decode("utf-8"))
        except FileNotFoundError:
            raise TuiGptError(f"{self.path}: no such tokenizer file") from None
        except TuiGptError:
            raise
        except Exception as exc:  # tokenizers' own parse errors
            raise TuiGptError(f"{self.path}: not a tokenizer file ({str(exc)[:120]})") from None
        eot = self._tok.token_to_id(EOT_TEXT)
        if eot is None:
            raise TuiGptError(f"{self.path}: the tokenizer has no {EOT_TEXT} token")
        self.name = f"bpe-{hashlib.sha256(data).hexdigest()[:12]}"
        self.vocab_size: int = self._tok.get_vocab_size()
        self.eot_id: int = eot
        alphabet = byte_alphabet()
        by_id = {i: t for t, i in self._tok.get_vocab().items()}
        special = {t.content for t in self._tok.get_added_tokens_decoder().values()}
        self._bytes = [
            by_id.get(i, "").encode() if by_id.get(i, "") in special
            else bytes(alphabet[c] for c in by_id.get(i, "") if c in alphabet)
            for i in range(self.vocab_size)
        ]  # fmt: skip

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        # tokenizers parallelises batches across the cores on its own.
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id]


class StreamDecoder:
    """Turns token ids into text one at a time, holding back incomplete UTF-8 sequences.

    A GPT-2 token (or a byte) can end in the middle of a multi-byte character; printing it
    at once would show a replacement character that the next token would have completed.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        return self._utf8.decode(self._tok.token_bytes(token_id))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


def _vocab_files(folder: str | None) -> tuple[Path, Path] | None:
    if not folder:
        return None
    enc, bpe = Path(folder) / "encoder.json", Path(folder) / "vocab.bpe"
    if not (enc.is_file() and bpe.is_file()):
        raise TuiGptError(f"{folder} must hold both encoder.json and vocab.bpe (GPT-2 vocabulary)")
    return enc, bpe


@functools.lru_cache(maxsize=4)
def _gpt2_encoding(vocab_dir: str | None):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    files = _vocab_files(vocab_dir)
    if files is not None:
        ranks = data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(files[1]), encoder_json_file=str(files[0])
        )
        return tiktoken.Encoding(
            name="gpt2",
            pat_str=_GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={EOT_TEXT: 50256},
            explicit_n_vocab=50257,
        )
    process.keep_tiktoken_cache(paths.cache_dir() / "tiktoken")
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # network errors come in many types (requests, urllib3, OSError)
        raise TuiGptError(
            "the GPT-2 vocabulary is not cached and could not be downloaded "
            f"({type(exc).__name__}). Remedies: connect once to the internet; or set "
            "TIKTOKEN_CACHE_DIR to a folder holding tiktoken's gpt2 cache files; or pass "
            "--vocab-dir (or set TUI_GPT_VOCAB_DIR) to a folder with encoder.json and vocab.bpe; "
            "or use --tokenizer byte, which needs no files"
        ) from None


def get_tokenizer(name: str = "gpt2", vocab_dir: str | os.PathLike | None = None) -> Tokenizer:
    """The tokenizer `name`: "gpt2", "byte", or a tokenizer file (`tokenizer train`)."""
    if name == "byte":
        return ByteTokenizer()
    if name == "gpt2":
        vocab_dir = vocab_dir or environment.text("TUI_GPT_VOCAB_DIR")
        return GPT2Tokenizer(_gpt2_encoding(str(vocab_dir) if vocab_dir else None))
    if Path(name).expanduser().is_file():
        return BPETokenizer(name, follow_links=True)  # a path the user typed
    if name == FIT:
        raise TuiGptError("the fit tokenizer is fitted to a run's data when the run starts")
    raise TuiGptError(
        f"unknown tokenizer {name!r}: choose gpt2, byte, or a tokenizer file (tui-gpt tokenizer train)"
    )
