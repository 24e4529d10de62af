"""The app driven through Textual's pilot, on real tiny trainings and real checkpoints."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label, ListView, RichLog, Select, Static

from tests.conftest import NIGHT_KITCHEN, VERDICT, needs_gpt2, needs_verdict, wait_until
from tests.ui.conftest import fake_run, screen_text, wait_for
from tui_gpt.core import control
from tui_gpt.core.config import TrainSpec
from tui_gpt.core.events import Eval, Stopped
from tui_gpt.core.runs import Run, RunLock, liveness
from tui_gpt.ui.app import TuiGptApp
from tui_gpt.ui.messages import TrainingEvent
from tui_gpt.ui.screens.chat import ChatScreen
from tui_gpt.ui.screens.confirm import ConfirmScreen
from tui_gpt.ui.screens.dataset import DatasetScreen
from tui_gpt.ui.screens.runs import RunsScreen
from tui_gpt.ui.screens.train import TrainScreen
from tui_gpt.ui.widgets.loss_chart import CHART_STEPS
from tui_gpt.ui.widgets.token_probs import TokenProbs, shown


def preview_text(app) -> str:
    return str(app.screen.query_one("#preview", Static).render())


async def choose_tiny_settings(app, pilot, epochs: str) -> None:
    screen = app.screen
    app.screen.query_one("#path", Input).focus()
    screen.query_one("#path", Input).value = str(NIGHT_KITCHEN)
    await pilot.press("enter")
    screen.query_one("#preset", Select).value = "nano"
    screen.query_one("#tokenizer", Select).value = "byte"  # no vocabulary to fetch
    for field, value in (
        ("context_length", "32"),
        ("batch_size", "8"),
        ("epochs", epochs),
        ("eval_iter", "2"),
    ):
        screen.query_one(f"#{field}", Input).value = value
    await wait_for(
        pilot, lambda: "windows of 32" in preview_text(app) and "batch 8" in preview_text(app)
    )


@pytest.mark.slow
async def test_typing_at_once_makes_a_path_and_a_recipe_fills_the_form(runs_dir, monkeypatch):
    monkeypatch.delenv("TUI_GPT_RECIPE")  # a first start: the default recipe's settings
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        await pilot.press(*"/tmp")
        path = screen.query_one("#path", Input)
        assert path.value == "/tmp" and screen.focused is path
        assert screen.query_one("#recipe", Select).value == "fast"
        assert screen.query_one("#tokenizer", Select).value == "fit"
        assert screen.query_one("#optimizer", Select).value == "muon"
        screen.query_one("#recipe", Select).value = "reference"
        await wait_for(pilot, lambda: screen.query_one("#optimizer", Select).value == "adamw")
        assert screen.query_one("#tokenizer", Select).value == "gpt2"
        assert screen.query_one("#lr", Input).value == "0.0004"
        # The plan of the settings on screen, from a measured step, before anything starts.
        screen.query_one("#tokenizer", Select).value = "byte"
        screen.query_one("#preset", Select).value = "nano"
        path.value = str(NIGHT_KITCHEN)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "ms/step measured" in str(screen.query_one("#plan").render()))
        plan = str(screen.query_one("#plan").render())
        assert re.match(r"plan: [\d,]+ steps \(10\.00 epochs, [\d,]+ tokens\), about ", plan)


@pytest.mark.slow
@needs_verdict
@needs_gpt2
async def test_dataset_preview_shows_facts_and_problems(runs_dir, tmp_path):
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DatasetScreen) and "characters" in preview_text(app),
        )
        app.screen.query_one("#path", Input).value = str(VERDICT)
        app.screen.query_one("#path", Input).focus()
        await pilot.press("enter")
        app.screen.query_one("#context_length", Input).value = "256"
        await wait_for(
            pilot,
            lambda: (
                "characters 20,479" in preview_text(app) and "windows of 256" in preview_text(app)
            ),
        )
        assert "train 4,612 tokens -> 9 batches/epoch" in preview_text(app)
        assert "validation 534 tokens -> 1 batch" in preview_text(app)

        app.screen.query_one("#context_length", Input).value = "1024"
        await wait_for(pilot, lambda: "problem" in preview_text(app))
        assert "needs at least 1025" in preview_text(app) or "too short" in preview_text(app)

        binary = tmp_path / "blob.txt"
        binary.write_bytes(b"\x00\x01\x02")
        app.screen.query_one("#path", Input).value = str(binary)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "binary content" in preview_text(app))
        assert app.screen.sub_title == "blob.txt · problem"  # not the last good dataset's
        await pilot.press("ctrl+t")  # refused: nothing starts
        await pilot.pause()
        assert isinstance(app.screen, DatasetScreen) and not app.training_active
        assert not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.mark.slow
async def test_train_to_the_end_then_generate(runs_dir):
    app = TuiGptApp(runs_dir)
    posted = []
    async with app.run_test(size=(100, 34), message_hook=posted.append) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await choose_tiny_settings(app, pilot, epochs="1")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.state == "finished" and not app.training_active)
        kinds = [m.event.name for m in posted if isinstance(m, TrainingEvent)]
        assert kinds[0] == "run_started" and kinds[-1] == "finished" and "sample" in kinds
        # Each event is posted twice: to the app by the worker, to the dashboard by the app;
        # never handed round again (a message bubbling back would loop forever).
        times = Counter(id(m.event) for m in posted if isinstance(m, TrainingEvent))
        assert set(times.values()) == {2}, Counter(times.values())
        log = "\n".join(line.text for line in dashboard.query_one("#log", RichLog).lines)
        assert "Ep 1 (Step 000000): Train loss" in log
        assert len(dashboard.query_one("#chart").history.val) >= 2
        samples = "\n".join(line.text for line in dashboard.query_one("#samples", RichLog).lines)
        assert "Every effort moves you" in samples
        assert Run(dashboard.run.path).status().status == "finished"
        assert "MFU " in str(dashboard.query_one("#progress-label").render())
        # An ended run offers no pause, stop or checkpoint; its progress no longer redraws.
        keys = {key for key, b in app.active_bindings.items() if b.binding.show}
        assert not {"p", "s", "c"} & keys and keys >= {"g", "v"}

        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        # One rule: the best weights, said in the title; f6 switches to the latest and back.
        assert app.screen.weights == "best" and app.screen.chat_title.startswith("best, step ")
        first = app.screen
        # F6 changes the weights only: the sampling settings, mode and conversation stay.
        first.query_one("#temperature", Input).value = "0.3"
        first.query_one("#max_new_tokens", Input).value = "7"
        first.mode, first.transcript = "fresh", "so far"
        await pilot.press("f6")
        await wait_for(pilot, lambda: first.weights == "latest")
        assert app.screen is first and re.match(r"latest, step 22, val [\d.]+ · ", first.chat_title)
        assert first.settings().temperature == 0.3 and first.settings().max_new_tokens == 7
        assert (first.mode, first.transcript) == ("fresh", "so far")
        first.mode, first.transcript = "continue", ""
        first.query_one("#temperature", Input).value = "1.0"
        first.query_one("#max_new_tokens", Input).value = "50"
        await pilot.press("f6")
        await wait_for(pilot, lambda: first.weights == "best" and app.screen is first)
        chat = app.screen
        await pilot.press("f7")  # each prompt fresh: the same seed gives the same text
        assert chat.mode == "fresh"
        chat.query_one("#seed", Input).value = "11"
        chat.query_one("#max_new_tokens", Input).value = "12"
        outputs = []
        for n in (1, 2):
            chat.query_one("#prompt", Input).value = "Every effort"
            chat.query_one("#prompt", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda n=n: chat.completed == n)
            outputs.append(chat._last_output)
        assert outputs[0] and outputs[0] == outputs[1]  # same seed, same text
        panel = chat.query_one("#probs")
        await wait_for(pilot, lambda: panel.caption.startswith("next token (temperature 1,"))
        assert 0 < len(panel.candidates) <= 8 and sum(p for _, p in panel.candidates) <= 1.0001
        await pilot.press("f3")  # temperature + 0.1, from the keyboard
        assert chat.query_one("#temperature", Input).value == "1.1"
        await wait_for(pilot, lambda: "temperature 1.1" in panel.caption)
        chat.query_one("#top_k", Input).value = "3"
        await wait_for(pilot, lambda: "top-k 3" in panel.caption)
        assert len(panel.candidates) == 3


async def start_a_long_training(app, pilot) -> Run:
    """A tiny model on a hundred epochs, trained in the window; its run once it started."""
    await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
    await choose_tiny_settings(app, pilot, epochs="100")
    await pilot.press("ctrl+t")
    await wait_for(
        pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.progress.total > 0
    )
    return app.screen.run


@pytest.mark.slow
async def test_quit_during_training_saves_a_checkpoint(runs_dir):
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        run = await start_a_long_training(app, pilot)
        await wait_for(pilot, lambda: run.status().step >= 1)
        await pilot.press("p")
        await wait_for(pilot, lambda: run.status().status == "paused")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.training_active)
    status = run.status()
    assert status.status == "stopped"
    assert run.latest.is_file()
    assert json.loads(run.events_path.read_text().splitlines()[-1])["event"] == "stopped"


@pytest.mark.slow
async def test_going_to_an_open_screen_returns_to_it(runs_dir):
    fake_run(runs_dir, "20260101-000000-story-nano")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.summaries)
        depth = len(app.screen_stack)
        for _ in range(3):  # runs -> dashboard -> runs, again and again: no growing stack
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
            assert len(app.screen_stack) == depth
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))


@pytest.mark.slow
async def test_runs_browser_opens_chats_and_deletes(runs_dir):
    fake_run(runs_dir, "20260101-000000-story-nano")
    keep = fake_run(runs_dir, "20260102-000000-story-nano", created=1_790_100_000)
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        await pilot.press("enter")  # newest first: the dashboard of `keep`
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        assert app.screen.run.path == keep
        await wait_for(pilot, lambda: app.screen.epoch_samples == 4)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("down", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert (runs_dir / "20260101-000000-story-nano").exists()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        assert not (runs_dir / "20260101-000000-story-nano").exists()


@pytest.mark.slow
async def test_runs_browser_exports_a_run_and_says_where_or_why_not(runs_dir, tmp_path):
    """`e` asks where to; the export runs in a worker that only posts messages; its toast
    names the folder, or says why nothing was written (an existing file that is no earlier
    export is never replaced)."""
    from tui_gpt.ui.screens.prompt import PromptScreen

    fake_run(runs_dir, "20260101-000000-story-nano")
    out, taken = tmp_path / "hf-export", tmp_path / "notes.txt"
    taken.write_text("mine")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        for place in (out, taken):
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
            app.screen.query_one(Input).value = str(place)
            await pilot.press("enter")
            if place == taken:
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                await pilot.press("y")
        await wait_for(pilot, lambda: {"Exported (hf)", "Not exported"}
                       <= {n.title for n in app._notifications})  # fmt: skip
        said = {n.title: str(n.message) for n in app._notifications}
        assert said["Exported (hf)"] == str(out) and (out / "config.json").is_file()
        assert taken.read_text() == "mine" and said["Not exported"]


async def test_watch_follows_events_as_they_are_appended(runs_dir):
    path = fake_run(runs_dir, "20260101-000000-story-nano", status="running")
    lines = path.joinpath("events.jsonl").read_text().splitlines()
    path.joinpath("events.jsonl").write_text("\n".join(lines[:5]) + "\n")
    app = TuiGptApp(runs_dir, watch=Run(path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: len(dashboard.query_one("#chart").history.val) == 1)
        with open(path / "events.jsonl", "a") as f:
            f.write("\n".join(lines[5:]) + "\n")
        await wait_for(pilot, lambda: dashboard.epoch_samples == 4)
        assert len(dashboard.query_one("#chart").history.val) == 4


@pytest.mark.parametrize("key", ["ctrl+p"])
async def test_command_palette_lists_screen_actions(runs_dir, key):
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Start training" in titles and "Runs" in titles
        assert len(titles) == len(set(titles))  # each action once


async def test_picker_chooses_a_file_from_the_keyboard(runs_dir, tmp_path, monkeypatch):
    from tui_gpt.ui.screens.picker import PathPicker

    (tmp_path / "texts").mkdir()
    story = tmp_path / "texts" / "story.txt"
    story.write_text("Once upon a time. " * 400)
    (tmp_path / "texts" / "image.png").write_bytes(b"\x89PNG")
    monkeypatch.chdir(tmp_path)
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        app.screen.query_one("#tokenizer", Select).value = "byte"
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PathPicker))
        tree = app.screen.query_one("#tree")
        await wait_for(pilot, lambda: tree.root.children)
        assert [n.label.plain for n in tree.root.children] == ["texts"]
        await pilot.press("down", "enter")  # open the folder
        await wait_for(pilot, lambda: tree.root.children[0].children)
        assert [n.label.plain for n in tree.root.children[0].children] == ["story.txt"]  # no .png
        await pilot.press("down", "enter")  # pick the file
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await wait_for(
            pilot,
            lambda: "story.txt" in preview_text(app) and "characters 7,200" in preview_text(app),
        )


@pytest.mark.slow
async def test_start_in_background_then_steer_it_from_the_dashboard(runs_dir):
    """ctrl+b trains in a process of its own; the dashboard follows its run folder and
    pauses, resumes and stops it through the control channel; quitting leaves it alone."""
    app = TuiGptApp(runs_dir)
    run = None
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await choose_tiny_settings(app, pilot, epochs="300")
            await pilot.press("ctrl+b")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
            dashboard = app.screen
            await wait_for(pilot, lambda: dashboard.query("#chart"))  # composed
            run = dashboard.run
            assert not dashboard.live and not app.training_active  # not this process's
            await wait_for(pilot, lambda: len(dashboard.query_one("#chart").history.val) >= 2)
            await pilot.press("p")
            await wait_for(pilot, lambda: run.status().status == "paused")
            await wait_for(pilot, lambda: dashboard.sub_title == "paused")
            await wait_for(pilot, lambda: "p Resume" in screen_text(app))  # the key says so
            await pilot.press("p")
            await wait_for(pilot, lambda: dashboard.sub_title == "running")
            await wait_for(pilot, lambda: "p Pause" in screen_text(app))
            await pilot.press("s")  # stopping asks first; "no" leaves it running
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "Stop run" in app.screen.question
            await pilot.press("n")
            await wait_for(pilot, lambda: app.screen is dashboard)
            assert run.status().status == "running"
            await pilot.press("q")  # no "training is running" question: it is not ours
        assert liveness(run).state == "live"  # the app is gone; the training is not
        control.send(run, "stop")
        wait_until(lambda: liveness(run).state == "ended")
        assert run.status().status == "stopped" and run.latest.is_file()
    finally:
        if run is not None and liveness(run).state == "live":
            os.kill(liveness(run).pid, signal.SIGKILL)


@pytest.mark.slow
async def test_watch_catches_up_on_a_long_run(runs_dir):
    path = fake_run(runs_dir, "20260101-000000-long-nano", steps=20_000, status="running")
    app = TuiGptApp(runs_dir, watch=Run(path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.epoch_samples == 4000)
        await wait_for(
            pilot,
            lambda: "20,000/20,000 steps" in str(dashboard.query_one("#progress-label").render()),
        )
        assert len(dashboard.query_one("#chart").history.val) == 4000  # every evaluation
        # The training line: evenly spaced steps of the whole run, the newest among them.
        steps = dashboard.query_one("#chart").history.step_losses.steps
        assert len(steps) == CHART_STEPS and steps[0] == 0 and steps[-1] == 19_999
        log = dashboard.query_one("#log", RichLog)
        assert "Step 019995" in str(log.lines[-2].text)  # the newest evaluations are shown
        assert dashboard.state == "stale"  # running, yet no process behind it
        # A run that is not running has no time left to show.
        await wait_for(pilot, lambda: "ETA" not in str(dashboard.query_one("#progress-label").render()))
        dashboard.handle_many([Stopped(step=19_999, reason="stopped by you")])
        label = str(dashboard.query_one("#progress-label").render())
        assert "20,000/20,000 steps" in label and "ETA" not in label


async def test_every_setting_is_settable_from_the_forms(runs_dir):
    """The dataset screen's form holds every model and training setting (but those that
    apply only under torchrun, which it keeps as it was shown them), the generator's every
    sampling setting; each non-default value typed there is what they read."""
    from tests.conftest import other_value
    from tui_gpt.core.config import ModelChoice, SamplingConfig, TrainConfig
    from tui_gpt.core.settings import specs
    from tui_gpt.ui.widgets.settings_form import SettingsForm

    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        form = app.screen.query_one(SettingsForm)
        expected = {}
        for cls in (ModelChoice, TrainConfig):  # settings shown to the form, not in it
            unshown = {spec.name: other_value(spec) for spec in specs(cls) if not spec.form}
            assert not any(form.query(f"#{name}") for name in unshown)
            form.show(replace(cls(), **unshown))
            expected |= unshown
        for cls in (ModelChoice, TrainConfig):
            for spec in specs(cls):
                if not spec.form:
                    continue
                expected[spec.name] = other_value(spec)
                widget = form.query_one(f"#{spec.name}")
                widget.value = (
                    spec.show(expected[spec.name])
                    if isinstance(widget, Input)
                    else expected[spec.name]
                )
        await pilot.pause()
        model, cfg = app.screen.read_settings()
        assert {**vars(model), **vars(cfg)} == expected

        sampling = SettingsForm(SamplingConfig)
        await app.screen.mount(sampling)
        wanted = {spec.name: other_value(spec) for spec in specs(SamplingConfig)}
        sampling.show(SamplingConfig(**wanted))
        assert vars(sampling.read(SamplingConfig)) == wanted


@pytest.mark.slow
async def test_runs_browser_details_labels_and_comparison(runs_dir):
    from tui_gpt.ui.screens.compare import CompareScreen

    fake_run(runs_dir, "20260101-000000-story-nano", created=1_790_000_000, lr=4e-4)
    fake_run(runs_dir, "20260102-000000-story-nano", created=1_790_090_000, lr=1e-3)
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        browser = app.screen
        details = browser.query_one("#run-details", Static)
        await wait_for(pilot, lambda: "20260102-000000-story-nano" in str(details.render()))
        assert "lr" in str(details.render()) and "best 4.000" in str(details.render())
        await pilot.press("l")
        await wait_for(pilot, lambda: app.screen is not browser)
        for key in "wide":
            await pilot.press(key)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(s.label == "wide" for s in browser.summaries))
        await pilot.press("m")  # nothing marked yet: refused
        assert app.screen is browser
        await pilot.press("space", "down", "space", "m")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.runs)
        compare = app.screen
        table = compare.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["lr", "best val loss", "time to best", "tokens/s"]
        assert [str(c.label) for c in table.columns.values()] == ["", "000000", "wide"]
        assert compare.axis == "tokens"
        await pilot.press("x")
        assert compare.axis == "steps" and "steps" in str(
            compare.query_one("#compare-chart").render()
        )


async def test_the_runs_browser_at_120x40_cuts_neither_table_nor_details(runs_dir):
    """Too narrow for both side by side, the details go under the table: every column of
    the table is whole and the details' lines are not wrapped."""
    fake_run(runs_dir, "20260101-000000-a-long-dataset-name-nano", created=1_790_000_000)
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        browser = app.screen
        details = browser.query_one("#run-details", Static)
        await wait_for(pilot, lambda: "a-long-dataset-name" in str(details.render()))
        table = browser.query_one(DataTable)
        await wait_for(pilot, lambda: table.region.width > 0)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        # The details' first line, whole on one row.
        assert "run        20260101-000000-a-long-dataset-name-nano" in screen_text(app)


