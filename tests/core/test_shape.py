"""The model's shape as files hold it: one name per setting, older names still read."""

import pytest

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.shape import GPTConfig, parse_model_config


def test_a_shape_reads_back_from_its_json_form():
    cfg = GPTConfig(vocab_size=300, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    dropout=0.2, arch="llama")  # fmt: skip
    assert parse_model_config(cfg.to_dict(), "x") == cfg
    assert "dropout" in cfg.to_dict() and "drop_rate" not in cfg.to_dict()


def test_files_from_before_the_rename_keep_their_dropout():
    old = {**GPTConfig(vocab_size=300, emb_dim=64, n_heads=4, n_layers=2).to_dict()}
    del old["dropout"]
    old["drop_rate"] = 0.3
    assert parse_model_config(old, "old.safetensors").dropout == 0.3


def test_an_unknown_or_out_of_bounds_field_is_one_error_naming_the_file():
    with pytest.raises(TuiGptError, match="f.json: damaged model configuration"):
        parse_model_config({"colour": "red"}, "f.json")
    with pytest.raises(TuiGptError, match=r"n_layers = 0"):
        parse_model_config({"n_layers": 0}, "f.json")
