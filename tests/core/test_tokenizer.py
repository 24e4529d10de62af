import os

import pytest

from tests.conftest import SHARED, needs_gpt2, needs_shared, run_cli
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.tokenizer import ByteTokenizer, StreamDecoder, get_tokenizer


@needs_gpt2
@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Hello, I am", [15496, 11, 314, 716]),
        ("every effort moves", [16833, 3626, 6100]),
        (" effort moves you", [3626, 6100, 345]),
        ("I really like", [40, 1107, 588]),
        (" really like chocolate", [1107, 588, 11311]),
    ],
)
def test_gpt2_ids_match_the_reference(text, ids):
    tok = get_tokenizer("gpt2")
    assert tok.encode(text) == ids
    assert tok.decode(ids) == text


@needs_gpt2
def test_gpt2_vocabulary_and_end_of_text():
    tok = get_tokenizer("gpt2")
    assert tok.vocab_size == 50257
    assert tok.eot_id == 50256
    assert tok.encode("a<|endoftext|>b") == [64, 50256, 65]


@needs_shared
@needs_gpt2
def test_local_vocab_files_give_the_same_ids():
    local = get_tokenizer("gpt2", vocab_dir=SHARED / "gpt2-vocab")
    cached = get_tokenizer("gpt2")
    text = (
        "It had always been his fate to have women say such things of him. <|endoftext|> Ünïcödé 🙂"
    )
    assert local.encode(text) == cached.encode(text)


def test_vocab_dir_without_files_is_a_clear_error(tmp_path):
    with pytest.raises(TuiGptError, match="encoder.json and vocab.bpe"):
        get_tokenizer("gpt2", vocab_dir=tmp_path)


def test_unknown_tokenizer():
    with pytest.raises(TuiGptError, match="unknown tokenizer"):
        get_tokenizer("sentencepiece")


def test_byte_tokenizer_round_trip_and_end_of_text():
    tok = ByteTokenizer()
    ids = tok.encode("héllo<|endoftext|>x")
    assert ids == [104, 195, 169, 108, 108, 111, 256, 120]
    assert tok.decode(ids) == "héllo<|endoftext|>x"
    assert tok.vocab_size == 257


@pytest.mark.parametrize("name", ["byte", pytest.param("gpt2", marks=needs_gpt2)])
def test_stream_decoder_holds_back_partial_utf8(name):
    tok = get_tokenizer(name)
    text = "naïve 🙂 café"
    ids = tok.encode(text)
    dec = StreamDecoder(tok)
    pieces = [dec.feed(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_offline_without_vocabulary_is_one_line_naming_remedies(tmp_path):
    # A proxy on a closed local port makes any download fail at once, as offline.
    env = {
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "TUI_GPT_CACHE_DIR": str(tmp_path / "cache"),
    }
    os.makedirs(env["TIKTOKEN_CACHE_DIR"])
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 50)
    result = run_cli("prepare", str(text), env=env, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    for remedy in ("TIKTOKEN_CACHE_DIR", "--vocab-dir", "--tokenizer byte"):
        assert remedy in lines[0]