async def test_train_a_tokenizer_on_the_chosen_data_and_use_it(runs_dir):
    from tui_gpt.ui.screens.prompt import PromptScreen

    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        screen.query_one("#path", Input).value = str(NIGHT_KITCHEN)
        app.screen.query_one("#path", Input).focus()
        await pilot.press("enter")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one(Input).value = "300"
        await pilot.press("enter")
        tokenizer = screen.query_one("#tokenizer", Select)
        await wait_for(pilot, lambda: str(tokenizer.value).endswith("the_night_kitchen-300.json"))
        await wait_for(pilot, lambda: "(bpe-" in preview_text(screen.app))
        info = str(screen.query_one("#preset-info", Static).render())
        assert "(300-token vocabulary)" in info
        model, _ = screen.read_settings()
        assert model.tokenizer == tokenizer.value


@pytest.mark.slow
async def test_export_a_run_from_the_browser(runs_dir, tmp_path):
    from tui_gpt.ui.screens.prompt import PromptScreen

    fake_run(runs_dir, "20260101-000000-story-nano")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        assert app.screen.query_one(Input).value.endswith(
            "exports/20260101-000000-story-nano-f32-hf"
        )
        app.screen.query_one(Input).value = str(tmp_path / "model.gguf")
        await pilot.press("enter")  # a byte tokenizer cannot go to GGUF: one line says so
        await wait_for(pilot, lambda: any("has none" in str(n.message) for n in app._notifications))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one(Input).value = str(tmp_path / "hf")
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "hf" / "config.json").is_file())
        done = str(tmp_path / "hf")
        await wait_for(pilot, lambda: any(done in str(n.message) for n in app._notifications))
        # Again to the same folder: asked, then the earlier export is replaced.
        first = (tmp_path / "hf" / "config.json").stat().st_mtime_ns
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one(Input).value = done
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "exists. Replace it" in app.screen.question
        await pilot.press("y")
        await wait_for(pilot, lambda: (tmp_path / "hf" / "config.json").is_file()
                       and (tmp_path / "hf" / "config.json").stat().st_mtime_ns != first)  # fmt: skip
        # Notifications are plain text: an install hint keeps its brackets on screen (alone
        # there: under load the earlier toasts could still fill the corner).
        app.clear_notifications()
        app.notify("pip install 'tui-gpt[gguf]'")
        await wait_for(pilot, lambda: "tui-gpt[gguf]" in screen_text(app))


