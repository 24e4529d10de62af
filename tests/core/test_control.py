"""The control channel and heartbeat of a run folder, against a real training."""

import json
import os
import socket
import threading
import time

import pytest

from tests.conftest import wait_until
from tests.trainings import config, start
from tui_gpt.core import control
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.jobs import assemble
from tui_gpt.core.records import RunRecord
from tui_gpt.core.runs import RunLock, create_run, liveness, process_path
from tui_gpt.core.trainer import TrainerControl


def test_requests_apply_in_order_and_are_removed(tmp_path):
    run = create_run(tmp_path, "d", RunRecord(preset="nano"))
    ctl = TrainerControl()
    channel = control.ControlChannel(run, ctl)
    for command in ("pause", "checkpoint"):
        control.send(run, command)
    assert [p.suffix for p in control.pending(run)] == [".pause", ".checkpoint"]
    assert channel.apply_pending() == ["pause", "checkpoint"]
    assert ctl.paused and ctl.take_checkpoint_request() and not control.pending(run)
    (control.control_dir(run) / "1.resume").write_text("")  # `touch control/1.resume` works
    control.send(run, "stop")
    assert channel.apply_pending() == ["resume", "stop"]
    assert ctl.stopping and not ctl.paused
    with pytest.raises(TuiGptError, match="unknown command"):
        control.send(run, "explode")


def test_liveness_from_the_heartbeat(tmp_path):
    run = create_run(tmp_path, "d", RunRecord(preset="nano"))
    run.set_status("running")
    now = time.time()

    def beat(**fields):
        record = {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": now}
        process_path(run).write_text(json.dumps({**record, **fields}))

    beat()  # a fresh heartbeat with a live pid, but no lock held: proves nothing here
    assert liveness(run).state == "stale"
    lock = RunLock(run).acquire()
    assert liveness(run).state == "live"
    lock.release()
    beat(pid=1, heartbeat=now + 3600)  # pid 1 exists, the heartbeat is in the future: no lock
    assert liveness(run).state == "stale"
    beat(heartbeat=now - 3600)  # the process stopped beating an hour ago
    assert liveness(run).state == "stale"
    beat(pid=2**22 + 12345)  # no such process on this host
    assert liveness(run).state == "stale"
    beat(pid=2**22 + 12345, host="elsewhere")  # another machine: only the heartbeat counts
    assert liveness(run).state == "live"
    beat(ended=now)
    assert liveness(run).state == "ended"


@pytest.mark.slow
def test_pause_checkpoint_resume_stop_through_the_run_folder(runs_dir):
    ctl = TrainerControl()
    job = start(runs_dir, config(epochs=200), control=ctl)
    run = job.run
    result = {}
    worker = threading.Thread(target=lambda: result.update(outcome=job.run_training()))
    worker.start()
    try:
        wait_until(lambda: liveness(run).state == "live" and run.status().step >= 1)
        control.send(run, "pause")
        wait_until(lambda: run.status().status == "paused")
        step = run.status().step
        saved = run.latest.stat().st_mtime_ns if run.latest.exists() else 0
        control.send(run, "checkpoint")  # honoured while paused
        wait_until(lambda: run.latest.exists() and run.latest.stat().st_mtime_ns != saved)
        assert run.status().step == step  # still paused: no step was taken
        with pytest.raises(TuiGptError, match="still training"):
            assemble(
                resume=run.id, runs_dir=runs_dir
            )  # a second trainer on a live run is refused
        control.send(run, "resume")
        wait_until(lambda: run.status().step > step)
        control.send(run, "stop")
        worker.join(60)
    finally:
        ctl.stop("test over")
        worker.join(60)
    assert result["outcome"] == "stopped"
    assert run.status().status == "stopped"
    assert liveness(run).state == "ended"
    assert not control.pending(run)
    names = [e["event"] for e in run.events()]
    assert names.index("paused") < names.index("resumed") < names.index("stopped")
