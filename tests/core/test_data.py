import os

import numpy as np
import pytest
import torch

from tests.conftest import MISSING, SHAKESPEARE, VERDICT, needs_shakespeare, needs_verdict
from tui_gpt.core.data import (
    BatchLoader,
    TokenWindows,
    inspect_source,
    iter_pieces,
    make_loaders,
    plan,
    prepare,
)
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.tokenizer import get_tokenizer


@pytest.fixture(scope="module")
def gpt2():
    if "gpt2" in MISSING:
        pytest.skip(MISSING["gpt2"])
    return get_tokenizer("gpt2")


@needs_verdict
def test_the_verdict_facts(gpt2, tmp_path):
    data = prepare(VERDICT, gpt2, 0.9, cache_root=tmp_path)
    facts = plan(data, context_length=256, batch_size=2)
    assert (facts.chars, facts.tokens) == (20479, 5145)
    assert (facts.train_chars, facts.val_chars) == (18431, 2048)
    assert (facts.train_tokens, facts.val_tokens) == (4612, 534)
    assert (facts.train_batches, facts.val_batches) == (9, 1)
    train, val = make_loaders(data, 256, 2)
    for loader in (train, val):
        for x, y in loader:
            assert x.shape == y.shape == (2, 256)
            assert x.dtype == torch.int64


@needs_shakespeare
def test_split_parts_equal_tokenizing_each_part_whole(gpt2, tmp_path):
    text = SHAKESPEARE.read_text(encoding="utf-8")
    data = prepare(SHAKESPEARE, gpt2, 0.9, cache_root=tmp_path, num_threads=2)
    cut = int(0.9 * len(text))
    assert data.train_ids.tolist() == gpt2.encode(text[:cut])
    assert data.val_ids.tolist() == gpt2.encode(text[cut:])
    assert data.tokens == len(gpt2.encode(text))


def test_safe_cuts_keep_tokens_identical(gpt2):
    tricky = "a\n\nb  c\n d\t\ne 's x'll  \n\n\nEND. \u00a0 é\n" * 2000
    pieces = list(
        iter_pieces(iter([tricky[i : i + 997] for i in range(0, len(tricky), 997)]), piece=300)
    )
    assert len(pieces) > 10
    assert "".join(pieces) == tricky
    assert [t for p in pieces for t in gpt2.encode(p)] == gpt2.encode(tricky)


@needs_verdict
def test_cache_is_reused_and_memory_mapped(gpt2, tmp_path):
    first = prepare(VERDICT, gpt2, 0.9, cache_root=tmp_path)
    folders = list(tmp_path.iterdir())
    stamp = os.stat(folders[0] / "train.bin").st_mtime_ns
    second = prepare(VERDICT, gpt2, 0.9, cache_root=tmp_path)
    assert list(tmp_path.iterdir()) == folders
    assert os.stat(folders[0] / "train.bin").st_mtime_ns == stamp
    assert isinstance(second.train_ids, np.memmap)
    assert second.train_ids.dtype == np.uint16
    assert np.array_equal(first.train_ids, second.train_ids)
    # A different ratio is a different cache entry.
    prepare(VERDICT, gpt2, 0.8, cache_root=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_windows_are_shifted_views_computed_on_access():
    ids = np.arange(100, dtype=np.uint16)
    w = TokenWindows(ids, context_length=8, stride=3)
    assert len(w) == len(range(0, 100 - 8, 3))
    x, y = w[5]
    assert x.tolist() == list(range(15, 23))
    assert y.tolist() == list(range(16, 24))
    # Nothing per window is stored: the object holds the id array and an offset vector only.
    assert {k for k, v in vars(w).items() if isinstance(v, (np.ndarray, torch.Tensor))} == {
        "ids",
        "_offsets",
    }


def test_train_loader_shuffles_by_epoch_and_drops_partial_batch():
    w = TokenWindows(np.arange(1000, dtype=np.uint16), context_length=10, stride=10)
    loader = BatchLoader(w, batch_size=4, shuffle=True, drop_last=True, seed=7)
    assert len(w) == 99 and len(loader) == 24
    epoch0 = [x[:, 0].tolist() for x, _ in loader.iter_epoch(0)]
    assert epoch0 == [x[:, 0].tolist() for x, _ in loader.iter_epoch(0)]  # reproducible
    assert epoch0 != [x[:, 0].tolist() for x, _ in loader.iter_epoch(1)]  # reshuffled
    # Resuming mid-epoch continues the same order.
    assert [x[:, 0].tolist() for x, _ in loader.iter_epoch(0, start=10)] == epoch0[10:]
    val = BatchLoader(w, batch_size=4)
    batches = list(val)
    assert len(batches) == 25 and batches[-1][0].shape == (3, 10)
    assert batches[0][0][:, 0].tolist() == [0, 10, 20, 30]


def test_folder_documents_are_joined_with_end_of_text(gpt2, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("first")
    (tmp_path / "docs" / "b.txt").write_text("second" * 20)
    (tmp_path / "docs" / "ignored.png").write_bytes(b"\x89PNG not text data")
    source = inspect_source(tmp_path / "docs")
    assert source.chars == len("first<|endoftext|>" + "second" * 20)
    data = prepare(source, gpt2, 0.9, cache_root=tmp_path / "cache")
    assert data.train_ids.tolist()[:2] == [11085, 50256]


def test_literal_end_of_text_in_user_text_does_not_crash(gpt2, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("story one <|endoftext|> story two " * 100)
    data = prepare(f, gpt2, 0.9, cache_root=tmp_path / "c")
    assert 50256 in data.train_ids.tolist()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"   \n\n  ", "only whitespace"),
        (b"hello\x00world", "binary content (NUL byte at byte 5)"),
        (b"line one\nline two \xff\xfe bad", "not valid UTF-8 at byte 18 (line 2)"),
        (b"ends mid-character \xe2\x82", "truncated character"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, content, message):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    with pytest.raises(TuiGptError) as err:
        inspect_source(f)
    assert message in str(err.value)
    assert str(f) in str(err.value)


def test_missing_path_and_folder_without_text(tmp_path):
    with pytest.raises(TuiGptError, match="no such file"):
        inspect_source(tmp_path / "nope.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TuiGptError, match="no text files"):
        inspect_source(tmp_path / "empty")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    f = tmp_path / "secret.txt"
    f.write_text("hidden")
    f.chmod(0)
    with pytest.raises(TuiGptError, match="cannot read"):
        inspect_source(f)


def test_crlf_counts_like_text_mode(tmp_path):
    f = tmp_path / "dos.txt"
    f.write_bytes(b"one\r\ntwo\rthree\n")
    assert inspect_source(f).chars == len("one\ntwo\nthree\n")


@needs_verdict
def test_short_splits_name_the_split_and_the_counts(gpt2, tmp_path):
    data = prepare(VERDICT, gpt2, 0.9, cache_root=tmp_path)
    with pytest.raises(TuiGptError, match=r"validation split has 534 tokens.*at least 1025"):
        make_loaders(data, 1024, 1)
    small = tmp_path / "small.txt"
    small.write_text("tiny text " * 30)
    data = prepare(small, gpt2, 0.9, cache_root=tmp_path)
    with pytest.raises(TuiGptError, match=r"training split has \d+ tokens.*at least 257"):
        make_loaders(data, 256, 1)


@needs_verdict
def test_ratio_must_be_inside_zero_one(gpt2, tmp_path):
    with pytest.raises(TuiGptError, match="train ratio"):
        prepare(VERDICT, gpt2, 1.0, cache_root=tmp_path)