@pytest.mark.slow
async def test_the_newest_dataset_wins_over_a_slow_scan(runs_dir, tmp_path):
    """Type a big folder, then a file before the folder's scan ends: the file's facts are
    shown (the folder's scan is given up and its late answer never shown); Enter checks again."""
    big = tmp_path / "big"
    big.mkdir()
    for i in range(1000):
        (big / f"{i:04d}.txt").write_text("words of a long folder\n" * 2000)
    (big / "9999.txt").write_bytes(b"\x00 binary at the very end")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        screen.query_one("#tokenizer", Select).value = "byte"
        path = screen.query_one("#path", Input)
        app.screen.query_one("#path", Input).focus()
        path.value = str(big)
        await pilot.press("enter")
        path.value = str(NIGHT_KITCHEN)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "the_night_kitchen.txt" in preview_text(app))
        assert "characters 6,602" in preview_text(app) and screen._problem is None
        # Once every preview worker (the folder's too) has ended, the file's facts still stand.
        await wait_for(
            pilot, lambda: all(w.is_finished for w in app.workers if w.group == "preview")
        )
        await pilot.pause()
        assert "binary" not in preview_text(app) and screen._problem is None
        path.value = str(big)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "binary content" in preview_text(app), timeout=180)
        # The folder's own answer now: its binary file is left out and named.
        assert "1,000 files" in preview_text(app) and "skipped 9999.txt" in preview_text(app)


