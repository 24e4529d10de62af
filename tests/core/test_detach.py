"""Background training (`tui-gpt train --detach`): it outlives its terminal, is steered from
any later shell through the run folder, saves on SIGTERM, and a run whose process died is
shown stale and picked up by --resume."""

import json
import os
import shlex
import shutil
import signal
import sys

import pytest

from tests.conftest import ROOT, SAMPLES, run_cli, wait_until
from tests.terminal import Tmux
from tui_gpt.core.runs import Run, find_run, liveness

DATA = str(SAMPLES / "the_night_kitchen.txt")


def detach(run_dir, *args: str) -> Run:
    result = run_cli("--run-dir", str(run_dir), "train", *args, "--detach")
    assert result.returncode == 0, result.stderr
    assert "training in the background" in result.stdout
    run = find_run(result.stdout.split("run ")[1].split(",")[0], run_dir)
    return run


def runs_json(run_dir) -> dict:
    result = run_cli("--run-dir", str(run_dir), "runs", "--json")
    assert result.returncode == 0, result.stderr
    return {r["id"]: r for r in json.loads(result.stdout)}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_detached_run_survives_its_terminal_going_away(tmp_path):
    runs = tmp_path / "runs"
    tmux = Tmux(tmp_path)
    env = " ".join(
        f"{k}={shlex.quote(os.environ[k])}"
        for k in ("TIKTOKEN_CACHE_DIR", "TUI_GPT_DATA_DIR", "TUI_GPT_CACHE_DIR", "PATH", "HOME")
        if k in os.environ
    )
    command = (
        f"cd {shlex.quote(str(ROOT))} && env {env} {shlex.quote(sys.executable)} -m tui_gpt "
        f"--run-dir {shlex.quote(str(runs))} train {DATA} --preset nano --tokenizer byte "
        "--epochs 500 --eval-freq 10 --detach; sleep 600"
    )
    tmux("new-session", "-d", "-s", "app", "-x", "100", "-y", "30", command)
    try:
        tmux.wait_for("tui-gpt watch")  # printed once the run folder exists
        [run] = [Run(p) for p in runs.iterdir()]
        assert liveness(run).state == "live"
        pid = liveness(run).pid
    finally:
        tmux("kill-server")  # the SSH session drops: SIGHUP to everything in the terminal
    try:
        # It goes on training with no terminal: its steps keep coming.
        wait_until(lambda: run.status().step >= 0, what="a first step")
        cut_off_at = run.status().step
        wait_until(lambda: run.status().step > cut_off_at + 2, what="steps after the hang-up")
        assert liveness(run).state == "live" and liveness(run).pid == pid
        stop = run_cli("--run-dir", str(runs), "control", run.id, "stop")
        assert stop.returncode == 0, stop.stderr
        wait_until(lambda: liveness(run).state == "ended", what="its process ending")
        assert run.status().status == "stopped" and run.latest.is_file()
        # Its last line is printed after the process said "ended": wait for it, not a moment.
        log = run.path / "train.log"
        wait_until(lambda: "stopped: run" in log.read_text(), what="the log's last line")
    finally:
        life = liveness(run)
        if life.state == "live" and life.pid:
            os.kill(life.pid, signal.SIGKILL)


def test_bad_input_with_detach_is_one_line_and_leaves_nothing(tmp_path):
    result = run_cli(
        "--run-dir", str(tmp_path / "runs"), "train", str(tmp_path / "missing.txt"), "--detach"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing.txt" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_control_sigterm_sigkill_and_resume(tmp_path):
    runs = tmp_path / "runs"
    run = detach(
        runs,
        DATA,
        "--preset",
        "nano",
        "--tokenizer",
        "byte",
        "--epochs",
        "500",
        "--eval-freq",
        "10",
    )
    try:
        paused = run_cli("--run-dir", str(runs), "control", run.id, "pause")
        assert paused.returncode == 0 and "pause: paused" in paused.stdout, paused.stderr
        listed = runs_json(runs)[run.id]
        assert (listed["state"], listed["status"]) == ("live", "paused")
        saved = run_cli("--run-dir", str(runs), "control", run.id, "checkpoint", "--json")
        assert json.loads(saved.stdout)["outcome"].startswith("saved")
        resumed = run_cli("--run-dir", str(runs), "control", run.id, "resume")
        assert "resume: running" in resumed.stdout
        # SIGTERM: save, mark stopped, exit.
        os.kill(liveness(run).pid, signal.SIGTERM)
        wait_until(lambda: liveness(run).state == "ended", what="the trainer exiting")
        assert run.status().status == "stopped" and runs_json(runs)[run.id]["state"] == "stopped"
        stopped_at = run.status().step

        # Continue in the background, then kill it without warning: stale.
        again = run_cli("--run-dir", str(runs), "train", "--resume", run.id, "--detach")
        assert again.returncode == 0, again.stderr
        wait_until(lambda: run.status().step > stopped_at + 2, what="progress")
        run_cli("--run-dir", str(runs), "control", run.id, "checkpoint")
        os.kill(liveness(run).pid, signal.SIGKILL)
        wait_until(lambda: liveness(run).state == "stale", what="the run going stale")
        assert runs_json(runs)[run.id]["state"] == "stale"
        refused = run_cli("--run-dir", str(runs), "control", run.id, "stop")
        assert refused.returncode == 2 and "not training" in refused.stderr

        # --resume picks up the run whose process died.
        final = run_cli("--run-dir", str(runs), "train", "--resume", run.id, "--further", "8")
        assert final.returncode == 0, final.stderr
        assert "resuming run" in final.stdout
        assert runs_json(runs)[run.id]["state"] == "finished"
    finally:
        life = liveness(run)
        if life.state == "live" and life.pid:
            os.kill(life.pid, signal.SIGKILL)
