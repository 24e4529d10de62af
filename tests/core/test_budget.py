"""The time budget's arithmetic (core/budget.py) on a clock the test moves; the trainer's
budgeted runs are tested end to end in test_trainer.py."""

import pytest

from tui_gpt.core import budget as budget_module
from tui_gpt.core.budget import TimeBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(budget_module.time, "monotonic", c)
    return c


def test_without_a_budget_the_plan_stands(clock):
    b = TimeBudget(bound=100, minutes=None)
    assert not b.limited and b.seconds_left() is None and b.ends_by() is None
    clock.now += 10
    assert b.fit(steps_done=50, planned=100) == 100
    assert not b.cut_short(40)


def test_the_steps_that_fit_follow_the_measured_pace_from_the_first_step(clock):
    b = TimeBudget(bound=1000, minutes=1.0)  # counts from now: 60 s
    clock.now += 10  # start-up and data preparation are part of the budget
    assert b.fit(steps_done=0, planned=40) == 40  # the pace counts from here
    clock.now += 3
    assert b.fit(steps_done=2, planned=40) == 40  # two steps: not yet trusted
    clock.now += 1
    # 3 steps in 4 s, 46 s left: 34 more steps.
    assert b.fit(steps_done=3, planned=40) == 3 + int(46 / (4 / 3))
    assert b.seconds_left() == pytest.approx(46)


def test_closing_work_is_kept_out_of_the_time_left_and_the_bound_holds(clock):
    b = TimeBudget(bound=30, minutes=1.0)
    b.fit(0, 30)

    def evaluation() -> str:
        clock.now += 5  # the longest closing task so far
        return "done"

    assert b.timed(evaluation) == "done"
    clock.now += 5  # 10 s gone: 5 steps at 1 s each after the evaluation's 5 s
    # 50 s left less three closing tasks of 5 s: 35 s at 2 s a step (10 s for 5 steps).
    assert b.fit(5, 30) == 5 + int(35 / 2)
    assert b.cut_short(22) and not b.cut_short(30)
    clock.now = 1000.0 + 5  # a fast machine: more would fit than the epochs allow
    b.restart_pace()
    b.fit(5, 30)
    clock.now += 0.3
    assert b.fit(8, 30) == 30


def test_when_the_time_is_up_the_run_ends_at_the_step_it_is_on(clock):
    b = TimeBudget(bound=1000, minutes=0.5, started=clock.now - 40)  # began 40 s ago
    b.fit(0, 100)
    clock.now += 25
    assert b.fit(7, 100) == 7
    assert b.seconds_left() == pytest.approx(-35)


def test_a_pause_restarts_the_pace(clock):
    b = TimeBudget(bound=1000, minutes=10.0)
    b.fit(0, 500)
    clock.now += 3
    assert b.fit(3, 500) == 3 + int((600 - 3) / 1)  # 1 s a step
    b.restart_pace()
    clock.now += 300  # paused
    assert b.fit(3, 500) == 500  # the pace counts again from here, not across the pause
    clock.now += 1.5
    assert b.fit(6, 500) == 6 + int((600 - 304.5) / 0.5)