async def test_help_for_each_screen(runs_dir):
    from tui_gpt.ui.screens.help import HelpScreen

    fake_run(runs_dir, "20260101-000000-story-nano")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = app.screen.text
        assert "Start training" in text and "Learning rate" in text and "--lr" in text
        assert str(runs_dir) in text and "AdamW learning rate" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "Compare marked" in app.screen.text and "Learning rate" not in app.screen.text
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))


async def test_a_late_list_highlight_does_not_undo_a_typed_path(runs_dir):
    from textual.widgets import ListView

    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        app.screen.query_one("#path", Input).focus()
        screen.query_one("#path", Input).value = str(NIGHT_KITCHEN)
        await pilot.press("enter")
        listing = screen.query_one(ListView)
        listing.post_message(
            ListView.Highlighted(listing, listing.children[0])
        )  # e.g. from start-up
        await pilot.pause()
        assert screen.dataset == str(NIGHT_KITCHEN)
        listing.focus()
        await pilot.press("down")  # moving through the list does choose
        await wait_for(pilot, lambda: screen.dataset != str(NIGHT_KITCHEN))


async def test_the_preset_line_estimates_memory_for_the_forms_settings(runs_dir, monkeypatch):
    monkeypatch.setenv("TUI_GPT_MEMORY_MIB", "4096")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        info = screen.query_one("#preset-info", Static)

        def mib() -> float:
            number, unit = str(info.render()).split("~")[1].split()[:2]
            return float(number.replace(",", "")) * (1024 if unit == "GiB" else 1)

        await wait_for(pilot, lambda: "of 4,096 MiB free" in str(info.render()))
        small = mib()
        screen.query_one("#batch_size", Input).value = "64"
        await wait_for(pilot, lambda: mib() > small)
        bigger = mib()
        screen.query_one("#context_length", Input).value = "1024"
        await wait_for(pilot, lambda: mib() > bigger)
        # Over the room: the line says so before anything starts.
        assert mib() > 4096 and "[red]" not in str(info.render())  # markup, not text
        assert info.render().spans  # shown in red


