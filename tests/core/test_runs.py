import json

from tui_gpt.core.events import Eval, Finished, RunStarted, event_from_dict
from tui_gpt.core.records import DatasetRecord, RunRecord
from tui_gpt.core.runs import EventLog, create_run, find_run, list_runs, read_events


def test_event_log_writes_lines_and_status(tmp_path):
    record = RunRecord(preset="nano", params=10, dataset=DatasetRecord(files=("/x/my data.txt",)))
    run = create_run(tmp_path, "my data.txt", record)
    log = EventLog(run)
    log(RunStarted(step=-1, epoch=1, run_id=run.id))
    log(Eval(step=0, epoch=1, tokens_seen=10, train_loss=3.0, val_loss=4.0))
    log(Eval(step=5, epoch=1, tokens_seen=60, train_loss=2.0, val_loss=3.5))
    log(Finished(step=5, epoch=1, tokens_seen=60))
    log.close()
    lines = run.events()
    assert [line["event"] for line in lines] == ["run_started", "eval", "eval", "finished"]
    assert event_from_dict(lines[2]) == Eval(**{k: v for k, v in lines[2].items() if k != "event"})
    status = run.status()
    assert status.status == "finished" and status.best_val_loss == 3.5
    [summary] = list_runs(tmp_path)
    assert (summary.id, summary.steps, summary.dataset, summary.preset) == (
        run.id,
        6,
        "my data.txt",
        "nano",
    )


def test_partial_last_line_and_garbage_are_skipped(tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text(
        '{"event": "step", "step": 0}\nnot json\n[1, 2]\n{"event": "step", "step": 1}\n{"event": "st'
    )
    assert [e["step"] for e in read_events(f)] == [0, 1]


def test_listing_copes_with_half_written_and_foreign_folders(tmp_path):
    good = create_run(tmp_path, "a", RunRecord(preset="nano"))
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray-file.txt").write_text("x")
    broken = tmp_path / "half"
    broken.mkdir()
    (broken / "run.json").write_text('{"id": "half", "crea')
    runs = {r.id: r for r in list_runs(tmp_path)}
    assert set(runs) == {good.id, "half"}
    assert runs["half"].problem and "run.json: damaged" in runs["half"].problem
    assert runs[good.id].problem is None and runs[good.id].status == "unknown"


def test_find_run_by_id_prefix_and_path(tmp_path):
    run = create_run(tmp_path, "data", RunRecord(preset="nano"))
    assert find_run(run.id, tmp_path).path == run.path
    assert find_run(run.id[:15], tmp_path).path == run.path
    assert find_run(str(run.path)).path == run.path
    other = create_run(tmp_path, "data", RunRecord(preset="nano"))
    assert other.id != run.id
    json.loads((other.path / "run.json").read_text())


def test_follower_returns_only_new_complete_lines(tmp_path):
    from tui_gpt.core.runs import EventFollower

    f = tmp_path / "events.jsonl"
    f.write_text('{"event": "step", "step": 0}\n{"event": "st')
    follower = EventFollower(f)
    assert [e.step for e in follower.poll()] == [0]
    assert follower.poll() == []
    with open(f, "a") as handle:
        handle.write('ep", "step": 1}\n{"event": "step", "step": 2}\n')
    assert [e.step for e in follower.poll()] == [1, 2]
    assert follower.poll() == []


def test_a_catch_up_decodes_evenly_spaced_steps_and_every_other_event(tmp_path):
    from tui_gpt.core.events import Step
    from tui_gpt.core.runs import EventFollower

    run = create_run(tmp_path, "data", RunRecord(preset="nano"))
    log = EventLog(run)  # the lines as a run writes them
    for step in range(1000):
        log(Step(step=step, loss=1.0))
        if step % 100 == 0:
            log(Eval(step=step))
    log.close()
    f = run.events_path
    events = EventFollower(f).poll(most_steps=50)
    steps = [e.step for e in events if isinstance(e, Step)]
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 999
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    assert max(gaps) - min(gaps) <= 2  # evenly spaced (to rounding)
    assert [e.step for e in events if isinstance(e, Eval)] == list(range(0, 1000, 100))
    # A small batch (a live run's next poll) keeps every step.
    assert len(EventFollower(f).poll(most_steps=5000)) == 1010


def test_event_lines_of_the_wrong_shape_are_skipped(tmp_path):
    from tui_gpt.core.runs import EventFollower

    assert event_from_dict({"event": "step", "step": "abc"}) is None
    assert event_from_dict({"event": "eval", "val_loss": [1]}) is None
    assert event_from_dict([1, 2]) is None
    f = tmp_path / "events.jsonl"
    f.write_text('[1, 2]\n{"event": "step", "step": "x"}\n{"event": "step", "step": 3}\n')
    assert [e.step for e in EventFollower(f).poll()] == [3]


def test_deleting_a_run_while_its_files_come_and_go(runs_dir, monkeypatch):
    import shutil as _shutil

    from tui_gpt.core.runs import Run, delete_run

    folder = runs_dir / "20260101-000000-x-nano"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / ".best.tmp").write_text("x")
    real = _shutil.rmtree
    calls = []

    def racing(path, *a, **kw):  # the first pass meets a file renamed away mid-walk
        calls.append(path)
        if len(calls) == 1:
            (folder / "checkpoints" / ".best.tmp").unlink()
            raise FileNotFoundError(2, "No such file or directory", ".best.tmp")
        return real(path, *a, **kw)

    monkeypatch.setattr("tui_gpt.core.runs.shutil.rmtree", racing)
    delete_run(Run(folder))
    assert not folder.exists() and len(calls) == 2
