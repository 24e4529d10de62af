"""Run files and the app's own files parsed once into typed records: a damaged field is one
line naming the file and the field, the same in every command, and nothing is rewritten
before everything was read."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.conftest import run_cli
from tests.trainings import config, start
from tui_gpt.core.errors import DamagedFile, TuiGptError
from tui_gpt.core.experiments import details
from tui_gpt.core.jobs import assemble
from tui_gpt.core.reading import read_json
from tui_gpt.core.records import RUN_FORMAT, DatasetRecord, RunRecord, StatusRecord
from tui_gpt.core.runs import find_run, list_runs


def stopped_run(runs_dir):
    job = start(runs_dir, config(max_steps=3, sample_tokens=0))
    assert job.run_training() == "finished"
    return job.run


def edit(path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def one_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_fields_of_the_wrong_type_are_one_error_naming_them():
    with pytest.raises(DamagedFile, match=r"run.json: damaged \(dataset should be a JSON object"):
        RunRecord.parse({"dataset": ["a.txt"]}, "run.json")
    with pytest.raises(DamagedFile, match=r"world_size should be a whole number of at least 1"):
        RunRecord.parse({"world_size": "two"}, "run.json")
    with pytest.raises(DamagedFile, match=r"best_val_loss should be a number, is '4.8'"):
        StatusRecord.parse({"best_val_loss": "4.8"}, "status.json")
    with pytest.raises(DamagedFile, match="not a JSON object"):
        StatusRecord.parse([1], "status.json")
    record = RunRecord.parse({"id": "r", "future_field": 7, "dataset": {"files": ["/d/x.txt"]}}, "")
    assert record.dataset.name == "x.txt"
    written = json.loads(replace(record, label="new").to_json())
    assert written["future_field"] == 7 and written["label"] == "new"  # unknown keys kept


def test_run_json_is_written_by_its_record_and_reads_back_the_same():
    record = RunRecord(
        id="r", created=1.5, preset="nano", label="l", tokenizer="byte", context_length=64,
        dataset=DatasetRecord(files=("/d/x.txt",), sha256="ab", chars=9, tokens=9,
                              train_ratio=0.9, text_field="text"),
        model={"vocab_size": 256}, train={"lr": 0.001}, params=7, init_from="/c.safetensors",
        imported_from="/w", world_size=2, versions={"torch": "2.13.0"},
    )  # fmt: skip
    text = record.to_json()
    again = RunRecord.parse(json.loads(text), "run.json")
    assert replace(again, raw={}, where=record.where) == record
    assert json.loads(text)["format"] == RUN_FORMAT


def test_a_run_json_from_before_the_format_reads_its_window_and_is_rewritten_in_the_new():
    old = RunRecord.parse({"id": "r", "seq_len": 32, "preset": "nano"}, "run.json")
    assert (old.context_length, old.format) == (32, 0)
    rewritten = json.loads(replace(old, label="x").to_json())
    assert rewritten["context_length"] == 32 and "seq_len" not in rewritten
    assert rewritten["format"] == RUN_FORMAT


def test_reading_is_bounded_and_never_follows_a_link(tmp_path):
    with pytest.raises(DamagedFile, match="not a plain file"):
        read_json(tmp_path)
    with pytest.raises(DamagedFile, match="not a plain file"):
        read_json("/dev/zero")  # endless: refused before reading
    with pytest.raises(DamagedFile, match="larger than"):
        read_json(_big(tmp_path), limit=1000)
    (tmp_path / "link.json").symlink_to(_big(tmp_path))
    with pytest.raises(DamagedFile, match="symbolic link"):
        read_json(tmp_path / "link.json")


def _big(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "1," * 1000 + "1]")
    return path


@pytest.mark.slow
def test_a_list_for_the_dataset_is_one_damaged_state_everywhere(runs_dir):
    run, good = stopped_run(runs_dir), stopped_run(runs_dir)
    edit(run.record_path, lambda o: o.update(dataset=["a.txt"]))
    summary = {s.id: s for s in list_runs(runs_dir)}[run.id]
    assert summary.state == "damaged" and "dataset should be a JSON object" in summary.problem
    assert details(run).state.startswith("damaged: ")  # the runs browser's side panel
    root = ["--run-dir", str(runs_dir)]
    for args in (["runs"], ["runs", "show", run.id]):
        result = run_cli(*args, *root)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "damaged" in result.stdout, args
    for args in (["train", "--resume", run.id], ["export", run.id, "--format", "hf"],
                 ["generate", "--run", run.id, "--prompt", "x"], ["compare", run.id, good.id],
                 ["plot", run.id]):  # fmt: skip
        assert "dataset should be a JSON object" in one_line(run_cli(*args, *root)), args


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (
            "status.json",
            lambda o: o.update(best_val_loss="4.8"),
            "best_val_loss should be a number",
        ),
        ("run.json", lambda o: o.update(model=[1, 2]), "model should be a JSON object"),
        ("run.json", lambda o: o.pop("model"), "damaged (no model)"),
        ("run.json", lambda o: o.update(world_size="two"), "world_size should be a whole number"),
        ("run.json", lambda o: o["train"].update(epochs="ten"), "damaged train settings"),
        ("settings.json", lambda o: None, "settings.json: damaged (not a JSON object)"),
    ],
)
def test_a_damaged_run_file_stops_a_resume_before_anything_is_written(
    runs_dir, file, change, message
):
    run = stopped_run(runs_dir)
    path = run.path / file
    if file == "settings.json":
        path.write_text("[1, 2]")
    else:
        edit(path, change)
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with pytest.raises(TuiGptError) as caught:
        assemble(resume=run.id, changes={"max_steps": 6}, runs_dir=runs_dir)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    after = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "lock"} == {
        k: v for k, v in before.items() if k != "lock"
    }  # run.json and settings.json as they were
    resumed = run_cli("train", "--resume", run.id, "--run-dir", str(runs_dir))
    assert message in one_line(resumed)


def test_the_apps_own_files_damaged_are_no_history(private_dirs):
    from tui_gpt.ui.screens.dataset import (
        last_settings,
        load_recent,
        recent_file,
        remember,
        settings_file,
    )

    for text in ("null", "7", '{"a": 1}', "[1, null]", "not json"):
        recent_file().write_text(text)
        assert load_recent() == []
    remember(str(private_dirs))  # written anew over the damaged file
    assert load_recent() == [str(private_dirs)]
    for text in ("null", "[1]", '{"data": 5}', '{"data": "x", "model": [1]}'):
        settings_file().write_text(text)
        assert last_settings() is None


def test_a_run_found_by_id_reads_its_record(runs_dir):
    run = stopped_run(runs_dir)
    info = find_run(run.id, runs_dir).record()
    assert info.id == run.id and info.model_config().n_layers == 2
    assert info.train_config().max_steps == 3 and info.dataset.name == "the_night_kitchen.txt"
