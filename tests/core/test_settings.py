"""Settings defined once: parsing, bounds, and the JSON form."""

import pytest

from tests.conftest import other_value
from tui_gpt.core import settings
from tui_gpt.core.config import ModelChoice, SamplingConfig, TrainConfig, TrainSpec
from tui_gpt.core.errors import TuiGptError

ALL = (ModelChoice, TrainConfig, SamplingConfig)


@pytest.mark.parametrize("cls", ALL)
def test_every_setting_has_help_a_label_and_a_valid_default(cls):
    for spec in settings.specs(cls):
        assert spec.help and spec.label and spec.kind in (int, float, str, bool)
        assert spec.problem(spec.default) is None, spec.name
        assert spec.parse(spec.show(spec.default)) == spec.default
        value = other_value(spec)
        assert spec.parse(spec.show(value)) == value


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("batch_size", "0", "must be at least 1, got 0"),
        ("batch_size", "2.5", "expected a whole number"),
        ("lr", "inf", "must be a finite number"),
        ("lr", "nan", "must be a finite number"),
        ("lr", "0", "must be greater than 0"),
        ("train_ratio", "1", r"between 0 and 1 \(exclusive\)"),
        ("precision", "fp8", "must be one of auto, fp32, bf16"),
        ("compile", "maybe", "expected yes or no"),
    ],
)
def test_bad_text_is_a_message(name, text, message):
    spec = next(s for s in settings.specs(TrainConfig) if s.name == name)
    with pytest.raises(ValueError, match=message):
        spec.parse(text)


def test_optional_settings_take_blank_and_floats_take_decimals():
    spec = {s.name: s for s in settings.specs(TrainConfig)}
    assert spec["max_steps"].parse("  ") is None
    assert spec["lr"].parse("2.5e-4") == 2.5e-4 and spec["weight_decay"].parse("2.5") == 2.5


def test_spec_json_round_trip_and_bad_values_named():
    spec = TrainSpec(
        "d.txt", ModelChoice("nano", 32, "byte", 0.0), TrainConfig(lr=1e-3, schedule="cosine")
    )
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(TuiGptError, match=r"Batch size \(--batch-size\): must be at least 1"):
        TrainSpec.from_dict({"data": "d", "train": {"batch_size": 0}})
    with pytest.raises(TuiGptError, match="expected a whole number"):
        TrainSpec.from_dict({"data": "d", "train": {"epochs": "ten"}})
    with pytest.raises(TuiGptError, match="needs a JSON object"):
        TrainSpec.from_dict([1, 2])
