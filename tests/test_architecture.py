"""The shape of the code: the layers import-linter checks (pyproject.toml) are one part;
here, that no module imports itself back through others, function-local imports included
(a circle held together by imports inside functions is still a circle)."""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_back():
    graph = grimp.build_graph("tui_gpt")
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
    graph = grimp.build_graph("tui_gpt", include_external_packages=True)
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
