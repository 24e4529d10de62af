"""The training session: one training per process, its control before its job, its end."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import NIGHT_KITCHEN
from tests.trainings import config
from tui_gpt.core.config import ModelChoice, TrainSpec
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.events import Event, Step
from tui_gpt.core.jobs import JobHooks, TrainingJob, assemble
from tui_gpt.core.session import TrainingSession


def builder(runs_dir, **changes):
    spec = TrainSpec(str(NIGHT_KITCHEN), ModelChoice("nano", 64, "byte"), config(**changes))
    return lambda hooks: assemble(spec, runs_dir=runs_dir, hooks=hooks)


def test_a_session_trains_follows_progress_and_knows_its_run(runs_dir):
    session = TrainingSession()
    assert not session.active and session.wait(0)
    session.begin()
    assert session.active and not session.wait(0)
    with pytest.raises(TuiGptError, match="already running"):
        session.begin()
    seen: list[Event] = []
    during: list[object] = []

    def on_job(job: TrainingJob) -> None:
        assert job.run is not None
        during.append(session.controls(job.run))

    outcome = session.run(builder(runs_dir, max_steps=6, sample_tokens=0), [seen.append],
                          on_job=on_job)  # fmt: skip
    assert outcome == "finished"
    assert during == [session.control]  # its own run's control while it trained
    assert [e.step for e in seen if isinstance(e, Step)] == list(range(6))
    assert session.progress.done == 6 and session.progress.total == 6
    assert not session.active and session.wait(0)
    assert session.job is not None and session.job.run is not None
    assert session.controls(session.job.run) is None  # over: nothing to control


def test_a_stop_asked_for_before_the_job_exists_stops_it_at_its_first_step(runs_dir):
    session = TrainingSession()
    session.begin()
    session.stop("the user quit while the data was prepared")
    build = builder(runs_dir, max_steps=50, sample_tokens=0)
    assert session.run(build, []) == "stopped"
    assert session.job is not None and session.job.trainer.state.steps_done <= 1
    assert session.job.run is not None and session.job.run.latest.is_file()  # saved


def test_a_failed_build_ends_the_session_and_frees_it(runs_dir, tmp_path):
    session = TrainingSession()
    session.begin()

    def build(hooks: JobHooks) -> TrainingJob:
        raise TuiGptError("no such dataset")

    with pytest.raises(TuiGptError, match="no such dataset"):
        session.run(build, [])
    assert not session.active and session.job is None and session.wait(0)
    session.begin()  # free for the next training
    assert session.active


def test_wait_returns_when_a_training_on_another_thread_ends(runs_dir):
    session = TrainingSession()
    session.begin()
    build = builder(runs_dir, max_steps=200, sample_tokens=0)
    worker = threading.Thread(target=session.run, args=(build, []))
    worker.start()
    session.stop("quit")
    assert session.wait(60)
    worker.join(60)
    assert session.job is not None and session.job.trainer.state.steps_done < 200


def test_run_before_begin_is_a_programming_error(runs_dir):
    with pytest.raises(RuntimeError):
        TrainingSession().run(builder(runs_dir), [])
