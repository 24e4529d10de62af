"""The shape of the code: the layers import-linter checks (pyproject.toml) are one part;
here, that no module imports itself back through others, function-local imports included
(a circle held together by imports inside functions is still a circle)."""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_back():
    graph = grimp.build_graph("tui_gpt", cache_dir=None)  # never a stale graph
    circles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("tui_gpt") and graph.chain_exists(importer=imported, imported=importer)
    )
    assert circles == [], circles


def test_a_models_shape_needs_no_torch():
    """Settings, run records and `--help` read shapes: the module holding them stays
    torch-free (the model module builds the network from one)."""
    graph = grimp.build_graph("tui_gpt", include_external_packages=True, cache_dir=None)
    for module in ("tui_gpt.core.shape", "tui_gpt.core.config", "tui_gpt.core.records",
                   "tui_gpt.core.reading"):  # fmt: skip
        assert not graph.chain_exists(importer=module, imported="torch"), module


def test_tui_gpts_environment_variables_are_read_in_one_place_and_documented():
    import re

    from tests.conftest import ROOT
    from tui_gpt.environment import VARIABLES

    for path in (ROOT / "tui_gpt").rglob("*.py"):
        if path.name == "environment.py":
            continue
        for line in path.read_text().splitlines():
            if ("os.environ" in line or "getenv" in line) and "TUI_GPT_" in line:
                raise AssertionError(f"{path}: reads a TUI_GPT_ variable itself: {line.strip()}")
        for name in re.findall(r"TUI_GPT_[A-Z_]+", path.read_text()):
            assert name in VARIABLES, (path, name)
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Environment variables"):]
    for name in VARIABLES:
        assert f"`{name}`" in table, name


def test_a_meaningless_variable_is_one_line(tmp_path):
    from tests.conftest import NIGHT_KITCHEN, run_cli

    result = run_cli("train", str(NIGHT_KITCHEN), "--tokenizer", "byte", "--run-dir", str(tmp_path),
                     env={"TUI_GPT_THREADS": "many"}, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "TUI_GPT_THREADS='many' is not a number" in result.stderr


# What changes the whole process, and the one module allowed to (core/process.py says why).
PROCESS_SWITCHES = ("mallopt(", "gc.freeze(", "os._exit(", "set_num_threads(",
                    "_set_mkldnn_enabled(", "tempfile.tempdir =", "os.environ[")  # fmt: skip
# Signal handlers run only in the main thread: the entry points own them.
SIGNAL_OWNERS = {"cli.py", "train.py", "app.py"}


def test_process_switches_are_thrown_in_one_module():
    from tests.conftest import ROOT

    for path in (ROOT / "tui_gpt").rglob("*.py"):
        text = path.read_text()
        if path.name != "process.py":
            found = [s for s in PROCESS_SWITCHES if s in text]
            assert not found, f"{path.relative_to(ROOT)} throws {found}: core/process.py's job"
        if "signal.signal(" in text:
            assert path.name in SIGNAL_OWNERS, path


def test_help_and_runs_never_load_torch(tmp_path):
    """`--help` and `runs` answer before PyTorch would have loaded (seconds on a small
    machine): nothing on their path imports it."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = (
        "import contextlib, io, sys\n"
        "from tui_gpt import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['--help'], ['train', '--help'], ['runs', '--run-dir', sys.argv[1]]):\n"
        "        try:\n"
        "            cli.main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout[:500]