@pytest.mark.slow
async def test_a_run_resumed_in_the_window_shows_its_whole_history(runs_dir):
    from tests.conftest import run_cli
    from tui_gpt.ui.screens.prompt import PromptScreen

    first = run_cli("--run-dir", str(runs_dir), "train", str(NIGHT_KITCHEN), "--preset", "nano",
                    "--tokenizer", "byte", "--context-length", "32", "--epochs", "1", "--max-steps", "30",
                    "--eval-freq", "5", "--sample-tokens", "5")  # fmt: skip
    assert first.returncode == 0, first.stderr
    [run] = [Run(p) for p in runs_dir.iterdir()]
    evals = sum(1 for line in run.events_path.read_text().splitlines() if '"eval"' in line)
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("r")  # finished: not resumed (a budget would start again); it says x
        await wait_for(pilot, lambda: any("x trains it further" in n.message
                                          for n in app._notifications))  # fmt: skip
        assert isinstance(app.screen, RunsScreen) and not app.training_active
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one(Input).value = "5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.state == "finished" and not app.training_active)
        assert len(dashboard.query_one("#chart").history.val) > evals > 1
        assert dashboard.epoch_samples >= 1  # the first part's sample
        # Every step's training loss, the first part's too, in order.
        steps = dashboard.query_one("#chart").history.step_losses.steps
        assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == 34 and len(set(steps)) == 35
        log = "\n".join(line.text for line in dashboard.query_one("#log", RichLog).lines)
        assert "Ep 1 (Step 000000)" in log and log.index("started") < log.index("resumed")


@pytest.mark.slow
async def test_the_generator_continues_the_conversation_within_its_context(runs_dir):
    from textual import events

    path = fake_run(runs_dir, "20260101-000000-story-nano")  # byte tokens, context 32
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        app.open_chat(Run(path))
        await wait_for(
            pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query("#top_k")
        )  # composed, its settings form too
        chat = app.screen
        info = chat.query_one("#context-info")
        chat.query_one("#max_new_tokens", Input).value = "4"
        prompt = chat.query_one("#prompt", Input)

        async def say(text: str, n: int) -> None:
            prompt.value = text
            prompt.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: chat.completed == n)

        await say("Once", 1)
        assert chat.mode == "continue" and chat.transcript == "Once" + chat._last_output
        first = chat.transcript
        # The next prompt is read after the conversation so far; the line counts its tokens.
        prompt.value = "then"
        assert chat.model_text("then") == first + "\nthen"
        used = len((first + "\nthen").encode())
        await wait_for(pilot, lambda: f"· {min(used, 32)}/32 tokens" in str(info.render()))
        await say("then", 2)
        assert chat.transcript.startswith(first + "\nthen")

        # A long paste: taken at once, its cut is announced before and after sending.
        prompt.value = ""
        prompt.focus()
        prompt._on_paste(events.Paste("x" * 5000))
        assert len(prompt.value) == 5000
        await wait_for(pilot, lambda: str(info.render()).endswith(" cut"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.completed == 3)
        notes = [str(b.render()) for b in chat.query(".note")]
        assert any("did not fit the 32-token context" in n for n in notes)

        await pilot.press("f7")  # fresh: the prompt alone
        assert chat.mode == "fresh" and chat.model_text("abc") == "abc"
        await wait_for(pilot, lambda: str(info.render()).startswith("fresh (f7)"))


@pytest.mark.slow
async def test_a_live_training_shows_in_the_header_with_a_key_back(runs_dir):
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        run = await start_a_long_training(app, pilot)
        assert not app.screen.query_one("#live-sign").display  # not on its own dashboard
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        sign = app.screen.query_one("#live-sign", Static)
        await wait_for(pilot, lambda: sign.display and re.search(r"● training [\d,]+/[\d,]+ steps", str(sign.render())))
        assert "ctrl+d" in str(sign.render())
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        assert app.screen.run.path == run.path
        await pilot.press("s")  # asks first; yes stops after the step and saves
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.training_active)
        assert run.status().status == "stopped"


@pytest.mark.slow
async def test_settings_are_remembered_and_a_finished_run_trains_further(runs_dir):
    from tui_gpt.ui.screens.prompt import PromptScreen

    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await choose_tiny_settings(app, pilot, epochs="1")
        app.screen.query_one("#lr", Input).value = "0.002"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.state == "finished" and not app.training_active)
        run = dashboard.run
        steps = run.status().step
        # Train it further from the browser: one more epoch.
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one(Input).value = "1e"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.live)
        await wait_for(pilot, lambda: app.screen.state == "finished" and not app.training_active)
        assert run.status().step == 2 * steps + 1
        assert json.loads((run.path / "settings.json").read_text())["train"]["epochs"] == 2
        # The browser's Enter opens the run as it is now, not the first training's
        # dashboard (still open below the browser, frozen when that training ended).
        further = app.screen
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert dashboard in app.screen_stack
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        assert app.screen is not dashboard and app.screen in (further, *app.screen_stack)
        await wait_for(pilot, lambda: app.screen.progress.done == 2 * steps + 2)
        # The further training ended evaluated, and said how it ended.
        evals = [e for e in run.typed_events() if isinstance(e, Eval)]
        assert evals[-1].step == 2 * steps + 1
        assert app.screen.sub_title.startswith("finished: max steps reached")
        # Escape walks back past the first training's frozen dashboard, never onto it.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        assert dashboard not in app.screen_stack

    # A new session opens with the last dataset and settings.
    again = TuiGptApp(runs_dir)
    async with again.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(again.screen, DatasetScreen))
        screen = again.screen
        await wait_for(pilot, lambda: screen.dataset == str(NIGHT_KITCHEN))
        assert screen.query_one("#lr", Input).value == "0.002"
        assert screen.query_one("#preset", Select).value == "nano"
        assert screen.query_one("#tokenizer", Select).value == "byte"
        assert screen.query_one("#context_length", Input).value == "32"


