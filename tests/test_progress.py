"""The CLI's progress bar fits the terminal at any width and redraws in place (a real
terminal: tmux at 80 columns)."""

import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import NIGHT_KITCHEN, ROOT
from tui_gpt.commands.common import TextProgress

SUFFIX = "epoch 5 · 130/290 steps · loss 5.860 · 1,680 tok/s · ETA 0:46"


@pytest.mark.parametrize("columns", [200, 100, 80, 60, 45, 30, 20])
def test_the_bar_fits_any_width_and_drops_whole_fields(columns):
    line = TextProgress("training").line(130, 290, SUFFIX, columns)
    assert len(line) < columns
    fields = line.split("%", 1)[1].strip().split(" · ") if "%" in line else []
    assert all(f in SUFFIX.split(" · ") for f in fields if f)  # no field cut in half
    if columns >= 60:
        assert "130/290 steps" in line and "ETA 0:46" in line


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_bar_redraws_in_place_in_an_80_column_terminal(tmp_path):
    sock = str(tmp_path / "tmux.sock")
    command = (
        f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m tui_gpt --run-dir "
        f"{shlex.quote(str(tmp_path / 'runs'))} train {shlex.quote(str(NIGHT_KITCHEN))} --preset "
        "nano --tokenizer byte --context-length 64 --batch-size 2 --epochs 1000 --eval-freq 100000 "
        "--sample-tokens 0; sleep 60"
    )
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-s", "t", "-x", "80", "-y", "24",
                    command], check=True)  # fmt: skip
    try:
        deadline, seen = time.monotonic() + 120, set()
        while time.monotonic() < deadline and len(seen) < 3:  # three different redraws
            screen = subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-t", "t"],
                                    capture_output=True, text=True).stdout  # fmt: skip
            bars = [line for line in screen.splitlines() if "training [" in line]
            if bars:
                assert len(bars) == 1, screen  # one line, redrawn: not a new line per step
                assert len(bars[0].rstrip()) < 80 and "ETA" in bars[0], bars[0]
                seen.add(bars[0])
            time.sleep(0.1)
        assert len(seen) >= 3, screen
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)


def test_counts_have_thousands_separators_wherever_a_run_is_described():
    from tui_gpt.core.events import Progress, RunStarted, Step, started_line

    start = RunStarted(run_id="r", params=1_234_567, train_batches=1_204, val_batches=1_100,
                       total_steps=12_040)  # fmt: skip
    assert "12,040 steps (1,204 batches/epoch, 1,100 validation)" in started_line(start)
    assert "1,234,567 parameters" in started_line(start)
    progress = Progress()
    progress.update(start)
    progress.update(Step(step=1_233, epoch=2, loss=2.0, tok_per_s=12_345.0))
    assert "1,234/12,040 steps" in progress.line() and "12,345 tok/s" in progress.line()


def test_the_eta_never_runs_past_a_time_budget():
    from tui_gpt.core.events import Progress, RunStarted, Step

    progress = Progress()
    progress.update(RunStarted(total_steps=390, time=1000.0, ends_by=1180.0))  # 3 minutes
    progress.update(Step(step=3, time=1040.0))  # 10 s a step: 386 more would be an hour
    assert progress.eta() == 140.0 and "ETA 2:20" in progress.line()
    unbounded = Progress()
    unbounded.update(RunStarted(total_steps=390, time=1000.0))
    unbounded.update(Step(step=3, time=1040.0))
    assert unbounded.eta() == 3860.0
