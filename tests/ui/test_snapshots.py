"""Every screen at a fixed 80x24 terminal, compared with the stored snapshots.

Update after an intended change with `pytest tests/ui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from textual.widgets import Select

from tests.conftest import needs_gpt2
from tests.ui.conftest import fake_run, wait_for
from tui_gpt.core.runs import Run
from tui_gpt.ui.app import TuiGptApp
from tui_gpt.ui.screens.chat import ChatScreen
from tui_gpt.ui.screens.dataset import DatasetScreen
from tui_gpt.ui.screens.runs import RunsScreen
from tui_gpt.ui.screens.train import TrainScreen

SIZE = (80, 24)
FIXED_ROOT = Path("/tmp/tui-gpt-snapshot-runs")  # a fixed path: the runs screen shows it
# The fixed paths are shared: under pytest-xdist these tests run one after another on one worker.
pytestmark = pytest.mark.xdist_group("snapshot-paths")


@pytest.fixture
def fixed_runs(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    # The preset line's memory estimate and the room beside it: the same on every machine.
    monkeypatch.setenv("TUI_GPT_MEMORY_MIB", "16384")
    monkeypatch.setattr("tui_gpt.core.device.cpu_has_bf16", lambda: True)
    # The plan line's step time: measured on a real machine, fixed here.
    monkeypatch.setattr("tui_gpt.core.estimate.cached_step_seconds", lambda *a: 0.25)
    shutil.rmtree(FIXED_ROOT, ignore_errors=True)
    fake_run(FIXED_ROOT, "20260301-120000-story-nano", created=1_772_366_400)
    yield FIXED_ROOT
    shutil.rmtree(FIXED_ROOT, ignore_errors=True)
    monkeypatch.delenv("TZ")
    time.tzset()


@needs_gpt2
def test_dataset_screen(snap_compare, fixed_runs):
    app = TuiGptApp(fixed_runs)

    async def ready(pilot):
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, DatasetScreen)
                and "characters" in str(app.screen.query_one("#preview").render())
                and "ms/step" in str(app.screen.query_one("#plan").render())
            ),
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_dashboard_screen(snap_compare, fixed_runs):
    app = TuiGptApp(fixed_runs, watch=Run(fixed_runs / "20260301-120000-story-nano"))

    async def ready(pilot):
        await wait_for(
            pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.epoch_samples == 4
        )
        chart = app.screen.query_one("#chart")
        size = chart.content_size
        # Drawn from every event, at the chart's final size (it redraws a few times a second).
        await wait_for(pilot, lambda: not chart._dirty and chart._drawn == (size.width, size.height))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_chat_screen(snap_compare, fixed_runs):
    app = TuiGptApp(fixed_runs)

    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        app.open_chat(Run(fixed_runs / "20260301-120000-story-nano"))
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, ChatScreen)
                and any(p.candidates for p in app.screen.query("#probs"))
            ),
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_runs_screen(snap_compare, fixed_runs):
    app = TuiGptApp(fixed_runs)
    assert snap_compare(app, terminal_size=SIZE, run_before=_on_runs_screen(app))


def test_comparison_screen(snap_compare, fixed_runs):
    from tui_gpt.ui.screens.compare import CompareScreen

    fake_run(fixed_runs, "20260302-120000-story-nano", created=1_772_452_800, lr=1e-3)
    app = TuiGptApp(fixed_runs)

    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        paths = [
            fixed_runs / "20260301-120000-story-nano",
            fixed_runs / "20260302-120000-story-nano",
        ]
        app.push_screen(CompareScreen(paths))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.runs)
        chart = app.screen.query_one("#compare-chart")
        # Drawn for the size it has once the table below took its rows' height.
        await wait_for(pilot, lambda: app.screen.drawn_size == chart.content_size)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def _on_runs_screen(app):
    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("ctrl+r")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, RunsScreen)
                and "settings" in str(app.screen.query_one("#run-details").render())
            ),
        )

    return ready


@pytest.mark.parametrize("key,screen", [("d", "ConfirmScreen"), ("x", "PromptScreen")])
def test_dialogs_over_the_runs_screen(snap_compare, fixed_runs, key, screen):
    app = TuiGptApp(fixed_runs)
    runs = _on_runs_screen(app)

    async def ready(pilot):
        await runs(pilot)
        await pilot.press(key)
        await wait_for(pilot, lambda: type(app.screen).__name__ == screen)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_help_screen(snap_compare, fixed_runs):
    from tui_gpt.ui.screens.help import HelpScreen

    app = TuiGptApp(fixed_runs)
    runs = _on_runs_screen(app)

    async def ready(pilot):
        await runs(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_picker_screen(snap_compare, fixed_runs, monkeypatch):
    from tui_gpt.ui.screens.picker import PathPicker

    texts = Path("/tmp/tui-gpt-snapshot-texts")
    shutil.rmtree(texts, ignore_errors=True)
    (texts / "books").mkdir(parents=True)
    (texts / "story.txt").write_text("Once upon a time.")
    (texts / "notes.jsonl").write_text('{"text": "a"}\n')
    monkeypatch.chdir(texts)
    app = TuiGptApp(fixed_runs)

    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        # Byte tokens: the screen behind reads the same with or without GPT-2's vocabulary.
        app.screen.query_one("#tokenizer", Select).value = "byte"
        await wait_for(
            pilot,
            lambda: (
                "(byte)" in str(app.screen.query_one("#preview").render())
                and "ms/step" in str(app.screen.query_one("#plan").render())
                and "(257-token" in str(app.screen.query_one("#preset-info").render())
            ),
        )
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PathPicker))
        await wait_for(pilot, lambda: len(app.screen.query_one("#tree").root.children) == 3)
        await pilot.pause(0.1)

    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=ready)
    finally:
        shutil.rmtree(texts, ignore_errors=True)
