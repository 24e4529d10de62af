"""Tokenizers trained on the user's data: any Unicode round-trips, the same data gives the
same file, and a run keeps its own copy through stop, resume and generation."""

import json

import numpy as np
import pytest

from tests.conftest import NIGHT_KITCHEN, SAMPLES, run_cli
from tui_gpt.core.bpe import train_tokenizer
from tui_gpt.core.corpus import inspect_source
from tui_gpt.core.data import token_dtype
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.tokenizer import StreamDecoder, get_tokenizer

TEXTS = [
    "plain ASCII, with punctuation: (a) [b] {c}!",
    "emoji 🙂👩‍👩‍👧 and flags 🇫🇷",
    "CJK 漢字かなカナ 한국어",
    "combining marks: e\u0301 a\u0308 n\u0303, and precomposed é ä ñ",
    "control characters \t\x01\x1b[0m\x7f and a\u200bzero width",
    "two documents<|endoftext|>joined",
    "",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "samples-600.json"
    return train_tokenizer(inspect_source(SAMPLES), 600, out)


@pytest.mark.parametrize("text", TEXTS)
def test_any_unicode_round_trips(trained, text):
    ids = trained.encode(text)
    assert trained.decode(ids) == text
    decoder = StreamDecoder(trained)
    assert "".join(decoder.feed(i) for i in ids) + decoder.flush() == text
    assert ("<|endoftext|>" in text) == (trained.eot_id in ids)


def test_the_same_data_and_size_give_the_same_file(trained, tmp_path):
    again = train_tokenizer(inspect_source(SAMPLES), 600, tmp_path / "again.json")
    assert again.path.read_bytes() == trained.path.read_bytes() and again.name == trained.name
    other = train_tokenizer(inspect_source(SAMPLES), 700, tmp_path / "other.json")
    assert other.name != trained.name and other.vocab_size == 700
    assert trained.vocab_size == 600 and len(trained.encode(NIGHT_KITCHEN.read_text())) < 6602


def test_bad_tokenizer_files_and_sizes(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"nope": 1}))
    with pytest.raises(TuiGptError, match="not a tokenizer file"):
        get_tokenizer(str(tmp_path / "x.json"))
    with pytest.raises(TuiGptError, match="unknown tokenizer 'missing.json'"):
        get_tokenizer("missing.json")
    with pytest.raises(TuiGptError, match="between 257 and"):
        train_tokenizer(inspect_source(NIGHT_KITCHEN), 100, tmp_path / "t.json")


def test_wide_vocabularies_get_a_wide_cache_dtype():
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32


@pytest.mark.slow
def test_train_stop_resume_generate_with_a_trained_tokenizer(tmp_path):
    made = run_cli("tokenizer", "train", str(SAMPLES), "--vocab-size", "500",
                   "--out", str(tmp_path / "tok.json"), "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    info = json.loads(made.stdout)
    assert info["vocab_size"] == 500 and info["seconds"] >= 0
    runs = str(tmp_path / "runs")
    tiny = ["--preset", "nano", "--context-length", "32", "--batch-size", "4", "--eval-freq", "2",
            "--precision", "fp32", "--run-dir", runs]  # fmt: skip
    first = run_cli(
        "train", str(NIGHT_KITCHEN), "--tokenizer", info["path"], "--max-steps", "3", *tiny
    )
    assert first.returncode == 0, first.stderr
    (tmp_path / "tok.json").unlink()  # the run keeps its own copy
    [run] = json.loads(run_cli("runs", "--json", "--run-dir", runs).stdout)
    resumed = run_cli("train", "--resume", run["id"], "--max-steps", "6", "--run-dir", runs)
    assert resumed.returncode == 0, resumed.stderr
    gen = run_cli("generate", "--run", run["id"], "--prompt", "The kitchen 🙂", "--seed", "1",
                  "--max-new-tokens", "8", "--json", "--run-dir", runs)  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    out = json.loads(gen.stdout)
    assert len(out["tokens"]) == 8 and all(0 <= t < 500 for t in out["tokens"])
    shown = json.loads(run_cli("runs", "show", run["id"], "--json", "--run-dir", runs).stdout)
    assert shown["steps"] == 6 and shown["tokenizer"].startswith("bpe-")
    assert shown["best_val_bpb"] is not None
