"""benchmarks/gpu_check.py runs its checks end to end: on a CPU here (`--device cpu
--quick`), so that a session with a GPU finds it working."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_gpu_check_runs_its_checks_on_the_cpu(tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick", "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    # The same computation twice on one CPU: exactly equal.
    assert report["resume"] == {"steps": 20, "largest_relative_difference": 0.0, "ok": True}
    assert report["decoding"]["same_tokens"] and report["decoding"]["ok"]
    assert report["speed"]["tok_per_s"] > 0 and report["speed"]["compiled"] is False
    assert "strategies" not in report  # no GPUs: no NCCL
    assert "stop and resume" in done.stdout and "decoding" in done.stdout