async def test_picker_goes_up_and_home(runs_dir, tmp_path, monkeypatch):
    from pathlib import Path

    from tui_gpt.ui.screens.picker import PathPicker

    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "notes.jsonl").write_text('{"text": "a"}\n')
    monkeypatch.chdir(tmp_path / "inner")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PathPicker))
        picker = app.screen
        tree = picker.query_one("#tree")
        await wait_for(pilot, lambda: tree.root.children)
        assert [n.label.plain for n in tree.root.children] == ["notes.jsonl"]  # every format
        await pilot.press("backspace")
        await wait_for(pilot, lambda: Path(tree.path) == tmp_path)
        assert str(tmp_path) in str(picker.query_one("#where").render())
        await pilot.press("tilde")
        await wait_for(pilot, lambda: Path(tree.path) == Path.home())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))


async def test_a_folder_preview_lists_what_it_skips(runs_dir, tmp_path):
    (tmp_path / "good.txt").write_text("Once upon a time. " * 200)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "broken.jsonl").write_text("not json\n")
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        app.screen.query_one("#tokenizer", Select).value = "byte"
        app.screen.query_one("#path", Input).focus()
        app.screen.query_one("#path", Input).value = str(tmp_path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "characters 3,600" in preview_text(app))
        text = preview_text(app)
        assert "1 file," in text
        assert "skipped empty.txt: file is empty" in text and "skipped broken.jsonl: line 1" in text


async def test_the_step_log_wraps_again_after_a_resize(runs_dir):
    path = fake_run(runs_dir, "20260101-000000-story-nano")
    app = TuiGptApp(runs_dir, watch=Run(path))
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.epoch_samples == 4)
        log = dashboard.query_one("#log", RichLog)
        await wait_for(pilot, lambda: log.lines and log.size.width > 60)
        wide = len(log.lines)
        assert all(len(line.text) <= log.size.width for line in log.lines)
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: log.size.width < 45 and len(log.lines) > wide)
        assert all(len(line.text) <= log.size.width for line in log.lines)


@pytest.mark.slow
async def test_a_fixed_field_clears_its_problem_and_quitting_remembers_the_form(runs_dir):
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await choose_tiny_settings(app, pilot, epochs="3")
        epochs = app.screen.query_one("#epochs", Input)
        epochs.value = ""
        await wait_for(pilot, lambda: "problem: Epochs" in preview_text(app))
        epochs.value = "4"  # fixed: the preview checks again
        await wait_for(pilot, lambda: "characters" in preview_text(app))
        assert app.screen._problem is None
        await pilot.press("ctrl+q")  # nothing trained: the form is remembered all the same
    again = TuiGptApp(runs_dir)
    async with again.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(again.screen, DatasetScreen))
        await wait_for(pilot, lambda: again.screen.dataset == str(NIGHT_KITCHEN))
        assert again.screen.query_one("#epochs", Input).value == "4"


async def test_kv_heads_that_do_not_divide_the_heads_are_a_form_problem(runs_dir):
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await choose_tiny_settings(app, pilot, epochs="3")
        app.screen.query_one("#arch", Select).value = "llama"
        app.screen.query_one("#kv_heads", Input).value = "3"
        await wait_for(pilot, lambda: "not divisible by n_kv_heads 3" in preview_text(app))
        app.screen.query_one("#kv_heads", Input).value = ""
        await wait_for(pilot, lambda: "characters" in preview_text(app))


def test_train_further_means_more_steps_or_more_epochs_from_where_the_run_is():
    from tui_gpt.core.config import further as more_training

    # A run stopped by --max-steps 300, 1,204 steps an epoch: 500 more steps is step 800.
    changes, plan = more_training("500", 300, 1204)
    assert changes == {"max_steps": 800, "epochs": 1, "minutes": None}
    assert plan == "500 more steps: to step 800, 0.66 epochs in all"
    changes, plan = more_training("2e", 300, 1204)
    assert changes == {"max_steps": 2708, "epochs": 3, "minutes": None}
    assert more_training(" 3 epochs ", 10, 5)[0]["max_steps"] == 25
    for bad in ("", "0", "-2", "two", "2x"):
        with pytest.raises(ValueError):
            more_training(bad, 300, 1204)


def test_help_explains_mfu_bits_per_byte_and_perplexity(runs_dir):
    from tui_gpt.core.events import GLOSSARY
    from tui_gpt.ui.screens.help import help_text
    from tui_gpt.ui.screens.train import TrainScreen as Dashboard

    text = help_text(Dashboard(Run(runs_dir / "x"), live=False), [], runs_dir, ())
    for term, meaning in GLOSSARY.items():
        assert f"[b]{term}[/b]: {meaning}" in text


async def test_the_runs_list_at_80x24_shows_a_live_runs_steps_best_and_dataset(runs_dir):
    path = fake_run(runs_dir, "20260101-000000-story-nano", status="running")
    status = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**status, "pid": os.getpid()}))
    lock = RunLock(Run(path)).acquire()  # alive: a trainer holds its lock
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.summaries)
        assert app.screen.summaries[0].state == "live"
        await wait_for(pilot, lambda: f"pid {os.getpid()}" in screen_text(app))  # details
        text = screen_text(app)
        header = next(line for line in text.splitlines() if " run " in line and "state" in line)
        for column in ("steps", "best val", "dataset"):
            assert column in header, header
        row = next(line for line in text.splitlines() if "20260101-000000" in line)
        assert "running" in row and " 20 " in row and "3.600" in row and "story.txt" in row, row
    lock.release()


