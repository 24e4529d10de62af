"""Corpora in the formats they arrive in: the same text gives the same tokens from .txt,
.md, .jsonl (.gz, .zst) and .parquet; each broken input is one clear error."""

import gzip
import json

import pytest
import zstandard

from tests.conftest import NIGHT_KITCHEN
from tui_gpt.core.corpus import EOT_TEXT, find_files, inspect_source, iter_text
from tui_gpt.core.data import prepare
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.tokenizer import ByteTokenizer

DOCS = [p for p in NIGHT_KITCHEN.read_text().split("\n\n") if p.strip()]


def as_jsonl(docs, field="text") -> bytes:
    return "".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs)).encode()


@pytest.fixture
def same_text(tmp_path):
    """The same documents as a .txt (joined by hand), .md, .jsonl.gz, .jsonl.zst, .parquet."""
    (tmp_path / "t.txt").write_text(EOT_TEXT.join(DOCS))
    (tmp_path / "t.md").write_text(EOT_TEXT.join(DOCS))
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(as_jsonl(DOCS)))
    (tmp_path / "t.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(as_jsonl(DOCS)))
    pa = pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": DOCS}), tmp_path / "t.parquet")
    return tmp_path


def test_every_format_gives_the_same_text_and_token_count(same_text, tmp_path):
    counts, texts = {}, {}
    for name in ("t.txt", "t.md", "t.jsonl.gz", "t.jsonl.zst", "t.parquet"):
        source = inspect_source(same_text / name)
        texts[name] = "".join(iter_text(source))
        data = prepare(source, ByteTokenizer(), 0.9, cache_root=tmp_path / "cache")
        counts[name] = (data.tokens, len(data.train_ids), len(data.val_ids))
        assert source.chars == len(texts[name])
    assert len(set(texts.values())) == 1 and len(set(counts.values())) == 1
    assert texts["t.txt"].count(EOT_TEXT) == len(DOCS) - 1


def test_a_folder_reads_every_format_and_skips_hidden_folders(same_text):
    (same_text / ".git").mkdir()
    (same_text / ".git" / "x.txt").write_text("not data")
    (same_text / "notes.png").write_bytes(b"\x89PNG")
    names = [p.name for p in find_files(same_text)]
    assert names == sorted(["t.txt", "t.md", "t.jsonl.gz", "t.jsonl.zst", "t.parquet"])


def test_text_field_picks_the_field_and_keys_the_fingerprint(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(as_jsonl(DOCS, field="body"))
    source = inspect_source(tmp_path / "a.jsonl", text_field="body")
    assert "".join(iter_text(source)) == EOT_TEXT.join(DOCS)
    (tmp_path / "b.jsonl").write_bytes(as_jsonl(DOCS, field="body") + b'{"text": "x"}\n')
    with pytest.raises(TuiGptError, match=f'line {len(DOCS) + 1} has no "body" field'):
        inspect_source(tmp_path / "b.jsonl", text_field="body")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.jsonl", b'{"text": "ok"}\n{broken\n', r"line 2: damaged \(not JSON"),
        ("a.jsonl", b'{"text": "ok"}\n{"body": "x"}\n', 'line 2 has no "text" field'),
        ("a.jsonl", b'{"text": 5}\n', 'line 1: "text" is not a string'),
        ("a.jsonl.gz", b"not gzip at all", "damaged or not a .gz archive"),
        ("a.txt.zst", b"not zstd either", "damaged or not a .zst archive"),
        ("a.parquet", b"PAR1 not really", "not a readable Parquet file"),
        ("a.jsonl", b"\n\n", "no text in it"),
    ],
)
def test_broken_inputs_are_one_clear_error_each(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TuiGptError, match=message):
        inspect_source(tmp_path / name)


def test_a_parquet_file_without_the_column(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "a.parquet")
    with pytest.raises(TuiGptError, match=r'no column "text" \(columns: body\)'):
        inspect_source(tmp_path / "a.parquet")


def test_a_truncated_gzip_archive(tmp_path):
    whole = gzip.compress(as_jsonl(DOCS))
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TuiGptError, match="damaged or not a .gz archive"):
        inspect_source(tmp_path / "cut.jsonl.gz")


def test_a_folder_skips_unusable_files_and_names_each(tmp_path):
    from tui_gpt.core.corpus import inspect_source

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("hello world")
    (mixed / "b.txt").write_text("")
    (mixed / "c.jsonl").write_text("not json\n")
    (mixed / "d.txt").write_bytes(b"\xff\xfe\x00bad")
    source = inspect_source(mixed)
    assert [f.name for f in source.files] == ["a.txt"]
    assert [(p.name, why.split(" ")[0]) for p, why in source.skipped] == [
        ("b.txt", "file"), ("c.jsonl", "line"), ("d.txt", "binary")
    ]  # fmt: skip
    assert source.skipped_line().startswith("skipped 3 unusable files: b.txt: file is empty;")
    # The same text alone fingerprints the same: skipping leaves the good files' identity.
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "a.txt").write_text("hello world")
    assert inspect_source(alone).sha256 == source.sha256 and inspect_source(alone).skipped == ()
    # Nothing usable: one line naming the first problem.
    (mixed / "a.txt").unlink()
    with pytest.raises(TuiGptError, match="no usable text file in it .b.txt: file is empty"):
        inspect_source(mixed)
