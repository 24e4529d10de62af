"""What a `pip install` (not editable) gets: the wheel holds every module, the stylesheet and
the sample texts, and the installed app finds its samples."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None,
    reason="setuptools is not installed here, so the wheel cannot be built offline",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    [whl] = out.glob("tui_gpt-*.whl")
    return whl


def test_the_wheel_holds_every_module_the_stylesheet_and_the_samples(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tui_gpt").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert "tui_gpt/ui/app.tcss" in names
    samples = {f"tui_gpt/sample_texts/{p.name}" for p in SAMPLES.glob("*.txt")}
    assert len(samples) >= 5 and samples <= names


@pytest.mark.slow
def test_an_installed_copy_finds_its_samples_away_from_the_repository(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    code = (
        "import json, tui_gpt; from tui_gpt.ui.screens.dataset import dataset_choices; "
        "print(json.dumps([tui_gpt.__file__, dataset_choices()]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    where, choices = json.loads(result.stdout)
    assert Path(where).is_relative_to(target)  # the installed copy, not the checkout
    labels = [label for label, _ in choices]
    assert labels[0] == "all bundled samples (folder)"
    assert {f"sample: {p.stem}" for p in SAMPLES.glob("*.txt")} <= set(labels)
    assert all(Path(path).is_relative_to(target) for _, path in choices[:6])