@pytest.mark.slow
async def test_nothing_is_cut_at_80x24_and_the_dataset_list_is_usable(runs_dir, tmp_path):
    from tests.trainings import config, start
    from tui_gpt.core.config import ModelChoice
    from tui_gpt.ui.screens.dataset import remember, remember_settings

    # Three recent datasets; the last training used the oldest, so it starts far down.
    texts = [tmp_path / f"story{i}.txt" for i in range(3)]
    for text in texts:
        text.write_text("Once upon a time. " * 100)
        remember(str(text))  # the newest ends first
    remember_settings(TrainSpec(str(texts[0]), ModelChoice("nano", 64, "byte"), config()))
    job = start(runs_dir, config(max_steps=12, eval_freq=4, sample_tokens=5))
    assert job.run_training() == "finished"
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        datasets = app.screen
        listing = datasets.query_one("#dataset-list", ListView)
        labels = [str(item.query_one(Label).render()) for item in listing.children]
        assert labels[:3] == ["recent: story2.txt", "recent: story1.txt", "recent: story0.txt"]
        assert listing.index == 2 and datasets.dataset == str(texts[0])
        assert listing.outer_size.height >= 7  # five entries or more, within its border
        await wait_for(pilot, lambda: "recent: story0.txt" in screen_text(app))  # in view
        await pilot.pause()  # what the start-up left to do after a refresh is done
        await pilot.press("end")
        assert listing.index == len(labels) - 1
        await wait_for(pilot, lambda: labels[-1] in screen_text(app))
        await pilot.press("home")
        assert listing.index == 0

        app.open_dashboard(job.run)
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        await wait_for(pilot, lambda: "needs about" in screen_text(app))
        text = screen_text(app)
        bpb = re.search(r"\(best ([\d.]+)\)", str(app.screen.query_one("#bpb").render()))
        assert bpb and "bits/byte (best" in text and f"{bpb[1]})" in text, text  # wrapped, whole
        assert re.search(r"needs about [\d.]+ [KMG]iB of memory", text), text

        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        header = screen_text(app).splitlines()[0]
        assert re.search(r"generator — best, step \d+, val [\d.]+ · the-night-kitchen-nano ", header), header
        chat.query_one("#prompt", Input).value = "Once"
        await pilot.press("enter")
        probs = chat.query_one(TokenProbs)
        await wait_for(pilot, lambda: probs.candidates)
        await wait_for(pilot, lambda: not chat.generating)
        rows = [line for line in screen_text(app).splitlines() if re.search(r"\d%", line)]
        bars = [len(re.findall("█", row)) for row in rows]
        room = probs.size.width - 6 - min(12, probs.size.width - 16) - 2
        assert bars[0] == room and all(bars), (rows, room)  # the top bar fills, none cut
        # Every candidate can be seen: a space is shown, newlines and tabs escaped.
        assert shown(" the\n\t") == "␣the\\n\\t" and all(shown(t).strip() for t, _ in probs.candidates)


async def test_the_dataset_help_gives_the_defaults_of_the_recipe_chosen(runs_dir, monkeypatch):
    from tui_gpt.ui.screens.help import HelpScreen

    monkeypatch.delenv("TUI_GPT_RECIPE")  # the default recipe: fast
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "(--tokenizer, default fit (recipe fast))" in app.screen.text
        assert "(--optimizer, default muon (recipe fast))" in app.screen.text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        app.screen.query_one("#recipe", Select).value = "reference"
        await wait_for(pilot, lambda: app.screen.recipe == "reference")
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "(--tokenizer, default gpt2)" in app.screen.text


@pytest.mark.slow
async def test_the_default_recipe_plan_says_what_the_budget_buys(runs_dir, monkeypatch):
    """Under the default recipe the plan names the shape, epochs and dropout sized to the
    budget; without a budget, blank epochs are a problem said at once."""
    monkeypatch.delenv("TUI_GPT_RECIPE")  # the default recipe: fast
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        assert screen.query_one("#preset", Select).value == "auto"
        assert screen.query_one("#epochs", Input).value == ""
        path = screen.query_one("#path", Input)
        path.value = str(NIGHT_KITCHEN)
        path.focus()
        await pilot.press("enter")

        def plan() -> str:
            return str(screen.query_one("#plan").render())

        await wait_for(pilot, lambda: "ms/step measured" in plan())
        assert re.match(r"sized: nano \(2 x 64, [\d.]+M\), context 64 \(a small text: the "
                        r"smallest shape\), 16 epochs at most, dropout 0.3\nplan: ", plan())  # fmt: skip
        screen.query_one("#minutes", Input).value = ""
        await wait_for(pilot, lambda: "Epochs (--epochs): give a number, or a time budget"
                       in preview_text(app))  # fmt: skip


@pytest.mark.slow
async def test_the_dataset_screen_follows_every_setting_at_80x24(runs_dir, tmp_path):
    """The remembered dataset is in view however far down the list; settings that do not
    apply to the architecture chosen are hidden; the plan follows every setting that
    changes it, the time budget included."""
    from tui_gpt.core.config import ModelChoice, TrainConfig
    from tui_gpt.ui.screens.dataset import remember, remember_settings

    for i in range(4):
        text = tmp_path / f"story{i}.txt"
        text.write_text("Once upon a time. " * 100)
        remember(str(text))
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        last_label, last = app.screen._choices[-1]
    remember_settings(TrainSpec(last, ModelChoice("nano", 64, "byte"), TrainConfig(epochs=2)))
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        listing = screen.query_one("#dataset-list", ListView)
        assert listing.index == len(screen._choices) - 1 and screen.dataset == last
        await wait_for(pilot, lambda: last_label in screen_text(app))  # in view
        await wait_for(pilot, lambda: "ms/step measured" in str(screen.query_one("#plan").render()))

        def row_shown(name: str) -> bool:
            return screen.query_one(f"#{name}").parent.display

        assert screen.query_one("#arch", Select).value == "gpt2"
        assert not any(row_shown(n) for n in ("kv_heads", "qk_norm", "rope_theta"))
        screen.query_one("#arch", Select).value = "llama"
        await wait_for(pilot, lambda: row_shown("kv_heads") and row_shown("qk_norm"))
        screen.query_one("#arch", Select).value = "gpt2"
        await wait_for(pilot, lambda: not row_shown("kv_heads"))

        def plan() -> str:
            return str(screen.query_one("#plan").render())

        await wait_for(pilot, lambda: "ms/step measured" in plan())
        screen.query_one("#epochs", Input).value = "100"
        await wait_for(pilot, lambda: "(100.00 epochs" in plan())
        screen.query_one("#minutes", Input).value = "0.05"
        await wait_for(pilot, lambda: plan().startswith("plan: 0.05 min budget: about"))
        screen.query_one("#minutes", Input).value = ""
        await wait_for(pilot, lambda: "(100.00 epochs" in plan())
        await wait_for(pilot, lambda: last_label in screen_text(app))  # still in view
        # Editing the lowest fields keeps the plan in view above them.
        screen.query_one("#seed", Input).focus()
        await wait_for(pilot, lambda: "Seed" in screen_text(app))
        assert "plan: " in screen_text(app) and "recipe: " in screen_text(app)
        # A choice list opens below its field with room to spare, not over the footer.
        screen.query_one("#arch", Select).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.query_one("#arch", Select).expanded)
        menu = screen.query_one("#arch SelectOverlay")
        await wait_for(pilot, lambda: menu.region.height > 0)
        assert menu.region.bottom <= app.size.height - 1  # the footer's row stays clear
        await pilot.press("escape")


