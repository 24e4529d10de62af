"""The real `tui-gpt` in a real terminal (tmux): start training from the quick-start
defaults, quit while it trains, and find the checkpoint it saved on the way out."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time

import pytest

from tests.conftest import ROOT, needs_gpt2
from tests.terminal import Tmux

# The quick start's defaults: the bundled samples with GPT-2's vocabulary.
pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    needs_gpt2,
]


@pytest.mark.slow
def test_quit_while_training_in_a_real_terminal(tmp_path):
    runs = tmp_path / "runs"
    exit_file = tmp_path / "exit-code"
    env = {
        k: os.environ[k]
        for k in ("TIKTOKEN_CACHE_DIR", "TUI_GPT_DATA_DIR", "TUI_GPT_CACHE_DIR", "PATH", "HOME")
        if k in os.environ
    }
    env["TERM"] = "xterm-256color"
    command = " ".join(
        [
            "env",
            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            shlex.quote(sys.executable),
            "-m",
            "tui_gpt",
            "--run-dir",
            shlex.quote(str(runs)),
            f"; echo $? > {shlex.quote(str(exit_file))}",
        ]
    )
    tmux = Tmux(tmp_path)
    tmux("new-session", "-d", "-s", "app", "-x", "100", "-y", "30", "-c", str(ROOT), command)
    try:
        tmux.wait_for("characters")  # the dataset preview of the bundled samples
        tmux("send-keys", "-t", "app", "C-t")
        tmux.wait_for("Ep 1 (Step 000000)")
        screen = tmux.wait_for("train loss")  # the chart, drawn on its next redraw
        assert "step log" in screen and "tok/s" in screen
        tmux("send-keys", "-t", "app", "C-q")
        tmux.wait_for("Training is running.")
        tmux("send-keys", "-t", "app", "y")
        deadline = time.monotonic() + 120
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux("kill-server")
    [run] = [p for p in runs.iterdir() if p.is_dir()]
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "stopped" and status["step"] >= 0
    assert (run / "checkpoints" / "latest.safetensors").is_file()


@pytest.mark.slow
def test_terminal_hangup_stops_saves_and_exits(tmp_path):
    """The SSH session drops: tmux dies, the app gets SIGHUP while training."""
    runs = tmp_path / "runs"
    env = {
        k: os.environ[k]
        for k in ("TIKTOKEN_CACHE_DIR", "TUI_GPT_DATA_DIR", "TUI_GPT_CACHE_DIR", "PATH", "HOME")
        if k in os.environ
    }
    command = " ".join(
        [
            "env",
            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            "TERM=xterm-256color",
            shlex.quote(sys.executable),
            "-m",
            "tui_gpt",
            "--run-dir",
            shlex.quote(str(runs)),
        ]
    )
    tmux = Tmux(tmp_path)
    tmux("new-session", "-d", "-s", "app", "-x", "100", "-y", "30", "-c", str(ROOT), command)
    try:
        tmux.wait_for("characters")
        tmux("send-keys", "-t", "app", "C-t")
        tmux.wait_for("Ep 1 (Step 000000)")
    finally:
        tmux("kill-server")
    [run] = [p for p in runs.iterdir() if p.is_dir()]
    pid = json.loads((run / "status.json").read_text())["pid"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, 9)
        raise AssertionError("the app outlived its terminal")
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "stopped"
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "stopped" and "SIGHUP" in last["reason"]
    assert (run / "checkpoints" / "latest.safetensors").is_file()