async def test_keys_typed_before_a_dialog_field_has_the_focus_are_kept():
    """The "train further" dialog: a burst of keys typed as it opens (before its field has
    the focus) goes into the field, replacing the suggested value."""
    from textual import events
    from textual.app import App

    from tui_gpt.ui.screens.prompt import PromptScreen

    answers: list[str | None] = []
    app = App()
    async with app.run_test() as pilot:
        app.push_screen(PromptScreen("How many more steps?", "52", enter="train"), answers.append)
        await pilot.pause()
        app.screen.set_focus(None)  # the moment before the field has the focus
        await pilot.press("3", "0", "0", "enter")
        await wait_for(pilot, lambda: answers)
        # Keys (Enter too) that reach the dialog before its field even exists: kept, and
        # answered once it does.
        early = PromptScreen("How many more steps?", "52", enter="train")
        for key, character in (("2", "2"), ("e", "e"), ("enter", "\r")):
            early.on_key(events.Key(key, character))
        app.push_screen(early, answers.append)
        await wait_for(pilot, lambda: len(answers) == 2)
    assert answers == ["300", "2e"]


async def test_a_burst_typed_in_the_runs_browser_goes_into_the_dialog_it_opens(runs_dir):
    """A terminal delivers "x2e" or "lwide<Enter>" typed fast as one burst, all before the
    dialog that x or l opens is up: the keys after it are the dialog's (not the runs list's
    own e, Export, or Enter, Open), and an Enter in the burst answers it."""
    from textual import events

    from tui_gpt.ui.screens.prompt import PromptScreen

    fake_run(runs_dir, "20260101-000000-story-nano")
    app = TuiGptApp(runs_dir)

    def burst(keys: list[tuple[str, str]]) -> None:  # as the terminal driver posts them
        for key, character in keys:
            app.post_message(events.Key(key, character))

    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        browser = app.screen
        await wait_for(pilot, lambda: browser.summaries)
        burst([("x", "x"), ("2", "2"), ("e", "e")])
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen)
                       and app.screen.query(Input) and app.screen.query_one(Input).value == "2e")  # fmt: skip
        assert "further" in app.screen.question  # x's dialog, not e's
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is browser)
        burst([("l", "l"), *[(c, c) for c in "wide"], ("enter", "\r")])
        await wait_for(pilot, lambda: any(s.label == "wide" for s in browser.summaries))
        assert app.screen is browser  # answered, and the run was not opened
        await pilot.press("enter")  # Enter alone still opens the run
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))


def _plant_hostile_runs(runs_dir) -> dict[str, str]:
    """Runs whose files were replaced by what a hostile or careless hand leaves: each run's
    id and the file it names."""
    deep = "[" * 100_000 + "]" * 100_000
    planted = {}
    for n, (name, how) in enumerate([
        ("status.json", "deep"), ("run.json", "deep"), ("run.json", "fifo"), ("lock", "fifo"),
        ("events.jsonl", "fifo"), ("events.jsonl", "zero"), ("settings.json", "deep"),
        ("process.json", "fifo"), ("scores.json", "deep"), ("lock", "loop"),
    ]):  # fmt: skip
        run_id = f"20260101-0000{n:02d}-hostile-{n}"
        path = fake_run(runs_dir, run_id, created=1_790_000_000 + n)
        target = path / name
        target.unlink(missing_ok=True)
        if how == "deep":
            target.write_text(deep)
        elif how == "fifo":
            os.mkfifo(target)
        elif how == "zero":
            target.symlink_to("/dev/zero")
        else:
            target.symlink_to(target.name)
        planted[run_id] = name
    return planted


async def test_damaged_and_special_files_in_other_runs_never_take_the_app_down(runs_dir):
    """The runs browser lists, details and opens runs whose files are nested too deeply,
    FIFOs, links to /dev/zero or link loops: each is shown as damaged, the app stays up."""
    planted = _plant_hostile_runs(runs_dir)
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.summaries)
        screen = app.screen
        assert {Path(s.path).name for s in screen.summaries} == set(planted)
        for _ in planted:  # each row's details are read in a worker as it is highlighted
            await pilot.press("down")
            await pilot.pause(0.1)
        await pilot.press("r")  # a reload reads every run again
        await pilot.pause(0.2)
        fifo_events = next(r for r, name in planted.items() if name == "events.jsonl")
        row = [Path(s.path).name for s in screen.summaries].index(fifo_events)
        screen.query_one(DataTable).move_cursor(row=row)
        await wait_for(pilot, lambda: "Cannot read this run" in screen_text(app)
                       or "not a plain file" in screen_text(app))  # fmt: skip
        await pilot.press("enter")  # its dashboard follows a file that is no file
        await wait_for(pilot, lambda: "cannot follow this run" in str(app.screen.sub_title))
        assert app.is_running


async def test_a_tokenizer_fitted_from_the_dataset_screen_is_chosen_with_its_bar_done(runs_dir):
    """ctrl+n fits a BPE to the chosen text in a worker; the bar shows while it works (the
    worker touches no widget itself) and the new file becomes the form's tokenizer."""
    app = TuiGptApp(runs_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetScreen))
        screen = app.screen
        path = screen.query_one("#path", Input)
        path.value = str(NIGHT_KITCHEN)
        path.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.dataset == str(NIGHT_KITCHEN))
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen is not screen)  # the size is asked for
        field = app.screen.query_one(Input)
        field.value = "300"
        await pilot.press("enter")
        bar = screen.query_one("#tokenizer-progress")
        await wait_for(pilot, lambda: str(screen.query_one("#tokenizer", Select).value).endswith(".json"))
        assert not bar.has_class("busy") and bar.progress == 100
        assert Path(str(screen.query_one("#tokenizer", Select).value)).is_file()
